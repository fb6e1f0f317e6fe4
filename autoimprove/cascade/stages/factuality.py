"""Factuality: does the solution contain wrong facts, numbers, formulas or invalid steps?

- `verdict`: one call a vote; lenient on style and on doubt (the judge is told not to count an
  uncertain point as an error), so this stage removes clear mistakes only.
- `steps`: every arithmetic step the solution writes out ("21 - 2 = 20", "3 \\times 7 = 21") is
  put to the model again on its own ("Compute 21 - 2.", greedy), and the candidate passes only if
  the model's own result for every step is the one the solution states. A chain ("27 + 36 + 18")
  is asked one operation at a time, each on the model's own previous result, and a last + or *
  also the other way round: either answer may confirm the step (lenient on doubt; the model
  said 60 to "48 + 22" and 70 to "22 + 48"). A step that mixes + or - with * or / is not
  checked. No tool computes anything: the model checks its own steps,
  one small question at a time, which a 0.5B model does far better than judging a whole
  solution. A solution with no written-out step passes (nothing to refute). A question several
  candidates share is asked once.
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

# Measured on the embedded 0.5B model, greedy: "What is 21 - 2? Reply with only: The answer
# is N." got the letter N back; this wording got 19. It also got 48 + 64 + 32 wrong (132) and
# 48 + 64 then 112 + 32 right, so a chain is asked one operation at a time. The question is
# `cascade/prompts/factuality_step.txt`.
STEP_PROMPT = load_prompt("factuality_step").strip()
STEP_MAX_NEW_TOKENS = 24
_TOKEN = re.compile(r"\d+(?:\.\d+)?|[-+*/]")


def plain_arithmetic(text: str) -> str:
    """The text with LaTeX and Unicode operations spelled `+ - * /` and markup removed."""
    for pattern, replacement in _REWRITES:
        text = pattern.sub(replacement, text)
    return text


def written_steps(solution: str) -> list[tuple[str, str]]:
    """The arithmetic steps a solution writes out, as (expression, stated result)."""
    return [(" ".join(e.split()), r) for e, r in _STEP.findall(plain_arithmetic(solution))]


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

    def _ask(self, questions: dict[str, str], wave: int) -> dict[str, Completion]:
        """The model's greedy reply to each distinct question, keyed like `questions`."""
        distinct = list(dict.fromkeys(questions.values()))
        replies = self.ctx.ask(
            [STEP_PROMPT.format(expression=q) for q in distinct],
            wave,
            salt=6,
            stop_at_answer=True,
            temperature=0.0,
            max_new_tokens=STEP_MAX_NEW_TOKENS,
        )
        by_question = dict(zip(distinct, replies, strict=True))
        return {key: by_question[q] for key, q in questions.items()}

    def _step_votes(self, candidates: list[Candidate], wave: int) -> list[Vote]:
        steps = [written_steps(visible_solution(c)) for c in candidates]
        chains = {e: _TOKEN.findall(e) for per in steps for e, _ in per}
        # Left to right is only the written value when every operation has the same precedence;
        # a step mixing + or - with * or / is not checked.
        chains = {e: t for e, t in chains.items() if len({op in "+-" for op in t[1::2]}) == 1}
        value: dict[str, str | None] = {e: t[0] for e, t in chains.items()}
        before_last = dict(value)
        asked: dict[str, list[Completion]] = {e: [] for e in chains}
        for k in range(1, max((len(t) for t in chains.values()), default=1), 2):
            questions = {
                e: f"{value[e]} {t[k]} {t[k + 1]}"
                for e, t in chains.items()
                if k < len(t) and value[e] is not None
            }
            for e, reply in self._ask(questions, wave).items():
                before_last[e] = value[e]
                asked[e].append(reply)
                value[e] = extract_answer(reply.text, strict=True)
        # Lenient on doubt: the model said 60 to "48 + 22" and 70 to "22 + 48". A last + or *
        # is also asked the other way round, and either answer may confirm the step.
        swapped = {
            e: f"{t[-1]} {t[-2]} {before_last[e]}"
            for e, t in chains.items()
            if t[-2] in "+*" and before_last[e] is not None and value[e] is not None
        }
        other: dict[str, str | None] = {}
        for e, reply in self._ask(swapped, wave).items():
            asked[e].append(reply)
            other[e] = extract_answer(reply.text, strict=True)
        votes: list[Vote] = []
        charged: set[int] = set()
        for c, per in zip(candidates, steps, strict=True):
            lines, wrong, used = [], 0, []
            for expression, stated in per:
                if expression not in chains:
                    lines.append(f"{expression} = {stated}: mixed operations, not checked")
                    continue
                own = [value[expression], other.get(expression)]
                ok = any(answers_match(a, stated) for a in own)
                wrong += not ok
                said = " / ".join(str(a) for a in dict.fromkeys(own) if a is not None) or "None"
                lines.append(f"{expression} = {stated}: model says {said}{'' if ok else ' (X)'}")
                # A question two expressions share ("48 + 22" alone and as the start of
                # "48 + 22 + 5") was asked once: charged once, to the first vote that used it.
                fresh = [r for r in asked[expression] if id(r) not in charged]
                charged.update(id(r) for r in fresh)
                used += fresh
            cost = Completion(
                "", sum(r.prompt_tokens for r in used), sum(r.completion_tokens for r in used)
            )
            text = "\n".join(lines) or "[no written-out arithmetic step]"
            votes.append(
                Vote.on(c, self.name, wave, not wrong, text, cost if used else None, len(used))
            )
        return votes
