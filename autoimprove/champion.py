"""The MLflow model registry: resolve the champion, log a round, register and promote versions.

Every registry version is one LoRA adapter over one fixed base model, packaged as an MLflow pyfunc
model (`consumer.save_pyfunc`: code + config + the adapter's safetensors, no base weights), logged
as the `model` artifact of the round's MLflow run and registered with
`create_model_version(source="runs:/<run>/model")`, so `mlflow.pyfunc.load_model(
"models:/<name>@champion")` works for any consumer. Aliases: `champion` (what consumers load)
moves only on promotion; `challenger` marks the newest trained candidate. Registration is
idempotent: a version tagged with the round id is found instead of created twice. Only the MLflow
client API is used, with an explicit tracking URI, so nothing is configured globally.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass(frozen=True)
class Champion:
    """Where the champion alias points: a version with its adapter, or the base model."""

    version: str | None


def _flatten(prefix: str, value: object, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = str(value)[:6000]


class Registry:
    """One registered model in one MLflow tracking store."""

    def __init__(self, tracking_uri: str, model_name: str, artifact_root: Path | None = None):
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        # Against a tracking server MLflow writes "View run ..." links to stdout, which would
        # corrupt `--json` output; the run is findable from the round (tag autoimprove_round).
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self.model_name = model_name
        self.artifact_root = artifact_root
        self.tracking_uri = tracking_uri

    # champion -------------------------------------------------------------------------------
    def alias(self, alias: str) -> str | None:
        """The version an alias points at, or None when it is not set."""
        try:
            mv = self.client.get_model_version_by_alias(self.model_name, alias)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise
        return str(mv.version)

    def champion(self) -> Champion:
        """The version the `champion` alias points at; version None = the base model."""
        return Champion(version=self.alias(CHAMPION))

    def download_model(self, version: str, dest: Path) -> Path:
        """A version's pyfunc model folder, downloaded (once) to `dest/v<version>/model`."""
        target = dest / f"v{version}"
        if (target / "model" / "MLmodel").is_file():
            return target / "model"
        mv = self.client.get_model_version(self.model_name, version)
        assert mv.run_id, f"version {version} of {self.model_name} has no run to download from"
        staging = dest / f".v{version}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        self.client.download_artifacts(mv.run_id, "model", str(staging))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)  # a half-finished download is never mistaken for a model
        return target / "model"

    # runs -----------------------------------------------------------------------------------
    def _experiment_id(self) -> str:
        name = f"autoimprove/{self.model_name}"
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        location = self.artifact_root.resolve().as_uri() if self.artifact_root else None
        return self.client.create_experiment(name, artifact_location=location)

    def find_round_run(self, round_id: int) -> str | None:
        runs = self.client.search_runs(
            [self._experiment_id()], filter_string=f"tags.autoimprove_round = '{round_id}'"
        )
        return runs[0].info.run_id if runs else None

    def start_round_run(self, round_id: int, policy: dict) -> str:
        """The MLflow run of a round (found again if it already exists)."""
        existing = self.find_round_run(round_id)
        if existing:
            return existing
        run = self.client.create_run(
            self._experiment_id(),
            run_name=f"round-{round_id}",
            tags={"autoimprove_round": str(round_id)},
        )
        params: dict[str, str] = {}
        _flatten("", policy, params)
        self.client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()])
        return run.info.run_id

    def log_metrics(self, run_id: str, metrics: dict[str, float]) -> None:
        import time

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, 0) for k, v in metrics.items() if v is not None]
        for start in range(0, len(batch), 900):
            self.client.log_batch(run_id, metrics=batch[start : start + 900])

    def log_artifacts(self, run_id: str, local_dir: Path, artifact_path: str) -> None:
        self.client.log_artifacts(run_id, str(local_dir), artifact_path)

    def finish_run(self, run_id: str) -> None:
        self.client.set_terminated(run_id, "FINISHED")

    # versions -------------------------------------------------------------------------------
    def _ensure_model(self) -> None:
        try:
            self.client.get_registered_model(self.model_name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            self.client.create_registered_model(
                self.model_name,
                description="LoRA adapters produced by autoimprove (Self-Verified Distillation).",
            )

    def version_of_round(self, round_id: int) -> str | None:
        self._ensure_model()
        found = self.client.search_model_versions(
            f"name = '{self.model_name}' and tag.round = '{round_id}'"
        )
        return str(found[0].version) if found else None

    def register(self, run_id: str, round_id: int, tags: dict[str, str]) -> str:
        """Register the run's adapter as a version (idempotent per round); mark it challenger."""
        version = self.version_of_round(round_id)
        if version is None:
            mv = self.client.create_model_version(
                self.model_name,
                source=f"runs:/{run_id}/model",
                run_id=run_id,
                tags={"round": str(round_id), **tags},
            )
            version = str(mv.version)
        self.client.set_registered_model_alias(self.model_name, CHALLENGER, version)
        return version

    def tag_version(self, version: str, key: str, value: str) -> None:
        self.client.set_model_version_tag(self.model_name, version, key, value)

    def promote(self, version: str, expected: str | None) -> bool:
        """Move `champion` to `version` only if it still points at `expected` (None = unset).

        Returns False, moving nothing, when someone else moved the alias since the round began.
        An alias that already points at `version` is this promotion done before a crash: True.
        """
        current = self.champion().version
        if current == version:
            return True
        if current != expected:
            return False
        self.client.set_registered_model_alias(self.model_name, CHAMPION, version)
        return True

    def move_alias(self, version: str | None, expected: str | None) -> bool:
        """Point `champion` at `version` (None = the base model) if it is still `expected`.

        MLflow has no atomic compare-and-set: this re-reads the alias just before writing, which
        closes the window to milliseconds; the daemon is the only automatic writer.
        """
        if self.champion().version != expected:
            return False
        if version is None:
            self.client.delete_registered_model_alias(self.model_name, CHAMPION)
            return True
        self.client.set_registered_model_alias(self.model_name, CHAMPION, version)
        return True
