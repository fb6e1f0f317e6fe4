"""Benchmark: does the loop learn, and how fast? N rounds on a fresh workspace, per-round figures.

Runs `autoimprove round` N times (each round starts from the champion the last one left) and
writes, per round: verified rows, their precision (each accepted row's final answer checked
against the answer `seeds/make_arith.py` recomputes for its seed: a measurement only, the
service never sees labels), rows per CPU-hour (CPU seconds of the whole round, all processes),
pass@1 of champion and candidate on the held-out task and on each guard task with 95%
intervals (under `evaluation.guard_scoring: on_promotion`, as in the quickstart, a guard task
is scored only on rounds that pass the main test; `--set evaluation.guard_scoring=always` scores
every round), the gate's p-value and decision. Also the gain of the final champion over the base
(round 1's champion) on every task. `--workspace` continues an existing chain; the PNG then
plots every round of the workspace, read from its state database. Writes
bench/out/learning-<stamp>.json and bench/out/learning-<stamp>.png.

    python bench/learning.py --rounds 3 --guard autoimprove_arith_transfer --guard-alpha 0.05
    python bench/learning.py --rounds 3 --set evaluation.limit=192,evaluation.early_stop=96
    python bench/learning.py --policy policies/quickstart.yaml --base-cache bench/out/ws-q3
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import results
import yaml
from results import provenance

ROOT = Path(__file__).resolve().parents[1]


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def pool_answers() -> dict[str, str]:
    spec = importlib.util.spec_from_file_location("make_arith", ROOT / "seeds" / "make_arith.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.pool_answers()


def _cli(*args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "autoimprove", *args, "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"autoimprove {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def _precision(ws: Path, round_id: int, answers: dict[str, str]) -> dict:
    from autoimprove.answers import answers_match, extract_answer

    path = ws / "rounds" / f"{round_id:05d}" / "verify" / "accepted.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    labeled = [r for r in rows if r["prompt"] in answers]
    # Strict, as bench/givens.py reads them: a row counts as right only where it states its
    # final answer (no fallback to the last number written).
    right = sum(
        (stated := extract_answer(r["completion"], strict=True)) is not None
        and answers_match(stated, answers[r["prompt"]])
        for r in labeled
    )
    return {"rows": len(rows), "checked": len(labeled), "correct": right}


def _making_seconds(step_walls: dict[str, float]) -> float:
    """Wall seconds of the round's generate and verify steps."""
    return sum(step_walls.get(step) or 0.0 for step in ("generate", "verify"))


def _round_that_made(ws: Path, version: str | None) -> int | None:
    """The round whose candidate was promoted to `version` (any round of the workspace)."""
    from autoimprove.store import RoundState, Store

    for row in Store(ws / "state.db").list_rounds():
        if version is not None and row.model_version == version:
            return row.id if row.state == RoundState.PROMOTED else None
    return None


def _scored(ws: Path) -> dict[tuple[int, str], dict[str, bool]]:
    """Every per-item result of the workspace: (round, model) -> item id -> correct."""
    import sqlite3

    db = sqlite3.connect(ws / "state.db")
    scored: dict[tuple[int, str], dict[str, bool]] = {}
    for round_id, model, item, correct in db.execute(
        "select round_id, model, item_id, correct from eval_items"
    ):
        scored.setdefault((round_id, model), {})[item] = bool(correct)
    return scored


def _final_vs_base(
    scored: dict[tuple[int, str], dict[str, bool]], tasks: list[str], final_round: int | None
) -> dict:
    """Per task: the final champion (the candidate of the round that made it) against the base,
    paired on the same items, exact McNemar. The base's scores on a task are the earliest
    round's champion scores on it: round 1, or on a guard task scored only on promotion, the
    first promotion's (no earlier round can have scored a champion other than the base)."""
    if final_round is None:
        return {}
    out = {}
    for i, task in enumerate(tasks):
        names = _eval_names(tasks, i)
        first = min((r for r, name in scored if name == names[0]), default=None)
        old = scored.get((first, names[0]), {}) if first is not None else {}
        new = scored.get((final_round, names[1]), {})
        shared = sorted(set(old) & set(new))
        if not shared:
            continue
        out[task] = {
            "base": sum(old[i] for i in shared) / len(shared),
            "final": sum(new[i] for i in shared) / len(shared),
            **results.paired(old, new),
        }
    return out


def _eval_names(tasks: list[str], i: int) -> tuple[str, str]:
    """The eval_items model names of champion and candidate on `tasks[i]` (0: the gate's task)."""
    task = tasks[i]
    return (
        ("champion", "candidate")
        if i == 0
        else (f"guard/{task}/champion", f"guard/{task}/candidate")
    )


