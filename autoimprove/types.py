"""Domain values passed between modules: frozen dataclasses, never dicts.

Every step speaks in these: a backend returns `Completion`s, generation turns them into
`Candidate`s, the cascade produces `Vote`s and one `Verdict` per candidate, evaluation produces
`EvalResult`s and the gate a `GateDecision`. `ModelRef` names what a round trains from.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Seed:
    """One unlabeled prompt from a seed pool."""

    id: str
    prompt: str
    domain: str = "default"


@dataclass(frozen=True)
class Completion:
    """One generated text and what it cost."""

    text: str
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Sampling:
    """How to sample: n completions per prompt at a temperature, up to max_new_tokens."""

    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int = 0
    stop_at_answer: bool = False


@dataclass(frozen=True)
class Candidate:
    """A candidate solution to a seed: the `index`-th sample for that seed."""

    seed_id: str
    index: int
    prompt: str
    text: str
    completion_tokens: int = 0


@dataclass(frozen=True)
class Vote:
    """One judge vote on one candidate at one stage (`wave` = the vote's ordinal, from 0)."""

    seed_id: str
    candidate_index: int
    stage: str
    wave: int
    accept: bool
    text: str
    calls: int = 1
    tokens: int = 0

    @classmethod
    def on(
        cls,
        candidate: Candidate,
        stage: str,
        wave: int,
        accept: bool,
        text: str,
        reply: Completion | None = None,
        calls: int = 1,
    ) -> Vote:
        """A vote on `candidate`. `reply` is the judge call it cost (`calls` calls, the reply's
        tokens); a vote without one cost nothing (pool agreement, a shared re-solve)."""
        return cls(
            seed_id=candidate.seed_id,
            candidate_index=candidate.index,
            stage=stage,
            wave=wave,
            accept=accept,
            text=text,
            calls=calls if reply is not None else 0,
            tokens=reply.prompt_tokens + reply.completion_tokens if reply is not None else 0,
        )


@dataclass(frozen=True)
class Verdict:
    """The cascade's outcome for one candidate: accepted, or the stage that rejected it.

    `rejected_at` is None when accepted; `skipped` is True when the candidate was never judged
    because its seed already had an accepted candidate (first-valid).
    """

    seed_id: str
    candidate_index: int
    accepted: bool
    rejected_at: str | None = None
    skipped: bool = False
    stages_passed: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelRef:
    """A model to generate or train from: a base model directory plus an optional adapter.

    `version` is the MLflow registry version the adapter came from (None = the base model).
    """

    base_dir: str
    adapter_dir: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class EvalResult:
    """pass@1 of one model on one task, with per-item correctness (ordered by item id)."""

    task: str
    n: int
    pass_at_1: float
    item_ids: tuple[str, ...]
    correct: tuple[bool, ...]
    responses: tuple[str, ...] = field(default=(), repr=False)
    calls: tuple[int, ...] = field(default=(), repr=False)
    """Model calls spent per item (1 for a plain answer; k for maj@k; n + judges for UQ-TTC)."""
    tokens: tuple[int, ...] = field(default=(), repr=False)
    """Generated tokens spent per item."""


@dataclass(frozen=True)
class GateDecision:
    """The decide step's outcome, with every number it used and a one-sentence reason."""

    promote: bool
    reason: str
    gain: float
    p_value: float
    champion_pass_at_1: float
    candidate_pass_at_1: float
    n: int
    candidate_only_correct: int
    champion_only_correct: int
    baselines: dict[str, float] = field(default_factory=dict)
    """pass@1 of each test-time-compute baseline measured (maj_at_k, uq_ttc)."""
    required_beat: str = "none"
    guards: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per guard task: champion and candidate pass@1, the change, items won and lost, McNemar p."""
