"""Run the real `autoimprove` CLI as a separate process, with fault injection, and read back
the workspace it leaves: the state DB, the registry, the step attempts."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from autoimprove.champion import Registry

POOL_ROWS = [
    {"id": f"s{i}", "prompt": f"Sam has {i + 3} pens and buys {i + 1} more. How many pens now?"}
    for i in range(12)
]


def write_policy(
    folder: Path,
    base: Path,
    per_round: int = 2,
    schedule: str = "{retry_backoff: 0, max_attempts: 3}",
    name: str = "durable",
    extra: str = "",
) -> Path:
    """A small policy on a tiny model: 2 seeds x 2 candidates in shards of one seed, two
    training steps with a checkpoint after each, promotion on a tie (alpha 1, min_gain 0)."""
    pool = folder / "pool.jsonl"
    pool.write_text("\n".join(json.dumps(r) for r in POOL_ROWS) + "\n")
    policy = folder / "policy.yaml"
    policy.write_text(
        f"""
model: {{base: {base}, dtype: float32}}
seeds: {{pool: pool.jsonl, per_round: {per_round}}}
generation: {{n: 2, max_new_tokens: 12, batch: 8, temperature: 0.05, shard_seeds: 1}}
cascade:
  max_new_tokens: 12
  temperature: 0.05
  stages:
    - {{type: correctness, mode: agreement, votes: 2}}
training: {{epochs: 1, batch_size: 1, checkpoint_every: 1, lora: {{r: 4, alpha: 8}}}}
evaluation: {{limit: 4, batch_size: 4, max_new_tokens: 12}}
promotion: {{min_gain: 0.0, alpha: 1.0}}
registry: {{model_name: {name}}}
schedule: {schedule}
{extra}
"""
    )
    return policy


def cli(*args: str, env: dict | None = None) -> list[str]:
    return [sys.executable, "-m", "autoimprove", *args]


def child_env(fault: str | None = None, once: Path | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOIMPROVE_FAULT")}
    if fault:
        env["AUTOIMPROVE_FAULT"] = fault
    if once:
        env["AUTOIMPROVE_FAULT_ONCE"] = str(once)
    return env


def run(
    *args: str, fault: str | None = None, once: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    return subprocess.run(
        cli(*args),
        env=child_env(fault, once),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start(*args: str, fault: str | None = None, once: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        cli(*args),
        env=child_env(fault, once),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(predicate, timeout: float = 300, what: str = "condition"):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def paused_pid(flag: Path) -> int | None:
    """The pid of a process paused at a fault point (see autoimprove.faults)."""
    if not flag.exists():
        return None
    text = flag.read_text().split()
    return int(text[1]) if len(text) == 2 and text[0] == "paused" else None


def release(flag: Path) -> None:
    flag.write_text("release")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) is not alive either.
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)


def db(ws: Path) -> sqlite3.Connection:
    return sqlite3.connect(ws / "state.db")


def rows(ws: Path, query: str, *params) -> list[tuple]:  # noqa: ANN002
    with db(ws) as conn:
        return conn.execute(query, params).fetchall()


def step_outcomes(ws: Path, round_id: int = 1) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for step, outcome in rows(
        ws, "select step, outcome from step_runs where round_id = ? order by id", round_id
    ):
        out.setdefault(step, []).append(outcome)
    return out


def registry(ws: Path, name: str = "durable") -> Registry:
    return Registry(f"sqlite:///{ws}/mlflow/mlflow.db", name)


def versions(ws: Path, name: str = "durable") -> list[str]:
    reg = registry(ws, name)
    return sorted(str(v.version) for v in reg.client.search_model_versions(f"name = '{name}'"))
