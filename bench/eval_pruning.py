"""Benchmark: evaluation through lm-eval's `hf` model against ours (`autoimprove-hf`).

Both score the embedded model greedily on the first `--limit` items of the quickstart's held-out
task, through lm-eval (same task, prompts, filters and metric); `autoimprove-hf` only swaps
`model.generate` for the backend's decode loop, where a row that has ended leaves its batch.
Runs alternate (ours, hf, ours, hf, ...) so drift on a shared machine hits both. Reports wall
seconds per run, whether the per-item responses are identical, pass@1 of each, and the speed
ratio. Writes bench/out/eval-pruning-<stamp>.json.

    python bench/eval_pruning.py --limit 24 --repeats 1
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
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

    from lm_eval.models.huggingface import HFLM
    from results import provenance, save

    from autoimprove.backends.hf import load_model
    from autoimprove.backends.lm_eval_hf import PrunedHFLM
    from autoimprove.basemodel import resolve_base
    from autoimprove.evaluate import METRIC, _samples
    from autoimprove.policy import load_policy
    from autoimprove.types import ModelRef

    policy = load_policy(Path(args.policy))
    evaluation = policy.evaluation.model_copy(update={"limit": args.limit})
    model, tokenizer = load_model(ModelRef(str(resolve_base(policy))), policy.model.dtype)
    gen = {"max_gen_toks": evaluation.max_new_tokens, "do_sample": False}
    makers = {
        "autoimprove-hf": lambda: PrunedHFLM(model, tokenizer, batch_size=evaluation.batch_size),
        "hf": lambda: HFLM(pretrained=model, tokenizer=tokenizer, batch_size=evaluation.batch_size),
    }
    seconds: dict[str, list[float]] = {name: [] for name in makers}
    responses: dict[str, list[str]] = {}
    correct: dict[str, list[bool]] = {}
    for _ in range(args.repeats):
        for name, make in makers.items():
            started = time.perf_counter()
            samples = _samples(make(), evaluation, evaluation.task, policy.model.system_prompt, gen)
            seconds[name].append(round(time.perf_counter() - started, 1))
            responses[name] = [str(s["resps"][0][0]) for s in samples]
            correct[name] = [bool(s[METRIC]) for s in samples]
            print(name, seconds[name][-1], "s", flush=True)
    tokens = [len(tokenizer(t)["input_ids"]) for t in responses["hf"]]
    out = {
        "bench": "eval_pruning",
        **provenance(),
        "task": evaluation.task,
        "limit": args.limit,
        "batch_size": evaluation.batch_size,
        "max_new_tokens": evaluation.max_new_tokens,
        "seconds": seconds,
        "identical_responses": responses["hf"] == responses["autoimprove-hf"],
        "differing_items": sum(
            a != b for a, b in zip(responses["hf"], responses["autoimprove-hf"], strict=True)
        ),
        "pass_at_1": {name: sum(c) / len(c) for name, c in correct.items()},
        "completion_tokens": sum(tokens),
        # One batch (limit <= batch size): `generate` runs every row to the longest one.
        "padding_share_hf": (
            round(1 - sum(tokens) / (len(tokens) * max(tokens)), 3)
            if args.limit <= evaluation.batch_size
            else None
        ),
        "speedup": round(min(seconds["hf"]) / min(seconds["autoimprove-hf"]), 3),
    }
    print(json.dumps(out, indent=1))
    print("written to", save("eval-pruning", out))


if __name__ == "__main__":
    main()
