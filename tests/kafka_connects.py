"""kafka-python 3.0 leaves two kinds of socket open: the tests close them.

``KafkaNetSocket.connect`` makes a socket and awaits ``sock_connect`` on it without closing
it when that raises (refused, timed out, or cancelled as a client closes), so the socket
waits for the garbage collector, held meanwhile by the frames of the traceback the client
logged, and its ResourceWarning fails whichever test collects it. Closing it when the
attempt fails is what the library should do.

A connected transport closed while its write buffer still holds a request (one the IO
thread wrote just before the client closed, e.g. the metadata refresh a consumer's
JoinGroup completion triggers) leaves the close to its pending write task
(``KafkaTCPTransport._write_to_sock``); ``NetworkSelector.close()`` then cancels that task,
which exits without closing, so the connected socket waits for the garbage collector.
Closing the socket of a closed transport when its write task is cancelled is what the
library should do.

Every other unclosed socket still fails the test that leaked it.
"""

from __future__ import annotations

import socket
from typing import Any

from kafka.net.inet import KafkaNetSocket
from kafka.net.transport import KafkaTCPTransport

__all__ = ["close_sockets_of_cancelled_writes", "close_sockets_of_failed_connects"]


def close_sockets_of_failed_connects() -> None:
    original = KafkaNetSocket.sock_connect

    async def sock_connect(self: Any, net: Any, sock: socket.socket, *args: Any, **kw: Any) -> Any:
        try:
            return await original(self, net, sock, *args, **kw)
        except BaseException:
            sock.close()
            raise

    KafkaNetSocket.sock_connect = sock_connect


def close_sockets_of_cancelled_writes() -> None:
    original = KafkaTCPTransport._write_to_sock

    async def _write_to_sock(self: Any) -> Any:
        try:
            return await original(self)
        except BaseException:
            # only a transport its owner closed: any other unclosed one still fails its test
            sock = self._sock
            if self._closed and sock is not None:
                sock.close()
            raise

    KafkaTCPTransport._write_to_sock = _write_to_sock
