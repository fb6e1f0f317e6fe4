"""Policy files: the typed, validated description of what a round does.

A policy is YAML read only through `yaml.safe_load` (a `!!python/...` tag is an error, never an
object). `load_policy` validates the whole file and raises one `PolicyError` listing *every*
problem with its field path, so an operator fixes a file in one pass. Relative paths in a policy
are resolved against the policy file's folder, so a policy means the same thing from any cwd.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

EMBEDDED = "embedded"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSection(_Strict):
    base: str = Field(EMBEDDED, min_length=1)
    """The base model: `embedded` (the packaged Qwen2.5-Coder-0.5B-Instruct) or a local
    directory holding a transformers model in safetensors."""
    dtype: Literal["auto", "bfloat16", "float32"] = "auto"
    """Weights dtype. `auto`: bfloat16 on a GPU or a CPU with native bf16 (AVX512-BF16/AMX),
    float32 otherwise: on an AVX2-only CPU bf16 matmuls are emulated and measured 5x slower."""
    system_prompt: str | None = None
    """Optional system message put before every generation and evaluation prompt."""


class SeedsSection(_Strict):
    pool: str = Field(min_length=1)
    """Seed pool: a JSONL file or a folder of them, rows `{"id", "prompt", "domain"?}`."""
    per_round: int = Field(32, ge=1, le=100_000)
    """Seeds sampled (without reuse) for each round."""
    when_exhausted: Literal["stop", "recycle"] = "stop"
    """When fewer unused seeds remain than `per_round`: `stop` runs a short round with what is
    left and then refuses; `recycle` forgets usage and samples from the whole pool again."""
    decontam_ngram: int = Field(8, ge=3, le=50)
    """A seed sharing a word n-gram of this length with a held-out item is dropped."""
    sample_seed: int = Field(0, ge=0)
    """RNG seed for sampling seeds; combined with the round id so rounds differ."""


class GenerationSection(_Strict):
    n: int = Field(4, ge=1, le=64)
    """Candidate solutions sampled per seed (the paper uses 8)."""
    temperature: float = Field(0.8, gt=0.0, le=2.0)
    """Sampling temperature for candidates; must be > 0 or the n candidates are identical."""
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    """Nucleus sampling mass."""
    max_new_tokens: int = Field(256, ge=8, le=32_768)
    """Longest candidate, in tokens."""
    batch: int = Field(16, ge=1, le=1024)
    """Sequences per forward batch. Batch 16 gave 10.8x the tokens/s of batch 1 on 2 CPU cores."""
    stop_at_answer: bool = True
    """Stop a candidate (and an agreement re-solve) once it has written "the answer is N":
    what follows is not used and, in a batch, every extra token costs a forward pass."""
    shard_seeds: int = Field(8, ge=1, le=100_000)
    """Seeds per shard. Generation and verification seal each shard's results on disk as they
    go, so a crash or a stop costs at most one shard; smaller shards batch less well."""
    screen: int | None = Field(None, ge=2, le=63)
    """Draw this many candidates per seed first, and the rest (up to n) only for seeds where two
    of them state the same final answer. Off (None): all n at once. A seed whose first samples
    all disagree seldom reaches the votes pool agreement needs, so its other samples are mostly
    wasted generation. With n = 4 and pool votes 2, `screen: 3` loses no row (a row needs 3 of 4
    samples agreeing); `screen: 2` loses the seeds whose first two disagree. Measured on 2 CPU
    cores with 16-seed shards it saved 35% of the tokens but not time: the second draw decodes
    as a small batch of its own (BENCHMARKS.md, "Screening")."""

    @model_validator(mode="after")
    def _screen_below_n(self) -> GenerationSection:
        if self.screen is not None and self.screen >= self.n:
            raise ValueError(f"screen ({self.screen}) must be below n ({self.n}), or left unset")
        return self


StageType = Literal["cycle", "factuality", "correctness"]
# Cycle modes that make no judge call (the stage's CALL_FREE_CHECKS holds their checks; a
# unit test keeps the two lists equal).
CALL_FREE_MODES = ("givens", "operands")
StageMode = Literal["verdict", "quantities", "givens", "operands", "steps", "agreement", "pool"]

_MODES_BY_STAGE: dict[str, tuple[str, ...]] = {
    "cycle": ("verdict", "quantities", *CALL_FREE_MODES),
    "factuality": ("verdict", "steps"),
    "correctness": ("verdict", "agreement", "pool"),
}


class StageSection(_Strict):
    type: StageType
    """Which check: `cycle` (infer the question back from the answer), `factuality`
    (wrong facts or invalid steps), `correctness` (solve it and compare)."""
    mode: StageMode = "verdict"
    """How the model judges: `verdict` ([[Y]]/[[N]] after reasoning; for capable models),
    `quantities` (cycle only: the inferred question must carry the original's numbers),
    `givens` (cycle only, no judge call: the solution must use every number the question gives;
    deterministic, so `votes` must be 1), `operands` (cycle only, no judge call: `givens`, but
    each given number must stand next to an arithmetic operation the solution writes out, as
    often as the question gives it; `votes` must be 1),
    `steps` (factuality only: the model recomputes every arithmetic step the solution writes
    out, greedy, one vote), `agreement` (correctness only: independent re-solves must reach the
    candidate's answer),
    `pool` (correctness only: at least `votes` of the seed's other candidates must state the same
    answer; no judge calls, so `votes` must be below `generation.n`)."""
    votes: int = Field(3, ge=1, le=32)
    """Independent votes (temperature > 0, distinct seeds) asked for at this stage."""
    rule: Literal["unanimous", "majority"] = "unanimous"
    """`unanimous`: every vote must accept; `majority`: more than half must."""

    @model_validator(mode="after")
    def _mode_fits_stage(self) -> StageSection:
        allowed = _MODES_BY_STAGE[self.type]
        if self.mode not in allowed:
            raise ValueError(
                f"stage {self.type!r} cannot judge in mode {self.mode!r}; "
                f"choose one of {', '.join(allowed)}"
            )
        if self.mode == "steps" and self.votes != 1:
            raise ValueError(
                "factuality in steps mode recomputes greedily: a second vote would repeat the "
                "first; set votes: 1"
            )
        if self.mode in CALL_FREE_MODES and self.votes != 1:
            raise ValueError(
                f"cycle in {self.mode} mode is a deterministic check: a second vote would repeat "
                "the first; set votes: 1"
            )
        return self


class CascadeSection(_Strict):
    stages: list[StageSection] = Field(min_length=1)
    """Stages in the order they run; a candidate stops at the first stage that rejects it."""
    temperature: float = Field(0.7, gt=0.0, le=2.0)
    """Judge sampling temperature; > 0 so repeated votes are independent."""
    max_new_tokens: int = Field(256, ge=8, le=32_768)
    """Longest judge response, in tokens."""
    first_valid: bool = True
    """Keep only the first accepted candidate per seed (the paper's choice, +8.4 vs +4.9 for
    all-valid) and stop judging that seed's other candidates."""

    @model_validator(mode="after")
    def _stages_unique(self) -> CascadeSection:
        kinds = [s.type for s in self.stages]
        duplicates = sorted({k for k in kinds if kinds.count(k) > 1})
        if duplicates:
            raise ValueError(f"each stage type may appear once; repeated: {', '.join(duplicates)}")
        return self


class LoraSection(_Strict):
    r: int = Field(16, ge=1, le=1024)
    """LoRA rank."""
    alpha: int = Field(32, ge=1, le=4096)
    """LoRA scaling numerator (effective scale alpha / r)."""
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    """Dropout on the LoRA input."""
    target_modules: list[str] = Field(
        default_factory=lambda: [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ],
        min_length=1,
    )
    """Module names that get adapters."""


class TrainingSection(_Strict):
    mode: Literal["continue", "fresh"] = "continue"
    """`continue`: train the champion's adapter further (a fresh adapter when the champion is
    the base model). `fresh`: a new adapter on the base model every round (pair it with
    `data: lineage`, or the candidate forgets what made the champion). Either way every
    version is one adapter over one fixed base."""
    data: Literal["round", "since_champion", "lineage"] = "round"
    """`round`: train on this round's accepted rows. `since_champion`: also on the rows of
    earlier rounds on the same champion that the gate rejected (rows accumulate until a
    candidate wins). `lineage`: those, plus every row behind the champion (what each round
    from it back to the base model trained on), so data accumulates across promotions too.
    A round that accepts nothing still skips training either way."""
    max_rows: int | None = Field(None, ge=1, le=10_000_000)
    """At most this many rows a round: this round's own first, then the champion's, then the
    carried rows, newest round first; the rest sit this round out (counted in the train
    summary). Keeps a lineage round's training time from growing with every rejected round.
    None = every row."""
    lora: LoraSection = LoraSection()
    """LoRA shape."""
    learning_rate: float = Field(1e-4, gt=0.0, le=1.0)
    """Peak learning rate."""
    learning_rate_budget: float | None = Field(None, gt=0.0, le=100.0)
    """When set, the learning rate is at most this divided by the round's optimizer steps
    (rows over `batch_size`, rounded up, times `epochs`): a round with more rows behind it
    takes smaller steps, so every round moves its adapter about as far. None = always
    `learning_rate`."""
    epochs: int = Field(3, ge=1, le=100)
    """Passes over the round's accepted rows."""
    batch_size: int = Field(8, ge=1, le=4096)
    """Rows per optimizer step (per-device batch x gradient accumulation)."""
    grad_accum: int = Field(1, ge=1, le=1024)
    """Gradient accumulation steps; `batch_size` must be divisible by it."""
    max_length: int = Field(512, ge=32, le=131_072)
    """Longest training row (prompt + completion) in tokens; longer rows are truncated."""
    seed: int = Field(0, ge=0)
    """Training RNG seed."""
    checkpoint_every: int = Field(5, ge=1, le=1_000_000)
    """Save a resumable checkpoint every this many optimizer steps; a killed training resumes
    from the newest complete one."""

    @model_validator(mode="after")
    def _accum_divides_batch(self) -> TrainingSection:
        if self.batch_size % self.grad_accum:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be divisible by grad_accum "
                f"({self.grad_accum})"
            )
        return self


class BaselinesSection(_Strict):
    maj_at_k: int | None = Field(None, ge=2, le=64)
    """Also score the champion with maj@k: k sampled answers per question (at the generation
    temperature), the majority final answer counts. None = off."""
    uq_ttc: int | None = Field(None, ge=1, le=64)
    """Also score the champion with UQ-TTC: n sampled candidates per question judged by this
    policy's cascade, the first that passes answers. None = off."""
    fallback: Literal["first", "majority"] = "first"
    """UQ-TTC's answer when no candidate passes: the first sample, or the majority answer."""


class EvaluationSection(_Strict):
    task: str = Field("autoimprove_arith_heldout", min_length=1)
    """lm-eval task name: one shipped in `autoimprove/tasks/` (offline) or a folder of task
    YAMLs given in `include_path`."""
    include_path: str | None = None
    """Extra folder of lm-eval task YAMLs (the package's own tasks are always included)."""
    limit: int | None = Field(100, ge=1)
    """Evaluate on the first `limit` items (None = all). Both models see the same items."""
    batch_size: int = Field(16, ge=1, le=1024)
    """Generation batch during evaluation."""
    max_new_tokens: int = Field(320, ge=8, le=32_768)
    """Longest evaluation answer, in tokens."""
    baselines: BaselinesSection = BaselinesSection()
    """Test-time-compute baselines scored on the champion, on the same items."""
    guard_tasks: list[str] = []
    """More lm-eval tasks champion and candidate are both scored on; the candidate must not
    regress on any by more than `promotion.guard_tolerance`."""
    guard_scoring: Literal["always", "on_promotion"] = "always"
    """`on_promotion`: score the guard tasks only for a candidate that has already passed the
    gate's paired test (and `require_beat`). Guards can only block a promotion, so a rejected
    candidate's guard scores decide nothing; this saves their cost (both sides, on a first
    round) on every rejected round, which then records no guard numbers. `always`: every round
    is scored on them (a futility stop still skips the candidate's)."""
    early_stop: int | None = Field(None, ge=1)
    """Score the candidate on the first `early_stop` items first. When it has not won more of
    them than it lost against the champion, the other items and its guard tasks are not scored
    and the gate rejects it. Only a futility stop: a promotion is still tested on all `limit`
    items, so it never makes a promotion easier. None = score every item."""

    @model_validator(mode="after")
    def _early_stop_below_limit(self) -> EvaluationSection:
        if self.early_stop is not None and (self.limit is None or self.early_stop >= self.limit):
            raise ValueError(
                f"early_stop ({self.early_stop}) must be below limit ({self.limit}): the first "
                "look has to leave items to score"
            )
        return self


class PromotionSection(_Strict):
    min_gain: float = Field(0.0, ge=-1.0, le=1.0)
    """Candidate pass@1 minus champion pass@1 must be at least this."""
    alpha: float = Field(0.05, gt=0.0, le=1.0)
    """The paired test's p-value must be at most this."""
    test: Literal["mcnemar", "bootstrap"] = "mcnemar"
    """Paired significance test: exact McNemar on discordant items, or paired bootstrap."""
    require_beat: Literal["none", "maj_at_k", "uq_ttc"] = "none"
    """Also require the candidate's one-call pass@1 to be at least this baseline's (which must
    then be enabled in `evaluation.baselines`)."""
    guard_tolerance: float = Field(0.02, ge=0.0, le=1.0)
    """Largest pass@1 drop allowed on any `evaluation.guard_tasks` task."""
    guard_alpha: float | None = Field(None, gt=0.0, le=1.0)
    """When set, a guard drop beyond `guard_tolerance` blocks promotion only if exact McNemar on
    that task's items says it is real (p <= guard_alpha). Unset: any such drop blocks."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: object) -> float:
    """Seconds from `90`, `"90s"`, `"15m"`, `"6h"` or `"1d"`."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 90s, 15m, 6h or 1d")
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration like 90s, 15m, 6h or 1d")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


