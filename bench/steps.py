"""Benchmark: the factuality `steps` stage (the model recomputes each written-out arithmetic step)
on a real round's candidates, alone and after pool agreement.

Reads `rounds/<id>/generate/candidates.jsonl` of the given rounds, judges every candidate with
the stage on the embedded model (greedy, one short question per distinct step), and reports
against the answers `seeds/make_arith.py` recomputes (a measurement only):
- alone: how many right candidates pass (recall) and how many wrong ones it stops;
- after pool agreement (v=2, all-valid, what the quickstart runs first): rows, precision, and
  the seconds the stage adds when it judges only pool's survivors (timed in a second pass).
Writes bench/out/steps-<stamp>.json.

    python bench/steps.py WORKSPACE --rounds 1,2
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace")
    parser.add_argument("--rounds", default="1")
    parser.add_argument("--policy", default=str(ROOT / "policies" / "quickstart.yaml"))
    parser.add_argument("--votes", type=int, default=2, help="pool agreement votes")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from learning import pool_answers
    from results import provenance, save

    from autoimprove.answers import answers_match, extract_answer
    from autoimprove.backends.hf import HFBackend
    from autoimprove.basemodel import resolve_base
    from autoimprove.cascade.stages import build_stage
    from autoimprove.cascade.stages.base import JudgeContext
    from autoimprove.policy import load_policy
    from autoimprove.types import Candidate, ModelRef

    labels = pool_answers()
    policy = load_policy(Path(args.policy))
    ws = Path(args.workspace)
    candidates: list[Candidate] = []
    for r in args.rounds.split(","):
        path = ws / "rounds" / f"{int(r):05d}" / "generate" / "candidates.jsonl"
        candidates += [Candidate(**json.loads(x)) for x in path.read_text().splitlines() if x]
    stated = {(c.seed_id, c.index): extract_answer(c.text, strict=True) for c in candidates}
    right = {
        (c.seed_id, c.index): answers_match(stated[(c.seed_id, c.index)], labels[c.prompt])
        for c in candidates
    }
    by_seed: dict[str, list[Candidate]] = defaultdict(list)
    for c in candidates:
        by_seed[c.seed_id].append(c)

    def pool_pass(c: Candidate) -> bool:
        mine = stated[(c.seed_id, c.index)]
        agree = sum(
            answers_match(mine, stated[(p.seed_id, p.index)])
            for p in by_seed[c.seed_id]
            if p.index != c.index
        )
        return mine is not None and agree >= args.votes

    backend = HFBackend(ModelRef(str(resolve_base(policy))), policy.model.dtype, 64)
    ctx = JudgeContext(backend, policy.cascade.temperature, policy.cascade.max_new_tokens)
    stage = build_stage("factuality", "steps", ctx)

    started = time.perf_counter()
    votes = stage.judge(candidates, wave=0)
    alone_seconds = time.perf_counter() - started
    passed = {(v.seed_id, v.candidate_index): v.accept for v in votes}
    survivors = [c for c in candidates if pool_pass(c)]
    started = time.perf_counter()
    build_stage("factuality", "steps", ctx).judge(survivors, wave=0)
    after_pool_seconds = time.perf_counter() - started

    def key(c: Candidate) -> tuple[str, int]:
        return (c.seed_id, c.index)

    kept = [c for c in survivors if passed[key(c)]]
    caught = [
        {"seed": c.seed_id, "index": c.index, "stated": stated[key(c)], "votes": v.text}
        for c in survivors
        for v in votes
        if (v.seed_id, v.candidate_index) == key(c) and not v.accept
    ]
    out = {
        **provenance(),
        "rounds": args.rounds,
        "candidates": len(candidates),
        "steps_asked": sum(v.calls for v in votes),
        "alone": {
            "seconds": round(alone_seconds, 1),
            "right_passed": sum(1 for c in candidates if right[key(c)] and passed[key(c)]),
            "right": sum(1 for c in candidates if right[key(c)]),
            "wrong_stopped": sum(1 for c in candidates if not right[key(c)] and not passed[key(c)]),
            "wrong": sum(1 for c in candidates if not right[key(c)]),
        },
        "after_pool": {
            "seconds": round(after_pool_seconds, 1),
            "pool_rows": len(survivors),
            "pool_correct": sum(1 for c in survivors if right[key(c)]),
            "rows": len(kept),
            "correct": sum(1 for c in kept if right[key(c)]),
            "rejected": caught,
        },
    }
    print(json.dumps(out, indent=1))
    print("written to", save("steps", out))


if __name__ == "__main__":
    main()
