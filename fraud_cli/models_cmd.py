"""``fraud models``: the registry (list, show, promote, roll back) and the training runs'
log."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from fraud_cli.options import NonEmptyPath, check_duration, parse_duration
from fraud_cli.output import reader_may_leave
from fraud_cli.settings import TrainerSettings

if TYPE_CHECKING:  # the training stack is imported only when a command runs
    from batch_training.run_log import RunLog

__all__ = ["models"]


@click.group()
@click.option(
    "--registry",
    type=NonEmptyPath(path_type=Path),
    default=None,
    help="Registry directory [env FRAUD_REGISTRY_DIR].",
)
@click.pass_context
def models(ctx: click.Context, registry: Path | None) -> None:
    """The model registry: list, inspect, promote, roll back; the training runs' log."""
    from batch_training.registry import ModelRegistry

    ctx.obj = ModelRegistry(registry or TrainerSettings().registry_dir)


def _pass_registry(command: Callable[..., None]) -> Callable[..., None]:
    """``click.pass_obj`` for a registry that must exist: a mistyped path would list
    nothing and exit 0. Checked here, not in the group, so that ``--help`` works."""

    @functools.wraps(command)
    @click.option(
        "--registry",
        "registry_dir",
        type=NonEmptyPath(path_type=Path),
        default=None,
        help="Registry directory, here or before the subcommand [env FRAUD_REGISTRY_DIR].",
    )
    @click.pass_obj
    def checked(registry: Any, /, *args: Any, registry_dir: Path | None, **kwargs: Any) -> None:
        if registry_dir is not None:  # `fraud models list --registry D`, as `fraud train` takes it
            from batch_training.registry import ModelRegistry

            registry = ModelRegistry(registry_dir)
        if not registry.root.is_dir():
            raise click.ClickException(
                f"no registry at {registry.root}: check --registry / FRAUD_REGISTRY_DIR, "
                "or train a first model with `fraud train`"
            )
        command(registry, *args, **kwargs)

    return checked


@models.command("list")
@_pass_registry
def models_list(registry: Any) -> None:
    """Every version, its test metrics and gate verdict; * marks the champion (*! one
    forced past the gate), "rolled back;" a model the gate will not promote again. Exits
    1 when the champion cannot be served, after the list."""
    from batch_training.errors import RegistryError

    try:
        champion, forced = registry.champion_version(), registry.champion_was_forced()
        pointer_error = None
    except RegistryError as exc:  # the versions are what the operator needs to choose from
        champion, forced, pointer_error = None, False, exc
    try:  # by model: a number can name another model after a hand deletion
        rolled_back = set(registry.rolled_back_models())
    except RegistryError as exc:  # stops rollback and promote, not serving: said, not fatal
        rolled_back = set()
        if pointer_error is None:
            click.echo(f"warning: {exc}", err=True)
    click.echo(
        f"{'':2}{'version':>7}  {'created':20}  {'features':12}  {'trained on':24}  "
        f"{'AP':>6}  {'CP@100':>6}  gate"
    )
    versions = registry.versions()
    unservable = None
    for version in versions:
        mark = ("*!" if forced else "*") if version == champion else ""
        try:
            # the model file checked too: an altered champion must not list as healthy
            meta, _ = registry.verify(version)
        # one damaged version (or one pruned meanwhile): the others still list
        except RegistryError as exc:
            if not registry.version_dir(version).exists():  # pruned while listing
                continue
            click.echo(f"{mark:2}{version:>7}  damaged: {exc}")
            if version == champion:
                unservable = f"the champion v{champion} is damaged"
            continue
        gate = meta.extra.get("gate", {})
        features = f"{meta.feature_set_name} v{meta.feature_set_version}"
        judged = gate.get("champion")
        verdict = "pass" if gate.get("promote") else "fail"
        if verdict == "fail" and judged is not None and gate.get("champion_metrics") is None:
            verdict = "not compared"  # e.g. the champion had trained on this test window
        if judged is not None:
            verdict += f" vs v{judged}"
        if meta.model_sha256 in rolled_back:  # the gate does not promote this model again
            verdict = f"rolled back; {verdict}"
        click.echo(
            f"{mark:2}{version:>7}  {meta.created_at[:19]:20}  "
            f"{features:12}  {meta.training_window.get('split_train', '?'):24}  "
            f"{meta.metrics.get('average_precision', float('nan')):6.3f}  "
            f"{meta.metrics.get('card_precision_at_100', float('nan')):6.3f}  "
            f"{verdict}: {gate.get('reason', '')}"
        )
    if forced:
        click.echo("*! the champion was promoted past the gate (--force)")
    if pointer_error is not None:  # its message says the fix
        raise click.ClickException(str(pointer_error))
    if champion is not None and champion not in versions:
        unservable = f"champion.json names v{champion}, which is not in the registry"
    if unservable is not None:
        raise click.ClickException(
            f"{unservable}: no worker can load it; the next training run replaces it, or "
            "`fraud models promote V --force` one listed above"
        )


@models.command("runs")
@click.option("--last", type=click.IntRange(min=1), default=10, show_default=True)
@click.option(
    "--check",
    "max_age",
    default=None,
    callback=check_duration,
    help="Exit 1 unless a run completed within this long (e.g. 26h): a health check.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run.")
