"""`autoimprove audit`: how good is the verifier? Precision and recall of the cascade on labels.

Runs the policy's generation and cascade (same prompts, sampling, stages, votes and modes as a
round) on labeled problems `{"id", "prompt", "answer"}`, then scores each verdict against the
label: a candidate is *correct* when its extracted final answer matches. The labels only
measure the verifier; nothing here trains or touches a workspace. Every candidate is judged
(first-valid off) so each stage's precision and recall are measured on everything that reaches
it. Per stage: yield (passed / entered), precision (correct among passed), recall (correct
passed / correct entered); the whole cascade likewise, plus judge calls per accepted sample.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from autoimprove.answers import answers_match, extract_answer
from autoimprove.backends.base import Backend, Message
from autoimprove.context import Progress
from autoimprove.policy import CascadeSection, Policy
from autoimprove.types import Candidate, Completion, Sampling, Verdict


@dataclass(frozen=True)
class Labeled:
    id: str
    prompt: str
    answer: str


def load_labeled(path: Path, limit: int | None = None) -> tuple[list[Labeled], int]:
    """Valid labeled rows (in file order, at most `limit`) and how many bad rows were skipped."""
    rows: list[Labeled] = []
    bad = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            row = Labeled(str(raw["id"]), str(raw["prompt"]), str(raw["answer"]))
        except (json.JSONDecodeError, KeyError, TypeError):
            bad += 1
            continue
        if not row.prompt.strip() or not row.answer.strip():
            bad += 1
            continue
        rows.append(row)
    return (rows[:limit] if limit else rows), bad


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def score(
    candidates: list[Candidate],
    verdicts: list[Verdict],
    labels: dict[str, str],
    stage_names: list[str],
    judge_calls: int,
) -> dict:
    """The audit table from verdicts and labels (pure: no model)."""
    correct = {
        (c.seed_id, c.index): answers_match(extract_answer(c.text), labels[c.seed_id])
        for c in candidates
    }
    by_key = {(v.seed_id, v.candidate_index): v for v in verdicts}
    stages = []
    entering = list(correct)
    for name in stage_names:
        passed = [k for k in entering if name in by_key[k].stages_passed]
        right_in = sum(correct[k] for k in entering)
        right_out = sum(correct[k] for k in passed)
        stages.append(
            {
                "stage": name,
                "entered": len(entering),
                "passed": len(passed),
                "yield": _ratio(len(passed), len(entering)),
                "precision": _ratio(right_out, len(passed)),
                "recall": _ratio(right_out, right_in),
            }
        )
        entering = passed
    accepted = [k for k, v in by_key.items() if v.accepted]
    right_total = sum(correct.values())
    right_accepted = sum(correct[k] for k in accepted)
    return {
        "candidates": len(candidates),
        "correct_candidates": right_total,
        "base_precision": _ratio(right_total, len(candidates)),
        "stages": stages,
        "cascade": {
            "accepted": len(accepted),
            "yield": _ratio(len(accepted), len(candidates)),
            "precision": _ratio(right_accepted, len(accepted)),
            "recall": _ratio(right_accepted, right_total),
            "judge_calls": judge_calls,
            "calls_per_accepted": _ratio(judge_calls, len(accepted)),
            "problems_with_accepted": len({k[0] for k in accepted}),
        },
    }


def parse_variant(text: str) -> CascadeSection:
    """A cascade from `type:mode:votes[:rule]` stages joined by commas, e.g.
    `cycle:quantities:1,correctness:agreement:2` (the policy's other cascade settings apply)."""
    stages = []
    for part in text.split(","):
        fields = part.strip().split(":")
        if len(fields) not in (3, 4):
            raise ValueError(f"{part!r}: expected type:mode:votes[:rule]")
        stage = {"type": fields[0], "mode": fields[1], "votes": fields[2]}
        if len(fields) == 4:
            stage["rule"] = fields[3]
        stages.append(stage)
    return CascadeSection.model_validate({"stages": stages})


def _label(cascade: CascadeSection) -> str:
    return ",".join(f"{s.type}:{s.mode}:{s.votes}:{s.rule}" for s in cascade.stages)


class _Replay:
    """A backend that answers a repeated (conversation, sampling) from memory. Judge calls are
    seeded deterministically, so every variant would draw the same text again; stages still
    count each call they make, so the reported costs are what each cascade alone would spend."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self.memory: dict[tuple[str, Sampling], list[Completion]] = {}

    def chat(
        self, conversations: Sequence[Sequence[Message]], sampling: Sampling
    ) -> list[list[Completion]]:
        keys = [(json.dumps(list(c)), sampling) for c in conversations]
        missing = [i for i, k in enumerate(keys) if k not in self.memory]
        if missing:
            fresh = self.backend.chat([conversations[i] for i in missing], sampling)
            for i, out in zip(missing, fresh, strict=True):
                self.memory[keys[i]] = out
        return [self.memory[k] for k in keys]

    def close(self) -> None:
        self.backend.close()


def run_audit(
    policy: Policy,
    labeled: list[Labeled],
    variants: list[CascadeSection] | None = None,
    progress: Progress | None = None,
    adapter: Path | None = None,
) -> dict:
    """Generate like a round once (the policy's base model, with `adapter` on it when given:
    a champion's or a round's LoRA), judge the candidates with the policy's cascade and each
    variant, and score every cascade against the labels."""
    from autoimprove.backends.base import user_turn
    from autoimprove.backends.hf import HFBackend
    from autoimprove.basemodel import resolve_base
    from autoimprove.cascade.stages import build_stage
    from autoimprove.cascade.stages.base import JudgeContext, peers_of
    from autoimprove.cascade.voting import StageRule, run_cascade
    from autoimprove.types import ModelRef

    gen = policy.generation
    total, done = len(labeled) * gen.n, [0]

    def generated_some(count: int) -> None:
        done[0] += count
        if progress and done[0] <= total:
            progress("audit generate", done[0], total)

    model = ModelRef(str(resolve_base(policy)), None if adapter is None else str(adapter))
    backend = HFBackend(model, policy.model.dtype, gen.batch, generated_some)
    started = time.perf_counter()
    sampling = Sampling(
        n=gen.n,
        temperature=gen.temperature,
        top_p=gen.top_p,
        max_new_tokens=gen.max_new_tokens,
        seed=0,
        stop_at_answer=gen.stop_at_answer,
    )
    samples = backend.chat(
        [user_turn(r.prompt, policy.model.system_prompt) for r in labeled], sampling
    )
    candidates = [
        Candidate(r.id, j, r.prompt, c.text, c.completion_tokens)
        for r, per in zip(labeled, samples, strict=True)
        for j, c in enumerate(per)
    ]
    generated = time.perf_counter()
    replay = _Replay(backend)  # variants ask the same judge questions: sample each once
    reports = []
    for cascade in [policy.cascade, *(variants or [])]:
        started_judging = time.perf_counter()
        judge = JudgeContext(
            backend=replay,
            temperature=policy.cascade.temperature,
            max_new_tokens=policy.cascade.max_new_tokens,
            seed=0,
            system_prompt=policy.model.system_prompt,
            stop_at_answer=gen.stop_at_answer,
            peers=peers_of(candidates),
        )
        stages = [build_stage(s.type, s.mode, judge) for s in cascade.stages]
        rules = [StageRule(s.type, s.votes, s.rule) for s in cascade.stages]

        def ask(index: int, wave: int, batch: list[Candidate], stages: list = stages) -> list:
            return stages[index].judge(batch, wave)

        result = run_cascade(candidates, rules, ask, first_valid=False)
        table = score(
            candidates,
            result.verdicts,
            {r.id: r.answer for r in labeled},
            [s.type for s in cascade.stages],
            sum(v.calls for v in result.votes),
        )
        reports.append(
            {
                "variant": _label(cascade),
                **table,
                "judge_seconds": round(time.perf_counter() - started_judging, 1),
            }
        )
    backend.close()
    return {
        "model": {"base": model.base_dir, "adapter": model.adapter_dir},
        "problems": len(labeled),
        "candidates_per_problem": gen.n,
        "generation_seconds": round(generated - started, 1),
        **reports[0],
        "variants": reports[1:],
    }
