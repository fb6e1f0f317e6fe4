"""Benchmark: one quickstart round, its per-step wall time and what lazy voting saved.

Runs a round with a policy (default: policies/quickstart.yaml) in a fresh workspace and writes
`bench/out/round-<timestamp>.json` plus a Markdown row for BENCHMARKS.md:
per-step wall time, generation tokens/s, judge calls and tokens per accepted sample, and, on the
same candidates and votes, the judge calls naive voting (every vote, every stage, every
candidate; shared re-solves drawn v times per seed in agreement mode) would have made.

    python bench/round.py [--policy policies/quickstart.yaml] [--workspace /tmp/bench-ws]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def naive_calls(policy, candidates: int, seeds: int) -> dict[str, int]:
    """Judge calls of naive voting: all votes for all candidates at all stages."""
    out = {}
    for stage in policy.cascade.stages:
        if stage.type == "correctness" and stage.mode == "agreement":
            out[stage.type] = stage.votes * seeds  # re-solves are per seed, shared
        else:
            per_vote = 2 if (stage.type == "cycle" and stage.mode == "verdict") else 1
            out[stage.type] = per_vote * stage.votes * candidates
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default=str(ROOT / "policies" / "quickstart.yaml"))
    parser.add_argument("--workspace", default="/tmp/autoimprove-bench-round")
    args = parser.parse_args()
    for key, value in {
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }.items():
        os.environ.setdefault(key, value)

    from autoimprove.context import Workspace
    from autoimprove.embedded import embedded_model_dir
    from autoimprove.policy import load_policy
    from autoimprove.rounds import run_round
    from autoimprove.store import Store
    from autoimprove.views import round_detail

    policy = load_policy(args.policy)
    embedded_model_dir()  # convert once, outside the timed round
    ws = Path(args.workspace)
    shutil.rmtree(ws, ignore_errors=True)
    started = time.perf_counter()
    outcome = run_round(policy, Workspace(ws))
    wall = time.perf_counter() - started
    row = Store(Workspace(ws).state_db).get_round(outcome.round_id)
    assert row is not None
    detail = round_detail(row, outcome.champion_version)
    funnel = detail["funnel"]
    naive = naive_calls(policy, funnel["candidates"], detail["seeds"])
    lazy = {name: s["calls"] for name, s in (detail["judge_per_stage"] or {}).items()}
    result = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": f"python bench/round.py --policy {args.policy}",
        "policy_hash": policy.digest(),
        "round_wall_seconds": round(wall, 1),
        "step_wall_seconds": detail["wall_seconds"],
        "generation": detail["generation"],
        "funnel": funnel,
        "judge_calls": detail["judge_calls"],
        "judge_tokens": detail["judge_tokens"],
        "calls_per_accepted": detail["calls_per_accepted"],
        "tokens_per_accepted": (
            round(detail["judge_tokens"] / funnel["accepted"], 1)
            if funnel.get("accepted")
            else None
        ),
        "judge_calls_per_stage": lazy,
        "naive_judge_calls_per_stage": naive,
        "naive_judge_calls": sum(naive.values()),
        "lazy_over_naive": round(detail["judge_calls"] / sum(naive.values()), 3),
        "eval": detail["eval"],
        "decision": detail["decision"],
        "reason": detail["reason"],
        "train": detail["train"],
    }
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"round-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
