"""The registry: versions, checksums, and an atomic champion pointer."""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from batch_training.errors import (
    ChampionMovedError,
    ModelIntegrityError,
    ModelRolledBackError,
    NoChampionError,
    RegistryError,
)
from batch_training.model_metadata import NEVER_ACT, Thresholds
from batch_training.registry import ModelRegistry
from stream.policy import decide_batch
from tests.conftest import rewrite_metadata


def test_champion_loads_with_its_metadata(trained_registry: ModelRegistry) -> None:
    loaded = trained_registry.load_champion()
    meta = loaded.metadata
    assert meta.version == 1
    assert loaded.booster.feature_names == list(meta.feature_names)
    assert 0 <= meta.thresholds.review <= meta.thresholds.decline <= 1
    assert len(meta.model_sha256) == 64
    assert (trained_registry.root / "versions" / "1" / "model.ubj").is_file()
    assert not list(trained_registry.root.glob("**/*.pkl"))


def test_a_tampered_model_is_refused(registry_copy: ModelRegistry) -> None:
    model_file = registry_copy.root / "versions" / "1" / "model.ubj"
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="sha256"):
        registry_copy.load(1)


def test_register_assigns_increasing_versions(
    registry_copy: ModelRegistry, registry_edits: Any
) -> None:
    assert registry_edits.register_copy(registry_copy) == 2
    assert registry_copy.versions() == [1, 2]
    assert registry_copy.champion_version() == 1  # registering does not promote


def test_versions_and_the_pointer_are_readable_by_other_users(
    registry_copy: ModelRegistry, registry_edits: Any
) -> None:
    """A stream worker or a backup may run as another user than the trainer."""
    second = registry_edits.register_copy(registry_copy)
    registry_copy.promote(second)
    assert (registry_copy.version_dir(second).stat().st_mode & 0o777) == 0o755
    assert ((registry_copy.root / "champion.json").stat().st_mode & 0o777) == 0o644
    assert not list(registry_copy.root.glob(".champion-*"))


def test_a_version_deleted_by_hand_does_not_lend_its_number(
    registry_copy: ModelRegistry, registry_edits: Any
) -> None:
    """The pointer's rollback history still names it: a new model under that number would
    be rolled back to in its place."""
    second = registry_edits.register_copy(registry_copy)
    registry_copy.promote(second)
    shutil.rmtree(registry_copy.version_dir(second))
    assert registry_copy.versions() == [1]
    assert registry_edits.register_copy(registry_copy) == second + 1


def test_a_stray_file_named_like_the_next_version_is_passed_over(
    registry_copy: ModelRegistry, registry_edits: Any
) -> None:
    """Not listed as a version, but its number is taken: renaming onto a file fails."""
    (registry_copy.root / "versions" / "2").write_text("a copy made by hand")
    (registry_copy.root / "versions" / "\u00b2").mkdir()  # a digit int() does not read
    assert registry_copy.versions() == [1]
    assert registry_edits.register_copy(registry_copy) == 3


def test_a_failed_move_into_place_is_an_error_not_a_retry(
    registry_copy: ModelRegistry,
    monkeypatch: pytest.MonkeyPatch,
    registry_edits: Any,
) -> None:
    """Only a version number taken by another writer is retried; any other failure of the
    rename (here: another file system) raises and leaves no staging directory behind."""

    def cross_device(self: Path, target: Path) -> Path:
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), str(self), None, str(target))

    monkeypatch.setattr(Path, "rename", cross_device)
    with pytest.raises(RegistryError, match=r"Invalid cross-device link; check that .* writable"):
        registry_edits.register_copy(registry_copy)
    monkeypatch.undo()
    assert sorted(p.name for p in (registry_copy.root / "versions").iterdir()) == ["1"]


def test_unknown_version_and_empty_registry(tmp_path: Path, registry_copy: ModelRegistry) -> None:
    with pytest.raises(RegistryError, match="does not exist"):
        registry_copy.promote(99)
    with pytest.raises(NoChampionError, match="fraud train"):
        ModelRegistry(registry_copy.root / "empty").load_champion()


def test_thresholds_are_validated() -> None:
    with pytest.raises(RegistryError, match=r"review=0\.9 decline=0\.5"):
        Thresholds(review=0.9, decline=0.5)


def test_never_act_is_above_a_score_of_one() -> None:
    never = Thresholds(review=NEVER_ACT, decline=NEVER_ACT)
    decisions = decide_batch(np.array([1.0, 0.5], dtype=np.float32), never)
    assert [decision for decision, _ in decisions] == ["approve", "approve"]
    with pytest.raises(RegistryError, match=r"decline=1\.5"):
        Thresholds(review=0.5, decline=1.5)


