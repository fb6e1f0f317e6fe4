"""Step `verify`: run the self-verification cascade over this round's candidates.

The model judges its own candidates (same base + adapter that generated them). Votes are asked in
lazy waves batched across candidates and seeds (`cascade/voting.py`); every vote's text and
decision is stored. Seeds are judged in shards of `generation.shard_seeds` (first-valid and
agreement are per seed, so shards are independent), each sealed as it finishes; a resumed step
skips finished shards. Output: `verify/accepted.jsonl` (the training rows, with provenance),
`verify/votes.jsonl`, `verify/verdicts.jsonl`, `verify/budget.json`, `verify/summary.json`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from autoimprove import stopping
from autoimprove.artifacts import atomic_dir, is_complete, read_jsonl, write_jsonl
from autoimprove.cascade.stages import build_stage
from autoimprove.cascade.stages.base import JudgeContext, peers_of
from autoimprove.cascade.voting import StageRule, run_cascade
from autoimprove.context import RoundContext
from autoimprove.faults import fault_point
from autoimprove.generate import chunks, load_candidates
from autoimprove.types import Candidate, Verdict, Vote

STEP = "verify"


def budget(votes: list[Vote], stage_names: list[str], accepted: int) -> dict:
    """Judge calls and tokens, per stage and per accepted sample."""
    per_stage = {
        name: {
            "votes": sum(1 for v in votes if v.stage == name),
            "calls": sum(v.calls for v in votes if v.stage == name),
            "tokens": sum(v.tokens for v in votes if v.stage == name),
        }
        for name in stage_names
    }
    calls = sum(v.calls for v in votes)
    tokens = sum(v.tokens for v in votes)
    return {
        "judge_calls": calls,
        "judge_tokens": tokens,
        "per_stage": per_stage,
        "calls_per_accepted": round(calls / accepted, 2) if accepted else None,
        "tokens_per_accepted": round(tokens / accepted, 1) if accepted else None,
    }


def _judge_shard(ctx: RoundContext, backend, shard: int, candidates: list[Candidate]) -> dict:  # noqa: ANN001
    """Run the cascade over one shard's candidates; return its verdicts, votes and counts."""
    policy = ctx.policy
    cascade = policy.cascade
    judge = JudgeContext(
        backend=backend,
        temperature=cascade.temperature,
        max_new_tokens=cascade.max_new_tokens,
        seed=ctx.round_id * 1000 + shard,
        system_prompt=policy.model.system_prompt,
        stop_at_answer=policy.generation.stop_at_answer,
        peers=peers_of(candidates),
    )
    stages = [build_stage(s.type, s.mode, judge) for s in cascade.stages]
    rules = [StageRule(s.type, s.votes, s.rule) for s in cascade.stages]
    asked = 0

    def ask(stage_index: int, wave: int, batch: list[Candidate]) -> list[Vote]:
        nonlocal asked
        asked += len(batch)
        ctx.progress(f"verify {rules[stage_index].name} vote {wave + 1}", asked, asked)
        return stages[stage_index].judge(batch, wave)

    started = time.perf_counter()
    result = run_cascade(candidates, rules, ask, first_valid=cascade.first_valid)
    return {
        "verdicts": result.verdicts,
        "votes": result.votes,
        "passed": result.passed,
        "seconds": time.perf_counter() - started,
    }


def run(ctx: RoundContext) -> dict:
    from autoimprove.backends.hf import HFBackend

    policy = ctx.policy
    candidates = load_candidates(ctx)
    seed_order = list(dict.fromkeys(c.seed_id for c in candidates))
    shards = chunks(seed_order, policy.generation.shard_seeds)
    stage_names: list[str] = [s.type for s in policy.cascade.stages]
    backend = None
    reused = 0
    try:
        for k, shard_seeds in enumerate(shards):
            folder = ctx.shard_dir(STEP, k)
            if is_complete(folder):
                reused += 1
                continue
            stopping.check()
            if backend is None:
                backend = HFBackend(ctx.champion, policy.model.dtype, policy.generation.batch)
            wanted = set(shard_seeds)
            judged = _judge_shard(ctx, backend, k, [c for c in candidates if c.seed_id in wanted])
            with atomic_dir(folder) as out:
                write_jsonl(out / "votes.jsonl", [asdict(v) for v in judged["votes"]])
                write_jsonl(out / "verdicts.jsonl", [asdict(v) for v in judged["verdicts"]])
                (out / "stats.json").write_text(
                    json.dumps({"passed": judged["passed"], "seconds": judged["seconds"]})
                )
            fault_point(STEP, "after_shard")
    finally:
        if backend is not None:
            backend.close()

    votes: list[Vote] = []
    verdicts: list[Verdict] = []
    passed = dict.fromkeys(stage_names, 0)
    seconds = 0.0
    for k in range(len(shards)):
        folder = ctx.shard_dir(STEP, k)
        shard_verdicts, shard_votes = load_votes(folder)
        verdicts += shard_verdicts
        votes += shard_votes
        stats = json.loads((folder / "stats.json").read_text())
        seconds += stats["seconds"]
        for name, count in stats["passed"].items():
            passed[name] = passed.get(name, 0) + count
    by_key = {(c.seed_id, c.index): c for c in candidates}
    accepted_rows = []
    for verdict in verdicts:
        if not verdict.accepted:
            continue
        c = by_key[(verdict.seed_id, verdict.candidate_index)]
        accepted_rows.append(
            {
                "round": ctx.round_id,
                "seed_id": c.seed_id,
                "candidate_index": c.index,
                "prompt": c.prompt,
                "completion": c.text,
                "stages_passed": list(verdict.stages_passed),
            }
        )
    spent = budget(votes, stage_names, len(accepted_rows))
    funnel = {
        "candidates": len(candidates),
        **{f"passed_{name}": passed[name] for name in passed},
        "accepted": len(accepted_rows),
        "skipped_first_valid": sum(1 for v in verdicts if v.skipped),
        "seeds_with_accepted": len({r["seed_id"] for r in accepted_rows}),
    }
    summary = {
        "funnel": funnel,
        **spent,
        "shards": len(shards),
        "shards_reused": reused,
        "verify_seconds": round(seconds, 2),
    }
    with atomic_dir(ctx.step_dir(STEP)) as out:
        write_jsonl(out / "accepted.jsonl", accepted_rows)
        write_jsonl(out / "votes.jsonl", [asdict(v) for v in votes])
        write_jsonl(out / "verdicts.jsonl", [asdict(v) for v in verdicts])
        (out / "budget.json").write_text(json.dumps({**spent, "funnel": funnel}, indent=1))
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def load_accepted(ctx: RoundContext) -> list[dict]:
    return read_jsonl(ctx.step_dir(STEP) / "accepted.jsonl")


def load_votes(folder: Path) -> tuple[list[Verdict], list[Vote]]:
    """Verdicts and votes from a sealed `verify/` folder (or one of its shards)."""
    verdicts = [
        Verdict(**{**row, "stages_passed": tuple(row["stages_passed"])})
        for row in read_jsonl(folder / "verdicts.jsonl")
    ]
    return verdicts, [Vote(**row) for row in read_jsonl(folder / "votes.jsonl")]
