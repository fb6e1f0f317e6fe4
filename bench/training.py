"""Benchmark: training settings (lr, epochs, rank, data) replayed on a finished round's rows.

Takes a workspace whose round R was scored by the gate. For each `--set` (comma-separated
dotted policy fields, e.g. `training.learning_rate=3e-4,training.epochs=3`) it retrains R's
adapter on the rows R's policy, so changed and validated, trains on (R's own; with
`training.data=since_champion` also the carried ones, with `lineage` also the rows behind R's
champion), with the same training seed, from the base model (`training.mode=fresh`, or R ran on
the base) or from R's champion's adapter (`continue`: its copy in the workspace's version
cache), and scores it greedily on the held-out items R's candidate was scored on (all of them,
or the first look's; `--items N`: the first N). Reports, per setting, training steps and time,
pass@1 and the exact McNemar test against R's champion and against R's own candidate (on the
items both were scored on).
`--keep DIR` keeps each setting's adapter (safetensors) under DIR/1, DIR/2, ... Writes
bench/out/training-<stamp>.json.

    python bench/training.py /tmp/issue6c/ws --round 2 --set training.data=since_champion
    python bench/training.py ws --round 2 --set training.mode=continue,training.data=round
    python bench/training.py /tmp/issue6c/ws --round 2 \
        --set training.learning_rate=3e-4 --set training.learning_rate=1e-3
    python bench/training.py /tmp/issue6g/ws --round 5 --set training.learning_rate=3e-4 \
        --items 240 --keep /tmp/round5-3e-4
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path


def overridden(policy_json: str, assignments: str):  # noqa: ANN201 - autoimprove.policy.Policy
    """The round's policy with `a.b=value,...` applied, validated."""
    from results import assign

    from autoimprove.policy import Policy

    return Policy.model_validate(assign(json.loads(policy_json), assignments))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace")
    parser.add_argument("--round", type=int, required=True)
    parser.add_argument("--set", action="append", required=True, dest="settings")
    parser.add_argument(
        "--items", type=int, help="score the first N held-out items (default: the candidate's)"
    )
    parser.add_argument("--keep", help="keep each setting's adapter under KEEP/<setting number>")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

    from results import finished_rounds, paired, provenance, save

    from autoimprove.basemodel import champion_ref, resolve_base
    from autoimprove.context import RoundContext
    from autoimprove.evaluate import evaluate_model
    from autoimprove.train import train_adapter, training_start
    from autoimprove.trainset import training_set
    from autoimprove.types import ModelRef
    from autoimprove.verify import load_accepted

    ws, store, (row,), _ = finished_rounds(args.workspace, [args.round])

    def items(model: str) -> dict[str, bool]:
        return {r.item_id: bool(r.correct) for r in store.eval_items(args.round, model)}

    champ, own = items("champion"), items("candidate")
    results = []
    for setting in args.settings:
        policy = overridden(row.policy_json, setting)
        base = resolve_base(policy)
        # The champion's version picks the carried and lineage rows; `continue` starts from
        # its adapter, as the round's worker would.
        champion = champion_ref(ws, base, row.parent_version)
        if champion.adapter_dir and not Path(champion.adapter_dir).is_dir():
            raise SystemExit(f"version {champion.version}'s adapter is not cached")
        ctx = RoundContext(args.round, policy, ws, store, base, champion)
        start = training_start(ctx)
        rows, origin = training_set(ctx, load_accepted(ctx))
        scratch = Path(tempfile.mkdtemp(prefix="training-"))
        started = time.perf_counter()
        stats = train_adapter(start, rows, policy, scratch / "adapter", scratch / "ckpt")
        train_seconds = time.perf_counter() - started
        started = time.perf_counter()
        scored = evaluate_model(
            ModelRef(str(base), str(scratch / "adapter"), None),
            policy.evaluation,
            policy.model.dtype,
            policy.model.system_prompt,
            # The candidate's items (the first look's when it stopped), or the first --items.
            items=range(args.items or len(own)),
        )
        eval_seconds = time.perf_counter() - started
        if args.keep:
            kept = Path(args.keep) / str(len(results) + 1)
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(scratch / "adapter", kept, dirs_exist_ok=True)
        shutil.rmtree(scratch, ignore_errors=True)
        new = dict(zip(scored.item_ids, scored.correct, strict=True))
        result = {
            "set": setting,
            "rows": origin,
            "train_steps": stats["train_steps"],
            "loss_first": stats["loss_first"],
            "loss_last": stats["loss_last"],
            "train_seconds": round(train_seconds, 1),
            "eval_seconds": round(eval_seconds, 1),
            "pass_at_1": sum(new.values()) / len(new),
            "correct": sum(new.values()),
            "n": len(new),
            "vs_champion": paired(champ, new),
            "vs_round_candidate": paired(own, new),
        }
        print(json.dumps(result), flush=True)
        results.append(result)

    out = {
        "bench": "training",
        **provenance(),
        "workspace": str(ws.root),
        "round": args.round,
        "champion_correct": sum(champ.values()),
        "round_candidate_correct": sum(own.values()),
        "n": len(champ),
        "settings": results,
    }
    print(json.dumps(out, indent=1))
    print("written to", save("training", out))


if __name__ == "__main__":
    main()
