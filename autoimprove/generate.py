"""Step `generate`: sample this round's seeds and draw n candidate solutions for each.

Seeds are sampled without reuse (the store remembers every seed an earlier round took) after
dropping bad rows, duplicates and anything overlapping the held-out set; the sample is sealed
first (`work/generate/plan`) so a resumed step draws the same seeds. Candidates come from the
champion (base + its adapter) at temperature > 0, in shards of `generation.shard_seeds` seeds,
each sealed as it finishes: a resumed step skips finished shards, so a crash costs one shard.
Output: `generate/seeds.jsonl`, `generate/candidates.jsonl`, `generate/pool_report.json`,
`generate/summary.json`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

from autoimprove import stopping
from autoimprove.answers import answers_match, extract_answer
from autoimprove.artifacts import atomic_dir, is_complete, read_jsonl, write_jsonl
from autoimprove.backends.base import Message, user_turn
from autoimprove.context import RoundContext
from autoimprove.faults import fault_point
from autoimprove.heldout import heldout_ngrams
from autoimprove.seeds import load_pool, sample_seeds
from autoimprove.types import Candidate, Completion, Sampling, Seed

if TYPE_CHECKING:
    from autoimprove.backends.hf import HFBackend

STEP = "generate"


# Added to a shard's sampling seed for the samples screening draws second (shard seeds are
# round * 1000 + shard, far below this).
SCREEN_SEED_OFFSET = 1 << 40


class SeedsExhausted(Exception):
    """The pool has no unused seeds left and the policy says stop."""


def chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _plan(ctx: RoundContext) -> tuple[list[Seed], dict]:
    """This round's seeds, sampled once and sealed so every attempt uses the same ones."""
    folder = ctx.shard_dir(STEP, "plan")
    if not is_complete(folder):
        policy = ctx.policy
        contamination = heldout_ngrams(policy.evaluation, policy.seeds.decontam_ngram)
        pool, report = load_pool(
            Path(policy.seeds.pool), contamination, policy.seeds.decontam_ngram
        )
        used = ctx.store.used_seed_ids()
        if not [s for s in pool if s.id not in used]:
            if policy.seeds.when_exhausted == "stop":
                raise SeedsExhausted(
                    f"all {len(pool)} seeds of {policy.seeds.pool} were used by earlier rounds "
                    "(set seeds.when_exhausted: recycle to reuse them)"
                )
            used = set()  # recycle: the whole pool is eligible again
        seeds = sample_seeds(
            pool, used, policy.seeds.per_round, policy.seeds.sample_seed * 100_003 + ctx.round_id
        )
        with atomic_dir(folder) as out:
            write_jsonl(out / "seeds.jsonl", [asdict(s) for s in seeds])
            (out / "pool_report.json").write_text(json.dumps(asdict(report), indent=1))
    seeds = [Seed(**row) for row in read_jsonl(folder / "seeds.jsonl")]
    return seeds, json.loads((folder / "pool_report.json").read_text())


def agreeing_pair(completions: list[Completion]) -> bool:
    """Two of the completions state the same final answer."""
    stated = [extract_answer(c.text, strict=True) for c in completions]
    return any(
        answers_match(a, b) for i, a in enumerate(stated) for b in stated[i + 1 :] if a is not None
    )


def _screened(
    backend: HFBackend, conversations: list[list[Message]], sampling: Sampling, screen: int
) -> list[list[Completion]]:
    """`screen` samples per conversation, then the other n - screen only where two agree."""
    first = backend.chat(conversations, replace(sampling, n=screen))
    wanted = [i for i, per in enumerate(first) if agreeing_pair(per)]
    if wanted:
        # Another random stream: these are new, independent samples of the same prompts.
        more = replace(sampling, n=sampling.n - screen, seed=sampling.seed + SCREEN_SEED_OFFSET)
        rest = backend.chat([conversations[i] for i in wanted], more)
        for i, extra in zip(wanted, rest, strict=True):
            first[i] = first[i] + extra
    return first


def run(ctx: RoundContext) -> dict:
    from autoimprove.backends.hf import HFBackend

    policy = ctx.policy
    gen = policy.generation
    seeds, report = _plan(ctx)
    shards = chunks(seeds, gen.shard_seeds)
    total = len(seeds) * gen.n
    done = 0
    backend = None

    def tick(k: int) -> None:
        nonlocal done
        done += k
        ctx.progress("generate", done, total)

    reused = 0
    try:
        for k, shard in enumerate(shards):
            folder = ctx.shard_dir(STEP, k)
            if is_complete(folder):
                reused += 1
                tick(len(shard) * gen.n)
                continue
            stopping.check()
            if backend is None:
                backend = HFBackend(ctx.champion, policy.model.dtype, gen.batch, progress=tick)
            sampling = Sampling(
                n=gen.n,
                temperature=gen.temperature,
                top_p=gen.top_p,
                max_new_tokens=gen.max_new_tokens,
                seed=ctx.round_id * 1000 + k,
                stop_at_answer=gen.stop_at_answer,
            )
            conversations = [user_turn(s.prompt, policy.model.system_prompt) for s in shard]
            started = time.perf_counter()
            if gen.screen:
                outputs = _screened(backend, conversations, sampling, gen.screen)
                tick(sum(gen.n - len(per) for per in outputs))  # the samples not drawn
            else:
                outputs = backend.chat(conversations, sampling)
            seconds = time.perf_counter() - started
            candidates = [
                Candidate(s.id, j, s.prompt, c.text, c.completion_tokens)
                for s, completions in zip(shard, outputs, strict=True)
                for j, c in enumerate(completions)
            ]
            with atomic_dir(folder) as out:
                write_jsonl(out / "candidates.jsonl", [asdict(c) for c in candidates])
                (out / "stats.json").write_text(json.dumps({"seconds": seconds}))
            fault_point(STEP, "after_shard")
    finally:
        if backend is not None:
            backend.close()

    candidates, seconds = [], 0.0
    for k in range(len(shards)):
        folder = ctx.shard_dir(STEP, k)
        candidates += [Candidate(**row) for row in read_jsonl(folder / "candidates.jsonl")]
        seconds += json.loads((folder / "stats.json").read_text())["seconds"]
    tokens = sum(c.completion_tokens for c in candidates)
    drawn: dict[str, int] = {}
    for c in candidates:
        drawn[c.seed_id] = drawn.get(c.seed_id, 0) + 1
    summary = {
        "seeds": len(seeds),
        "candidates": len(candidates),
        # Seeds that got fewer than n samples: screening saw no two of their first ones agree.
        "seeds_screened_out": sum(1 for k in drawn.values() if k < gen.n),
        "shards": len(shards),
        "shards_reused": reused,
        "pool": report,
        "generation_tokens": tokens,
        "generation_seconds": round(seconds, 2),
        "generation_tokens_per_s": round(tokens / seconds, 2) if seconds else None,
    }
    with atomic_dir(ctx.step_dir(STEP)) as out:
        write_jsonl(out / "seeds.jsonl", [asdict(s) for s in seeds])
        write_jsonl(out / "candidates.jsonl", [asdict(c) for c in candidates])
        (out / "pool_report.json").write_text(json.dumps(report, indent=1))
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def load_candidates(ctx: RoundContext) -> list[Candidate]:
    return [Candidate(**row) for row in read_jsonl(ctx.step_dir(STEP) / "candidates.jsonl")]
