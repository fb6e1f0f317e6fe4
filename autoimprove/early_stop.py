"""`evaluation.early_stop`: the candidate scored in two looks, and a futility stop after the first.

The candidate's greedy results on the main task: the first `early_stop` items, then, unless it
won no more of them than it lost against the champion, the rest. Each look is a sealed shard of
the `evaluate` step, so a resume redoes neither. A stop is recorded in the candidate's shard
(`stopped_early`: the first look's numbers); the gate then compares on the first look's items
(`first_items`) and rejects.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

from autoimprove import evaluate, stopping
from autoimprove.artifacts import is_complete, read_jsonl
from autoimprove.context import RoundContext
from autoimprove.faults import fault_point
from autoimprove.types import EvalResult, ModelRef

STEP = evaluate.STEP


def first_items(result: EvalResult, n: int) -> EvalResult:
    """`result` on its first `n` items: a candidate stopped early is compared on those."""
    correct = result.correct[:n]
    return dataclasses.replace(
        result,
        n=len(correct),
        pass_at_1=sum(correct) / len(correct) if correct else 0.0,
        item_ids=result.item_ids[:n],
        correct=correct,
        responses=result.responses[:n],
        calls=result.calls[:n],
        tokens=result.tokens[:n],
    )


def _won_lost(champion: list[dict], candidate: list[dict]) -> tuple[int, int]:
    """Items only the candidate got right, items only the champion got right (same ids)."""
    old = {r["item_id"]: bool(r["correct"]) for r in champion}
    won = sum(bool(r["correct"]) and not old[r["item_id"]] for r in candidate)
    lost = sum(old[r["item_id"]] and not r["correct"] for r in candidate)
    return won, lost


def candidate_in_two_looks(
    ctx: RoundContext, spec: evaluate.Spec, ref: ModelRef, model: Callable[[], tuple], folder: Path
) -> None:
    """The candidate's greedy results on the main task under `evaluation.early_stop`: the first
    `early_stop` items, then, unless it won no more of them than it lost against the champion,
    the rest. Each look is sealed on its own, so a resume redoes neither."""
    policy, evaluation = ctx.policy, ctx.policy.evaluation
    first, limit = evaluation.early_stop, evaluation.limit
    assert first is not None and limit is not None
    looks = [("candidate--first", range(first)), ("candidate--rest", range(first, limit))]
    rows: list[dict] = []
    seconds = 0.0
    for name, items in looks:
        part = ctx.shard_dir(STEP, name)
        if not is_complete(part):
            stopping.check()
            loaded = model()
            started = time.perf_counter()
            result = evaluate.evaluate_model(
                ref,
                evaluation,
                policy.model.dtype,
                policy.model.system_prompt,
                spec.task,
                loaded,
                items,
            )
            seconds_taken = time.perf_counter() - started
            evaluate.seal(part, evaluate.rows_of(result), {"seconds": seconds_taken})
            fault_point(STEP, "after_shard")
        rows += read_jsonl(part / "items.jsonl")
        seconds += evaluate.read_stats(part)["seconds"]
        if items.start == 0:
            champion = read_jsonl(ctx.shard_dir(STEP, "champion") / "items.jsonl")
            won, lost = _won_lost(champion, rows)
            if won <= lost:
                stop = {"after": first, "of": limit, "won": won, "lost": lost}
                stats = {"seconds": seconds, "cached": False, "stopped_early": stop}
                evaluate.seal(folder, rows, stats)
                return
    evaluate.seal(folder, rows, {"seconds": seconds, "cached": False})


def stopped_early(ctx: RoundContext) -> dict | None:
    """The first look's numbers when `evaluation.early_stop` ended the candidate's scoring."""
    folder = ctx.shard_dir(STEP, "candidate")
    return evaluate.read_stats(folder).get("stopped_early") if is_complete(folder) else None