def _second_version(registry: ModelRegistry) -> int:
    return _another_model(registry)


def test_a_promotion_judged_against_a_champion_that_moved_is_refused(
    registry_copy: ModelRegistry,
) -> None:
    second = _second_version(registry_copy)
    with pytest.raises(ChampionMovedError, match=r"moved from no champion to v1 .* v2 stays"):
        registry_copy.promote(second, expected=None)
    assert registry_copy.champion_version() == 1
    registry_copy.promote(second, expected=1)
    assert registry_copy.champion_version() == second
    assert registry_copy.previous_champions() == [1]


def test_a_rollback_reinstates_a_champion_as_it_first_got_there(
    registry_copy: ModelRegistry,
) -> None:
    """v1 -> v2 -> v3 through the gate; a rollback of v3 (forced by the operator) brings
    back v2 as it passed the gate, so rolling v2 back asks for --force again."""
    second, third = _second_version(registry_copy), _second_version(registry_copy)
    registry_copy.promote(second, expected=1)
    registry_copy.promote(third, expected=second)
    assert registry_copy.rollback(expected=third) == second
    assert not registry_copy.champion_was_forced()
    # an operator's bypass is marked, and undoing it restores v2's own record
    registry_copy.promote(1, forced=True)
    assert registry_copy.champion_was_forced()
    assert registry_copy.rollback() == second
    assert not registry_copy.champion_was_forced()
    assert registry_copy.previous_champions() == [1]


@pytest.mark.parametrize("pointer", ['{"version": 1', '{"version": true}'])
def test_a_hand_edited_champion_pointer_is_a_clear_error(
    registry_copy: ModelRegistry, pointer: str
) -> None:
    (registry_copy.root / "champion.json").write_text(pointer)
    with pytest.raises(RegistryError, match=r"champion\.json is unreadable .* delete it"):
        registry_copy.champion_version()


@pytest.mark.parametrize(
    "history",
    [
        '"previous": "abc"',
        '"previous": [null]',
        '"previous": [1], "previous_forced": ["no"]',
        '"previous": [1], "rolled_back": {"abc": "v2"}',
    ],
)
def test_a_damaged_list_of_earlier_champions_stops_rollback_not_serving(
    registry_copy: ModelRegistry, history: str
) -> None:
    (registry_copy.root / "champion.json").write_text(f'{{"version": 1, {history}}}')
    assert registry_copy.champion_version() == 1  # the stream and training still read it
    with pytest.raises(RegistryError, match=r'edited by hand: remove "[a-z_]+" from champion'):
        registry_copy.rollback()


def _tamper(registry: ModelRegistry, version: int) -> None:
    model_file = registry.version_dir(version) / "model.ubj"
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))


def test_an_altered_model_never_becomes_champion_even_forced(
    registry_copy: ModelRegistry,
) -> None:
    """--force bypasses the gate, not the checksum: no worker would start on the model."""
    second = _second_version(registry_copy)
    _tamper(registry_copy, second)
    with pytest.raises(ModelIntegrityError, match="sha256"):
        registry_copy.promote(second, forced=True)
    assert registry_copy.champion_version() == 1
    # nor by a rollback onto it
    third = _second_version(registry_copy)
    registry_copy.promote(third, forced=True)
    _tamper(registry_copy, 1)
    with pytest.raises(ModelIntegrityError, match="sha256"):
        registry_copy.rollback()
    assert registry_copy.champion_version() == third


def test_damaged_metadata_is_an_integrity_error_naming_the_file(
    registry_copy: ModelRegistry,
) -> None:
    """So training replaces such a champion, and the CLI says it in one line."""
    second = _second_version(registry_copy)
    path = registry_copy.version_dir(second) / "metadata.json"
    rewrite_metadata(path.parent, '{"broken')
    with pytest.raises(
        ModelIntegrityError, match=rf"version {second}: .*metadata\.json is unreadable"
    ):
        registry_copy.metadata(second)
    rewrite_metadata(path.parent, '{"version": 2}')  # valid JSON, fields missing
    with pytest.raises(ModelIntegrityError, match="KeyError"):
        registry_copy.load(second)
    fields = json.loads((registry_copy.version_dir(1) / "metadata.json").read_text())
    for damage, error in (
        ({"thresholds": {"review": 0.9, "decline": 0.5}}, "RegistryError"),
        ({"metrics": []}, "TypeError"),
    ):
        rewrite_metadata(path.parent, json.dumps(fields | damage))
        with pytest.raises(ModelIntegrityError, match=rf"version {second}: .*\({error}: "):
            registry_copy.metadata(second)
    path.unlink()  # a version directory that lost its metadata
    with pytest.raises(
        ModelIntegrityError, match=rf"version {second}: .*metadata\.json is missing"
    ):
        registry_copy.metadata(second)


