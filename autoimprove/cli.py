"""The `autoimprove` command line (Typer): validate policies, run a round, inspect rounds.

Errors a user can fix (a bad policy, a missing workspace, an unknown round) print one clear
message and exit 2; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from autoimprove.context import Progress as ProgressFn
from autoimprove.context import Workspace
from autoimprove.lock import WorkspaceBusy, WorkspaceLock
from autoimprove.policy import Policy, PolicyError, load_policy
from autoimprove.runtime import offline_env
from autoimprove.store import Store
from autoimprove.views import (
    registry_of,
    round_detail,
    rounds_data,
    show_data,
    status_data,
    summary_table,
)

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
policy_app = typer.Typer(no_args_is_help=True, help="Policy files.")
app.add_typer(policy_app, name="policy")
console = Console()
err = Console(stderr=True, soft_wrap=True)  # one-line errors, never wrapped mid-path

PolicyOpt = Annotated[Path, typer.Option("--policy", "-p", help="Policy YAML file.")]
WorkspaceOpt = Annotated[
    Path, typer.Option("--workspace", "-w", help="Workspace folder (state, MLflow, artifacts).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code=2)


def _load(policy_path: Path) -> Policy:
    try:
        return load_policy(policy_path)
    except PolicyError as exc:
        err.print(str(exc), highlight=False, markup=False)
        raise typer.Exit(code=2) from None


def _check_tasks(policy: Policy, source: Path) -> None:
    """Exit 2 before any compute if an evaluation task is unknown or has no data here."""
    from autoimprove.heldout import check_tasks

    errors = check_tasks(policy.evaluation)
    if errors:
        lines = "\n".join(f"  - {e}" for e in errors)
        raise _fail(f"{source}: {len(errors)} error(s)\n{lines}")


def _store(workspace: Path) -> Store:
    ws = Workspace(workspace)
    if not ws.state_db.is_file():
        raise _fail(f"{workspace} is not an autoimprove workspace (no state.db); run a round first")
    return Store(ws.state_db)


@policy_app.command("validate")
def policy_validate(path: Annotated[Path, typer.Argument(help="Policy YAML file.")]) -> None:
    """Check a policy file; list every error with its field path (exit 2 if any)."""
    policy = _load(path)
    _check_tasks(policy, path)
    console.print(f"{path}: ok (policy hash {policy.digest()})", highlight=False)


def _progress_bars() -> tuple[Progress, ProgressFn]:
    bars = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not sys.stderr.isatty(),
    )
    tasks: dict[str, TaskID] = {}
    last_line: dict[str, float] = {}

    def progress(label: str, done: int, total: int) -> None:
        key = label.split(" ")[0]
        if bars.disable:  # not a terminal: a plain line at most every 10 s, and at the end
            now = time.monotonic()
            if done >= total or now - last_line.get(key, 0.0) >= 10:
                last_line[key] = now
                err.print(f"{label}: {done}/{total}", highlight=False, markup=False)
            return
        if key not in tasks:
            tasks[key] = bars.add_task(label, total=total)
        bars.update(tasks[key], description=label, completed=done, total=total)

    return bars, progress


def _print_outcome(workspace: Path, round_id: int, champion: str | None, as_json: bool) -> None:
    row = Store(Workspace(workspace).state_db).get_round(round_id)
    assert row is not None
    detail = round_detail(row, champion)
    if as_json:
        print(json.dumps(detail, indent=1), flush=True)
    else:
        console.print(summary_table(detail))


@app.command("round")
def round_cmd(policy: PolicyOpt, workspace: WorkspaceOpt, as_json: JsonOpt = False) -> None:
    """Run one round now and print its summary (no schedule).

    A round an earlier `round` or `run` left unfinished (killed, interrupted) is resumed first, with
    the policy it started with; otherwise a new round starts on the current champion.
    """
    offline_env()
    logging.basicConfig(level=logging.WARNING)
    loaded = _load(policy)
    _check_tasks(loaded, policy)
    from autoimprove.rounds import Controller

    bars, progress = _progress_bars()
    try:
        with WorkspaceLock(Workspace(workspace).lock_file):
            controller = Controller(Workspace(workspace), progress)
            controller.store.abandon_running_step_runs()
            unfinished = controller.store.unfinished_rounds()
            if unfinished:
                row = unfinished[0]
                assert row.id is not None
                round_id = row.id
                err.print(
                    f"resuming unfinished round {round_id} (left at {row.progress}); "
                    "run `round` again for a new one",
                    highlight=False,
                )
                controller.store.add_resume_event(row)
            else:
                round_id = controller.start_round(loaded)
            with bars:
                outcome, abandoned = controller.finish(round_id)
    except WorkspaceBusy as exc:
        raise _fail(str(exc)) from None
    _print_outcome(workspace, outcome.round_id, outcome.champion_version, as_json)
    if abandoned is not None:
        first_line = abandoned.splitlines()[0]
        err.print(f"[red]round {round_id} abandoned:[/red] {first_line}", highlight=False)
        raise typer.Exit(code=1)


@app.command("run")
def run_cmd(
    policy: PolicyOpt,
    workspace: WorkspaceOpt,
    rounds: Annotated[
        int | None,
        typer.Option(
            "--rounds",
            min=1,
            help="Finish this many rounds back to back (unfinished ones first), then exit 0. "
            "Without it: run forever on the policy's schedule.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The daemon: resume unfinished rounds, then run rounds on the policy's schedule.

    SIGTERM/SIGINT stop it after the step in flight (resumable, exit 0). One per workspace.
    """
    offline_env()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    _check_tasks(_load(policy), policy)
    from autoimprove.daemon import Daemon

    bars, progress = _progress_bars()

    def report(outcome) -> None:  # noqa: ANN001 - RoundOutcome
        _print_outcome(workspace, outcome.round_id, outcome.champion_version, as_json)

    try:
        daemon = Daemon(policy, Workspace(workspace), rounds, progress, on_outcome=report)
        with bars:
            code = daemon.run()
    except WorkspaceBusy as exc:
        raise _fail(str(exc)) from None
    except PolicyError as exc:
        err.print(str(exc), highlight=False, markup=False)
        raise typer.Exit(code=2) from None
    raise typer.Exit(code=code)


