"""The champion pointer's content: which version serves, the earlier champions a rollback
reinstates, and the models an operator rolled back. Replaced only whole (see
:class:`~batch_training.registry.ModelRegistry`), so anything malformed was edited by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from batch_training.errors import ChampionMovedError, RegistryError

__all__ = [
    "ANY_CHAMPION",
    "CHAMPION_FILE",
    "champion_of",
    "previous_champions",
    "previous_forced_flags",
    "read_pointer",
    "rolled_back_models",
    "rolled_back_versions",
    "still_champion",
    "version_name",
]

CHAMPION_FILE: Final = "champion.json"
# promote(expected=...) says "the champion is still the one the gate judged against"
ANY_CHAMPION: Final = object()


def read_pointer(path: Path) -> dict[str, Any]:
    """The champion pointer at ``path`` ({} when there is none), checked as a whole."""
    try:
        text = path.read_text()
    except (FileNotFoundError, IsADirectoryError):
        return {}
    try:
        pointer = json.loads(text)
        if not isinstance(pointer, dict):
            raise ValueError(f"an object was expected, not {type(pointer).__name__}")
        version = pointer.get("version")
        if isinstance(version, bool) or not isinstance(version, int | None):
            raise ValueError(f"version {pointer['version']!r} is not a number")
    except ValueError as exc:  # JSONDecodeError is one
        raise RegistryError(
            f"the champion pointer {path} is unreadable ({exc}); it is only ever replaced "
            "whole, so it was edited by hand: delete it and `fraud models promote V "
            "--force` the version that should serve"
        ) from exc
    return pointer


def champion_of(pointer: dict[str, Any]) -> int | None:
    version = pointer.get("version")
    return None if version is None else int(version)


def _listed(pointer: dict[str, Any], key: str, kind: type) -> list[Any]:
    """The pointer's ``key`` list, checked here, where only promote and rollback read it:
    a damaged history of champions must not stop the champion itself from serving."""
    listed = pointer.get(key, [])
    if not (isinstance(listed, list) and all(type(v) is kind for v in listed)):
        raise _edited_by_hand(key, listed, f"a list of {kind.__name__}s")
    return listed


# what each list of the pointer records: what removing it forgets
_RECORDS: Final = {
    "previous": "the earlier champions a rollback reinstates",
    "previous_forced": "how the earlier champions got there",
    "rolled_back": "the models the gate will not promote again",
}


def _edited_by_hand(key: str, value: object, expected: str) -> RegistryError:
    return RegistryError(
        f"the champion pointer's {key} {value!r} is not {expected}: it is only ever "
        f'replaced whole, so it was edited by hand: remove "{key}" from {CHAMPION_FILE} '
        f"(it forgets {_RECORDS.get(key, 'what it recorded')})"
    )


def rolled_back_models(pointer: dict[str, Any]) -> dict[str, int]:
    rolled_back = pointer.get("rolled_back", {})
    if not (
        isinstance(rolled_back, dict)
        and all(isinstance(k, str) and type(v) is int for k, v in rolled_back.items())
    ):
        raise _edited_by_hand("rolled_back", rolled_back, "an object of model sha256s and versions")
    return dict(rolled_back)


def rolled_back_versions(pointer: dict[str, Any]) -> list[int]:
    return list(rolled_back_models(pointer).values())


def previous_champions(pointer: dict[str, Any]) -> list[int]:
    return _listed(pointer, "previous", int)


def previous_forced_flags(pointer: dict[str, Any], count: int) -> list[bool]:
    """Whether each earlier champion was forced; a pointer written before this was
    recorded counts them as gate-passed, so rolling back past them asks for --force."""
    recorded = _listed(pointer, "previous_forced", bool)[:count]
    return recorded + [False] * (count - len(recorded))


def version_name(version: object) -> str:
    return "no champion" if version is None else f"v{version}"


def still_champion(current: int | None, expected: object, moved_why: str) -> int | None:
    """``current``, if it is the ``expected`` champion (or nothing was expected)."""
    if expected is not ANY_CHAMPION and current != expected:
        raise ChampionMovedError(
            f"the champion moved from {version_name(expected)} to {version_name(current)} "
            + moved_why
        )
    return current
