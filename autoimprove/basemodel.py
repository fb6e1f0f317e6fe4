"""Which base model a policy names, and where its weights and champion adapters live."""

from __future__ import annotations

from pathlib import Path

from autoimprove.context import Workspace
from autoimprove.policy import EMBEDDED, Policy
from autoimprove.types import ModelRef


def base_name(policy: Policy) -> str:
    """The base model's name recorded on registry versions (no weights are touched)."""
    if policy.model.base == EMBEDDED:
        from autoimprove.embedded import EMBEDDED_MODEL_ID

        return EMBEDDED_MODEL_ID
    return policy.model.base


def resolve_base(policy: Policy) -> Path:
    """The base model folder (the embedded model is converted on first use, minutes, once)."""
    if policy.model.base == EMBEDDED:
        from autoimprove.embedded import embedded_model_dir

        return embedded_model_dir()
    path = Path(policy.model.base)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"model.base {path} is not a transformers model folder (no config.json)"
        )
    return path


def versions_cache(workspace: Workspace) -> Path:
    """Where the controller downloads registry versions (their pyfunc model folders)."""
    return workspace.root / "cache" / "versions"


def champion_adapter_dir(workspace: Workspace, version: str) -> Path:
    """A downloaded version's adapter, as the steps read it."""
    return versions_cache(workspace) / f"v{version}" / "model" / "artifacts" / "adapter"


def champion_ref(workspace: Workspace, base_dir: Path, version: str | None) -> ModelRef:
    """A round's champion as the steps load it: the base model alone (no version yet), or the
    base with the version's downloaded adapter."""
    adapter = champion_adapter_dir(workspace, version) if version else None
    return ModelRef(str(base_dir), str(adapter) if adapter else None, version)
