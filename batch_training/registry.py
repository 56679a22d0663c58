"""The model registry: versioned directories and an atomically switched champion pointer.

Layout::

    <root>/versions/<N>/model.ubj       XGBoost's own UBJSON (never pickle)
    <root>/versions/<N>/metadata.json   features in order, feature-set hash, thresholds, ...
    <root>/versions/<N>/SHA256SUMS      both files' sha256 (``sha256sum -c`` format)
    <root>/versions/<N>/report/         the run's report, written before the version appears
    <root>/.last-version                the highest number ever given (never given again)
    <root>/champion.json                {"version": N}, replaced with os.replace (atomic)
    <root>/.champion.lock               flock held while the pointer is read and replaced

A version directory is written under a temporary name and renamed into place, so a reader
sees a whole model or none. Loading checks the sha256 of both files first.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import xgboost as xgb

from batch_training.champion_pointer import (
    ANY_CHAMPION,
    CHAMPION_FILE,
    champion_of,
    previous_champions,
    previous_forced_flags,
    read_pointer,
    rolled_back_models,
    rolled_back_versions,
    still_champion,
    version_name,
)
from batch_training.errors import (
    ModelIntegrityError,
    ModelRolledBackError,
    NoChampionError,
    RegistryError,
)
from batch_training.model_metadata import (
    LoadedModel,
    ModelMetadata,
    model_file_bytes,
    sha256_hex,
)
from feature_store.durability import fsync_path, remove_abandoned

__all__ = ["ModelRegistry"]

log = logging.getLogger(__name__)

MODEL_FILE: Final = "model.ubj"
METADATA_FILE: Final = "metadata.json"
CHECKSUMS_FILE: Final = "SHA256SUMS"
_STAGING: Final = ".staging-"
_PRUNED: Final = ".pruned-"
_LAST_NUMBER: Final = ".last-version"
# a version is written in seconds to minutes (its report included); a day is abandoned
_ABANDONED_AFTER_S: Final = 86_400.0


def _checksums(model_bytes: bytes, meta_bytes: bytes) -> bytes:
    """``sha256sum``'s format, so ``sha256sum -c SHA256SUMS`` checks a version by hand."""
    lines = [
        f"{sha256_hex(model_bytes)}  {MODEL_FILE}",
        f"{sha256_hex(meta_bytes)}  {METADATA_FILE}",
    ]
    return ("\n".join(lines) + "\n").encode()


