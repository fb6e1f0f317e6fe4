"""Step `generate`: sample this round's seeds and draw n candidate solutions for each.

Seeds are sampled without reuse (the store remembers every seed a round took) after dropping bad
rows, duplicates and anything overlapping the held-out set. Candidates come from the champion
(base + its adapter) at temperature > 0, all seeds in one batched call.
Output: `generate/seeds.jsonl`, `generate/candidates.jsonl`, `generate/pool_report.json`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from autoimprove.artifacts import atomic_dir, read_jsonl, write_jsonl
from autoimprove.backends.base import user_turn
from autoimprove.backends.hf import HFBackend
from autoimprove.context import RoundContext
from autoimprove.evaluate import heldout_ngrams
from autoimprove.seeds import load_pool, sample_seeds
from autoimprove.types import Candidate, Sampling

STEP = "generate"


class SeedsExhausted(Exception):
    """The pool has no unused seeds left and the policy says stop."""


def run(ctx: RoundContext) -> dict:
    policy = ctx.policy
    contamination = heldout_ngrams(policy.evaluation, policy.seeds.decontam_ngram)
    pool, report = load_pool(Path(policy.seeds.pool), contamination, policy.seeds.decontam_ngram)
    used = ctx.store.used_seed_ids()
    if not [s for s in pool if s.id not in used]:
        if policy.seeds.when_exhausted == "stop":
            raise SeedsExhausted(
                f"all {len(pool)} seeds of {policy.seeds.pool} were used by earlier rounds "
                "(set seeds.when_exhausted: recycle to reuse them)"
            )
        ctx.store.forget_seed_usage()
        used = set()
    seeds = sample_seeds(
        pool, used, policy.seeds.per_round, policy.seeds.sample_seed * 100_003 + ctx.round_id
    )
    gen = policy.generation
    total = len(seeds) * gen.n
    done = 0

    def tick(k: int) -> None:
        nonlocal done
        done += k
        ctx.progress("generate", done, total)

    backend = HFBackend(ctx.champion, policy.model.dtype, gen.batch, progress=tick)
    started = time.perf_counter()
    try:
        sampling = Sampling(
            n=gen.n,
            temperature=gen.temperature,
            top_p=gen.top_p,
            max_new_tokens=gen.max_new_tokens,
            seed=ctx.round_id,
            stop_at_answer=gen.stop_at_answer,
        )
        conversations = [user_turn(s.prompt, policy.model.system_prompt) for s in seeds]
        outputs = backend.chat(conversations, sampling)
    finally:
        backend.close()
    seconds = time.perf_counter() - started
    candidates = [
        Candidate(s.id, j, s.prompt, c.text, c.completion_tokens)
        for s, completions in zip(seeds, outputs, strict=True)
        for j, c in enumerate(completions)
    ]
    tokens = sum(c.completion_tokens for c in candidates)
    with atomic_dir(ctx.step_dir(STEP)) as out:
        write_jsonl(out / "seeds.jsonl", [asdict(s) for s in seeds])
        write_jsonl(out / "candidates.jsonl", [asdict(c) for c in candidates])
        (out / "pool_report.json").write_text(json.dumps(asdict(report), indent=1))
    ctx.store.mark_seeds_used(ctx.round_id, [s.id for s in seeds])
    ctx.store.save_candidates(ctx.round_id, candidates)
    return {
        "seeds": len(seeds),
        "candidates": len(candidates),
        "pool": asdict(report),
        "generation_tokens": tokens,
        "generation_seconds": round(seconds, 2),
        "generation_tokens_per_s": round(tokens / seconds, 2) if seconds else None,
    }


def load_candidates(ctx: RoundContext) -> list[Candidate]:
    return [Candidate(**row) for row in read_jsonl(ctx.step_dir(STEP) / "candidates.jsonl")]
