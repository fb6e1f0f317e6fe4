"""Factuality: does the solution contain wrong facts, numbers, formulas or invalid steps?

One call a vote, verdict style; lenient on style and on doubt (the judge is told not to count an
uncertain point as an error), so this stage removes clear mistakes only.
"""

from __future__ import annotations

from autoimprove.cascade.stages.base import JudgeContext, judge_by_template, load_prompt
from autoimprove.types import Candidate, Vote


class FactualityStage:
    name = "factuality"
    calls_per_vote = 1

    def __init__(self, ctx: JudgeContext, mode: str = "verdict"):
        self.ctx = ctx
        self.template = load_prompt("factuality")

    def judge(self, candidates: list[Candidate], wave: int) -> list[Vote]:
        return judge_by_template(self.ctx, self.name, self.template, candidates, wave, salt=3)
