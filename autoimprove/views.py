"""What the CLI prints and the HTTP API serves about a workspace: one shape for both.

`round_detail` is the JSON of one round (`show --json`, `/rounds/{id}`), `status_data` the
workspace overview (`status --json`, `/status`), `rounds_data` the one-line-per-round list
(`rounds --json`, `/rounds`). Only reads: the store, the lock file and the registry's aliases.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from autoimprove.context import Workspace
from autoimprove.lock import holder
from autoimprove.store import RoundRow, Store

EVALUATIONS = ("candidate", "champion", "maj_at_k", "uq_ttc")
"""What a round's evaluation compares, one-call models first."""


def round_detail(row: RoundRow, champion_version: str | None = None) -> dict:
    """The JSON shape of one round (`show --json`)."""
    summary = row.summary
    gen = summary.get("generate", {})
    ver = summary.get("verify", {})
    trn = summary.get("train", {})
    ev = summary.get("eval", {})
    return {
        "id": row.id,
        "state": row.state,
        "decision": row.decision,
        "reason": row.reason,
        "error": row.error,
        "attempts": row.attempts,
        "slot": row.slot,
        "model_version": row.model_version,
        "parent_version": row.parent_version,
        "champion_version": champion_version,
        "policy_hash": row.policy_hash,
        "started_at": row.started_at.isoformat() if row.started_at else None,
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
        "seeds": gen.get("seeds"),
        "pool": gen.get("pool"),
        "funnel": ver.get("funnel", {"candidates": gen.get("candidates")} if gen else {}),
        "judge_calls": ver.get("judge_calls"),
        "judge_tokens": ver.get("judge_tokens"),
        "calls_per_accepted": ver.get("calls_per_accepted"),
        "judge_per_stage": ver.get("per_stage"),
        "generation": {
            k: gen.get(k)
            for k in ("generation_tokens", "generation_seconds", "generation_tokens_per_s")
        },
        "train": trn,
        "eval": {
            "task": ev.get("task"),
            **{name: ev.get(name) for name in EVALUATIONS},
            "guards": ev.get("guards") or {},
            "stopped_early": ev.get("stopped_early"),
            "guards_not_scored": ev.get("guards_not_scored"),
            "p_value": (summary.get("gate") or {}).get("p_value"),
            "seconds_saved_by_cache": ev.get("eval_seconds_saved_by_cache"),
        },
        "gate": summary.get("gate"),
        "wall_seconds": summary.get("wall_seconds"),
    }


