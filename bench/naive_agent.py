"""The naive agent the stream benchmark compares against (python -m bench.naive_agent).

How a first faust agent is usually written: one event at a time, one Redis command per
feature, an XGBoost DMatrix per event, one awaited send per decision. Configured by the
same FRAUD_* variables as the worker.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import faust
import redis.asyncio as aioredis
import xgboost as xgb

from batch_training.registry import ModelRegistry
from feature_store import TransactionCodec
from feature_store.definitions import WindowAggregate
from feature_store.online.engine import epoch_ms
from stream.scoring import load_serving_model
from stream.settings import StreamSettings


def main() -> None:
    settings = StreamSettings()
    model = load_serving_model(ModelRegistry(settings.registry_dir))
    names = list(model.feature_set.names)
    client = aioredis.Redis.from_url(settings.redis_url or "redis://127.0.0.1:6379/14")
    codec = TransactionCodec()
    app = faust.App(
        f"{settings.app_id}-naive",
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        web_enabled=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.group_timeout_s,
        broker_rebalance_timeout=settings.group_timeout_s,
        datadir=str(settings.data_dir),
    )
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    source = app.topic(settings.topics.transactions, **raw)
    decisions = app.topic(settings.topics.decisions, **raw)

    @app.agent(source)
    async def score(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            tx = codec.decode(event.value, now=time.time())
            ts = epoch_ms(tx.event_time)
            row = []
            for feature in model.feature_set.features:
                if isinstance(feature, WindowAggregate):
                    entity_id = tx.card_id if feature.entity == "card" else tx.merchant_id
                    key = f"naive:{feature.entity}:{entity_id}"
                    lo = ts - (feature.delay_s + feature.window_s) * 1000
                    row.append(float(await client.zcount(key, f"({lo}", ts)))
                else:
                    row.append(tx.amount)
            for entity, entity_id in (("card", tx.card_id), ("merchant", tx.merchant_id)):
                await client.zadd(
                    f"naive:{entity}:{entity_id}", {f"{tx.transaction_id}|{tx.amount}": ts}
                )
            score = float(model.model.booster.predict(xgb.DMatrix([row], feature_names=names))[0])
            body = {
                "transaction_id": tx.transaction_id,
                "score": score,
                "latency_ms": (time.time() - event.message.timestamp) * 1000,
            }
            await decisions.send(key=tx.card_id.encode(), value=json.dumps(body).encode())

    if settings.ready_file is not None:
        ready: Path = settings.ready_file

        @app.on_rebalance_complete.connect  # type: ignore[arg-type]
        async def _ready(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
            ready.write_text("ready\n")

    faust.Worker(app, loglevel="warn", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
