"""Consumers of the registry: MLflow pyfunc by alias, load_champion, export; and the operator's
promote / rollback / rounds commands. One real round on the tiny model feeds them all."""

from __future__ import annotations

import json

import mlflow
import pandas as pd
import pytest
from daemon_helpers import run, write_policy
from transformers import AutoModelForCausalLM

from autoimprove import load_champion
from autoimprove.backends.base import user_turn
from autoimprove.backends.hf import HFBackend
from autoimprove.champion import Registry
from autoimprove.consumer import UnsafeWeightsError, check_safetensors_only
from autoimprove.types import ModelRef, Sampling

PROMPTS = ["Sam has 4 pens and buys 2 more. How many pens now?", "What is 7 plus 1?"]


@pytest.fixture(scope="module")
def promoted(answering_model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("consumer")
    policy = write_policy(folder, answering_model_dir, name="consumed")
    ws = folder / "ws"
    result = run("run", "--policy", str(policy), "--workspace", str(ws), "--rounds", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    uri = f"sqlite:///{ws}/mlflow/mlflow.db"
    assert Registry(uri, "consumed").champion().version == "1"
    return ws, uri, answering_model_dir


def _greedy(base, adapter, prompts=PROMPTS, tokens=12):
    backend = HFBackend(ModelRef(str(base), str(adapter) if adapter else None), "float32")
    out = backend.chat([user_turn(p) for p in prompts], Sampling(n=1, max_new_tokens=tokens))
    return [c[0].text for c in out]


def test_pyfunc_loads_the_champion_by_alias_and_generates(promoted):
    ws, uri, base = promoted
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        model = mlflow.pyfunc.load_model("models:/consumed@champion")
        texts = model.predict(PROMPTS, params={"max_new_tokens": 12})
        frame = model.predict(pd.DataFrame({"prompt": PROMPTS}), params={"max_new_tokens": 12})
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    expected = _greedy(base, ws / "rounds/00001/train/adapter")
    assert texts == frame == expected
    assert all(isinstance(t, str) and t for t in texts)
    short = model.predict(PROMPTS, params={"max_new_tokens": 2})
    assert short == _greedy(base, ws / "rounds/00001/train/adapter", tokens=2) != expected


def test_versions_carry_the_adapter_and_base_reference_not_base_weights(promoted):
    ws, uri, base = promoted
    registry = Registry(uri, "consumed")
    model_dir = registry.download_model("1", ws.parent / "dl")
    files = {p.name for p in model_dir.rglob("*") if p.is_file()}
    assert "adapter_model.safetensors" in files and "model.safetensors" not in files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl"))]
    mlmodel = (model_dir / "MLmodel").read_text()
    assert f"base_model: {base}" in mlmodel


def test_load_champion_and_merged_export_generate_like_base_plus_adapter(promoted, tmp_path):
    ws, uri, base = promoted
    expected = _greedy(base, ws / "rounds/00001/train/adapter")
    model, tokenizer = load_champion("consumed", tracking_uri=uri, dtype="float32")
    assert not hasattr(model, "peft_config"), "the adapter is merged in"

    merged, adapter = tmp_path / "merged", tmp_path / "adapter"
    result = run(
        "export",
        "champion",
        "--workspace",
        str(ws),
        "--merged",
        str(merged),
        "--adapter",
        str(adapter),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["version"] == "1"
    assert (adapter / "adapter_model.safetensors").is_file()
    assert (merged / "model.safetensors").is_file()
    assert AutoModelForCausalLM.from_pretrained(merged).config.vocab_size == model.config.vocab_size
    assert _greedy(merged, None) == expected
    assert _greedy(base, adapter) == expected


def test_pickle_weights_are_refused(promoted, tmp_path):
    ws, _, _ = promoted
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    for f in (ws / "rounds/00001/train/adapter").iterdir():
        (adapter / f.name).write_bytes(f.read_bytes())
    check_safetensors_only(adapter)
    (adapter / "adapter_model.bin").write_bytes(b"pickle")
    with pytest.raises(UnsafeWeightsError, match="adapter_model.bin"):
        check_safetensors_only(adapter)


def test_operator_rollback_and_promote_are_recorded(promoted):
    ws, uri, _ = promoted
    registry = Registry(uri, "consumed")
    rounds = json.loads(run("rounds", "--workspace", str(ws), "--json").stdout)
    assert [(r["id"], r["state"], r["version"]) for r in rounds] == [(1, "PROMOTED", "1")]
    assert rounds[0]["candidate_pass_at_1"] is not None and rounds[0]["seconds"] > 0

    back = run("rollback", "--workspace", str(ws), "--reason", "bad outputs", "--json")
    assert back.returncode == 0, back.stderr
    assert registry.champion().version is None  # version 1's parent is the base model
    again = run("rollback", "--workspace", str(ws))
    assert again.returncode == 2 and "already the base model" in again.stderr

    unknown = run("promote", "9", "--workspace", str(ws))
    assert unknown.returncode == 2 and "no version 9" in unknown.stderr
    done = run("promote", "1", "--workspace", str(ws), "--reason", "fixed", "--json")
    assert done.returncode == 0, done.stderr
    assert registry.champion().version == "1"
    events = json.loads(run("status", "--workspace", str(ws), "--json").stdout)["daemon"]["events"]
    kinds = [e["kind"] for e in events]
    assert kinds[:2] == ["manual_promote", "manual_rollback"]
    assert "bad outputs" in events[1]["message"] and " by " in events[1]["message"]

    # Compare-and-set: a stale expectation moves nothing.
    assert not registry.move_alias(None, expected="7")
    assert registry.champion().version == "1"


@pytest.mark.slow
def test_pyfunc_on_the_embedded_model_by_alias(tmp_path):
    """The embedded base + a LoRA adapter, registered and promoted, loads by alias and generates
    what the same base + adapter generate greedily in-process."""
    from peft import LoraConfig, get_peft_model

    from autoimprove.consumer import save_pyfunc
    from autoimprove.embedded import embedded_model_dir

    base_dir = embedded_model_dir()
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype="float32")
    lora = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    adapter = tmp_path / "adapter"
    get_peft_model(base, lora).save_pretrained(adapter)  # random B != 0: the adapter changes output

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    registry = Registry(uri, "embedded-consumed", artifact_root=tmp_path / "artifacts")
    run_id = registry.start_round_run(1, {})
    registry.log_artifacts(
        run_id, save_pyfunc(adapter, tmp_path / "model", "embedded", "float32", None), "model"
    )
    version = registry.register(run_id, 1, tags={})
    assert registry.promote(version, expected=None)

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        model = mlflow.pyfunc.load_model("models:/embedded-consumed@champion")
        texts = model.predict(PROMPTS[:1], params={"max_new_tokens": 8})
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    assert texts == _greedy(base_dir, adapter, PROMPTS[:1], tokens=8)
    assert texts != _greedy(base_dir, None, PROMPTS[:1], tokens=8)