def summary_table(d: dict) -> Table:
    table = Table(title=f"Round {d['id']}: {d['state']}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    funnel = d["funnel"] or {}
    table.add_row("seeds used", str(d["seeds"]))
    table.add_row("candidates generated", str(funnel.get("candidates")))
    for key, value in funnel.items():
        if key.startswith("passed_"):
            table.add_row(f"  survived {key.removeprefix('passed_')}", str(value))
    table.add_row("accepted samples", str(funnel.get("accepted")))
    table.add_row("judge calls / tokens", f"{d['judge_calls']} / {d['judge_tokens']}")
    if train := d["train"]:
        table.add_row(
            "training loss first → last",
            f"{train.get('loss_first'):.3f} → {train.get('loss_last'):.3f}",
        )
        if train.get("learning_rate") is not None:
            table.add_row(
                "training steps × rate", f"{train['train_steps']} × {train['learning_rate']:.2g}"
            )
        origins = []
        if train.get("carried_rows"):
            sources = ", ".join(str(i) for i in train["carried_from_rounds"])
            origins.append(f"{train['carried_rows']} carried from rejected round(s) {sources}")
        if train.get("carried_dropped"):
            origins.append(f"{train['carried_dropped']} carried rows dropped by the cycle check")
        if train.get("champion_rows"):
            sources = ", ".join(str(i) for i in train["champion_rounds"])
            origins.append(f"{train['champion_rows']} behind the champion, round(s) {sources}")
        if train.get("rows_left_out"):
            origins.append(f"{train['rows_left_out']} left out by training.max_rows")
        if origins:
            table.add_row("training rows", f"{train['train_rows']} ({'; '.join(origins)})")
    ev = d["eval"]
    for name in EVALUATIONS:
        result = ev.get(name)
        if not result:
            continue
        ci = result.get("ci95")
        interval = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        calls = result.get("calls_per_question")
        cost = f", {calls:g} calls/question" if calls else ""
        cached = " (cached)" if result.get("cached") else ""
        table.add_row(
            f"pass@1 {name}",
            f"{result['pass_at_1']:.3f}{interval} on {result['n']} items of {ev['task']}"
            f"{cost}{cached}",
        )
    stop = ev.get("stopped_early")
    if stop:
        table.add_row(
            "stopped early",
            f"after {stop['after']} of {stop['of']} items: {stop['won']} won / {stop['lost']} lost",
        )
    for task, sides in (ev.get("guards") or {}).items():
        scored = sides.get("candidate")
        table.add_row(
            f"guard {task}",
            f"champion {sides['champion']['pass_at_1']:.3f} → candidate "
            + (f"{scored['pass_at_1']:.3f}" if scored else "not scored (stopped early)"),
        )
    if ev.get("guards_not_scored"):
        table.add_row("guard tasks", "not scored: the candidate did not pass the main test")
    if ev.get("p_value") is not None:
        table.add_row("paired test p", f"{ev['p_value']:.3g}")
    table.add_row("decision", str(d["decision"]))
    table.add_row("why", str(d["reason"]))
    table.add_row("registered version", str(d["model_version"]))
    table.add_row(
        "champion alias",
        f"version {d['champion_version']}" if d["champion_version"] else "base model (unset)",
    )
    return table


def registry_of(store: Store):  # noqa: ANN202 - Registry imported lazily (MLflow is slow to import)
    rounds = store.list_rounds()
    if not rounds:
        return None, None
    from autoimprove.policy import Policy as PolicyModel
    from autoimprove.rounds import open_registry

    policy = PolicyModel.model_validate_json(rounds[0].policy_json)
    return open_registry(policy, Workspace(store_root(store))), policy.registry.model_name


def store_root(store: Store) -> Path:
    return Path(str(store.engine.url.database)).parent


def status_data(workspace: Path, store: Store) -> dict[str, Any]:
    """What `status --json` prints (and the API's /status serves)."""
    registry, name = registry_of(store)
    return {
        "champion": {"name": name, "version": registry.champion().version if registry else None},
        "daemon": daemon_info(workspace, store),
        "rounds": [
            {
                "id": r.id,
                "state": r.state,
                "decision": r.decision,
                "model_version": r.model_version,
                "attempts": r.attempts,
                "error": r.error,
                "started_at": r.started_at.isoformat(),
            }
            for r in store.list_rounds()
        ],
    }


def show_data(store: Store, round_id: int) -> dict[str, Any] | None:
    """What `show N --json` prints (and the API's /rounds/N serves); None if no such round."""
    row = store.get_round(round_id)
    if row is None:
        return None
    registry, _ = registry_of(store)
    detail = round_detail(row, registry.champion().version if registry else None)
    detail["steps"] = [
        {
            "step": r.step,
            "attempt": r.attempt,
            "outcome": r.outcome,
            "exit_code": r.exit_code,
            "seconds": (
                round((r.finished_at - r.started_at).total_seconds(), 2) if r.finished_at else None
            ),
            "error": r.error.splitlines()[0] if r.error else None,
        }
        for r in store.step_runs(round_id)
    ]
    return detail


def daemon_info(workspace: Path, store: Store) -> dict:
    """Who holds the workspace, and the policy error in force (a rejected edit) if any."""
    rejected = store.events("policy_rejected", limit=1)
    accepted = store.events("policy_reloaded", limit=1) + store.events("start", limit=1)
    policy_error = None
    if rejected and all(rejected[0].id > e.id for e in accepted):  # type: ignore[operator]
        policy_error = {"at": rejected[0].at.isoformat(), "message": rejected[0].message}
    return {
        "pid": holder(Workspace(workspace).lock_file),
        "paused": Workspace(workspace).pause_file.exists(),
        "policy_error": policy_error,
        "events": [
            {"at": e.at.isoformat(), "kind": e.kind, "message": e.message.splitlines()[0]}
            for e in store.events(limit=10)
        ],
    }


def rounds_data(store: Store) -> list[dict[str, Any]]:
    """What `rounds --json` prints (and the API's /rounds serves)."""
    out = []
    for row in store.list_rounds():
        d = round_detail(row)
        ev = d["eval"] or {}
        seconds = (
            round((row.finished_at - row.started_at).total_seconds(), 1)
            if row.finished_at and row.started_at
            else None
        )
        out.append(
            {
                "id": d["id"],
                "state": d["state"],
                "candidates": (d["funnel"] or {}).get("candidates"),
                "accepted": (d["funnel"] or {}).get("accepted"),
                "champion_pass_at_1": (ev.get("champion") or {}).get("pass_at_1"),
                "candidate_pass_at_1": (ev.get("candidate") or {}).get("pass_at_1"),
                "decision": d["decision"],
                "version": d["model_version"],
                "seconds": seconds,
            }
        )
    return out
