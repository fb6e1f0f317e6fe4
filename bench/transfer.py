"""Benchmark: does a round's gain carry over to problems phrased differently?

Scores the base model and the candidate adapter of each given round of a finished workspace
greedily (one call per question) on a task the seeds were not written like (by default
`autoimprove_arith_transfer`: other phrasings, other problem structures, another answer format),
paired on the same items, each candidate against the base with the exact McNemar test.
Writes bench/out/transfer-<stamp>.json, and every model's per-item answers (correct, extracted
answer, response) to bench/out/transfer-<stamp>-items.jsonl so the discordant items can be read.

    python bench/transfer.py /tmp/issue6/ws --rounds 2,3
"""

from __future__ import annotations

import argparse
import json
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace")
    parser.add_argument("--rounds", required=True, help="comma-separated round ids")
    parser.add_argument("--task", default="autoimprove_arith_transfer")
    parser.add_argument("--limit", type=int, help="first N items (default: all)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

    from results import finished_rounds, paired, provenance, save

    from autoimprove.answers import extract_answer
    from autoimprove.basemodel import resolve_base
    from autoimprove.evaluate import evaluate_model
    from autoimprove.gate import wilson_interval
    from autoimprove.types import ModelRef

    rounds = [int(r) for r in args.rounds.split(",")]
    ws, _, rows, policy = finished_rounds(args.workspace, rounds)
    evaluation = policy.evaluation.model_copy(update={"task": args.task, "limit": args.limit})
    base = resolve_base(policy)

    per_item: list[dict] = []

    def score(ref: ModelRef, model: str) -> tuple[dict[str, bool], float]:
        started = time.perf_counter()
        result = evaluate_model(ref, evaluation, policy.model.dtype, policy.model.system_prompt)
        seconds = time.perf_counter() - started
        for item, right, text in zip(
            result.item_ids, result.correct, result.responses, strict=True
        ):
            per_item.append(
                {
                    "model": model,
                    "item_id": item,
                    "correct": right,
                    "answer": extract_answer(text),
                    "response": text,
                }
            )
        return dict(zip(result.item_ids, result.correct, strict=True)), seconds

    def summary(items: dict[str, bool], seconds: float) -> dict:
        right, n = sum(items.values()), len(items)
        return {
            "correct": right,
            "n": n,
            "pass_at_1": round(right / n, 4),
            "ci95": [round(x, 4) for x in wilson_interval(right, n)],
            "seconds": round(seconds, 1),
        }

    base_items, base_seconds = score(ModelRef(str(base), None, None), "base")
    print("base", summary(base_items, base_seconds), flush=True)
    out: dict = {
        "bench": "transfer",
        **provenance(),
        "workspace": str(ws.root),
        "task": args.task,
        "base": summary(base_items, base_seconds),
        "candidates": {},
    }
    for round_id, row in zip(rounds, rows, strict=True):
        adapter = ws.step_dir(round_id, "train") / "adapter"
        items, seconds = score(ModelRef(str(base), str(adapter), None), f"round {round_id}")
        against_base = paired(base_items, items)
        entry = summary(items, seconds) | {
            "state": row.state,
            "version": row.model_version,
            "won": against_base["won"],
            "lost": against_base["lost"],
            "p_value": against_base["p_value"],
        }
        out["candidates"][str(round_id)] = entry
        print("round", round_id, entry, flush=True)
    print(json.dumps(out, indent=1))
    path = save("transfer", out)
    items_path = path.with_name(path.stem + "-items.jsonl")
    items_path.write_text("".join(json.dumps(r) + "\n" for r in per_item))
    print("written to", path, "and", items_path)


if __name__ == "__main__":
    main()
