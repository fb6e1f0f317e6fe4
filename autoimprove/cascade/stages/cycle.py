"""Cycle consistency: can the question be recovered from the solution alone?

One vote first asks the model to reconstruct the question from the candidate (the original is
hidden), then checks the reconstruction against the original:
- `verdict`: a second call compares the two questions and answers [[Y]]/[[N]] (two calls a vote);
- `quantities`: every number given in the original must reappear in the reconstruction (one
  call a vote). For small models a Y/N comparison carries no signal, a number check does.
- `givens`: no judge call. The question can only be recovered from a solution that carries
  every number the question gives, so the check a perfect reconstruction would make is run on
  the solution itself: a candidate that never uses one of the question's numbers is rejected.
  It catches the promoted model's typical confident mistake (a quantity dropped, every sample
  agreeing), which pool agreement cannot see. Deterministic, so one vote.
- `operands`: `givens`, stricter and still without a call: each number the question gives must
  stand next to an arithmetic operation the solution writes out ("72 - 12", "\\frac{60}{6}"), as
  many times as the question gives it. A number mentioned only in prose or as a step's result
  does not count: the model's confident mistakes restate a quantity and then leave it out
  ("12 students are absent ... 72 / 6 = 12"), or use one of two equal quantities once ("needs
  2 x 5 = 10 spoons" where 5 are already in the pantry). A solution that writes out no
  operation at all is checked as `givens`.
"""

from __future__ import annotations

import re
from collections import Counter

from autoimprove.answers import normalize_number, strip_think
from autoimprove.cascade.stages.base import (
    JudgeContext,
    load_prompt,
    verdict_votes,
    visible_solution,
)
from autoimprove.cascade.stages.factuality import plain_arithmetic
from autoimprove.types import Candidate, Vote

_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
# A number with an operation next to it ("72 - 12", "\\frac{126}{7}", "6 \\times \\$10"): what is
# left between them (spaces, brackets, a stray backslash) does not matter. Each number
# occurrence counts once.
_OPERAND = re.compile(
    r"[-+*/][\s\\({]*(\d+(?:\.\d+)?)"  # an operation before it
    r"|(\d+(?:\.\d+)?)(?=[\s\\)}]*[-+*/])"  # or after it
)
_FRACTION = re.compile(r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}")


def numbers_in(text: str) -> set[str]:
    """Canonical numbers mentioned in a text."""
    found = (normalize_number(m) for m in _NUMBER.findall(text))
    return {n for n in found if n is not None}


def unused_givens(question: str, solution: str) -> set[str]:
    """Numbers the question gives that the visible solution never mentions (the `givens` check;
    empty when it passes)."""
    return numbers_in(question) - numbers_in(strip_think(solution))


def operands_in(solution: str) -> Counter[str]:
    """How often each number enters an arithmetic operation the solution writes out."""
    # After the markup goes: "\\frac{126 \\text{ beads}}{7 \\text{ friends}}" is a fraction too.
    text = _FRACTION.sub(r"(\1) / (\2)", plain_arithmetic(strip_think(solution)))
    found = (normalize_number(a or b) for a, b in _OPERAND.findall(text))
    return Counter(n for n in found if n is not None)


def unused_operands(question: str, solution: str) -> set[str]:
    """Numbers the question gives more often than the solution puts them into an arithmetic
    operation (the `operands` check; empty when it passes). A solution that writes no
    operation at all gets the `givens` check."""
    used = operands_in(solution)
    if not used:
        return unused_givens(question, solution)
    given = Counter(n for n in map(normalize_number, _NUMBER.findall(question)) if n is not None)
    return {n for n, times in given.items() if used[n] < times}


CALL_FREE_CHECKS = {"givens": unused_givens, "operands": unused_operands}
"""The cycle modes that make no judge call: mode -> the numbers a solution leaves unused."""


class CycleStage:
    name = "cycle"

    def __init__(self, ctx: JudgeContext, mode: str):
        self.ctx = ctx
        self.mode = mode
        self.calls_per_vote = (
            0 if mode in CALL_FREE_CHECKS else {"verdict": 2, "quantities": 1}[mode]
        )
        self.infer_template = load_prompt("cycle_infer")
        self.compare_template = load_prompt("cycle_compare")

    def _call_free_votes(self, candidates: list[Candidate], wave: int) -> list[Vote]:
        unused_in = CALL_FREE_CHECKS[self.mode]
        votes = []
        for c in candidates:
            unused = unused_in(c.prompt, c.text)
            text = f"[unused quantities: {sorted(unused)}]" if unused else "[every quantity used]"
            votes.append(Vote.on(c, self.name, wave, not unused, text))
        return votes

    def judge(self, candidates: list[Candidate], wave: int) -> list[Vote]:
        if self.mode in CALL_FREE_CHECKS:
            return self._call_free_votes(candidates, wave)
        inferred = self.ctx.ask(
            [self.infer_template.format(solution=visible_solution(c)) for c in candidates],
            wave,
            salt=1,
        )
        if self.mode == "quantities":
            votes = []
            for c, reply in zip(candidates, inferred, strict=True):
                missing = numbers_in(c.prompt) - numbers_in(reply.text)
                text = reply.text + (
                    f"\n[missing quantities: {sorted(missing)}]" if missing else ""
                )
                votes.append(Vote.on(c, self.name, wave, not missing, text, reply))
            return votes
        compared = self.ctx.ask(
            [
                self.compare_template.format(question=c.prompt, inferred=r.text)
                for c, r in zip(candidates, inferred, strict=True)
            ],
            wave,
            salt=2,
        )
        votes = verdict_votes(self.name, candidates, wave, compared, calls=2)
        # Keep both calls' text and tokens on the vote: the reconstruction explains the verdict.
        return [
            Vote(
                **{
                    **v.__dict__,
                    "text": f"[reconstructed question]\n{r.text}\n[comparison]\n{v.text}",
                    "tokens": v.tokens + r.prompt_tokens + r.completion_tokens,
                }
            )
            for v, r in zip(votes, inferred, strict=True)
        ]
