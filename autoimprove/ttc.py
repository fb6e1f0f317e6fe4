"""Test-time-compute baselines the gate compares a one-call candidate against (DESIGN §6, §8).

- **UQ-TTC**: per question, sample `n` candidates from the model, judge them with the policy's
  own cascade (same stages, votes and modes as training-time verification), answer with the
  first candidate that passes; when none passes, fall back to the first sample (`first`) or to
  the majority answer among the samples (`majority`). Calls per question = n + judge calls.
- **maj@k** runs through lm-eval itself (`evaluate.py`): the task with `repeats: k`, sampled, and
  the filter chain `autoimprove_final_answer` → `majority_vote` → `take_first`.

`UQTTCLM` is an lm-eval model class registered as `autoimprove-uqttc`, so the held-out task,
its prompts and its metric are exactly the ones the candidate is scored with; only the model
differs. `select` is the pure selection rule, tested with a scripted backend.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from lm_eval.api.filter import Filter
from lm_eval.api.model import LM
from lm_eval.api.registry import register_filter, register_model

from autoimprove.answers import extract_answer
from autoimprove.backends.base import Backend, user_turn
from autoimprove.cascade.stages import build_stage
from autoimprove.cascade.stages.base import JudgeContext, peers_of
from autoimprove.cascade.voting import StageRule, run_cascade
from autoimprove.policy import Policy
from autoimprove.types import Candidate, Sampling, Verdict


@dataclass(frozen=True)
class TTCAnswer:
    """What UQ-TTC answered one question with, and what the answer cost."""

    text: str
    accepted: bool
    """True when a candidate passed the cascade; False when the fallback answered."""
    chosen_index: int
    calls: int
    """Model calls spent on the question: n samples + every judge call."""
    tokens: int
    """Generated tokens spent on the question (samples + judges)."""


def select(candidates: list[Candidate], verdicts: list[Verdict], fallback: str) -> int:
    """Index of the candidate UQ-TTC answers with: the lowest-index accepted one, else the
    fallback (`first` sample, or the first sample carrying the `majority` extracted answer)."""
    accepted = sorted(v.candidate_index for v in verdicts if v.accepted)
    if accepted:
        return accepted[0]
    if fallback == "majority":
        answers = [extract_answer(c.text) for c in candidates]
        counted = Counter(a for a in answers if a is not None)
        if counted:
            top = max(counted.values())
            return next(i for i, a in enumerate(answers) if a is not None and counted[a] == top)
    return 0


def answer(
    backend: Backend, problems: list[str], policy: Policy, n: int, fallback: str, seed: int = 0
) -> list[TTCAnswer]:
    """UQ-TTC answers to `problems` (batched across questions like the round's own steps)."""
    gen = policy.generation
    sampling = Sampling(
        n=n,
        temperature=gen.temperature,
        top_p=gen.top_p,
        max_new_tokens=gen.max_new_tokens,
        seed=seed,
        stop_at_answer=gen.stop_at_answer,
    )
    conversations = [user_turn(p, policy.model.system_prompt) for p in problems]
    samples = backend.chat(conversations, sampling)
    candidates = [
        Candidate(str(q), j, problems[q], c.text, c.completion_tokens)
        for q, per in enumerate(samples)
        for j, c in enumerate(per)
    ]
    judge = JudgeContext(
        backend=backend,
        temperature=policy.cascade.temperature,
        max_new_tokens=policy.cascade.max_new_tokens,
        seed=seed,
        system_prompt=policy.model.system_prompt,
        stop_at_answer=gen.stop_at_answer,
        peers=peers_of(candidates),
    )
    stages = [build_stage(s.type, s.mode, judge) for s in policy.cascade.stages]
    rules = [StageRule(s.type, s.votes, s.rule) for s in policy.cascade.stages]
    result = run_cascade(
        candidates,
        rules,
        lambda s, wave, batch: stages[s].judge(batch, wave),
        first_valid=policy.cascade.first_valid,
    )
    out = []
    for q in range(len(problems)):
        mine = [c for c in candidates if c.seed_id == str(q)]
        verdicts = [v for v in result.verdicts if v.seed_id == str(q)]
        votes = [v for v in result.votes if v.seed_id == str(q)]
        chosen = select(mine, verdicts, fallback)
        out.append(
            TTCAnswer(
                text=mine[chosen].text,
                accepted=any(v.accepted for v in verdicts),
                chosen_index=chosen,
                calls=len(mine) + sum(v.calls for v in votes),
                tokens=sum(c.completion_tokens for c in mine) + sum(v.tokens for v in votes),
            )
        )
    return out


@register_filter("autoimprove_final_answer")
class FinalAnswerFilter(Filter):
    """lm-eval filter: each response → its extracted final answer ("" when there is none), so
    `majority_vote` counts answers, not whole texts."""

    def apply(self, resps: Any, docs: Any) -> Any:
        return [[extract_answer(r) or "" for r in per] for per in resps]


@register_model("autoimprove-uqttc")
class UQTTCLM(LM):
    """lm-eval model: answers each `generate_until` request with UQ-TTC on a backend.

    lm-eval renders chat prompts through `apply_chat_template`; this class keeps the messages
    (as JSON) instead, so the question reaches the cascade exactly as a seed would.
    """

    def __init__(self, backend: Backend, policy: Policy, n: int, fallback: str, seed: int = 0):
        super().__init__()
        self.backend, self.policy, self.n, self.fallback, self.seed = (
            backend,
            policy,
            n,
            fallback,
            seed,
        )
        self.costs: dict[int, TTCAnswer] = {}
        """Each answered request's answer and cost, by lm-eval doc id."""

    @property
    def tokenizer_name(self) -> str:
        return "autoimprove-uqttc"

    def apply_chat_template(
        self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> str:
        return json.dumps(chat_history)

    def generate_until(self, requests: list, disable_tqdm: bool = False) -> list[str]:
        problems = []
        for request in requests:
            context = request.args[0]
            try:
                messages = json.loads(context)
                problems.append(
                    next(m["content"] for m in reversed(messages) if m["role"] == "user")
                )
            except (json.JSONDecodeError, TypeError, KeyError, IndexError):
                problems.append(context)
        answers = answer(self.backend, problems, self.policy, self.n, self.fallback, self.seed)
        for request, given in zip(requests, answers, strict=True):
            self.costs[request.doc_id] = given
        return [a.text for a in answers]

    def loglikelihood(self, requests: list, disable_tqdm: bool = False) -> list:
        raise NotImplementedError("UQ-TTC answers generate_until tasks only")

    def loglikelihood_rolling(self, requests: list, disable_tqdm: bool = False) -> list:
        raise NotImplementedError("UQ-TTC answers generate_until tasks only")
