"""Cascade stages, looked up by the policy's `type` in an explicit table."""

from __future__ import annotations

from autoimprove.cascade.stages.base import JudgeContext, Stage
from autoimprove.cascade.stages.correctness import CorrectnessStage
from autoimprove.cascade.stages.cycle import CycleStage
from autoimprove.cascade.stages.factuality import FactualityStage

STAGES = {
    "cycle": CycleStage,
    "factuality": FactualityStage,
    "correctness": CorrectnessStage,
}


def build_stage(kind: str, mode: str, ctx: JudgeContext) -> Stage:
    """The stage for a policy entry; unknown kinds name the known ones."""
    if kind not in STAGES:
        raise KeyError(f"unknown cascade stage {kind!r}; known: {', '.join(sorted(STAGES))}")
    return STAGES[kind](ctx, mode)
