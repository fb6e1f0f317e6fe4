"""The backend's sampler draws from the distribution transformers' warpers define."""

import pytest
import torch
from transformers import (
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from autoimprove.backends.hf import TOP_K, sample_tokens, sampling_distribution
from autoimprove.types import Sampling


def _transformers_probs(logits: torch.Tensor, sampling: Sampling) -> torch.Tensor:
    warpers = LogitsProcessorList(
        [TemperatureLogitsWarper(sampling.temperature), TopKLogitsWarper(TOP_K)]
    )
    if sampling.top_p < 1.0:
        warpers.append(TopPLogitsWarper(sampling.top_p))
    return torch.softmax(warpers(None, logits.clone()), dim=-1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("temperature", "top_p"), [(0.8, 0.95), (1.0, 1.0), (0.3, 0.5), (2.0, 0.9)]
)
def test_distribution_equals_transformers_warpers(temperature, top_p):
    generator = torch.Generator().manual_seed(0)
    # Peaked and flat rows: top-p cuts a few tokens from some and many from others.
    logits = torch.randn(6, 3000, generator=generator) * torch.tensor(
        [[0.5], [1], [2], [4], [8], [16]]
    )
    sampling = Sampling(temperature=temperature, top_p=top_p)
    index, probs = sampling_distribution(logits, sampling)
    ours = torch.zeros_like(logits).scatter(-1, index, probs)
    ours = ours / ours.sum(-1, keepdim=True)
    theirs = _transformers_probs(logits, sampling)
    assert torch.allclose(ours, theirs, atol=1e-6)
    kept = (theirs > 0).sum(-1)
    assert kept.min() >= 1 and kept.max() <= TOP_K
    if top_p < 1.0:
        assert kept.min() < TOP_K, "top-p must have cut some row below top-k"


def test_draws_follow_the_distribution():
    """Frequencies of many draws match the probabilities (a chi-square-sized tolerance)."""
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, -5.0]])
    sampling = Sampling(temperature=1.0, top_p=0.9)
    _, probs = sampling_distribution(logits, sampling)
    expected = _transformers_probs(logits, sampling)[0]
    generator = torch.Generator().manual_seed(1)
    draws = 20_000
    tokens = sample_tokens(
        logits.expand(draws, -1), sampling, generator, draws, torch.arange(draws)
    )
    counts = torch.bincount(tokens, minlength=6).double() / draws
    assert counts[5] == 0 and counts[4] == 0, "tokens top-p drops are never drawn"
    assert torch.allclose(counts, expected.double(), atol=0.015)