def _recorded_metadata_sha256(version: int, path: Path) -> str:
    """The metadata's sha256 from a version's SHA256SUMS (the model's is in the metadata).
    Every version is registered with one: a version without it was damaged or edited."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ModelIntegrityError(
            f"model version {version}: {path} is missing, and with it the check of its "
            "metadata (thresholds, gate record): restore it (a version registered before "
            "2026-12-07 04:00 UTC never had one: check its metadata.json by eye, then "
            f"`cd {path.parent} && sha256sum {MODEL_FILE} {METADATA_FILE} > {CHECKSUMS_FILE}`),"
            " or train a new version or promote another one"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelIntegrityError(f"{path} is unreadable ({exc}); restore it") from exc
    # sha256sum's lines: the digest, then " " (text) or "*" (binary) before the name
    recorded = {m[2]: m[1] for m in re.finditer(r"^([0-9a-f]{64}) [ *](.+)$", text, re.M)}
    if METADATA_FILE not in recorded:  # the file is written whole: this one was edited
        raise ModelIntegrityError(f"{path} records no sha256 of {METADATA_FILE}; restore it")
    return recorded[METADATA_FILE]


class ModelRegistry:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._versions = root / "versions"

    def versions(self) -> list[int]:
        # a file named like a version (a stray copy) is not one
        return sorted(int(p.name) for p in self._numbered() if p.is_dir())

    def _numbered(self) -> list[Path]:
        """The entries of ``versions/`` named by a number (ASCII digits: int() refuses
        some other digits), directories or not."""
        if not self._versions.is_dir():
            return []
        return [p for p in self._versions.iterdir() if p.name.isascii() and p.name.isdigit()]

    def register(
        self,
        booster: xgb.Booster,
        *,
        before_publish: Callable[[ModelMetadata, Path], None] | None = None,
        **metadata: Any,
    ) -> ModelMetadata:
        """Store a new version (the next number) and return its metadata.

        ``before_publish(meta, directory)`` runs on the complete version before it
        appears (again, with the next number, if another writer took this one): what it
        writes there is published with the model, and if it raises, nothing is."""
        self._versions.mkdir(parents=True, exist_ok=True)
        self._remove_abandoned_staging()
        model_bytes = model_file_bytes(booster)
        staging = Path(tempfile.mkdtemp(prefix=_STAGING, dir=self._versions))
        try:
            _write(staging / MODEL_FILE, model_bytes)
            # mkdtemp makes it private (0700): readable like any other directory instead,
            # for a stream worker or a backup running as another user
            with contextlib.suppress(OSError):  # a file system without modes keeps its own
                staging.chmod(0o755)
            while True:
                version = self._next_version()
                meta = ModelMetadata(
                    version=version,
                    model_sha256=sha256_hex(model_bytes),
                    **metadata,
                )
                meta_bytes = meta.to_json().encode()
                _write(staging / METADATA_FILE, meta_bytes)
                _write(staging / CHECKSUMS_FILE, _checksums(model_bytes, meta_bytes))
                if before_publish is not None:
                    before_publish(meta, staging)
                    _sync_tree(staging)  # the report: published whole, as the model is
                fsync_path(staging)
                target = self._versions / str(version)
                try:
                    staging.rename(target)
                except OSError as exc:
                    if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                        continue  # another writer took this number first: take the next one
                    raise RegistryError(
                        f"cannot move the new model from {staging} to {target}: "
                        f"{exc.strerror}; check that {self._versions} is writable and on one "
                        "file system"
                    ) from exc
                fsync_path(self._versions)  # before a pointer can name it
                self._note_last_number(version)
                return meta
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)  # a half-written version: never seen
            raise

    def _remove_abandoned_staging(self) -> None:
        """A run killed while it wrote a version leaves its staging directory; one older
        than any run takes to write its version is abandoned."""
        remove_abandoned(
            [p for p in self._versions.glob(f"{_STAGING}*") if p.is_dir()],
            older_than_s=_ABANDONED_AFTER_S,
        )
        # and a pointer's or a number's temporary file, killed before its rename
        for leftovers in (".champion-*", f"{_LAST_NUMBER}-*"):
            remove_abandoned(self.root.glob(leftovers), older_than_s=_ABANDONED_AFTER_S)

    def _next_version(self) -> int:
        """One past every version stored or named by the champion pointer: a version
        deleted by hand leaves its number to its rollback history, not to a new model."""
        named: list[int] = []
        with contextlib.suppress(RegistryError):  # a damaged pointer is reported where used
            pointer = self._pointer()
            if (champion := champion_of(pointer)) is not None:
                named.append(champion)
            for listed in (previous_champions, rolled_back_versions):
                with contextlib.suppress(RegistryError):  # one damaged list: the other counts
                    named += listed(pointer)
        # a stray file counts too: the version directory could not be renamed onto it
        numbered = [int(p.name) for p in self._numbered()]
        return max([0, *numbered, *named, self._last_number()]) + 1

    def _last_number(self) -> int:
        """The highest number given so far (0: none noted, or the note is unreadable)."""
        try:
            text = (self.root / _LAST_NUMBER).read_text().strip()
        except (OSError, UnicodeDecodeError):
            return 0
        return int(text) if text.isascii() and text.isdigit() else 0

    def _note_last_number(self, version: int) -> None:
        """Noted so that a version deleted by hand never lends its number to another model
        (the run log and reports would name two models "v3")."""
        if version <= self._last_number():
            return
        note = self.root / _LAST_NUMBER
        staged = note.with_name(f"{_LAST_NUMBER}-{uuid.uuid4().hex}")
        try:
            _write(staged, f"{version}\n".encode())
            os.replace(staged, note)
            fsync_path(self.root)
        except (OSError, RegistryError) as exc:  # registered: a lost note costs only this
            staged.unlink(missing_ok=True)
            log.warning("could not note v%d as the last number in %s: %s", version, note, exc)

    def metadata(self, version: int) -> ModelMetadata:
        """A version's metadata; :class:`ModelIntegrityError` when the file was damaged."""
        path = self._versions / str(version) / METADATA_FILE
        if not path.is_file():
            if path.parent.is_dir():  # versions appear whole: this one lost a file since
                raise _missing(version, path)
            raise RegistryError(
                f"model version {version} does not exist in {self.root}; "
                f"known versions: {self.versions()}"
            )
        try:
            meta_bytes = path.read_bytes()
        except FileNotFoundError as exc:  # pruned since it was listed
            raise _missing(version, path) from exc
        recorded = _recorded_metadata_sha256(version, path.parent / CHECKSUMS_FILE)
        actual = sha256_hex(meta_bytes)
        if recorded != actual:
            raise ModelIntegrityError(
                f"model version {version}: {path} changed since it was registered (its "
                f"sha256 is {actual}, {CHECKSUMS_FILE} recorded {recorded}); "
                "its thresholds or gate record may not be the ones trained: restore the "
                "file, or train a new version or promote another one"
            )
        try:
            meta = ModelMetadata.from_json(meta_bytes.decode())
        # JSONDecodeError is a ValueError; RegistryError: thresholds out of order
        except (ValueError, KeyError, TypeError, RegistryError) as exc:
            raise ModelIntegrityError(
                f"model version {version}: {path} is unreadable ({type(exc).__name__}: "
                f"{exc}); it is written once with the model, so it was altered: train a new "
                "version, or promote another one"
            ) from exc
        if meta.version != version:  # a version directory copied to another number
            raise ModelIntegrityError(
                f"model version {version}: {path} is version {meta.version}'s; a version's "
                f"directory is not copied or renamed: move it back to versions/{meta.version}, "
                "or train a new version"
            )
        return meta

    def verify(self, version: int) -> tuple[ModelMetadata, bytes]:
        """A version's metadata and model bytes, the bytes checked against the sha256 the
        metadata recorded; :class:`ModelIntegrityError` when they differ or are missing."""
        meta = self.metadata(version)
        path = self._versions / str(version) / MODEL_FILE
        try:
            model_bytes = path.read_bytes()
        except FileNotFoundError as exc:
            raise _missing(version, path) from exc
        actual = sha256_hex(model_bytes)
        if actual != meta.model_sha256:
            raise ModelIntegrityError(
                f"model version {version}: sha256 of {MODEL_FILE} is {actual[:16]}…, metadata "
                f"says {meta.model_sha256[:16]}…; the file was altered: restore it from a "
                "backup, or serve another version (`fraud models rollback`, or `fraud models "
                "promote V`)"
            )
        return meta, model_bytes

    def load(self, version: int) -> LoadedModel:
        """Load and verify a version; raise :class:`ModelIntegrityError` on a bad checksum."""
        meta, model_bytes = self.verify(version)
        booster = xgb.Booster()
        booster.load_model(bytearray(model_bytes))
        if booster.feature_names is not None and tuple(booster.feature_names) != meta.feature_names:
            raise ModelIntegrityError(
                f"model version {version}: the booster's features {booster.feature_names} "
                f"differ from the metadata's {list(meta.feature_names)}"
            )
        return LoadedModel(booster=booster, metadata=meta)

    def _pointer(self) -> dict[str, Any]:
        return read_pointer(self.root / CHAMPION_FILE)

    def champion_version(self) -> int | None:
        return champion_of(self._pointer())

    def champion_was_forced(self) -> bool:
        """True when the champion was put there by an operator bypassing the gate."""
        return bool(self._pointer().get("forced", False))

    def previous_champions(self) -> list[int]:
        return previous_champions(self._pointer())

    def rolled_back_models(self) -> dict[str, int]:
        """The models an operator rolled back, by sha256, with the version each was: the
        gate does not promote them again (``promote`` by hand reinstates one)."""
        return rolled_back_models(self._pointer())

    def load_champion(self) -> LoadedModel:
        version = self.champion_version()
        if version is None:
            raise NoChampionError(
                f"registry {self.root} has no champion; train one with `fraud train`"
            )
        return self.load(version)

    def promote(
        self,
        version: int,
        *,
        forced: bool = False,
        expected: object = ANY_CHAMPION,
        refuse_rolled_back: bool = False,
    ) -> None:
        """Make ``version`` the champion; readers see the old or the new pointer, never half.

        With ``expected`` (a version, or None for "no champion") the promotion happens only
        if the champion is still that one; otherwise :class:`ChampionMovedError`. A model an
        operator rolled back is reinstated, or with ``refuse_rolled_back`` (a training run's
        own promotion) refused with :class:`ModelRolledBackError`.
        """
        # refuse unknown versions, and altered ones even when forced: no worker would
        # start on them
        meta, _ = self.verify(version)
        with self._pointer_lock():
            if not self.version_dir(version).is_dir():  # pruned since it was verified
                raise RegistryError(f"model version {version} was removed from {self.root}")
            pointer = self._pointer()  # read once: the lock keeps it current
            current = still_champion(
                champion_of(pointer),
                expected,
                f"while v{version} was judged against {version_name(expected)}; v{version} stays a "
                f"challenger: train again, or `fraud models promote {version} --force`",
            )
            previous = previous_champions(pointer)
            # each earlier champion keeps how it got there, for a rollback to restore
            previous_forced = previous_forced_flags(pointer, len(previous))
            if current is not None and current != version:
                previous = [current, *previous][:50]
                previous_forced = [bool(pointer.get("forced", False)), *previous_forced][:50]
            rolled_back = rolled_back_models(pointer)
            if meta.model_sha256 in rolled_back:
                if refuse_rolled_back:  # rolled back while the run judged it
                    raise ModelRolledBackError(
                        f"v{version} is the same model as "
                        f"{self.name(rolled_back[meta.model_sha256])}, "
                        f"which an operator rolled back while v{version} was judged; it stays "
                        f"a challenger: `fraud models promote {version} --force` to serve it"
                    )
                del rolled_back[meta.model_sha256]  # by hand: the operator reinstates it
            self._write_pointer(
                {
                    "version": version,
                    "forced": forced,
                    "previous": previous,
                    "previous_forced": previous_forced,
                    "rolled_back": rolled_back,
                }
            )

    def rollback(self, *, expected: object = ANY_CHAMPION) -> int:
        """Reinstate the champion before this one; return its version.

        With ``expected``, only if the champion is still that version (else
        :class:`ChampionMovedError`).
        """
        with self._pointer_lock():
            pointer = self._pointer()  # read once: the lock keeps it current
            current = still_champion(
                champion_of(pointer),
                expected,
                "before the rollback; check `fraud models list` and roll back again",
            )
            previous, rolled_back = previous_champions(pointer), rolled_back_models(pointer)
            # the reinstated champion is back as it first got there: a rollback past a
            # champion that passed the gate asks for --force again
            previous_forced = previous_forced_flags(pointer, len(previous))
            while previous and previous[0] == current:  # a hand-edited list's repeat
                previous, previous_forced = previous[1:], previous_forced[1:]
            if not previous:
                raise RegistryError(
                    f"registry {self.root} has no earlier champion to roll back to "
                    f"(champion: {current})"
                )
            reinstated, _ = self.verify(previous[0])  # no worker would start on an altered model
            rolled_back.pop(reinstated.model_sha256, None)  # serving again: not refused
            # the model rolled back is not promoted again by the gate: a schedule would
            # otherwise train it again on the same data and undo the rollback at its next
            # tick (the newest last, so that trimming keeps it)
            if current is not None and (sha := self._rolled_back_sha256(current)) is not None:
                rolled_back.pop(sha, None)
                if sha != reinstated.model_sha256:  # not when the same model serves again
                    rolled_back[sha] = current
            self._write_pointer(
                {
                    "version": previous[0],
                    "forced": previous_forced[0],
                    "previous": previous[1:],
                    "previous_forced": previous_forced[1:],
                    "rolled_back": dict(list(rolled_back.items())[-50:]),
                }
            )
        return previous[0]

    def _rolled_back_sha256(self, version: int) -> str | None:
        """The sha256 of the model ``version`` was: its metadata's (what training the same
        model gives again), else its file's; None, logged, when neither can be read."""
        try:
            return self.metadata(version).model_sha256
        except Exception as exc:  # damaged in any way: the rollback itself must happen
            damage = exc
        try:
            return sha256_hex((self.version_dir(version) / MODEL_FILE).read_bytes())
        except OSError:
            log.warning(
                "v%d is rolled back without its model's sha256 (%s): the gate may promote "
                "the same model again; `fraud train --no-promote` until it is fixed",
                version,
                damage,
            )
            return None

    def prune(self, keep: int, *, dry_run: bool = False) -> list[int]:
        """Remove all but the newest ``keep`` versions, never the champion nor the earlier
        champions a rollback can reinstate; return the versions removed (or, with
        ``dry_run``, that would be)."""
        if keep < 1:
            raise RegistryError(f"keep {keep!r}: keep at least the newest version (1)")
        # a promotion cannot name a version being removed (a dry run changes nothing)
        with contextlib.nullcontext() if dry_run else self._pointer_lock():
            pointer = self._pointer()
            versions = self.versions()
            kept = {*versions[-keep:], *previous_champions(pointer)} | {champion_of(pointer)}
            removed = [v for v in versions if v not in kept]
            if dry_run:
                return removed
            for version in removed:  # out of sight at once: a rename
                self.version_dir(version).rename(self._versions / f"{_PRUNED}{version}")
            fsync_path(self._versions)
        # then deleted outside the lock, with any a killed prune left
        for path in self._versions.glob(f"{_PRUNED}*"):
            try:
                shutil.rmtree(path)
            except OSError as exc:  # out of the registry already; its files still take space
                if not path.exists():  # another prune deleted it meanwhile
                    continue
                log.warning(
                    "%s could not be deleted (%s: %s); it is no longer a version, but its "
                    "files take space until the next prune or a removal by hand",
                    path,
                    type(exc).__name__,
                    exc,
                )
        self._remove_abandoned_staging()
        return removed

    @contextlib.contextmanager
    def _pointer_lock(self) -> Iterator[None]:
        """Pointer changes one at a time: each reads the pointer it replaces."""
        self.root.mkdir(parents=True, exist_ok=True)
        lock = self.root / ".champion.lock"
        try:
            handle = open(lock, "a")  # noqa: SIM115 (closed below, after the unlock)
        except OSError as exc:  # a read-only registry, or another user's
            raise RegistryError(
                f"cannot change {self.root}: {lock} cannot be opened for writing "
                f"({exc.strerror}); run this as a user who may write the registry, or make "
                "it writable"
            ) from exc
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # held for milliseconds: wait for it
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _write_pointer(self, pointer: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            fd, tmp = tempfile.mkstemp(prefix=".champion-", dir=self.root)
            try:
                with os.fdopen(fd, "w") as out:
                    with contextlib.suppress(OSError):  # a file system without modes
                        os.fchmod(out.fileno(), 0o644)  # mkstemp's 0600 hides it from readers
                    json.dump(pointer, out)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, self.root / CHAMPION_FILE)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:  # a full disk's names no file
            raise RegistryError(
                f"cannot write {self.root / CHAMPION_FILE}: {exc.strerror or exc}; the "
                "champion is unchanged: free space on that file system or make it writable, "
                "then try again"
            ) from exc
        fsync_path(self.root)  # the rename itself is durable only once the directory is

    def version_dir(self, version: int) -> Path:
        return self._versions / str(version)

    def name(self, version: int) -> str:
        """``vN`` for messages, saying so when its directory is gone (pruned): a reason
        may name a version the operator can no longer ``show``."""
        gone = "" if self.version_dir(version).is_dir() else " (since removed from the registry)"
        return f"v{version}{gone}"


def _sync_tree(directory: Path) -> None:
    """Every file and directory under ``directory`` on disk (its own entry is synced by
    the caller)."""
    for path in sorted(directory.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        fsync_path(path)


def _write(path: Path, data: bytes) -> None:
    """``data`` into a new file, on disk when this returns; a failed write names the file
    (a full disk's OSError from write() names none)."""
    try:
        path.write_bytes(data)
        fsync_path(path)
    except OSError as exc:
        raise RegistryError(
            f"cannot write {path}: {exc.strerror or exc}; free space on that file system "
            "or make the registry writable, then train again"
        ) from exc


def _missing(version: int, path: Path) -> ModelIntegrityError:
    return ModelIntegrityError(
        f"model version {version}: {path} is missing; train a new version, or promote another one"
    )
