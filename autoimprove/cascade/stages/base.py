"""What every cascade stage shares: the judging context, prompt files and the verdict parser.

A stage answers one question, "vote number `wave` on each of these candidates", as one batched
call to the backend. It never decides how many votes to ask for or when to stop; `voting.py` does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Protocol

from autoimprove.answers import strip_think
from autoimprove.backends.base import Backend, user_turn
from autoimprove.types import Candidate, Completion, Sampling, Vote

_VERDICT = re.compile(r"\[\[\s*([YN])\s*\]\]", re.IGNORECASE)


def parse_verdict(text: str) -> bool | None:
    """The last [[Y]]/[[N]] outside any think block; None when there is none."""
    found = _VERDICT.findall(strip_think(text))
    if not found:
        return None
    return found[-1].upper() == "Y"


def load_prompt(name: str) -> str:
    """A judge prompt template shipped in `cascade/prompts/<name>.txt`."""
    return resources.files("autoimprove.cascade").joinpath(f"prompts/{name}.txt").read_text()


@dataclass
class JudgeContext:
    """The model under self-verification and how its judge calls are sampled."""

    backend: Backend
    temperature: float
    max_new_tokens: int
    seed: int = 0
    system_prompt: str | None = None
    stop_at_answer: bool = False
    """Re-solves (agreement mode) may stop at their stated answer, like candidates."""
    peers: Mapping[str, Sequence[Candidate]] = field(default_factory=dict)
    """Every candidate of each seed, by seed id (what `pool` mode compares against)."""

    def ask(
        self,
        prompts: list[str],
        wave: int,
        salt: int,
        stop_at_answer: bool = False,
        temperature: float | None = None,
        max_new_tokens: int | None = None,
    ) -> list[Completion]:
        """One sampled judge response per prompt; (wave, salt) pick an independent RNG stream.
        `temperature` and `max_new_tokens` override the cascade's (0 = greedy)."""
        if not prompts:
            return []
        sampling = Sampling(
            n=1,
            temperature=self.temperature if temperature is None else temperature,
            max_new_tokens=max_new_tokens or self.max_new_tokens,
            seed=self.seed * 7919 + wave * 131 + salt,
            stop_at_answer=stop_at_answer,
        )
        conversations = [user_turn(p, self.system_prompt) for p in prompts]
        return [per[0] for per in self.backend.chat(conversations, sampling)]


def peers_of(candidates: Sequence[Candidate]) -> dict[str, list[Candidate]]:
    """Candidates grouped by seed (for `JudgeContext.peers`)."""
    out: dict[str, list[Candidate]] = {}
    for c in candidates:
        out.setdefault(c.seed_id, []).append(c)
    return out


def visible_solution(candidate: Candidate) -> str:
    """What a judge sees of a candidate: its text without think blocks."""
    return strip_think(candidate.text).strip()


def verdict_votes(
    stage: str, candidates: list[Candidate], wave: int, replies: list[Completion], calls: int = 1
) -> list[Vote]:
    """Votes from verdict-style replies; an unparseable reply counts as a no."""
    return [
        Vote.on(c, stage, wave, parse_verdict(r.text) is True, r.text, r, calls)
        for c, r in zip(candidates, replies, strict=True)
    ]


def judge_by_template(
    ctx: JudgeContext, stage: str, template: str, candidates: list[Candidate], wave: int, salt: int
) -> list[Vote]:
    """Verdict votes from a prompt that shows the judge the question and the candidate."""
    replies = ctx.ask(
        [template.format(question=c.prompt, solution=visible_solution(c)) for c in candidates],
        wave,
        salt=salt,
    )
    return verdict_votes(stage, candidates, wave, replies)


class Stage(Protocol):
    """A cascade stage: one batched vote per call."""

    name: str
    calls_per_vote: int

    def judge(self, candidates: list[Candidate], wave: int) -> list[Vote]: ...
