"""Benchmark: what a sampled decode step spends outside the model, before and after.

The same rows (the first `--seeds` pool prompts x `--n` samples, the quickstart's sampling:
T=0.8, top-p 0.95, 320 tokens, stop at the stated answer) generated three ways on the embedded
model, one batch of `--batch` rows after another, through `HFBackend.decode`:

- `full-vocab`: the sampler as it was: transformers' temperature, top-k 50 and top-p warpers over
  the whole 151,936-token vocabulary (top-p sorts it), and exponential noise for every token;
  every row encodes its own copy of its prompt.
- `top-k`: the sampler now (`sampling_distribution`: the same distribution, computed on the 50
  best tokens); prompts still encoded once per row.
- `top-k + shared prompt`: what the backend does now: each prompt encoded once, its KV cache
  copied to its n rows.

Reports per way: seconds, completion tokens, tokens per second, and the share of candidates whose
final answer is right (labels from seeds/make_arith.py; a check that the samples are as good, not
just as fast). Also times one decode step's forward pass and each sampler at the batch size.
Writes bench/out/sampler-<stamp>.json.

    python bench/sampler.py --seeds 16 --n 4 --batch 64
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default=str(ROOT / "policies" / "quickstart.yaml"))
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--ways", default="full-vocab,top-k,top-k+shared")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    from learning import pool_answers
    from results import pool_prompts, provenance, save
    from transformers import (
        LogitsProcessorList,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    import autoimprove.backends.hf as hf
    from autoimprove.answers import answers_match, extract_answer
    from autoimprove.backends.base import user_turn
    from autoimprove.basemodel import resolve_base
    from autoimprove.policy import load_policy
    from autoimprove.types import ModelRef, Sampling

    policy = load_policy(Path(args.policy))
    gen = policy.generation
    prompts = pool_prompts(args.policy, policy, args.seeds)
    labels = pool_answers()
    backend = hf.HFBackend(ModelRef(str(resolve_base(policy))), policy.model.dtype, args.batch)
    tok = backend.tokenizer
    encoded = [
        tok(backend.render(user_turn(p)), add_special_tokens=False)["input_ids"] for p in prompts
    ]
    rows = sorted(
        [(i, j) for i in range(len(prompts)) for j in range(args.n)],
        key=lambda r: (-len(encoded[r[0]]), r[0], r[1]),
    )
    sampling = Sampling(
        n=1,
        temperature=gen.temperature,
        top_p=gen.top_p,
        max_new_tokens=gen.max_new_tokens,
        stop_at_answer=True,
    )
    top_k_sampler = hf.sample_tokens

    def full_vocab_sampler(logits, sampling, generator, rows, live):  # noqa: ANN001, ANN202
        warpers = LogitsProcessorList(
            [TemperatureLogitsWarper(sampling.temperature), TopKLogitsWarper(hf.TOP_K)]
        )
        if sampling.top_p < 1.0:
            warpers.append(TopPLogitsWarper(sampling.top_p))
        probs = torch.softmax(warpers(None, logits), dim=-1)
        noise = torch.empty(rows, probs.shape[-1]).exponential_(generator=generator)
        return (probs / noise[live]).argmax(dim=-1)

    def pad(ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        return hf.left_pad(ids, tok.pad_token_id)

    def run(shared: bool) -> dict:
        tokens = right = 0
        for start in range(0, len(rows), args.batch):
            batch = rows[start : start + args.batch]
            if shared:
                copies = Counter(i for i, _ in batch)
                input_ids, attention = pad([encoded[i] for i in copies])
                out = backend.decode(
                    input_ids, attention, sampling, seed=start, copies=list(copies.values())
                )
            else:
                input_ids, attention = pad([encoded[i] for i, _ in batch])
                out = backend.decode(input_ids, attention, sampling, seed=start)
            for (i, _), row in zip(batch, out, strict=True):
                tokens += len(row)
                stated = extract_answer(tok.decode(row, skip_special_tokens=True), strict=True)
                right += stated is not None and answers_match(stated, labels[prompts[i]])
        return {"tokens": tokens, "candidates": len(rows), "right": right}

    # One decode step at the batch size: the forward pass and each sampler, median of 5.
    step: dict[str, float] = {}
    with torch.inference_mode():
        input_ids, attention = pad([encoded[i] for i, _ in rows[: args.batch]])
        cache = hf.DynamicCache(config=backend.model.config)
        logits = backend.model(
            input_ids=input_ids, attention_mask=attention, past_key_values=cache, logits_to_keep=1
        ).logits[:, -1, :]
        live = torch.arange(len(logits))
        nxt = logits.argmax(-1)[:, None]
        attention = torch.cat([attention, attention.new_ones((len(live), 1))], dim=1)
        timings: dict[str, list[float]] = {"forward": [], "full-vocab": [], "top-k": []}
        for _ in range(5):
            grown = copy.deepcopy(cache)
            t = time.perf_counter()
            backend.model(input_ids=nxt, attention_mask=attention, past_key_values=grown)
            timings["forward"].append(time.perf_counter() - t)
            del grown
            for name, fn in (("full-vocab", full_vocab_sampler), ("top-k", top_k_sampler)):
                generator = torch.Generator().manual_seed(0)
                t = time.perf_counter()
                fn(logits.float(), sampling, generator, len(live), live)
                timings[name].append(time.perf_counter() - t)
        step = {k: round(sorted(v)[2], 4) for k, v in timings.items()}
        print("one step at batch", len(live), step, flush=True)
        del cache

    results: dict[str, dict] = {}
    for way in args.ways.split(","):
        hf.sample_tokens = full_vocab_sampler if way == "full-vocab" else top_k_sampler
        started = time.perf_counter()
        figures = run(shared=way.endswith("+shared"))
        seconds = time.perf_counter() - started
        figures.update(seconds=round(seconds, 1), tok_per_s=round(figures["tokens"] / seconds, 2))
        results[way] = figures
        print(way, figures, flush=True)
    hf.sample_tokens = top_k_sampler

    first = next(iter(results.values()))
    out = {
        **provenance(),
        "args": vars(args),
        "step_seconds": step,
        "results": results,
        "tok_per_s_over_first": {
            k: round(v["tok_per_s"] / first["tok_per_s"], 3) for k, v in results.items()
        },
    }
    print(json.dumps(out, indent=1))
    print("written to", save("sampler", out))


if __name__ == "__main__":
    main()