@_pass_registry
def models_runs(registry: Any, last: int, max_age: str | None, as_json: bool) -> None:
    """The latest training runs, however they ended (the registry's run log)."""
    from batch_training.run_log import RunLog
    from feature_store.schema import redact_pans

    run_log = RunLog(registry.root)
    records = run_log.records()[-last:]
    with reader_may_leave():
        for r in records:
            reason = redact_pans(r.reason)  # lines written before the log redacted its own
            if as_json:
                click.echo(json.dumps(vars(r) | {"reason": reason}))
                continue
            ap = r.metrics.get("average_precision")
            click.echo(
                f"{r.started:25}  {r.seconds:7.1f}s  {r.outcome:10}  "
                f"{'v' + str(r.version) if r.version is not None else '-':>5}  "
                f"{'AP ' + format(ap, '.3f') if ap is not None else '':9}  {reason}"
            )
        sys.stdout.flush()  # a closed pipe shows here, not at exit
    if max_age is not None:
        _check_recent(run_log, parse_duration(max_age), max_age)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f}h"


def _check_recent(run_log: RunLog, max_age_s: float, max_age: str) -> None:
    completed = run_log.last_completed()
    if completed is None:
        raise click.ClickException(f"no training run has completed ({run_log.path})")
    age_s = (datetime.now(UTC) - completed.started_at).total_seconds() - completed.seconds
    if age_s > max_age_s:
        raise click.ClickException(
            f"the last completed training run ended {_age(age_s)} ago, more than "
            f"{max_age}; `fraud models runs` shows what the runs since did"
        )


@models.command("show")
@click.argument("version", type=int)
@_pass_registry
def models_show(registry: Any, version: int) -> None:
    """A version's full metadata (JSON); exits 1 after it if the model file was altered."""
    from batch_training.errors import ModelIntegrityError

    click.echo(registry.metadata(version).to_json())
    try:
        registry.verify(version)
    except ModelIntegrityError as exc:
        raise click.ClickException(str(exc)) from None


@models.command("promote")
@click.argument("version", type=int)
@click.option("--force", is_flag=True, help="Promote even though the gate did not pass it.")
@_pass_registry
def models_promote(registry: Any, version: int, force: bool) -> None:
    """Make VERSION the champion (the stream picks it up)."""
    from batch_training.model_features import feature_set_of

    meta, _ = registry.verify(version)  # --force bypasses the gate, not what a worker
    feature_set_of(meta)  # can serve: an altered model file, features defined otherwise
    champion = registry.champion_version()
    if version == champion:  # --force would mark it forced, for rollback
        click.echo(f"v{version} is already the champion; nothing changed")
        return
    gate = meta.extra.get("gate", {})
    # an operator rolled this model back: serving it again bypasses that, as the gate would
    rolled_back = registry.rolled_back_models().get(meta.model_sha256)
    passed = bool(gate.get("promote")) and gate.get("champion") == champion
    if rolled_back is not None and not force:
        same = "" if rolled_back == version else f"the same model as {registry.name(rolled_back)}, "
        raise click.ClickException(
            f"v{version} is {same}a model an operator rolled back; add --force to serve it again"
        )
    if not passed and not force and gate.get("promote"):  # it passed, against another
        judged = gate.get("champion")
        raise click.ClickException(
            f"v{version} passed the gate against "
            f"{'no champion' if judged is None else f'v{judged}'}, not against the champion "
            f"there is now ({'none' if champion is None else f'v{champion}'}): add --force "
            "to promote it anyway, or train again to judge a new version against it"
        )
    if not passed and not force:
        against = "there is no champion" if champion is None else f"the champion is v{champion}"
        raise click.ClickException(
            f"v{version} has not passed the gate against the current champion ({against}; "
            f"its gate: {gate.get('reason', 'no gate record')}); add --force to promote it "
            "anyway"
        )
    passed = passed and rolled_back is None
    if passed:  # only while the champion is still the one it was judged against
        registry.promote(version, expected=gate["champion"], refuse_rolled_back=True)
    else:
        registry.promote(version, forced=True)
    click.echo(f"v{version} is the champion{' (forced past the gate)' if not passed else ''}")


@models.command("prune")
@click.option(
    "--keep",
    type=click.IntRange(min=1),
    required=True,
    help="How many of the newest versions to keep (the champion and its rollback history "
    "are always kept).",
)
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@_pass_registry
def models_prune(registry: Any, keep: int, dry_run: bool) -> None:
    """Remove old versions a scheduled trainer left: never the champion, nor the earlier
    champions a rollback can reinstate."""
    removed = registry.prune(keep, dry_run=dry_run)
    kept = len(registry.versions()) - (len(removed) if dry_run else 0)
    names = ", ".join(f"v{v}" for v in removed) or "nothing"
    click.echo(f"{'would remove' if dry_run else 'removed'} {names}; {kept} versions kept")


@models.command("rollback")
@click.option("--force", is_flag=True, help="Roll back a champion that passed the gate.")
@_pass_registry
def models_rollback(registry: Any, force: bool) -> None:
    """Reinstate the previous champion."""
    from batch_training.errors import ModelIntegrityError
    from batch_training.model_features import feature_set_of

    current = registry.champion_version()
    if current is None:
        raise click.ClickException(f"{registry.root} has no champion to roll back")
    previous = registry.previous_champions()
    if not previous:  # said before asking for --force, which could not help
        raise click.ClickException(
            f"{registry.root} has no earlier champion to roll back to (champion: v{current})"
        )
    # e.g. after an upgrade that redefined its features: no worker would serve it
    feature_set_of(registry.metadata(previous[0]))
    if not registry.champion_was_forced() and not force:
        gone = "" if current in registry.versions() else " (its files are gone from the registry)"
        raise click.ClickException(
            f"the champion v{current}{gone} passed the promotion gate; "
            "rolling it back bypasses the gate: add --force"
        )
    try:
        reinstated = registry.rollback(expected=current)
    except ModelIntegrityError as exc:  # the earlier champion's files: say what was refused
        raise click.ClickException(
            f"cannot roll back from v{current} to v{previous[0]}, nothing changed: {exc}; "
            "or `fraud models promote V --force` another version"
        ) from None
    click.echo(f"v{reinstated} is the champion again")