@app.command("status")
def status(workspace: WorkspaceOpt, as_json: JsonOpt = False) -> None:
    """The champion and the rounds, newest first."""
    offline_env()
    store = _store(workspace)
    data = status_data(workspace, store)
    name, version = data["champion"]["name"], data["champion"]["version"]
    rounds = store.list_rounds()
    if as_json:
        print(json.dumps(data, indent=1))
        return
    console.print(f"champion: {name} version {version or 'base model'}", highlight=False)
    info = data["daemon"]
    console.print(
        f"daemon: {'running, pid ' + info['pid'] if info['pid'] else 'not running'}",
        highlight=False,
    )
    if info["policy_error"]:
        console.print(f"[red]policy rejected[/red] {info['policy_error']['at']}:", highlight=False)
        console.print(info["policy_error"]["message"], highlight=False, markup=False)
    table = Table("id", "state", "decision", "version", "started")
    for r in rounds:
        table.add_row(
            str(r.id), r.state, str(r.decision), str(r.model_version), r.started_at.isoformat()[:19]
        )
    console.print(table)


@app.command("show")
def show(
    round_id: Annotated[int, typer.Argument(help="Round id.")],
    workspace: WorkspaceOpt,
    as_json: JsonOpt = False,
) -> None:
    """One round in detail."""
    offline_env()
    detail = show_data(_store(workspace), round_id)
    if detail is None:
        raise _fail(f"no round {round_id} in {workspace}")
    if as_json:
        print(json.dumps(detail, indent=1))
    else:
        console.print(summary_table(detail))


@app.command()
def report(
    round_id: Annotated[int, typer.Argument(help="Round id.")],
    workspace: WorkspaceOpt,
    as_json: JsonOpt = False,
) -> None:
    """Render a round's HTML report (funnel, pass@1 per round, judge cost) and print its path."""
    offline_env()
    store = _store(workspace)
    if store.get_round(round_id) is None:
        raise _fail(f"no round {round_id} in {workspace}")
    from autoimprove.rounds import Controller

    registry, _ = registry_of(store)
    page = Controller(Workspace(workspace)).write_report(round_id, registry)
    if as_json:
        print(json.dumps({"round": round_id, "html": str(page.resolve())}))
    else:
        console.print(f"report for round {round_id}: {page.resolve()}", highlight=False)


