"""Benchmark: what the daemon costs and what a kill costs, on the tiny local model.

Figures (written to bench/out/daemon-<timestamp>.json and printed):
- controller RSS after round 1 and after round 5 of one `run --rounds 5` (target: flat within
  10%, since the controller never loads a model);
- per round: wall time, time inside step children, and the rest (scheduling, bookkeeping, MLflow
  logging, registry) = the controller's overhead;
- the wall time a kill costs: for each heavy step, (a) the step's child SIGKILLed after its first
  shard or checkpoint and retried, and (b) the daemon SIGKILLed right after the step sealed its
  output and restarted; each compared with the same uninterrupted round (target: at most the
  interrupted step or shard).

The tiny model makes model work negligible, so these isolate process and bookkeeping costs; on the
embedded model a kill additionally loses the unfinished shard's generation.

    python bench/daemon.py
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from daemon_helpers import child_env, cli, write_policy  # noqa: E402
from tiny_model import build_tiny_model, teach_fixed_reply  # noqa: E402

HEAVY = ("generate", "verify", "train", "evaluate")
CHILD_POINT = {
    "generate": "generate:after_shard",
    "verify": "verify:after_shard",
    "train": "train:after_checkpoint",
    "evaluate": "evaluate:after_shard",
}


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except FileNotFoundError:
        return None
    return None


def finished_rounds(ws: Path) -> int:
    if not (ws / "state.db").exists():
        return 0
    with sqlite3.connect(ws / "state.db") as db:
        return db.execute(
            "select count(*) from rounds where state in ('PROMOTED','REJECTED','ABANDONED')"
        ).fetchone()[0]


def step_seconds(ws: Path) -> dict[int, float]:
    with sqlite3.connect(ws / "state.db") as db:
        rows = db.execute(
            "select round_id, sum((julianday(finished_at) - julianday(started_at)) * 86400) "
            "from step_runs where finished_at is not null group by round_id"
        ).fetchall()
    return {r: s for r, s in rows}


def round_walls(ws: Path) -> dict[int, float]:
    with sqlite3.connect(ws / "state.db") as db:
        rows = db.execute(
            "select id, (julianday(finished_at) - julianday(started_at)) * 86400 from rounds"
        ).fetchall()
    return {r: s for r, s in rows}


def timed_run(policy: Path, ws: Path, fault: str | None = None, once: Path | None = None):
    started = time.perf_counter()
    proc = subprocess.run(
        cli("run", "--policy", str(policy), "--workspace", str(ws), "--rounds", "1"),
        env=child_env(fault, once),
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - started, proc.returncode


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    scratch = Path(tempfile.mkdtemp(prefix="autoimprove-bench-daemon-"))
    tiny = build_tiny_model(scratch / "tiny")
    model = teach_fixed_reply(tiny, scratch / "answering", "The answer is 5.")
    result: dict = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/daemon.py",
    }

    # 1. RSS and overhead over 5 rounds of one daemon.
    folder = scratch / "rss"
    folder.mkdir()
    policy = write_policy(folder, model, per_round=1)
    ws = folder / "ws"
    proc = subprocess.Popen(
        cli("run", "--policy", str(policy), "--workspace", str(ws), "--rounds", "5"),
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rss: dict[int, int | None] = {}
    seen = 0
    while proc.poll() is None:
        done = finished_rounds(ws)
        if done > seen:
            seen = done
            rss[done] = rss_kb(proc.pid)
        time.sleep(0.05)
    assert proc.returncode == 0, proc.returncode
    walls, inside = round_walls(ws), step_seconds(ws)
    result["controller_rss_kb_after_round"] = rss
    result["rounds"] = [
        {
            "round": r,
            "wall_s": round(walls[r], 2),
            "in_step_children_s": round(inside.get(r, 0.0), 2),
            "controller_overhead_s": round(walls[r] - inside.get(r, 0.0), 2),
        }
        for r in sorted(walls)
    ]

    # 2. The cost of a kill, per step, against the same uninterrupted round.
    folder = scratch / "kills"
    folder.mkdir()
    policy = write_policy(folder, model)
    base_wall, code = timed_run(policy, folder / "clean")
    assert code == 0
    clean_steps = {}
    with sqlite3.connect(folder / "clean" / "state.db") as db:
        for step, seconds in db.execute(
            "select step, (julianday(finished_at) - julianday(started_at)) * 86400 "
            "from step_runs where outcome = 'ok'"
        ):
            clean_steps[step] = round(seconds, 2)
    kills = []
    for step in HEAVY:
        ws = folder / f"child-{step}"
        wall, code = timed_run(policy, ws, CHILD_POINT[step], folder / f"once-{step}")
        assert code == 0, (step, code)
        kills.append(
            {
                "kill": f"child SIGKILL at {CHILD_POINT[step]}, retried",
                "step": step,
                "lost_s": round(wall - base_wall, 2),
                "step_wall_uninterrupted_s": clean_steps[step],
            }
        )
        ws = folder / f"daemon-{step}"
        first, code = timed_run(policy, ws, f"{step}:after_effect")
        assert code == -9, (step, code)
        second, code = timed_run(policy, ws)
        assert code == 0, (step, code)
        kills.append(
            {
                "kill": f"daemon SIGKILL at {step}:after_effect, restarted",
                "step": step,
                "lost_s": round(first + second - base_wall, 2),
                "step_wall_uninterrupted_s": clean_steps[step],
            }
        )
    result["uninterrupted_round_s"] = round(base_wall, 2)
    result["kills"] = kills
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"daemon-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    print(f"\nwritten to {path}")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
