"""Benchmark: padding waste in batched generation, `generate` against the pruning decode loop.

The same rows (the first `--seeds` pool prompts x `--n` samples, quickstart sampling) generated
two ways on the embedded model, batch by batch as the backend forms them:

- `generate`: transformers' `model.generate` with a stop-at-stated-answer criterion (what the
  backend did before): a finished row keeps its batch slot until the batch's longest row ends.
- `decode`: `HFBackend.decode`, where a finished row leaves the batch and its KV cache.

Reports, per way: wall seconds, completion tokens, tokens per second and, for `generate`, the
share of row-steps spent on rows already finished. Runs alternate (decode, generate, decode,
generate, ...) so drift on a shared machine hits both. Writes bench/out/padding-<stamp>.json.

    python bench/padding.py --seeds 8 --n 4 --batch 32 --repeats 1
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
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    from results import pool_prompts, provenance, save
    from transformers import StoppingCriteria, StoppingCriteriaList

    from autoimprove.backends.base import user_turn
    from autoimprove.backends.hf import HFBackend, RowStop
    from autoimprove.basemodel import resolve_base
    from autoimprove.policy import load_policy
    from autoimprove.types import ModelRef, Sampling

    policy = load_policy(Path(args.policy))
    gen = policy.generation
    prompts = pool_prompts(args.policy, policy, args.seeds)
    backend = HFBackend(ModelRef(str(resolve_base(policy))), policy.model.dtype, args.batch)
    tok = backend.tokenizer
    encoded = [
        tok(backend.render(user_turn(p)), add_special_tokens=False)["input_ids"] for p in prompts
    ]
    rows = sorted(
        [i for i in range(len(prompts)) for _ in range(args.n)], key=lambda i: -len(encoded[i])
    )
    batches = []
    for start in range(0, len(rows), args.batch):
        ids = [encoded[i] for i in rows[start : start + args.batch]]
        width = max(len(x) for x in ids)
        batches.append(
            (
                torch.tensor([[tok.pad_token_id] * (width - len(x)) + x for x in ids]),
                torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids]),
            )
        )
    sampling = Sampling(
        n=1,
        temperature=gen.temperature,
        top_p=gen.top_p,
        max_new_tokens=gen.max_new_tokens,
        stop_at_answer=True,
    )
    stop = RowStop(tok)

    class Stated(StoppingCriteria):
        def __init__(self, width: int):
            self.width = width

        def __call__(self, input_ids, scores, **kwargs):  # noqa: ANN001, ANN003, ANN204
            return stop.done(input_ids[:, self.width :][:, -stop.tail :].tolist())

    def useful(row: list[int]) -> int:
        for pos, t in enumerate(row):
            if t in backend.eos_ids:
                return pos + 1
        return len(row)

    def run_generate(seed: int) -> dict:
        tokens = slots = 0
        for input_ids, attention in batches:
            torch.manual_seed(seed)
            out = backend.model.generate(
                input_ids=input_ids,
                attention_mask=attention,
                max_new_tokens=sampling.max_new_tokens,
                do_sample=True,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                pad_token_id=tok.pad_token_id,
                eos_token_id=backend.eos_ids,
                stopping_criteria=StoppingCriteriaList([Stated(input_ids.shape[1])]),
            )[:, input_ids.shape[1] :]
            tokens += sum(useful(r) for r in out.tolist())
            slots += out.shape[0] * out.shape[1]
        return {
            "tokens": tokens,
            "row_steps": slots,
            "finished_row_share": round(1 - tokens / slots, 3),
        }

    def run_decode(seed: int) -> dict:
        tokens = 0
        for input_ids, attention in batches:
            out = backend.decode(input_ids, attention, sampling, seed=seed)
            tokens += sum(len(r) for r in out)
        return {"tokens": tokens, "row_steps": tokens}

    results: dict[str, list[dict]] = {"decode": [], "generate": []}
    for rep in range(args.repeats):
        for name, fn in (("decode", run_decode), ("generate", run_generate)):
            started = time.perf_counter()
            figures = fn(rep)
            seconds = time.perf_counter() - started
            figures.update(
                seconds=round(seconds, 1), tok_per_s=round(figures["tokens"] / seconds, 2)
            )
            results[name].append(figures)
            print(name, figures, flush=True)

    def rate(name: str) -> float:
        return sum(r["tokens"] for r in results[name]) / sum(r["seconds"] for r in results[name])

    out = {
        **provenance(),
        "results": results,
        "tok_per_s_ratio_decode_over_generate": round(rate("decode") / rate("generate"), 3),
    }
    print(json.dumps(out, indent=1))
    print("written to", save("padding", out))


if __name__ == "__main__":
    main()
