"""Sockets that name where they were made, so a leaked one's warning says who leaked it.

A socket finalised unclosed raises a ResourceWarning, which this suite makes an error;
pytest reports it with the socket's repr, at whichever test the collector happened to
run in. That repr names addresses, not code. Every socket made while the tests run is
made by a subclass whose repr adds the frames that made it (the innermost few outside
the standard library), kept on the socket itself because a socket in a collected cycle
has lost its weak references by the time it is finalised.
"""

from __future__ import annotations

import socket
import sys
import sysconfig
from types import FrameType
from typing import Any

__all__ = ["trace_socket_origins"]

# libraries first: outside a virtual environment they sit under the standard library's
_LIBRARIES = tuple({sysconfig.get_paths()[k] + "/" for k in ("purelib", "platlib")})
_STDLIB = sysconfig.get_paths()["stdlib"] + "/"
_FRAMES = 6


def _origin() -> str:
    frames: list[str] = []
    frame: FrameType | None = sys._getframe(2)
    while frame is not None and len(frames) < _FRAMES:
        path = frame.f_code.co_filename
        library = next((p for p in _LIBRARIES if path.startswith(p)), None)
        if library is not None or not path.startswith(_STDLIB):
            short = path.removeprefix(library or "")
            frames.append(f"{short}:{frame.f_lineno} {frame.f_code.co_name}")
        frame = frame.f_back
    return " <- ".join(frames) or "the standard library"


class _TracedSocket(socket.socket):
    __slots__ = ("_made_at",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._made_at = _origin()

    def __repr__(self) -> str:
        made_at = getattr(self, "_made_at", "unknown")
        return f"{super().__repr__()[:-1]}, made at {made_at}>"


def trace_socket_origins() -> None:
    """Make every later ``socket.socket(...)``, in this process, a traced socket."""
    socket.socket = _TracedSocket  # type: ignore[misc]
