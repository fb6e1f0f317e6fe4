"""What every step is handed: the round, its policy, the workspace, the store and the champion.

Steps read earlier steps' artifacts from `step_dir(...)` and write their own there; they never
reach for globals. The workspace layout lives here so every module agrees on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from autoimprove.policy import Policy
from autoimprove.store import Store
from autoimprove.types import ModelRef


@dataclass(frozen=True)
class Workspace:
    """Paths inside a workspace folder."""

    root: Path

    @property
    def state_db(self) -> Path:
        return self.root / "state.db"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow" / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlflow" / "artifacts"

    def tracking_uri(self, override: str | None) -> str:
        return override or f"sqlite:///{self.mlflow_db}"

    def round_dir(self, round_id: int) -> Path:
        return self.root / "rounds" / f"{round_id:05d}"

    def step_dir(self, round_id: int, step: str) -> Path:
        return self.round_dir(round_id) / step

    def work_dir(self, round_id: int, step: str) -> Path:
        """Scratch a step keeps between attempts: sealed shards, training checkpoints."""
        return self.round_dir(round_id) / "work" / step

    def log_dir(self, round_id: int) -> Path:
        return self.round_dir(round_id) / "logs"

    @property
    def eval_cache(self) -> Path:
        """Champion-side evaluation results, reused while champion, task and settings hold."""
        return self.root / "cache" / "evals"

    @property
    def lock_file(self) -> Path:
        return self.root / "daemon.lock"

    @property
    def pause_file(self) -> Path:
        """Present while an operator has paused the daemon (`autoimprove pause`)."""
        return self.root / "PAUSED"


Progress = Callable[[str, int, int], None]
"""progress(label, done, total): steps report long loops through this (rich bars or log lines)."""


def _no_progress(label: str, done: int, total: int) -> None:
    return None


@dataclass
class RoundContext:
    round_id: int
    policy: Policy
    workspace: Workspace
    store: Store
    base_dir: Path
    champion: ModelRef
    progress: Progress = field(default=_no_progress)

    def step_dir(self, step: str) -> Path:
        return self.workspace.step_dir(self.round_id, step)

    def shard_dir(self, step: str, shard: int | str) -> Path:
        name = f"{shard:04d}" if isinstance(shard, int) else shard
        return self.workspace.work_dir(self.round_id, step) / name
