"""faust's aiokafka transport with a configurable consumer fetch wait.

faust hard-codes ``fetch_max_wait_ms=1500`` for worker consumers. A broker that answers a
fetch only when that wait runs out (Tansu does, under some loads) then adds up to 1.5 s
to every decision. The wait is a latency/efficiency trade, so we make it a setting.
"""

from __future__ import annotations

from typing import Any, ClassVar

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka

__all__ = ["low_latency_transport"]


def low_latency_transport(fetch_max_wait_ms: int) -> type[faust_aiokafka.Transport]:
    """A transport class whose worker consumer waits at most ``fetch_max_wait_ms``."""

    class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
            consumer = super()._create_worker_consumer(transport)
            # read by the Fetcher that start() builds: setting it before start is enough
            consumer._fetch_max_wait_ms = fetch_max_wait_ms
            return consumer

    class _Consumer(faust_aiokafka.Consumer):
        def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
            return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    class _Transport(faust_aiokafka.Transport):
        Consumer: ClassVar[type[Any]] = _Consumer

    return _Transport