def _workspace_registry(workspace: Path):  # noqa: ANN202 - (Registry, name); MLflow lazily
    registry, name = registry_of(_store(workspace))
    if registry is None:
        raise _fail(f"{workspace} has no rounds yet, so no registered model")
    return registry, name


@app.command()
def audit(
    policy: PolicyOpt,
    labeled: Annotated[
        Path, typer.Option("--labeled", help="JSONL of {id, prompt, answer} to score against.")
    ],
    limit: Annotated[int | None, typer.Option(help="Use the first N labeled rows.")] = None,
    variant: Annotated[
        list[str] | None,
        typer.Option(
            help="Also judge the same candidates with this cascade: type:mode:votes[:rule] "
            "stages joined by commas (repeatable)."
        ),
    ] = None,
    adapter: Annotated[
        Path | None,
        typer.Option(
            help="A LoRA adapter folder to audit on the policy's base model, e.g. the "
            "champion's: <workspace>/rounds/<round>/train/adapter."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure the verifier: the policy's generation + cascade on labeled problems; yield,
    precision and recall per stage and overall (labels only measure; nothing trains)."""
    offline_env()
    loaded = _load(policy)
    if not labeled.is_file():
        raise _fail(f"no labeled file at {labeled}")
    if adapter is not None and not (adapter / "adapter_config.json").is_file():
        raise _fail(f"--adapter: {adapter} holds no adapter_config.json (not a LoRA adapter)")
    from autoimprove.audit import load_labeled, parse_variant, run_audit

    rows, bad = load_labeled(labeled, limit)
    if not rows:
        raise _fail(f"{labeled} has no usable rows ({bad} bad); expected {{id, prompt, answer}}")
    try:
        cascades = [parse_variant(v) for v in variant or []]
    except ValueError as exc:
        raise _fail(f"--variant: {exc}".replace("\n", " ")) from exc
    bars, progress = _progress_bars()
    with bars:
        measured = run_audit(loaded, rows, cascades, progress, adapter)
    out = {"labeled_file": str(labeled), "bad_rows": bad, **measured}
    if as_json:
        print(json.dumps(out, indent=1))
        return
    if adapter is not None:
        console.print(f"model: {out['model']['base']} + adapter {adapter}", highlight=False)
    console.print(
        f"{out['problems']} problems x {out['candidates_per_problem']} candidates, "
        f"{out['correct_candidates']} correct (base precision {out['base_precision']})",
        highlight=False,
    )
    for report in [out, *out["variants"]]:
        table = Table("stage", "entered", "passed", "yield", "precision", "recall")
        table.title = report["variant"]
        for s in report["stages"]:
            table.add_row(
                s["stage"],
                *(str(s[k]) for k in ("entered", "passed", "yield", "precision", "recall")),
            )
        c = report["cascade"]
        table.add_row(
            "cascade",
            str(report["candidates"]),
            *(str(c[k]) for k in ("accepted", "yield", "precision", "recall")),
        )
        table.caption = f"{c['judge_calls']} judge calls, {c['calls_per_accepted']} per accepted"
        console.print(table)


@app.command("rounds")
def rounds_cmd(workspace: WorkspaceOpt, as_json: JsonOpt = False) -> None:
    """Every round: state, funnel, pass@1s, decision, version, duration."""
    out = rounds_data(_store(workspace))
    if as_json:
        print(json.dumps(out, indent=1))
        return
    table = Table(*out[0].keys()) if out else Table("id")
    for r in out:
        table.add_row(*(("-" if v is None else str(v)) for v in r.values()))
    console.print(table)


def _manual(workspace: Path, kind: str, message: str, reason: str | None) -> dict:
    import getpass

    who = getpass.getuser()
    _store(workspace).add_event(kind, f"{message} by {who}: {reason or 'no reason given'}")
    return {"event": kind, "by": who, "reason": reason, "message": message}


ReasonOpt = Annotated[str | None, typer.Option("--reason", help="Why (recorded with your name).")]


@app.command("promote")
def promote_cmd(
    version: Annotated[str, typer.Argument(help="Version number to make champion.")],
    workspace: WorkspaceOpt,
    reason: ReasonOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Point `champion` at VERSION by hand (compare-and-set; recorded with who and why)."""
    offline_env()
    registry, name = _workspace_registry(workspace)
    current = registry.champion().version
    try:
        registry.client.get_model_version(name, version)
    except Exception:  # noqa: BLE001 - MLflow raises a generic error for unknown versions
        raise _fail(f"{name} has no version {version}") from None
    if not registry.promote(version, expected=current):
        raise _fail(f"the champion alias moved while promoting (was {current}); try again")
    registry.tag_version(version, "manual_promotion", reason or "yes")
    out = _manual(workspace, "manual_promote", f"champion {current or 'base'} -> {version}", reason)
    print(json.dumps(out)) if as_json else console.print(out["message"], highlight=False)


@app.command("rollback")
def rollback_cmd(
    workspace: WorkspaceOpt, reason: ReasonOpt = None, as_json: JsonOpt = False
) -> None:
    """Point `champion` back at the current champion's parent (the base model if it had none)."""
    offline_env()
    registry, name = _workspace_registry(workspace)
    current = registry.champion().version
    if current is None:
        raise _fail("the champion is already the base model; nothing to roll back")
    parent = registry.client.get_model_version(name, current).tags.get("parent_version", "base")
    if not registry.move_alias(parent if parent != "base" else None, expected=current):
        raise _fail(f"the champion alias moved while rolling back (was {current}); try again")
    out = _manual(workspace, "manual_rollback", f"champion {current} -> {parent}", reason)
    print(json.dumps(out)) if as_json else console.print(out["message"], highlight=False)


@app.command("export")
def export_cmd(
    version: Annotated[str, typer.Argument(help="A version number, `champion` or `challenger`.")],
    workspace: WorkspaceOpt,
    merged: Annotated[
        Path | None, typer.Option(help="Write base + adapter merged, as safetensors, here.")
    ] = None,
    adapter: Annotated[
        Path | None, typer.Option(help="Write the LoRA adapter here (vllm serve --lora-modules).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Export a registered version for a serving stack."""
    offline_env()
    if merged is None and adapter is None:
        raise _fail("give --merged DIR and/or --adapter DIR")
    registry, name = _workspace_registry(workspace)
    from autoimprove.consumer import export

    try:
        out = export(name, registry.tracking_uri, version, merged, adapter)
    except (LookupError, ValueError) as exc:
        raise _fail(str(exc)) from None
    print(json.dumps(out, indent=1)) if as_json else console.print(out, highlight=False)


@app.command("pause")
def pause_cmd(workspace: WorkspaceOpt, reason: ReasonOpt = None, as_json: JsonOpt = False) -> None:
    """Pause the daemon: it finishes the step in flight, then waits (state stays resumable)."""
    _store(workspace)
    ws = Workspace(workspace)
    out = _manual(workspace, "manual_pause", "paused", reason)
    ws.pause_file.write_text(json.dumps(out) + "\n")
    print(json.dumps(out)) if as_json else console.print("paused", highlight=False)


@app.command("resume")
def resume_cmd(workspace: WorkspaceOpt, reason: ReasonOpt = None, as_json: JsonOpt = False) -> None:
    """Let a paused daemon continue."""
    _store(workspace)
    ws = Workspace(workspace)
    if not ws.pause_file.exists():
        raise _fail(f"{workspace} is not paused")
    out = _manual(workspace, "manual_resume", "resumed", reason)
    ws.pause_file.unlink()
    print(json.dumps(out)) if as_json else console.print("resumed", highlight=False)


@app.command("serve")
def serve_cmd(
    workspace: WorkspaceOpt,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8765,
    token_file: Annotated[
        Path | None,
        typer.Option(help="File (mode 0600) with the bearer token; required off loopback."),
    ] = None,
) -> None:
    """Read-only HTTP API: /healthz, /status, /rounds, /rounds/{id}, /metrics (Prometheus)."""
    offline_env()
    from autoimprove.serve import ServeConfigError, check_exposure, create_app

    try:
        token = check_exposure(host, token_file)
        api = create_app(workspace, token)
    except (ServeConfigError, OSError) as exc:
        raise _fail(str(exc)) from None
    import uvicorn

    uvicorn.run(api, host=host, port=port, log_level="warning")
