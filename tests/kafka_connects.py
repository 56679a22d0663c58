"""kafka-python 3.0 leaves the socket of a failed connection attempt open: the tests close it.

``KafkaNetSocket.connect`` makes a socket and awaits ``sock_connect`` on it without closing
it when that raises (refused, timed out, or cancelled as a client closes), so the socket
waits for the garbage collector, held meanwhile by the frames of the traceback the client
logged, and its ResourceWarning fails whichever test collects it. Closing it when the
attempt fails is what the library should do; every other unclosed socket still fails the
test that leaked it.
"""

from __future__ import annotations

import socket
from typing import Any

from kafka.net.inet import KafkaNetSocket

__all__ = ["close_sockets_of_failed_connects"]


def close_sockets_of_failed_connects() -> None:
    original = KafkaNetSocket.sock_connect

    async def sock_connect(self: Any, net: Any, sock: socket.socket, *args: Any, **kw: Any) -> Any:
        try:
            return await original(self, net, sock, *args, **kw)
        except BaseException:
            sock.close()
            raise

    KafkaNetSocket.sock_connect = sock_connect
