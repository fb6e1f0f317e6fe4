"""Benchmark: generation batch size on a CPU: the same candidates, generated at each batch size.

Generates the first `--seeds` pool prompts x `--n` samples with the quickstart's sampling through
the backend a round uses (`HFBackend.chat`: length-sorted, left-padded batches, finished rows
leave the batch, rows stop at their stated answer), once per batch size in `--batches`. The
prompts are the same; the samples are not (each batch draws its own noise), so compare tokens
per second and rows per hour, not texts. On a CPU a decode step cost about the same for 8 rows
as for 24 (reading the weights, not arithmetic, bounds it), so a batch takes about as long as
its longest row: this measures how far that holds. Writes bench/out/batch-size-<stamp>.json.

    python bench/batch_size.py --seeds 16 --n 4 --batches 32,64
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
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--batches", default="32,64", help="comma-separated batch sizes")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from results import pool_prompts, provenance, save

    from autoimprove.answers import extract_answer
    from autoimprove.backends.base import user_turn
    from autoimprove.backends.hf import HFBackend
    from autoimprove.basemodel import resolve_base
    from autoimprove.policy import load_policy
    from autoimprove.types import ModelRef, Sampling

    policy = load_policy(Path(args.policy))
    gen = policy.generation
    prompts = pool_prompts(args.policy, policy, args.seeds)
    conversations = [user_turn(p, policy.model.system_prompt) for p in prompts]
    sampling = Sampling(
        n=args.n,
        temperature=gen.temperature,
        top_p=gen.top_p,
        max_new_tokens=gen.max_new_tokens,
        stop_at_answer=gen.stop_at_answer,
    )
    backend = HFBackend(ModelRef(str(resolve_base(policy))), policy.model.dtype)
    runs = []
    for size in (int(b) for b in args.batches.split(",")):
        backend.batch_size = size
        started = time.perf_counter()
        out = backend.chat(conversations, sampling)
        seconds = time.perf_counter() - started
        completions = [c for per in out for c in per]
        these = [c.text for c in completions]
        runs.append(
            {
                "batch": size,
                "seconds": round(seconds, 1),
                "rows": len(completions),
                "tokens": sum(c.completion_tokens for c in completions),
                "stated_answers": sum(extract_answer(t, strict=True) is not None for t in these),
                "rows_per_hour": round(len(completions) / seconds * 3600, 1),
                "tok_per_s": round(sum(c.completion_tokens for c in completions) / seconds, 2),
            }
        )
        print(runs[-1], flush=True)
    out = {"bench": "batch_size", **provenance(), "seeds": args.seeds, "n": args.n, "runs": runs}
    print(json.dumps(out, indent=1))
    print("written to", save("batch-size", out))


if __name__ == "__main__":
    main()
