"""Factuality: does the solution contain wrong facts, numbers, formulas or invalid steps?

- `verdict`: one call a vote; lenient on style and on doubt (the judge is told not to count an
  uncertain point as an error), so this stage removes clear mistakes only.
- `steps`: every arithmetic step the solution writes out ("21 - 2 = 20", "3 \\times 7 = 21") is
  put to the model again on its own ("What is 21 - 2?", greedy), and the candidate passes only if
  the model's own result for every step is the one the solution states. No tool computes
  anything: the model checks its own steps, one small question at a time, which a 0.5B model does
  far better than judging a whole solution. A solution with no written-out step passes (nothing
  to refute). Identical steps are asked once per wave.
"""

from __future__ import annotations

import re

from autoimprove.answers import answers_match, extract_answer
from autoimprove.cascade.stages.base import (
    JudgeContext,
    judge_by_template,
    load_prompt,
    visible_solution,
)
from autoimprove.types import Candidate, Completion, Vote

# LaTeX and Unicode spellings of the four operations, and markup around numbers.
_REWRITES = [
    (re.compile(r"\\(?:text|mathrm|textbf|mbox)\{[^{}]*\}"), " "),
    (re.compile(r"\\frac\{(\d+(?:\.\d+)?)\}\{(\d+(?:\.\d+)?)\}"), r"\1 / \2"),
    (re.compile(r"\\times|\\cdot|[×·⋅]"), "*"),
    (re.compile(r"\\div|÷"), "/"),
    (re.compile(r"(?<=\d),(?=\d{3}\b)"), ""),
    (re.compile(r"\\[()\[\]]|\$"), " "),
]
_NUM = r"\d+(?:\.\d+)?"
# "a op b [op c ...] = r", not preceded by anything that would make it part of a longer formula.
_STEP = re.compile(
    rf"(?<![\w.)\]}}/*+-])({_NUM}(?:[ \t]*[-+*/][ \t]*{_NUM})+)"  # a op b [op c ...]
    rf"[ \t]*=[ \t]*(-?{_NUM})(?![\d.]*[\w(])"  # = r, a whole number not followed by a name
)

STEP_PROMPT = "What is {expression}? Reply with only: The answer is N."
STEP_MAX_NEW_TOKENS = 24


def written_steps(solution: str) -> list[tuple[str, str]]:
    """The arithmetic steps a solution writes out, as (expression, stated result)."""
    text = solution
    for pattern, replacement in _REWRITES:
        text = pattern.sub(replacement, text)
    return [(" ".join(e.split()), r) for e, r in _STEP.findall(text)]


class FactualityStage:
    name = "factuality"
    calls_per_vote = 1

    def __init__(self, ctx: JudgeContext, mode: str = "verdict"):
        self.ctx = ctx
        self.mode = mode
        self.template = load_prompt("factuality")

    def judge(self, candidates: list[Candidate], wave: int) -> list[Vote]:
        if self.mode == "steps":
            return self._step_votes(candidates, wave)
        return judge_by_template(self.ctx, self.name, self.template, candidates, wave, salt=3)

    def _step_votes(self, candidates: list[Candidate], wave: int) -> list[Vote]:
        steps = [written_steps(visible_solution(c)) for c in candidates]
        expressions = list(dict.fromkeys(e for per in steps for e, _ in per))
        replies = self.ctx.ask(
            [STEP_PROMPT.format(expression=e) for e in expressions],
            wave,
            salt=6,
            stop_at_answer=True,
            temperature=0.0,
            max_new_tokens=STEP_MAX_NEW_TOKENS,
        )
        recomputed = dict(zip(expressions, replies, strict=True))
        votes = []
        for c, per in zip(candidates, steps, strict=True):
            lines, wrong = [], 0
            for expression, stated in per:
                own = extract_answer(recomputed[expression].text, strict=True)
                ok = answers_match(own, stated)
                wrong += not ok
                lines.append(f"{expression} = {stated}: model says {own}{'' if ok else ' (X)'}")
            used = [recomputed[e] for e in dict.fromkeys(e for e, _ in per)]
            cost = Completion(
                "", sum(r.prompt_tokens for r in used), sum(r.completion_tokens for r in used)
            )
            text = "\n".join(lines) or "[no written-out arithmetic step]"
            votes.append(
                Vote.on(c, self.name, wave, not wrong, text, cost if used else None, len(used))
            )
        return votes
