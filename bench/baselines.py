"""Benchmark: what the gate's test-time-compute baselines cost and score on the embedded model.

Scores the embedded base model (the champion of a fresh workspace) on the first `--limit` items
of the quickstart's held-out task three ways, through the same code a round uses: greedy (one
call), maj@k (lm-eval repeats + majority final answer) and UQ-TTC (n candidates judged by the
quickstart cascade). Prints and writes bench/out/baselines-<timestamp>.json with pass@1, its 95%
interval, calls and tokens per question, and wall seconds for each. The champion-side seconds
are what the eval cache saves in every round that keeps the champion.

`--adapter DIR` scores the base with that LoRA adapter instead (a version's
`cache/versions/v<N>/model/artifacts/adapter`); `--runs` picks which of the three to run;
`--against FILE` (a round's `evaluate/candidate.jsonl` or `champion.jsonl`) adds each run's won /
lost / exact McNemar p against that greedy evaluation on the items both scored (won: items
the run got right and FILE did not).

    python bench/baselines.py --limit 24 --k 4 --n 4
    python bench/baselines.py --limit 96 --runs maj_at_k \
        --against bench/out/ws-r8/rounds/00001/evaluate/candidate.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default=str(ROOT / "policies" / "quickstart.yaml"))
    parser.add_argument("--limit", type=int, default=24)
    parser.add_argument("--k", type=int, default=4, help="maj@k samples per question")
    parser.add_argument("--n", type=int, default=4, help="UQ-TTC candidates per question")
    parser.add_argument("--adapter", help="a LoRA adapter folder on the base (default: the base)")
    parser.add_argument(
        "--runs",
        nargs="+",
        choices=["champion", "maj_at_k", "uq_ttc"],
        default=["champion", "maj_at_k", "uq_ttc"],
    )
    parser.add_argument("--against", help="a greedy evaluation JSONL (item_id, correct)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

    from results import paired, provenance, save

    from autoimprove.artifacts import read_jsonl
    from autoimprove.backends.hf import load_model
    from autoimprove.basemodel import resolve_base
    from autoimprove.evaluate import describe, evaluate_maj_at_k, evaluate_model, evaluate_uq_ttc
    from autoimprove.policy import load_policy
    from autoimprove.types import ModelRef

    policy = load_policy(Path(args.policy))
    evaluation = policy.evaluation.model_copy(
        update={
            "limit": args.limit,
            "baselines": policy.evaluation.baselines.model_copy(
                update={"maj_at_k": args.k, "uq_ttc": args.n}
            ),
        }
    )
    policy = policy.model_copy(update={"evaluation": evaluation})
    ref = ModelRef(str(resolve_base(policy)), args.adapter)
    loaded = load_model(ref, policy.model.dtype)
    runs = {
        "champion": lambda: evaluate_model(
            ref, evaluation, policy.model.dtype, policy.model.system_prompt, loaded=loaded
        ),
        "maj_at_k": lambda: evaluate_maj_at_k(ref, policy, loaded),
        "uq_ttc": lambda: evaluate_uq_ttc(ref, policy, loaded),
    }
    against = None
    if args.against:
        against = {r["item_id"]: bool(r["correct"]) for r in read_jsonl(Path(args.against))}
    results = {}
    for name in args.runs:
        started = time.perf_counter()
        result = runs[name]()
        results[name] = {**describe(result), "seconds": round(time.perf_counter() - started, 1)}
        if against is not None:
            mine = dict(zip(result.item_ids, result.correct, strict=True))
            results[name]["against"] = paired(against, mine)  # won: this run right, FILE wrong
        print(name, json.dumps(results[name]), flush=True)
    out = {
        "bench": "baselines",
        **provenance(),
        "policy": args.policy,
        "task": evaluation.task,
        "limit": args.limit,
        "k": args.k,
        "n": args.n,
        "adapter": args.adapter,
        "against": args.against,
        "cascade": [s.model_dump() for s in policy.cascade.stages],
        "results": results,
    }
    print(json.dumps(out, indent=1))
    print("written to", save("baselines", out))


if __name__ == "__main__":
    main()
