"""Benchmark: `training.data: since_champion` against `round`, replayed on a finished run.

Takes a workspace where round R was trained on its own rows (`round`) and round(s) before it on
the same champion were rejected. Trains the adapter `since_champion` would have trained for
round R (R's rows + the carried ones, same policy, same seed) and scores it greedily on the same
held-out items as R's candidate. Reports both pass@1 values and the exact McNemar test between
the two candidates (and against R's champion). Writes bench/out/carry-<stamp>.json.

    python bench/carry.py /tmp/issue6/ws --round 2
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace")
    parser.add_argument("--round", type=int, required=True)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

    from results import paired, provenance, save

    from autoimprove.artifacts import read_jsonl
    from autoimprove.basemodel import resolve_base
    from autoimprove.context import RoundContext, Workspace
    from autoimprove.evaluate import evaluate_model
    from autoimprove.policy import Policy
    from autoimprove.store import Store
    from autoimprove.train import train_adapter
    from autoimprove.trainset import training_set
    from autoimprove.types import ModelRef

    ws = Workspace(Path(args.workspace))
    store = Store(ws.state_db)
    row = store.get_round(args.round)
    assert row is not None, f"no round {args.round}"
    policy = Policy.model_validate_json(row.policy_json)
    policy = policy.model_copy(
        update={"training": policy.training.model_copy(update={"data": "since_champion"})}
    )
    assert row.parent_version is None, "replays a round on the base model (no adapter to fetch)"
    base = resolve_base(policy)
    champion = ModelRef(str(base), None, None)
    ctx = RoundContext(args.round, policy, ws, store, base, champion)
    accepted = read_jsonl(ws.step_dir(args.round, "verify") / "accepted.jsonl")
    rows, origin = training_set(ctx, accepted)
    print("training rows", origin, flush=True)

    scratch = Path(tempfile.mkdtemp(prefix="carry-"))
    started = time.perf_counter()
    stats = train_adapter(champion, rows, policy, scratch / "adapter", scratch / "checkpoints")
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    carried = evaluate_model(
        ModelRef(str(base), str(scratch / "adapter"), None),
        policy.evaluation,
        policy.model.dtype,
        policy.model.system_prompt,
    )
    eval_seconds = time.perf_counter() - started

    def items(model: str) -> dict[str, bool]:
        return {r.item_id: bool(r.correct) for r in store.eval_items(args.round, model)}

    own, champ = items("candidate"), items("champion")
    new = dict(zip(carried.item_ids, carried.correct, strict=True))
    shared = sorted(set(new) & set(own))

    out = {
        "bench": "carry",
        **provenance(),
        "workspace": str(ws.root),
        "round": args.round,
        "rows": origin,
        "train_steps": stats["train_steps"],
        "train_seconds": round(train_seconds, 1),
        "eval_seconds": round(eval_seconds, 1),
        "n": len(shared),
        "champion": sum(champ[i] for i in shared),
        "candidate_round_rows": sum(own[i] for i in shared),
        "candidate_since_champion": sum(new[i] for i in shared),
        "since_champion_vs_round": paired(own, new),
        "since_champion_vs_champion": paired(champ, new),
    }
    print(json.dumps(out, indent=1))
    print("written to", save("carry", out))


if __name__ == "__main__":
    main()
