"""What every bench script records beside its figures, and where it writes them."""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"


def provenance() -> dict:
    """The machine, the date and the command line a result came from."""
    return {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", *sys.argv]),
    }


def paired(old: dict[str, bool], new: dict[str, bool]) -> dict:
    """`new` against `old` on the items both were scored on (item id -> correct): items only
    `new` got right (won), only `old` got right (lost), and the exact McNemar p-value."""
    from autoimprove.gate import mcnemar_exact

    shared = set(old) & set(new)
    won = sum(new[i] and not old[i] for i in shared)
    lost = sum(old[i] and not new[i] for i in shared)
    return {"n": len(shared), "won": won, "lost": lost, "p_value": mcnemar_exact(won, lost)}


def assign(data: dict, assignments: str) -> dict:
    """Apply `a.b=value,...` (values parsed as YAML scalars) to a policy's data, in place. The
    policy model forbids unknown fields, so validating the result catches a misspelt one."""
    import yaml

    for assignment in filter(None, assignments.split(",")):
        dotted, _, value = assignment.partition("=")
        *parents, leaf = dotted.strip().split(".")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = yaml.safe_load(value)
    return data


def pool_prompts(policy_path: str, policy, count: int) -> list[str]:
    """The first `count` prompts of the policy's seed pool (its path is relative to the policy)."""
    pool = Path(policy_path).resolve().parent / policy.seeds.pool
    return [json.loads(line)["prompt"] for line in pool.read_text().splitlines()[:count]]


def finished_rounds(workspace: str, numbers: list[int]):  # noqa: ANN201 - (Workspace, Store, rows, Policy)
    """Open a finished workspace: its `Workspace`, its `Store`, the named rounds (each must
    exist) and the first one's policy, as that round ran it."""
    from autoimprove.context import Workspace
    from autoimprove.policy import Policy
    from autoimprove.store import Store

    ws = Workspace(Path(workspace))
    store = Store(ws.state_db)
    rows = [store.get_round(n) for n in numbers]
    missing = [n for n, row in zip(numbers, rows, strict=True) if row is None]
    if missing:
        raise SystemExit(f"{workspace} has no round {', '.join(map(str, missing))}")
    return ws, store, rows, Policy.model_validate_json(rows[0].policy_json)


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S")


def save(name: str, result: dict) -> Path:
    """Write `result` to bench/out/<name>-<UTC stamp>.json and return the path."""
    OUT.mkdir(exist_ok=True)
    path = OUT / f"{name}-{stamp()}.json"
    path.write_text(json.dumps(result, indent=1))
    return path