def test_a_failed_write_leaves_no_staging_directory(
    registry_copy: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(self: Path, data: bytes) -> int:  # write() names no file
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_bytes", disk_full)
    with pytest.raises(RegistryError, match=r"cannot write .*model\.ubj: No space left on de"):
        _second_version(registry_copy)
    monkeypatch.undo()
    assert sorted(p.name for p in (registry_copy.root / "versions").iterdir()) == ["1"]


def test_promotion_is_atomic_under_a_concurrent_reader(registry_copy: ModelRegistry) -> None:
    """A reader loading the champion (pointer, metadata, model and its sha256, as the
    stream's reload does) while the pointer flips sees whole champions only, both of them."""
    second = _second_version(registry_copy)
    stop = threading.Event()
    seen: set[int] = set()
    errors: list[BaseException] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                loaded = registry_copy.load_champion()
                seen.add(loaded.metadata.version)
            except BaseException as exc:  # a torn pointer would show up here
                errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    deadline = time.monotonic() + 30
    promotions = 0
    while (promotions < 100 or seen != {1, second}) and time.monotonic() < deadline:
        registry_copy.promote((1, second)[promotions % 2])
        promotions += 1
    stop.set()
    thread.join()
    assert not errors
    assert seen == {1, second}


def test_concurrent_promotions_lose_no_rollback_entry(registry_copy: ModelRegistry) -> None:
    versions = [_second_version(registry_copy) for _ in range(6)]
    start = threading.Barrier(len(versions))

    def promote_many(version: int) -> None:
        start.wait()
        for _ in range(5):  # 30 promotions: the pointer keeps the last 50
            registry_copy.promote(version, forced=True)

    threads = [threading.Thread(target=promote_many, args=(v,)) for v in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # each promotion read the pointer it replaced: the history is a chain of real champions
    chain = [registry_copy.champion_version(), *registry_copy.previous_champions()]
    assert set(chain) == {1, *versions}
    assert all(a != b for a, b in itertools.pairwise(chain))


def test_an_edited_metadata_file_is_refused_like_an_altered_model(
    registry_copy: ModelRegistry,
) -> None:
    """Its thresholds and gate record decide what the stream does: an edit that makes a
    version never act, and says it passed the gate, is an altered file."""
    second = _second_version(registry_copy)
    path = registry_copy.version_dir(second) / "metadata.json"
    fields = json.loads(path.read_text())
    fields["thresholds"] = {"review": NEVER_ACT, "decline": NEVER_ACT}
    path.write_text(json.dumps(fields))
    with pytest.raises(
        ModelIntegrityError, match=rf"version {second}: .* changed since it was reg"
    ):
        registry_copy.metadata(second)
    with pytest.raises(ModelIntegrityError, match="changed since it was registered"):
        registry_copy.promote(second, forced=True)
    assert registry_copy.champion_version() == 1


def test_a_version_records_both_files_sha256_in_sha256sum_format(
    registry_copy: ModelRegistry,
) -> None:
    """So `sha256sum -c SHA256SUMS` checks a version by hand, without this product."""
    version_dir = registry_copy.version_dir(_second_version(registry_copy))
    lines = (version_dir / "SHA256SUMS").read_text().splitlines()
    expected = {
        f"{hashlib.sha256((version_dir / name).read_bytes()).hexdigest()}  {name}"
        for name in ("model.ubj", "metadata.json")
    }
    assert set(lines) == expected


def test_a_version_without_its_checksums_is_refused_whatever_its_metadata_says(
    registry_copy: ModelRegistry,
) -> None:
    """Metadata said whether SHA256SUMS had been written: deleting that key and the file
    served an edited champion (thresholds that never decline) as healthy."""
    second = _second_version(registry_copy)
    directory = registry_copy.version_dir(second)
    (directory / "SHA256SUMS").unlink()
    fields = json.loads((directory / "metadata.json").read_text())
    fields.pop("checksummed", None)  # the flag versions of 2026-12-07 carried
    fields["thresholds"] = {"review": 1.0, "decline": 1.0}
    (directory / "metadata.json").write_text(json.dumps(fields))
    with pytest.raises(ModelIntegrityError, match=r"SHA256SUMS is missing, and with it the check"):
        registry_copy.load(second)


def test_a_version_written_with_the_checksummed_flag_still_loads(
    registry_copy: ModelRegistry,
) -> None:
    """Versions registered on 2026-12-07 carry ``"checksummed": true`` in their metadata."""
    directory = registry_copy.version_dir(1)
    fields = json.loads((directory / "metadata.json").read_text()) | {"checksummed": True}
    rewrite_metadata(directory, json.dumps(fields))
    assert registry_copy.load(1).metadata.version == 1


def test_a_version_directory_copied_to_another_number_is_refused(
    registry_copy: ModelRegistry,
) -> None:
    """`cp -r versions/1 versions/9` passed every check and served as 9 what is 1."""
    shutil.copytree(registry_copy.version_dir(1), registry_copy.root / "versions" / "9")
    with pytest.raises(ModelIntegrityError, match=r"metadata.json is version 1's; .* versions/1"):
        registry_copy.load(9)


def test_what_runs_before_publishing_is_published_with_the_version_or_nothing_is(
    registry_copy: ModelRegistry, synced_paths: list[str]
) -> None:
    loaded = registry_copy.load(1)
    fields = {
        k: v for k, v in vars(loaded.metadata).items() if k not in {"version", "model_sha256"}
    }
    seen: list[int] = []

    def write_report(meta: Any, directory: Path) -> None:
        seen.append(meta.version)
        (directory / "report").mkdir()
        (directory / "report" / "index.html").write_text(f"version {meta.version}")

    meta = registry_copy.register(loaded.booster, before_publish=write_report, **fields)
    report = registry_copy.version_dir(meta.version) / "report" / "index.html"
    assert seen == [2]
    assert report.read_text() == "version 2"
    # on disk before the version is named, as its model is (the report was not synced)
    assert any(p.endswith("/report/index.html") for p in synced_paths)
    assert any(p.endswith("/report") for p in synced_paths)

    def fail(meta: Any, directory: Path) -> None:
        raise OSError(errno.EROFS, "read-only file system")

    with pytest.raises(OSError, match="read-only"):
        registry_copy.register(loaded.booster, before_publish=fail, **fields)
    assert sorted(p.name for p in (registry_copy.root / "versions").iterdir()) == ["1", "2"]


def test_a_staging_directory_abandoned_by_a_killed_run_is_removed(
    registry_copy: ModelRegistry, registry_edits: Any
) -> None:
    versions = registry_copy.root / "versions"
    old, fresh = versions / ".staging-killed", versions / ".staging-writing"
    for path in (old, fresh):
        path.mkdir()
        (path / "model.ubj").write_bytes(b"half")
    # and a champion pointer's temporary file, killed before its rename
    old_pointer, fresh_pointer = (registry_copy.root / f".champion-{n}" for n in ("a", "b"))
    for path in (old_pointer, fresh_pointer):
        path.write_text("{")
    two_days_ago = time.time() - 2 * 86_400
    for path in (old, old_pointer):
        os.utime(path, (two_days_ago, two_days_ago))
    registry_edits.register_copy(registry_copy)
    assert not old.exists()
    assert fresh.exists()  # another writer's, perhaps: left alone
    assert not old_pointer.exists()
    assert fresh_pointer.exists()


def test_prune_keeps_the_newest_the_champion_and_what_a_rollback_can_reinstate(
    registry_copy: ModelRegistry, registry_edits: Any
) -> None:
    for _ in range(6):
        registry_edits.register_copy(registry_copy)  # versions 2..7
    registry_copy.promote(3, forced=True)  # history: [1]
    registry_copy.promote(4, forced=True)  # history: [3, 1]
    assert registry_copy.prune(2, dry_run=True) == [2, 5]
    assert registry_copy.versions() == [1, 2, 3, 4, 5, 6, 7]
    (registry_copy.root / "versions" / ".pruned-0").mkdir()  # left by a killed prune
    assert registry_copy.prune(2) == [2, 5]
    assert registry_copy.versions() == [1, 3, 4, 6, 7]
    assert [p.name for p in (registry_copy.root / "versions").iterdir() if p.name[0] == "."] == []
    assert registry_copy.rollback() == 3
    assert registry_copy.rollback() == 1
    assert registry_edits.register_copy(registry_copy) == 8  # numbers are not reused
    with pytest.raises(RegistryError, match="keep 0: keep at least the newest version"):
        registry_copy.prune(0)


def test_sha256sums_in_binary_mode_is_read_and_one_without_the_metadata_is_refused(
    registry_copy: ModelRegistry,
) -> None:
    """`sha256sum -b` writes "digest *name"; a file that lost the metadata's line would
    otherwise leave the metadata unchecked."""
    second = _second_version(registry_copy)
    sums = registry_copy.version_dir(second) / "SHA256SUMS"
    sums.write_text(sums.read_text().replace("  ", " *"))
    assert registry_copy.metadata(second).version == second
    rewrite_metadata(registry_copy.version_dir(second), "{}")  # checked in binary mode too
    sums.write_text(sums.read_text().replace("  ", " *"))
    with pytest.raises(ModelIntegrityError, match="KeyError"):
        registry_copy.metadata(second)
    model_line = next(line for line in sums.read_text().splitlines() if "model.ubj" in line)
    sums.write_text(model_line + "\n")
    with pytest.raises(ModelIntegrityError, match=r"records no sha256 of metadata\.json"):
        registry_copy.metadata(second)


def _another_model(registry: ModelRegistry, tag: str | None = None) -> int:
    """A new version of v1's model; with ``tag``, made different in its bytes (an
    attribute)."""
    loaded = registry.load(1)
    if tag is not None:
        loaded.booster.set_attr(tag=tag)
    fields = {
        k: v for k, v in vars(loaded.metadata).items() if k not in {"version", "model_sha256"}
    }
    return registry.register(loaded.booster, **fields).version


def test_a_rolled_back_model_is_refused_to_a_run_and_reinstated_by_hand(
    registry_copy: ModelRegistry,
) -> None:
    """A run judged a model an operator rolled back meanwhile: its promotion is refused
    under the pointer's lock, and only a promotion by hand reinstates the model."""
    second = _another_model(registry_copy, "b")
    registry_copy.promote(second, forced=True)
    registry_copy.rollback()
    sha = registry_copy.metadata(second).model_sha256
    assert registry_copy.rolled_back_models() == {sha: second}
    same = _second_version(registry_copy)  # v1's model again: not rolled back
    twin = _another_model(registry_copy, "b")  # the rolled-back model, trained again
    with pytest.raises(ModelRolledBackError, match=rf"v{twin} is the same model as v{second}"):
        registry_copy.promote(twin, expected=1, refuse_rolled_back=True)
    assert registry_copy.champion_version() == 1
    registry_copy.promote(same, expected=1, refuse_rolled_back=True)
    registry_copy.promote(twin, forced=True)
    assert registry_copy.rolled_back_models() == {}


def test_a_pruned_rolled_back_version_is_named_as_removed(
    registry_copy: ModelRegistry,
) -> None:
    """The refusal still names the version rolled back, and says why `models show` of it
    fails: prune removed it."""
    second = _another_model(registry_copy, "b")
    registry_copy.promote(second, forced=True)
    registry_copy.rollback()
    twin = _another_model(registry_copy, "b")
    assert registry_copy.prune(keep=1) == [second]
    assert registry_copy.name(second) == f"v{second} (since removed from the registry)"
    assert registry_copy.name(twin) == f"v{twin}"
    with pytest.raises(
        ModelRolledBackError,
        match=rf"v{twin} is the same model as v{second} \(since removed from the registry\)",
    ):
        registry_copy.promote(twin, expected=1, refuse_rolled_back=True)


def test_a_rollback_onto_a_rolled_back_model_serves_it_again(
    registry_copy: ModelRegistry,
) -> None:
    second = _another_model(registry_copy, "b")
    sha1, sha2 = (registry_copy.metadata(v).model_sha256 for v in (1, second))
    registry_copy.promote(second, forced=True)
    registry_copy.promote(1, forced=True)  # champions: 1, then 2, then 1 again
    assert registry_copy.rollback() == second  # 1 rolled back
    assert registry_copy.rolled_back_models() == {sha1: 1}
    assert registry_copy.rollback() == 1  # serving again: no longer refused
    assert registry_copy.rolled_back_models() == {sha2: second}


def test_a_rolled_back_version_keeps_its_number_after_a_hand_deletion(
    registry_copy: ModelRegistry,
) -> None:
    second = _another_model(registry_copy, "b")
    registry_copy.promote(second, forced=True)
    registry_copy.rollback()
    shutil.rmtree(registry_copy.version_dir(second))
    assert _another_model(registry_copy, "c") == second + 1


def test_a_rollback_past_damaged_metadata_records_the_model_file(
    registry_copy: ModelRegistry,
) -> None:
    """The rollback happens, and the model (intact) is still refused to the gate."""
    second = _another_model(registry_copy, "b")
    registry_copy.promote(second, forced=True)
    sha = registry_copy.metadata(second).model_sha256
    (registry_copy.version_dir(second) / "metadata.json").write_text("[]")
    assert registry_copy.rollback() == 1
    assert registry_copy.rolled_back_models() == {sha: second}


def test_a_rollback_between_two_versions_of_one_model_refuses_nothing(
    registry_copy: ModelRegistry,
) -> None:
    """A restarted schedule can register the champion's model again: rolling back from
    that copy must not mark the model now serving as rolled back."""
    second = _another_model(registry_copy, "b")
    registry_copy.promote(second, forced=True)
    registry_copy.promote(_another_model(registry_copy, "b"), forced=True)
    assert registry_copy.rollback() == second
    assert registry_copy.rolled_back_models() == {}


def test_a_damaged_list_in_the_pointer_leaves_the_other_lists_numbers_taken(
    registry_copy: ModelRegistry,
) -> None:
    second = _another_model(registry_copy, "b")
    registry_copy.promote(second, forced=True)
    registry_copy.rollback()
    pointer = registry_copy.root / "champion.json"
    pointer.write_text(json.dumps(json.loads(pointer.read_text()) | {"previous": "abc"}))
    shutil.rmtree(registry_copy.version_dir(second))
    assert _another_model(registry_copy, "c") == second + 1


def test_a_pointer_that_cannot_be_written_says_which_file_and_leaves_the_champion(
    registry_copy: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk during `models promote` was a bare `[Errno 28] No space left on
    device`, naming no file."""
    second = _second_version(registry_copy)

    def full_disk(*_: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("batch_training.registry.os.replace", full_disk)
    with pytest.raises(RegistryError) as refused:
        registry_copy.promote(second, forced=True)
    assert str(refused.value) == (
        f"cannot write {registry_copy.root / 'champion.json'}: No space left on device; the "
        "champion is unchanged: free space on that file system or make it writable, then "
        "try again"
    )
    monkeypatch.undo()
    assert registry_copy.champion_version() == 1
    assert list(registry_copy.root.glob(".champion-*")) == []


def test_a_version_deleted_by_hand_never_lends_its_number(registry_copy: ModelRegistry) -> None:
    """`rm -rf versions/3` gave the next model the number 3: the run log then named two
    different models "v3"."""
    second = _second_version(registry_copy)
    shutil.rmtree(registry_copy.version_dir(second))
    assert _another_model(registry_copy) == second + 1
    (registry_copy.root / ".last-version").write_text("garbage")  # hand damage
    assert _another_model(registry_copy) == second + 2  # the versions stored still count


def test_a_pruned_version_whose_files_cannot_be_deleted_is_said(
    registry_copy: ModelRegistry, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """`prune` said "removed v2" with all of v2's files still on disk (an immutable file)."""
    second = _second_version(registry_copy)
    _another_model(registry_copy)

    def undeletable(path: Path, *_: object, **__: object) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted", str(path))

    monkeypatch.setattr("batch_training.registry.shutil.rmtree", undeletable)
    with caplog.at_level(logging.WARNING, logger="batch_training.registry"):
        assert registry_copy.prune(1) == [second]
    assert second not in registry_copy.versions()
    left = registry_copy.root / "versions" / f".pruned-{second}"
    assert left.is_dir()
    assert [r.getMessage() for r in caplog.records] == [
        f"{left} could not be deleted (PermissionError: [Errno 1] Operation not permitted: "
        f"'{left}'); it is no longer a version, but its files take space until the next "
        "prune or a removal by hand"
    ]


def test_a_rollback_skips_a_hand_edited_repeat_of_the_champion(
    registry_copy: ModelRegistry,
) -> None:
    """With `"previous": [2, 2, 9]` the second rollback said "v2 is the champion again"
    while v2 already was, using up an entry."""
    second = _second_version(registry_copy)
    third = _another_model(registry_copy)
    (registry_copy.root / "champion.json").write_text(
        json.dumps({"version": third, "previous": [second, second, 1]})
    )
    assert registry_copy.rollback() == second
    assert registry_copy.rollback() == 1
    with pytest.raises(RegistryError, match="no earlier champion to roll back to"):
        registry_copy.rollback()
