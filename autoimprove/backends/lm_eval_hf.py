"""lm-eval's `hf` model with the backend's decode loop underneath: finished rows leave the batch.

lm-eval's `HFLM.generate_until` batches requests, calls `model.generate`, then cuts each text at
its task's `until` strings. `generate` keeps every row of a batch computing until the longest
one ends (or all hit a stop string), so a short answer pays for the longest one in its batch.
`PrunedHFLM` keeps all of lm-eval's request handling (batching, chat templates, `until`
post-processing, filters, metrics) and replaces only that one call with `HFBackend.decode`,
where a row stops at end of turn or at its first `until` string and leaves the batch.

Greedy outputs are the same as `hf`'s (tested). Sampled outputs (maj@k) come from the same
distribution (temperature, top-k 50, top-p, as `generate` applies them) with our own seeded
draws. A model whose generation config asks for more than that (a repetition penalty, n-gram
bans, ...), or that sits on a GPU, goes through lm-eval's own `generate` unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

from autoimprove.backends.hf import HFBackend
from autoimprove.types import ModelRef, Sampling

# Generation-config fields our decode loop does not implement, with their no-op values.
_UNSUPPORTED = {
    "repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "encoder_repetition_penalty": 1.0,
    "bad_words_ids": None,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
    "min_new_tokens": None,
    "min_length": 0,
    "num_beams": 1,
    "typical_p": 1.0,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
    "min_p": None,
}
_HANDLED_KWARGS = {"do_sample", "temperature", "top_p", "top_k", "attention_mask"}


@register_model("autoimprove-hf")
class PrunedHFLM(HFLM):
    """`HFLM` over an in-memory (model, tokenizer) whose generation prunes finished rows."""

    def __init__(self, pretrained: Any, tokenizer: Any, batch_size: int = 16, seed: int = 0):
        super().__init__(pretrained=pretrained, tokenizer=tokenizer, batch_size=batch_size)
        self.decoder = HFBackend(ModelRef("<in memory>"), loaded=(pretrained, tokenizer))
        self.seed = seed
        self.batches = 0
        """Generation batches run so far: each draws its own samples."""
        self.pruned_batches = 0
        """Of those, the ones that went through the pruning decode loop."""

    def _sampling(self, kwargs: dict, max_new_tokens: int) -> Sampling | None:
        """The decode loop's settings for `generate(**kwargs)`, or None where it would differ."""
        config = self.model.generation_config
        if set(kwargs) - _HANDLED_KWARGS:
            return None
        if any(getattr(config, name, off) not in (off, None) for name, off in _UNSUPPORTED.items()):
            return None
        temperature = kwargs.get("temperature", config.temperature)
        if not kwargs.get("do_sample") or not temperature:
            return Sampling(max_new_tokens=max_new_tokens, seed=self.seed)
        if kwargs.get("top_k", config.top_k) not in (50, None):
            return None
        return Sampling(
            temperature=float(temperature),
            top_p=float(kwargs.get("top_p", config.top_p) or 1.0),
            max_new_tokens=max_new_tokens,
            seed=self.seed,
        )

    def _model_generate(
        self, context: torch.Tensor, max_length: int, stop: list[str], **kwargs: Any
    ) -> torch.Tensor:
        self.batches += 1
        sampling = self._sampling(kwargs, max_length - context.shape[1])
        if sampling is None:
            return super()._model_generate(context, max_length, stop, **kwargs)
        self.pruned_batches += 1
        attention = kwargs.get("attention_mask")
        if attention is None:
            attention = torch.ones_like(context)
        rows = self.decoder.decode(
            context, attention, sampling, seed=self.batches, stop_strings=stop
        )
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        generated = torch.tensor(
            [r + [pad] * (width - len(r)) for r in rows], dtype=context.dtype, device=context.device
        )
        return torch.cat([context, generated], dim=1)
