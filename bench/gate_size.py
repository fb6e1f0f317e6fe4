"""Benchmark: what a larger held-out sample tells the gate about finished rounds.

Takes a workspace whose rounds were gated against the base model on the first `limit` items of
the held-out task. Scores the base champion once, and each named round's own candidate adapter
(`rounds/<R>/train/adapter`, unchanged), on the held-out items from `limit` up to `--items`,
then joins those with the items the round's gate scored and reports, per round, the paired
exact McNemar test on the first `limit` items (what the gate saw), on the new items alone, and
on all of them; per-item correctness is kept for other cuts. Writes
bench/out/gate_size-<stamp>.json.

    python bench/gate_size.py /tmp/issue6f/ws --rounds 1,2 --items 240
"""

from __future__ import annotations

import argparse
import json
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace")
    parser.add_argument("--rounds", required=True, help="comma-separated round numbers")
    parser.add_argument("--items", type=int, required=True, help="held-out items in all")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

    from results import finished_rounds, paired, provenance, save

    from autoimprove.basemodel import resolve_base
    from autoimprove.evaluate import evaluate_model
    from autoimprove.types import ModelRef

    numbers = [int(n) for n in args.rounds.split(",")]
    ws, store, rows, policy = finished_rounds(args.workspace, numbers)
    assert all(r.parent_version is None for r in rows), (
        "every round must have been gated against the base model"
    )
    evaluation, limit = policy.evaluation, policy.evaluation.limit
    assert limit is not None and args.items > limit, "--items must exceed the gate's limit"
    extra = range(limit, args.items)
    base = str(resolve_base(policy))

    def score(ref: ModelRef) -> tuple[dict[str, bool], float]:
        started = time.perf_counter()
        result = evaluate_model(
            ref, evaluation, policy.model.dtype, policy.model.system_prompt, items=extra
        )
        seconds = time.perf_counter() - started
        return dict(zip(result.item_ids, result.correct, strict=True)), seconds

    def gated(number: int, side: str) -> dict[str, bool]:
        return {r.item_id: bool(r.correct) for r in store.eval_items(number, side)}

    champion_new, champion_seconds = score(ModelRef(base, None, None))
    print(json.dumps({"champion_new_correct": sum(champion_new.values())}), flush=True)
    champion_old = gated(numbers[0], "champion")
    champion_all = champion_old | champion_new
    results = []
    for number in numbers:
        adapter = ws.root / "rounds" / f"{number:05d}" / "train" / "adapter"
        new, seconds = score(ModelRef(base, str(adapter), None))
        old = gated(number, "candidate")
        result = {
            "round": number,
            "eval_seconds": round(seconds, 1),
            "gate_items": paired(champion_old, old),
            "new_items": paired(champion_new, new),
            "all_items": paired(champion_all, old | new),
            "champion_correct": sum(champion_all.values()),
            "candidate_correct": sum((old | new).values()),
            "candidate_items": dict(sorted((old | new).items())),
        }
        print(json.dumps(result), flush=True)
        results.append(result)

    out = {
        "bench": "gate_size",
        **provenance(),
        "workspace": str(ws.root),
        "gate_limit": limit,
        "items": args.items,
        "champion_eval_seconds": round(champion_seconds, 1),
        "champion_items": dict(sorted(champion_all.items())),
        "rounds": results,
    }
    print(json.dumps(out, indent=1))
    print("written to", save("gate_size", out))


if __name__ == "__main__":
    main()
