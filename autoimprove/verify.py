"""Step `verify`: run the self-verification cascade over this round's candidates.

The model judges its own candidates (same base + adapter that generated them). Votes are asked in
lazy waves batched across candidates and seeds (`cascade/voting.py`); every vote's text and
decision is stored. Output: `verify/accepted.jsonl` (the training rows, with provenance),
`verify/votes.jsonl`, `verify/verdicts.jsonl`, `verify/budget.json`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict

from autoimprove.artifacts import atomic_dir, read_jsonl, write_jsonl
from autoimprove.backends.hf import HFBackend
from autoimprove.cascade.stages import build_stage
from autoimprove.cascade.stages.base import JudgeContext
from autoimprove.cascade.voting import StageRule, run_cascade
from autoimprove.context import RoundContext
from autoimprove.generate import load_candidates
from autoimprove.types import Candidate, Vote

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


def run(ctx: RoundContext) -> dict:
    policy = ctx.policy
    cascade = policy.cascade
    candidates = load_candidates(ctx)
    backend = HFBackend(ctx.champion, policy.model.dtype, policy.generation.batch)
    judge = JudgeContext(
        backend=backend,
        temperature=cascade.temperature,
        max_new_tokens=cascade.max_new_tokens,
        seed=ctx.round_id,
        system_prompt=policy.model.system_prompt,
        stop_at_answer=policy.generation.stop_at_answer,
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
    try:
        result = run_cascade(candidates, rules, ask, first_valid=cascade.first_valid)
    finally:
        backend.close()
    seconds = time.perf_counter() - started
    by_key = {(c.seed_id, c.index): c for c in candidates}
    accepted_rows = []
    for verdict in result.accepted():
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
    spent = budget(result.votes, [r.name for r in rules], len(accepted_rows))
    funnel = {
        "candidates": len(candidates),
        **{f"passed_{name}": result.passed[name] for name in result.passed},
        "accepted": len(accepted_rows),
        "skipped_first_valid": sum(1 for v in result.verdicts if v.skipped),
        "seeds_with_accepted": len({r["seed_id"] for r in accepted_rows}),
    }
    with atomic_dir(ctx.step_dir(STEP)) as out:
        write_jsonl(out / "accepted.jsonl", accepted_rows)
        write_jsonl(out / "votes.jsonl", [asdict(v) for v in result.votes])
        write_jsonl(out / "verdicts.jsonl", [asdict(v) for v in result.verdicts])
        (out / "budget.json").write_text(json.dumps({**spent, "funnel": funnel}, indent=1))
    ctx.store.save_verification(ctx.round_id, result.verdicts, result.votes)
    return {"funnel": funnel, **spent, "verify_seconds": round(seconds, 2)}


def load_accepted(ctx: RoundContext) -> list[dict]:
    return read_jsonl(ctx.step_dir(STEP) / "accepted.jsonl")
