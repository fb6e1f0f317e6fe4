"""Correctness: is the candidate's final answer right and its reasoning complete?

- `verdict`: the judge solves the problem itself first, then compares and answers [[Y]]/[[N]].
- `agreement`: the model re-solves the original problem independently; a vote is yes when the
  re-solve's extracted final answer equals the candidate's. Re-solves depend only on the seed,
  not on the candidate, so vote number `wave` for a seed is drawn once and shared by all of that
  seed's candidates (v re-solves per seed, not per candidate). The call is charged to the first
  candidate that uses it.
- `pool`: no judge call at all. The seed's other candidates are independent samples of the same
  problem, so they serve as the re-solves: vote number `wave` is yes when at least `wave + 1`
  of the seed's other candidates state the same final answer, so a unanimous stage of `v`
  votes passes a candidate that at least `v` of its peers agree with. Needs the seed's full
  candidate set (`JudgeContext.peers`), whatever earlier stages rejected.
"""

from __future__ import annotations

from autoimprove.answers import answers_match, extract_answer
from autoimprove.cascade.stages.base import JudgeContext, judge_by_template, load_prompt
from autoimprove.types import Candidate, Completion, Vote


class CorrectnessStage:
    name = "correctness"
    calls_per_vote = 1

    def __init__(self, ctx: JudgeContext, mode: str):
        self.ctx = ctx
        self.mode = mode
        self.template = load_prompt("correctness")
        self.resolves: dict[tuple[str, int], Completion] = {}

    def _resolve(self, candidates: list[Candidate], wave: int) -> None:
        missing: dict[str, str] = {}
        for c in candidates:
            if (c.seed_id, wave) not in self.resolves:
                missing[c.seed_id] = c.prompt
        replies = self.ctx.ask(
            list(missing.values()), wave, salt=5, stop_at_answer=self.ctx.stop_at_answer
        )
        for seed_id, reply in zip(missing, replies, strict=True):
            self.resolves[(seed_id, wave)] = reply

    def _pool_votes(self, candidates: list[Candidate], wave: int) -> list[Vote]:
        votes = []
        for c in candidates:
            mine = extract_answer(c.text, strict=True)
            peers = [p for p in self.ctx.peers.get(c.seed_id, ()) if p.index != c.index]
            agreeing = sum(answers_match(mine, extract_answer(p.text, strict=True)) for p in peers)
            text = f"[pool: {agreeing} of {len(peers)} other candidates state {mine}]"
            votes.append(Vote.on(c, self.name, wave, mine is not None and agreeing > wave, text))
        return votes

    def judge(self, candidates: list[Candidate], wave: int) -> list[Vote]:
        if self.mode == "pool":
            return self._pool_votes(candidates, wave)
        if self.mode == "verdict":
            return judge_by_template(self.ctx, self.name, self.template, candidates, wave, salt=4)
        fresh = {c.seed_id for c in candidates if (c.seed_id, wave) not in self.resolves}
        self._resolve(candidates, wave)
        votes = []
        for c in candidates:
            reply = self.resolves[(c.seed_id, wave)]
            charged = c.seed_id in fresh
            fresh.discard(c.seed_id)
            # Only explicitly stated answers can agree (see extract_answer's `strict`).
            mine, theirs = (
                extract_answer(c.text, strict=True),
                extract_answer(reply.text, strict=True),
            )
            text = f"[re-solve {wave}: {theirs}; candidate: {mine}]\n{reply.text}"
            # A re-solve is shared by the seed's candidates: charged to the first one only.
            cost = reply if charged else None
            votes.append(Vote.on(c, self.name, wave, answers_match(mine, theirs), text, cost))
        return votes
