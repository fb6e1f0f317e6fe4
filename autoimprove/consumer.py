"""For people who consume the registry: load a version, or export it for a serving stack.

    import mlflow
    mlflow.pyfunc.load_model("models:/<name>@champion").predict(["What is 2 + 3?"])

    from autoimprove import load_champion
    model, tokenizer = load_champion("<name>", tracking_uri="sqlite:///ws/mlflow/mlflow.db")

Registered versions carry the adapter (MBs), never base weights (GBs); the base model is named
in the version's pyfunc config (`embedded` or a folder). Only safetensors weights are loaded:
an adapter folder holding pickle-format weights (`.bin`, `.pt`, `.pth`, `.pkl`) is refused.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
PYFUNC_FILE = Path(__file__).with_name("pyfunc_model.py")


class UnsafeWeightsError(ValueError):
    """An adapter folder holds pickle-format weights."""


def check_safetensors_only(adapter_dir: Path) -> None:
    adapter_dir = Path(adapter_dir)
    unsafe = sorted(p.name for p in adapter_dir.rglob("*") if p.suffix in PICKLE_SUFFIXES)
    if unsafe:
        raise UnsafeWeightsError(
            f"{adapter_dir} holds pickle-format weights {unsafe}; only safetensors are loaded"
        )
    if not (adapter_dir / "adapter_model.safetensors").is_file():
        raise UnsafeWeightsError(f"{adapter_dir} has no adapter_model.safetensors")


def base_dir_of(base_model: str) -> Path:
    if base_model == "embedded":
        from autoimprove.embedded import embedded_model_dir

        return embedded_model_dir()
    path = Path(base_model)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"base model {base_model} is not a local transformers folder")
    return path


def open_backend(base_model: str, adapter_dir: str | Path, dtype: str = "auto"):  # noqa: ANN201
    """A generation backend on base + adapter (merged), after the safetensors check."""
    from autoimprove.backends.hf import HFBackend
    from autoimprove.types import ModelRef

    check_safetensors_only(Path(adapter_dir))
    return HFBackend(ModelRef(str(base_dir_of(base_model)), str(adapter_dir)), dtype)


def prompts_of(model_input: Any) -> list[str]:
    """Prompts from a list of strings, one string, or a DataFrame with a `prompt` column."""
    if isinstance(model_input, str):
        return [model_input]
    columns = getattr(model_input, "columns", None)
    if columns is not None:
        if "prompt" in columns:
            return [str(p) for p in model_input["prompt"]]
        if len(columns) == 1:  # MLflow's schema enforcement turns a list into one column
            return [str(p) for p in model_input[columns[0]]]
        raise ValueError(f"the DataFrame needs a 'prompt' column (has {list(columns)})")
    if isinstance(model_input, Iterable):
        return [str(p) for p in model_input]
    raise TypeError(f"cannot read prompts from {type(model_input).__name__}")


def save_pyfunc(
    adapter_dir: Path, out: Path, base_model: str, dtype: str, system_prompt: str | None
) -> Path:
    """Write the MLflow model folder of a version: code, config and the adapter."""
    import mlflow.pyfunc
    from mlflow.models import infer_signature

    check_safetensors_only(adapter_dir)
    # Declared params are what lets `predict(..., params={"max_new_tokens": N})` through.
    signature = infer_signature(["a prompt"], ["a completion"], params={"max_new_tokens": 256})
    with warnings.catch_warnings():
        # The signature is explicit; MLflow's advice to add an input example (which it would
        # check by loading the model and predicting) is noise in a round's log. Its advice to add
        # type hints to `predict` is raised under its own warning filter and still shows.
        warnings.filterwarnings("ignore", message=".*input example was not provided")
        mlflow.pyfunc.save_model(
            path=str(out),
            python_model=str(PYFUNC_FILE),
            signature=signature,
            artifacts={"adapter": str(adapter_dir)},
            model_config={
                "base_model": base_model,
                "dtype": dtype,
                "system_prompt": system_prompt,
                "max_new_tokens": 256,
            },
            pip_requirements=[
                "autoimprove",
                "mlflow==3.17.2",
                "transformers==5.23.0",
                "peft==0.21.2",
            ],
        )
    return out


def _registry(name: str, tracking_uri: str):  # noqa: ANN202
    from autoimprove.champion import Registry

    return Registry(tracking_uri, name)


def resolve_version(name: str, tracking_uri: str, version: str) -> str:
    """`champion`, `challenger` or a version number -> the version number."""
    registry = _registry(name, tracking_uri)
    if version in ("champion", "challenger"):
        found = registry.alias(version)
        if found is None:
            raise LookupError(f"{name} has no {version} alias yet (no version was promoted)")
        return found
    return version


def download_version(name: str, tracking_uri: str, version: str, dest: Path) -> tuple[Path, dict]:
    """A version's adapter folder and its pyfunc config."""
    import yaml

    registry = _registry(name, tracking_uri)
    number = resolve_version(name, tracking_uri, version)
    model_dir = registry.download_model(number, dest)
    config = yaml.safe_load((model_dir / "MLmodel").read_text())
    flavor = config["flavors"]["python_function"]
    model_config = flavor.get("config") or flavor.get("model_config") or {}
    adapter = model_dir / "artifacts" / "adapter"
    check_safetensors_only(adapter)
    return adapter, model_config


def load_champion(name: str, tracking_uri: str, version: str = "champion", dtype: str = "auto"):  # noqa: ANN201
    """(model, tokenizer) of a registered version with its adapter merged; default: champion."""
    import tempfile

    from autoimprove.backends.hf import load_model
    from autoimprove.types import ModelRef

    scratch = Path(tempfile.mkdtemp(prefix="autoimprove-load-"))
    adapter, config = download_version(name, tracking_uri, version, scratch)
    ref = ModelRef(str(base_dir_of(config["base_model"])), str(adapter))
    return load_model(ref, dtype)


def export(
    name: str, tracking_uri: str, version: str, merged: Path | None, adapter: Path | None
) -> dict:
    """Write a version as merged safetensors (`merged`) and/or as its adapter (`adapter`)."""
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix="autoimprove-export-"))
    try:
        adapter_dir, config = download_version(name, tracking_uri, version, scratch)
        out: dict = {"version": resolve_version(name, tracking_uri, version), **config}
        if adapter is not None:
            shutil.copytree(adapter_dir, adapter, dirs_exist_ok=True)
            out["adapter"] = str(adapter)
        if merged is not None:
            from autoimprove.backends.hf import load_model
            from autoimprove.types import ModelRef

            ref = ModelRef(str(base_dir_of(config["base_model"])), str(adapter_dir))
            model, tokenizer = load_model(ref, config.get("dtype", "auto"))
            model.save_pretrained(str(merged), safe_serialization=True)
            tokenizer.save_pretrained(str(merged))
            out["merged"] = str(merged)
        return out
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
