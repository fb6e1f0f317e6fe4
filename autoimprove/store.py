"""The state database: SQLModel tables and the only code that reads or writes them.

One SQLite file per workspace (WAL mode, busy timeout, short transactions). It records every
round with its state and figures, which seeds each round used (so seeds are never reused), every
candidate, every judge vote with its text, and per-item evaluation results. MLflow holds the
models; this holds the bookkeeping that decides what happens next.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlmodel import Field, Session, SQLModel, create_engine, select

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


class RoundRow(SQLModel, table=True):
    __tablename__ = "rounds"
    id: int | None = Field(default=None, primary_key=True)
    state: str = Field(default=RoundState.PENDING, index=True)
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

    # rounds ---------------------------------------------------------------------------------
    def create_round(self, policy_hash: str, policy_json: str, parent_version: str | None) -> int:
        with Session(self.engine) as s:
            row = RoundRow(
                policy_hash=policy_hash, policy_json=policy_json, parent_version=parent_version
            )
            s.add(row)
            s.commit()
            assert row.id is not None
            return row.id

    def get_round(self, round_id: int) -> RoundRow | None:
        with Session(self.engine) as s:
            return s.get(RoundRow, round_id)

    def list_rounds(self) -> list[RoundRow]:
        with Session(self.engine) as s:
            return list(s.exec(select(RoundRow).order_by(RoundRow.id.desc())))  # type: ignore[union-attr]

    def update_round(
        self, round_id: int, summary: dict[str, Any] | None = None, **fields: Any
    ) -> None:
        """Set fields and merge `summary` keys into the round's summary, in one transaction."""
        with Session(self.engine) as s:
            row = s.get(RoundRow, round_id)
            if row is None:
                raise KeyError(f"round {round_id} does not exist")
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

    # seeds ----------------------------------------------------------------------------------
    def used_seed_ids(self) -> set[str]:
        with Session(self.engine) as s:
            return set(s.exec(select(SeedUse.seed_id)))

    def mark_seeds_used(self, round_id: int, seed_ids: list[str]) -> None:
        with Session(self.engine) as s:
            for seed_id in seed_ids:
                s.merge(SeedUse(seed_id=seed_id, round_id=round_id))
            s.commit()

    def forget_seed_usage(self) -> None:
        """Used by the `recycle` policy when the pool is exhausted."""
        with Session(self.engine) as s:
            for row in s.exec(select(SeedUse)):
                s.delete(row)
            s.commit()

    def seeds_of_round(self, round_id: int) -> list[str]:
        with Session(self.engine) as s:
            return list(s.exec(select(SeedUse.seed_id).where(SeedUse.round_id == round_id)))

    # candidates and votes -------------------------------------------------------------------
    def save_candidates(self, round_id: int, candidates: list[Candidate]) -> None:
        with Session(self.engine) as s:
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
            s.commit()

    def save_verification(self, round_id: int, verdicts: list[Verdict], votes: list[Vote]) -> None:
        """Store every vote and each candidate's verdict together (one transaction)."""
        by_key = {(v.seed_id, v.candidate_index): v for v in verdicts}
        with Session(self.engine) as s:
            rows = s.exec(select(CandidateRow).where(CandidateRow.round_id == round_id))
            for row in rows:
                verdict = by_key.get((row.seed_id, row.index))
                if verdict is None:
                    continue
                row.accepted = verdict.accepted
                row.rejected_at = verdict.rejected_at
                row.skipped = verdict.skipped
                s.add(row)
            for v in votes:
                s.add(VoteRow(round_id=round_id, **v.__dict__))
            s.commit()

    def candidates(self, round_id: int) -> list[CandidateRow]:
        with Session(self.engine) as s:
            query = select(CandidateRow).where(CandidateRow.round_id == round_id)
            return list(s.exec(query.order_by(CandidateRow.id)))  # type: ignore[arg-type]

    def votes(self, round_id: int) -> list[VoteRow]:
        with Session(self.engine) as s:
            query = select(VoteRow).where(VoteRow.round_id == round_id)
            return list(s.exec(query.order_by(VoteRow.id)))  # type: ignore[arg-type]

    # evaluation -----------------------------------------------------------------------------
    def save_eval(self, round_id: int, model: str, result: EvalResult) -> None:
        with Session(self.engine) as s:
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
            s.commit()

    def eval_items(self, round_id: int, model: str) -> list[EvalItemRow]:
        with Session(self.engine) as s:
            query = select(EvalItemRow).where(
                EvalItemRow.round_id == round_id, EvalItemRow.model == model
            )
            return list(s.exec(query))
