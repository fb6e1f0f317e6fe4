"""The state database: SQLModel tables and the only code that reads or writes them.

One SQLite file per workspace (WAL mode, busy timeout, short transactions). It records every
round with its state and figures, which seeds each round used (so seeds are never reused), every
candidate, every judge vote with its text, and per-item evaluation results. MLflow holds the
models; this holds the bookkeeping that decides what happens next.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, inspect, text
from sqlmodel import Field, Session, SQLModel, create_engine, delete, select

from autoimprove.types import Candidate, EvalResult, Verdict, Vote


def _now() -> datetime:
    return datetime.now(UTC)


class RoundState:
    """Round states (DESIGN §3)."""

    PENDING = "PENDING"
    GENERATED = "GENERATED"
    VERIFIED = "VERIFIED"
    TRAINED = "TRAINED"
    EVALUATED = "EVALUATED"
    DECIDED = "DECIDED"
    PROMOTED = "PROMOTED"
    REJECTED = "REJECTED"
    FAILED = "FAILED"
    ABANDONED = "ABANDONED"
    FINAL = frozenset({PROMOTED, REJECTED, ABANDONED})
    ORDER = (PENDING, GENERATED, VERIFIED, TRAINED, EVALUATED, DECIDED)

    @classmethod
    def reached(cls, progress: str, state: str) -> bool:
        """True when a round whose last committed step is `progress` has passed `state`."""
        if progress in cls.FINAL:
            return True
        return cls.ORDER.index(progress) >= cls.ORDER.index(state)


class RoundRow(SQLModel, table=True):
    """One round. `progress` is the last committed step; `state` equals it except while a
    failed step waits for its retry (FAILED) and at the end (PROMOTED/REJECTED/ABANDONED)."""

    __tablename__ = "rounds"
    id: int | None = Field(default=None, primary_key=True)
    state: str = Field(default=RoundState.PENDING, index=True)
    progress: str = Field(default=RoundState.PENDING)
    slot: str | None = Field(default=None, unique=True)
    policy_hash: str
    policy_json: str
    parent_version: str | None = None
    model_version: str | None = None
    decision: str | None = None
    reason: str | None = None
    error: str | None = None
    attempts: int = 0
    summary_json: str = "{}"
    started_at: datetime = Field(default_factory=_now)
    finished_at: datetime | None = None

    @property
    def summary(self) -> dict[str, Any]:
        return json.loads(self.summary_json)


class SeedUse(SQLModel, table=True):
    __tablename__ = "seed_use"
    seed_id: str = Field(primary_key=True)
    round_id: int = Field(index=True, foreign_key="rounds.id")


class CandidateRow(SQLModel, table=True):
    __tablename__ = "candidates"
    id: int | None = Field(default=None, primary_key=True)
    round_id: int = Field(index=True, foreign_key="rounds.id")
    seed_id: str
    index: int
    prompt: str
    text: str
    completion_tokens: int = 0
    accepted: bool | None = None
    rejected_at: str | None = None
    skipped: bool = False


class VoteRow(SQLModel, table=True):
    __tablename__ = "votes"
    id: int | None = Field(default=None, primary_key=True)
    round_id: int = Field(index=True, foreign_key="rounds.id")
    seed_id: str
    candidate_index: int
    stage: str
    wave: int
    accept: bool
    text: str
    calls: int
    tokens: int


class EvalItemRow(SQLModel, table=True):
    __tablename__ = "eval_items"
    id: int | None = Field(default=None, primary_key=True)
    round_id: int = Field(index=True, foreign_key="rounds.id")
    model: str  # "champion" | "candidate"
    task: str
    item_id: str
    correct: bool
    response: str


class StepRun(SQLModel, table=True):
    """One attempt at one step of one round (a child process, or a reuse of sealed output)."""

    __tablename__ = "step_runs"
    id: int | None = Field(default=None, primary_key=True)
    round_id: int = Field(index=True, foreign_key="rounds.id")
    step: str
    attempt: int
    outcome: str = "running"  # running | ok | reused | failed | stopped
    exit_code: int | None = None
    pid: int | None = None
    error: str | None = None
    started_at: datetime = Field(default_factory=_now)
    finished_at: datetime | None = None


class DaemonEvent(SQLModel, table=True):
    """What the daemon did or refused: start, stop, skipped trigger, policy reload or rejection."""

    __tablename__ = "events"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=_now, index=True)
    kind: str = Field(index=True)
    message: str


class Store:
    """All reads and writes of the state DB."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(
            f"sqlite:///{path}", connect_args={"timeout": 30, "check_same_thread": False}
        )

        @event.listens_for(self.engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001 - DB-API objects
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        SQLModel.metadata.create_all(self.engine)
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """Workspaces made by an older version gain new columns (all nullable or defaulted)."""
        inspector = inspect(self.engine)
        with self.engine.begin() as conn:
            for table in SQLModel.metadata.sorted_tables:
                present = {c["name"] for c in inspector.get_columns(table.name)}
                for column in table.columns:
                    if column.name in present:
                        continue
                    kind = column.type.compile(self.engine.dialect)
                    default = getattr(column.default, "arg", None)
                    literal = f" DEFAULT {default!r}" if isinstance(default, str | int) else ""
                    conn.execute(
                        text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}{literal}')
                    )

    # rounds ---------------------------------------------------------------------------------
    def create_round(
        self,
        policy_hash: str,
        policy_json: str,
        parent_version: str | None,
        slot: str | None = None,
    ) -> int:
        """A new round, or the existing one for `slot` (a schedule's trigger time): idempotent."""
        with Session(self.engine) as s:
            if slot is not None:
                existing = s.exec(select(RoundRow).where(RoundRow.slot == slot)).first()
                if existing is not None:
                    assert existing.id is not None
                    return existing.id
            row = RoundRow(
                policy_hash=policy_hash,
                policy_json=policy_json,
                parent_version=parent_version,
                slot=slot,
            )
            s.add(row)
            s.commit()
            assert row.id is not None
            return row.id

    def unfinished_rounds(self) -> list[RoundRow]:
        with Session(self.engine) as s:
            query = select(RoundRow).where(RoundRow.state.not_in(RoundState.FINAL))  # type: ignore[attr-defined]
            return list(s.exec(query.order_by(RoundRow.id)))  # type: ignore[arg-type]

    def last_slot(self) -> str | None:
        with Session(self.engine) as s:
            query = select(RoundRow.slot).where(RoundRow.slot.is_not(None))  # type: ignore[union-attr]
            return s.exec(query.order_by(RoundRow.slot.desc())).first()  # type: ignore[union-attr]

    def commit_step(
        self,
        round_id: int,
        state: str,
        summary: dict[str, Any] | None = None,
        write: Callable[[Session], None] | None = None,
        **fields: Any,
    ) -> None:
        """Record a finished step: its rows (`write`) and the state change, in one transaction.

        `write` must replace the round's rows for the step (delete, then insert), so committing
        the same sealed step output twice leaves the same rows.
        """
        with Session(self.engine) as s:
            row = s.get(RoundRow, round_id)
            if row is None:
                raise KeyError(f"round {round_id} does not exist")
            if write is not None:
                write(s)
            if state in RoundState.ORDER:
                row.progress, row.error = state, None
            row.state = state
            for name, value in fields.items():
                setattr(row, name, value)
            if summary:
                merged = json.loads(row.summary_json)
                merged.update(summary)
                row.summary_json = json.dumps(merged)
            if row.state in RoundState.FINAL and row.finished_at is None:
                row.finished_at = _now()
            s.add(row)
            s.commit()

    def get_round(self, round_id: int) -> RoundRow | None:
        with Session(self.engine) as s:
            return s.get(RoundRow, round_id)

    def list_rounds(self) -> list[RoundRow]:
        with Session(self.engine) as s:
            return list(s.exec(select(RoundRow).order_by(RoundRow.id.desc())))  # type: ignore[union-attr]

    # seeds ----------------------------------------------------------------------------------
    def used_seed_ids(self) -> set[str]:
        with Session(self.engine) as s:
            return set(s.exec(select(SeedUse.seed_id)))

    @staticmethod
    def write_generated(
        round_id: int, seed_ids: list[str], candidates: list[Candidate]
    ) -> Callable[[Session], None]:
        """Mark the seeds used by this round and replace its candidates (for `commit_step`)."""

        def write(s: Session) -> None:
            for seed_id in seed_ids:
                s.merge(SeedUse(seed_id=seed_id, round_id=round_id))
            s.exec(delete(CandidateRow).where(CandidateRow.round_id == round_id))  # type: ignore[arg-type]
            for c in candidates:
                s.add(
                    CandidateRow(
                        round_id=round_id,
                        seed_id=c.seed_id,
                        index=c.index,
                        prompt=c.prompt,
                        text=c.text,
                        completion_tokens=c.completion_tokens,
                    )
                )

        return write

    def seeds_of_round(self, round_id: int) -> list[str]:
        with Session(self.engine) as s:
            return list(s.exec(select(SeedUse.seed_id).where(SeedUse.round_id == round_id)))

    # candidates and votes -------------------------------------------------------------------
    @staticmethod
    def write_verified(
        round_id: int, verdicts: list[Verdict], votes: list[Vote]
    ) -> Callable[[Session], None]:
        """Each candidate's verdict and every vote (replacing earlier ones), for `commit_step`."""
        by_key = {(v.seed_id, v.candidate_index): v for v in verdicts}

        def write(s: Session) -> None:
            rows = s.exec(select(CandidateRow).where(CandidateRow.round_id == round_id))
            for row in rows:
                verdict = by_key.get((row.seed_id, row.index))
                if verdict is None:
                    continue
                row.accepted = verdict.accepted
                row.rejected_at = verdict.rejected_at
                row.skipped = verdict.skipped
                s.add(row)
            s.exec(delete(VoteRow).where(VoteRow.round_id == round_id))  # type: ignore[arg-type]
            for v in votes:
                s.add(VoteRow(round_id=round_id, **v.__dict__))

        return write

    def candidates(self, round_id: int) -> list[CandidateRow]:
        with Session(self.engine) as s:
            query = select(CandidateRow).where(CandidateRow.round_id == round_id)
            return list(s.exec(query.order_by(CandidateRow.id)))  # type: ignore[arg-type]

    def votes(self, round_id: int) -> list[VoteRow]:
        with Session(self.engine) as s:
            query = select(VoteRow).where(VoteRow.round_id == round_id)
            return list(s.exec(query.order_by(VoteRow.id)))  # type: ignore[arg-type]

    # evaluation -----------------------------------------------------------------------------
    @staticmethod
    def write_evaluated(round_id: int, results: dict[str, EvalResult]) -> Callable[[Session], None]:
        """Per-item results of each evaluated model (replacing earlier ones), for `commit_step`."""

        def write(s: Session) -> None:
            s.exec(delete(EvalItemRow).where(EvalItemRow.round_id == round_id))  # type: ignore[arg-type]
            for model, result in results.items():
                responses = result.responses or ("",) * result.n
                for item_id, correct, response in zip(
                    result.item_ids, result.correct, responses, strict=True
                ):
                    s.add(
                        EvalItemRow(
                            round_id=round_id,
                            model=model,
                            task=result.task,
                            item_id=item_id,
                            correct=correct,
                            response=response,
                        )
                    )

        return write

    def eval_items(self, round_id: int, model: str) -> list[EvalItemRow]:
        with Session(self.engine) as s:
            query = select(EvalItemRow).where(
                EvalItemRow.round_id == round_id, EvalItemRow.model == model
            )
            return list(s.exec(query))

    # step runs and daemon events ------------------------------------------------------------
    def start_step_run(self, round_id: int, step: str, attempt: int, pid: int | None) -> int:
        with Session(self.engine) as s:
            row = StepRun(round_id=round_id, step=step, attempt=attempt, pid=pid)
            s.add(row)
            s.commit()
            assert row.id is not None
            return row.id

    def finish_step_run(
        self, run_id: int, outcome: str, exit_code: int | None = None, error: str | None = None
    ) -> None:
        with Session(self.engine) as s:
            row = s.get(StepRun, run_id)
            assert row is not None
            row.outcome, row.exit_code, row.error = outcome, exit_code, error
            row.finished_at = _now()
            s.add(row)
            s.commit()

    def step_runs(self, round_id: int | None = None) -> list[StepRun]:
        with Session(self.engine) as s:
            query = select(StepRun)
            if round_id is not None:
                query = query.where(StepRun.round_id == round_id)
            return list(s.exec(query.order_by(StepRun.id)))  # type: ignore[arg-type]

    def abandon_running_step_runs(self) -> None:
        """Step runs left `running` by a killed daemon are marked as such on restart."""
        with Session(self.engine) as s:
            for row in s.exec(select(StepRun).where(StepRun.outcome == "running")):
                row.outcome, row.error, row.finished_at = "killed", "daemon stopped", _now()
                s.add(row)
            s.commit()

    def add_event(self, kind: str, message: str) -> None:
        with Session(self.engine) as s:
            s.add(DaemonEvent(kind=kind, message=message))
            s.commit()

    def add_resume_event(self, row: RoundRow) -> None:
        """Note that an unfinished round is being driven again (by `round` or the daemon)."""
        self.add_event("resume", f"round {row.id} from {row.progress}")

    def events(self, kind: str | None = None, limit: int = 50) -> list[DaemonEvent]:
        with Session(self.engine) as s:
            query = select(DaemonEvent)
            if kind is not None:
                query = query.where(DaemonEvent.kind == kind)
            return list(s.exec(query.order_by(DaemonEvent.id.desc()).limit(limit)))  # type: ignore[union-attr]