Duration = Annotated[float, BeforeValidator(parse_duration)]


class ScheduleSection(_Strict):
    every: Duration | None = Field(None, ge=1)
    """Start a round at this interval (`6h`, `30m`, seconds); mutually exclusive with `cron`.
    With neither set, rounds start every 6h."""
    cron: str | None = None
    """Start rounds on a crontab expression (5 fields, UTC), e.g. `0 */6 * * *`."""
    misfire_grace: Duration = Field(3600, ge=1)
    """A trigger time missed by less than this (daemon down or busy) still runs one round;
    several missed trigger times coalesce into one."""
    max_attempts: int = Field(3, ge=1, le=100)
    """A step that crashes is retried; after this many failed attempts the round is ABANDONED
    with the error kept."""
    retry_backoff: Duration = Field(30, ge=0)
    """Wait before retrying a failed step; doubles with each further attempt."""

    @field_validator("cron")
    @classmethod
    def _cron_parses(cls, value: str | None) -> str | None:
        if value is not None:
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(value, timezone="UTC")
            except ValueError as exc:
                raise ValueError(f"{value!r}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _one_trigger(self) -> ScheduleSection:
        if self.every is not None and self.cron is not None:
            raise ValueError("give either every or cron, not both")
        return self


class RegistrySection(_Strict):
    model_name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    """Registered model name in MLflow (one per policy)."""
    tracking_uri: str | None = None
    """MLflow tracking URI; None = an SQLite file and artifact folder inside the workspace."""


class Policy(_Strict):
    version: Literal[1] = 1
    """Policy schema version."""
    model: ModelSection = ModelSection()
    seeds: SeedsSection
    generation: GenerationSection = GenerationSection()
    cascade: CascadeSection
    training: TrainingSection = TrainingSection()
    evaluation: EvaluationSection = EvaluationSection()
    promotion: PromotionSection = PromotionSection()
    registry: RegistrySection
    schedule: ScheduleSection = ScheduleSection()

    @model_validator(mode="after")
    def _pool_votes_fit_the_candidates(self) -> Policy:
        for stage in self.cascade.stages:
            if stage.mode == "pool" and stage.votes >= self.generation.n:
                raise ValueError(
                    f"cascade stage {stage.type} in pool mode needs votes ({stage.votes}) below "
                    f"generation.n ({self.generation.n}): a candidate has n - 1 peers to agree"
                )
        return self

    @model_validator(mode="after")
    def _beaten_baseline_is_measured(self) -> Policy:
        wanted = self.promotion.require_beat
        if wanted != "none" and getattr(self.evaluation.baselines, wanted) is None:
            raise ValueError(
                f"promotion.require_beat is {wanted}, but evaluation.baselines.{wanted} is not "
                "set: give it a value (k or n) so the baseline is measured"
            )
        return self

    def digest(self) -> str:
        """Short stable hash of the resolved policy (recorded on every round and version)."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class PolicyError(Exception):
    """A policy file that cannot be used; `errors` holds one 'path: message' line per problem."""

    def __init__(self, source: str, errors: list[str]):
        self.source = source
        self.errors = errors
        lines = "\n".join(f"  - {e}" for e in errors)
        super().__init__(f"{source}: {len(errors)} error(s)\n{lines}")


def _format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _resolve_paths(policy: Policy, folder: Path) -> Policy:
    def resolve(p: str) -> str:
        path = Path(p).expanduser()
        return str(path if path.is_absolute() else (folder / path).resolve())

    model = policy.model
    if model.base != EMBEDDED:
        model = model.model_copy(update={"base": resolve(model.base)})
    seeds = policy.seeds.model_copy(update={"pool": resolve(policy.seeds.pool)})
    evaluation = policy.evaluation
    if evaluation.include_path:
        evaluation = evaluation.model_copy(
            update={"include_path": resolve(evaluation.include_path)}
        )
    return policy.model_copy(update={"model": model, "seeds": seeds, "evaluation": evaluation})


def parse_policy(text: str, source: str = "<policy>", folder: Path | None = None) -> Policy:
    """Validate policy YAML text; raise PolicyError listing every problem."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # safe_load refuses !!python/... tags; say so plainly rather than dumping a traceback.
        raise PolicyError(source, [f"(yaml) {exc}".replace("\n", " ")]) from None
    if not isinstance(raw, dict):
        raise PolicyError(source, ["(top level): a policy must be a mapping of sections"])
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as exc:
        errors = [f"{_format_loc(e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise PolicyError(source, errors) from None
    return _resolve_paths(policy, folder or Path.cwd())


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file; relative paths resolve against its folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(str(path), [f"(file) cannot read: {exc.strerror}"]) from None
    return parse_policy(text, source=str(path), folder=path.resolve().parent)
