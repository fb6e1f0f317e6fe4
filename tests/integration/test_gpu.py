"""The transformers backend on a CUDA GPU. Runs where a GPU is present (the device check in
README.md ran it with test_backend_train.py, whose tests then run on the GPU too); on a
CPU-only machine there is nothing here to exercise."""

import pytest
import torch

from autoimprove.backends.base import user_turn
from autoimprove.backends.hf import HFBackend, load_model
from autoimprove.types import ModelRef, Sampling

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_models_load_onto_the_gpu_in_bf16(tiny_model_dir):
    model, _ = load_model(ModelRef(str(tiny_model_dir)))
    assert model.device.type == "cuda"
    assert model.dtype == torch.bfloat16


def test_bf16_sampling_on_the_gpu_stays_there_and_is_reproducible(tiny_model_dir):
    backend = HFBackend(ModelRef(str(tiny_model_dir)), batch_size=4)
    sampling = Sampling(n=3, temperature=0.8, top_p=0.95, max_new_tokens=24, seed=7)
    prompts = [user_turn(p) for p in ("What is 3 plus 4?", "Count to five.", "Hi")]
    first = backend.chat(prompts, sampling)
    again = backend.chat(prompts, sampling)
    assert [len(per) for per in first] == [3, 3, 3]
    assert all(c.completion_tokens > 0 for per in first for c in per)
    assert [[c.text for c in per] for per in first] == [[c.text for c in per] for per in again]
    assert len({c.text for per in first for c in per}) > 1, "samples must differ"
    assert torch.cuda.memory_allocated() > 0