def _history(
    scored: dict[tuple[int, str], dict[str, bool]], tasks: list[str]
) -> dict[int, dict[str, dict[str, float]]]:
    """Every round of the workspace (not only this run's) -> task -> side -> pass@1. Both
    sides are on the candidate's items: a candidate stopped at the gate's first look was
    scored on fewer items than the champion."""
    out: dict[int, dict[str, dict[str, float]]] = {}
    for round_id in sorted({r for r, _ in scored}):
        for i, task in enumerate(tasks):
            names = _eval_names(tasks, i)
            sides = {
                side: scored[(round_id, name)]
                for side, name in zip(("champion", "candidate"), names, strict=True)
                if (round_id, name) in scored
            }
            shared = set.intersection(*(set(items) for items in sides.values())) if sides else set()
            for side, items in sides.items():
                keep = shared or set(items)
                out.setdefault(round_id, {}).setdefault(task, {})[side] = sum(
                    items[k] for k in keep
                ) / len(keep)
    return out


def _plot(history: dict[int, dict[str, dict[str, float]]], tasks: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    xs = sorted(history)
    for task in tasks:
        for side, style in (("champion", "--"), ("candidate", "-")):
            ys = [history[x].get(task, {}).get(side) for x in xs]
            if any(y is not None for y in ys):
                ax.plot(xs, ys, style, marker="o", label=f"{task} {side}")
    ax.set_xticks(xs)
    ax.set_xlabel("round")
    ax.set_ylabel("pass@1")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _copy_base_cache(source: Path, ws: Path, policy) -> list[str]:  # noqa: ANN001 - Policy
    """Copy SOURCE's cached champion-side evaluations of the base model into WS, each only where
    the service's own cache key for this policy names it (the same evaluation). Returns the
    names of the evaluations copied."""
    import shutil

    from autoimprove.context import Workspace
    from autoimprove.evaluate import cache_key, plan
    from autoimprove.types import ModelRef

    base = ModelRef("", None, None)  # the key depends on the version; None = the base model
    copied = []
    for spec in plan(policy):
        if spec.side != "champion":
            continue
        key = cache_key(policy, base, spec)
        found = Workspace(source).eval_cache / key
        if found.is_dir():
            shutil.copytree(found, Workspace(ws).eval_cache / key, dirs_exist_ok=True)
            copied.append(spec.name)
    print(f"base evaluations reused from {source}: {copied or 'none matched'}", flush=True)
    return copied


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default=str(ROOT / "policies" / "quickstart.yaml"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--guard", action="append", default=[], help="guard task (repeatable)")
    parser.add_argument("--per-round", type=int, help="override seeds.per_round")
    parser.add_argument("--eval-limit", type=int, help="override evaluation.limit")
    parser.add_argument("--epochs", type=int, help="override training.epochs")
    parser.add_argument("--guard-alpha", type=float, help="set promotion.guard_alpha")
    parser.add_argument("--screen", type=int, help="set generation.screen")
    parser.add_argument("--workspace", help="default: a fresh folder under bench/out/")
    parser.add_argument(
        "--base-cache",
        metavar="WORKSPACE",
        help="copy the base model's cached champion-side evaluations from WORKSPACE where the "
        "service's cache key matches (saves re-scoring the base on a fresh workspace)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        dest="settings",
        help="policy fields, a.b=value,... (repeatable), e.g. evaluation.limit=192",
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

    stamp = results.stamp()
    out_dir = results.OUT
    out_dir.mkdir(exist_ok=True)
    ws = Path(args.workspace or tempfile.mkdtemp(prefix=f"learning-{stamp}-", dir=out_dir))
    policy_src = Path(args.policy).resolve()
    policy = yaml.safe_load(policy_src.read_text())
    policy["seeds"]["pool"] = str((policy_src.parent / policy["seeds"]["pool"]).resolve())
    if args.per_round:
        policy["seeds"]["per_round"] = args.per_round
    if args.eval_limit:
        policy["evaluation"]["limit"] = args.eval_limit
    if args.epochs:
        policy["training"]["epochs"] = args.epochs
    if args.guard:
        policy["evaluation"]["guard_tasks"] = args.guard
    if args.guard_alpha:
        policy["promotion"]["guard_alpha"] = args.guard_alpha
    if args.screen:
        policy["generation"]["screen"] = args.screen
    for setting in args.settings:
        results.assign(policy, setting)
    from autoimprove.policy import Policy

    validated = Policy.model_validate(policy)  # a misspelt --set field fails here
    policy_path = ws / "bench-policy.yaml"
    ws.mkdir(parents=True, exist_ok=True)
    reused = _copy_base_cache(Path(args.base_cache), ws, validated) if args.base_cache else []
    policy_path.write_text(yaml.safe_dump(policy, sort_keys=False))
    tasks = [
        policy["evaluation"].get("task", "autoimprove_arith_heldout"),
        *policy["evaluation"].get("guard_tasks", []),
    ]

    answers = pool_answers()
    per_round = []
    for _ in range(args.rounds):
        cpu0, wall0 = _cpu_children(), time.perf_counter()
        shown = _cli("round", "--policy", str(policy_path), "--workspace", str(ws))
        cpu, wall = _cpu_children() - cpu0, time.perf_counter() - wall0
        checked = _precision(ws, shown["id"], answers)
        ev = shown["eval"]
        pass_at_1 = {}
        if ev.get("champion"):
            pass_at_1[tasks[0]] = (
                {side: ev[side]["pass_at_1"] for side in ("champion", "candidate")}
                | {f"{side}_ci95": ev[side]["ci95"] for side in ("champion", "candidate")}
                | {f"{side}_n": ev[side]["n"] for side in ("champion", "candidate")}
            )
        for task, sides in (ev.get("guards") or {}).items():
            pass_at_1[task] = {side: sides[side]["pass_at_1"] for side in sides} | {
                f"{side}_ci95": sides[side].get("ci95") for side in sides
            }
        gen_file = ws / "rounds" / f"{shown['id']:05d}" / "generate" / "summary.json"
        gen = json.loads(gen_file.read_text()) if gen_file.exists() else {}
        gen_seconds = gen.get("generation_seconds")
        entry = {
            "round": shown["id"],
            "state": shown["state"],
            "decision": shown["decision"],
            "p_value": ev.get("p_value"),
            "funnel": shown["funnel"],
            "rows": checked["rows"],
            "rows_correct": checked["correct"],
            "precision": round(checked["correct"] / checked["checked"], 3)
            if checked["checked"]
            else None,
            "cpu_seconds": round(cpu, 1),
            "wall_seconds": round(wall, 1),
            "rows_per_cpu_hour": round(checked["rows"] / (cpu / 3600), 1) if cpu else None,
            "generation": {
                k: gen.get(k)
                for k in ("generation_seconds", "generation_tokens", "seeds_screened_out")
            },
            "rows_per_generation_hour": round(checked["rows"] / gen_seconds * 3600, 1)
            if gen_seconds
            else None,
            # The steps that make rows (generate, verify): the "rows per CPU-hour"
            # baseline (15 rows from 34 minutes of generation) counts those, on this machine.
            "rows_per_make_hour": round(checked["rows"] / making * 3600, 1)
            if (making := _making_seconds(shown["wall_seconds"]))
            else None,
            "step_wall_seconds": shown["wall_seconds"],
            "pass_at_1": pass_at_1,
            # The gate's paired numbers; under evaluation.early_stop a stopped candidate has
            # only the first look's items, so its pass@1 is not on the champion's items.
            "gate": {
                k: (shown.get("gate") or {}).get(k)
                for k in ("n", "candidate_only_correct", "champion_only_correct")
            },
            "stopped_early": ev.get("stopped_early"),
            "version": shown["model_version"],
        }
        per_round.append(entry)
        print(json.dumps(entry), flush=True)

    scored = _scored(ws)
    history = _history(scored, tasks)
    base = {t: history.get(1, {}).get(t, {}).get("champion") for t in tasks}
    status = _cli("status", "--workspace", str(ws))
    final = status["champion"]["version"]
    gains = _final_vs_base(scored, tasks, _round_that_made(ws, final))
    out = {
        "bench": "learning",
        **provenance(),
        "workspace": str(ws),
        "policy": policy,
        "base_cache": {"from": args.base_cache, "reused": reused},
        "rounds": per_round,
        "base_pass_at_1": base,
        "final_champion": status["champion"],
        "final_vs_base": gains,
        "total_rows": sum(r["rows"] for r in per_round),
        "total_cpu_hours": round(sum(r["cpu_seconds"] for r in per_round) / 3600, 3),
    }
    plot = out_dir / f"learning-{stamp}.png"
    _plot(history, tasks, plot)
    out["plot"] = str(plot)
    (out_dir / f"learning-{stamp}.json").write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items() if k != "policy"}, indent=1))


if __name__ == "__main__":
    main()
