"""Transformers generation backend: the CPU default, also usable on one GPU.

Loads the base model and, if the model reference has one, the champion's LoRA adapter, merged
into the weights (an unmerged adapter made evaluation 1.9x slower here). Generation is always
batched: conversations are expanded to `n` rows each, sorted by prompt length so a batch pads
little, left-padded, and generated `batch_size` rows at a time (batch 16 gave 10.8x the tokens/s
of batch 1 on 2 CPU cores).
"""

from __future__ import annotations

import gc
import re
from collections.abc import Callable, Sequence

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
)

from autoimprove.backends.base import Message
from autoimprove.types import Completion, ModelRef, Sampling

# "the answer is 42." -- a complete number followed by something that is not part of it.
_STATED_ANSWER = re.compile(r"answer is[:\s]*\$?\s*-?\d[\d,]*(?:\.\d+)?(?:[^\d,.]|[.,]\D)", re.I)


class AnswerStop(StoppingCriteria):
    """Stop each sequence once it has stated "the answer is N": the rest is padding cost.

    Decodes only the tail of each row, so the check stays cheap next to a forward pass.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, prompt_width: int, tail: int = 16):
        self.tokenizer = tokenizer
        self.prompt_width = prompt_width
        self.tail = tail

    def __call__(
        self, input_ids: torch.LongTensor, scores: object, **kwargs: object
    ) -> torch.BoolTensor:
        generated = input_ids[:, self.prompt_width :]
        start = max(0, generated.shape[1] - self.tail)
        texts = self.tokenizer.batch_decode(generated[:, start:], skip_special_tokens=True)
        done = [bool(_STATED_ANSWER.search(t)) for t in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)  # type: ignore[return-value]


_DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32}


def _cpu_has_native_bf16() -> bool:
    try:
        flags = open("/proc/cpuinfo").read()  # noqa: SIM115 - one small read
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(name: str) -> torch.dtype:
    """The torch dtype for a policy's `model.dtype` (`auto` picks what is fast here)."""
    if name != "auto":
        return _DTYPES[name]
    if torch.cuda.is_available() or _cpu_has_native_bf16():
        return torch.bfloat16
    return torch.float32


def load_model(
    ref: ModelRef, dtype: str = "auto"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Base model (+ adapter merged in) and its tokenizer, in eval mode, left padding."""
    tokenizer = AutoTokenizer.from_pretrained(ref.base_dir)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(ref.base_dir, dtype=resolve_dtype(dtype))
    if ref.adapter_dir:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, ref.adapter_dir).merge_and_unload()
    model.eval()
    return model, tokenizer


class HFBackend:
    """Batched transformers generation over chat conversations."""

    def __init__(
        self,
        ref: ModelRef,
        dtype: str = "auto",
        batch_size: int = 16,
        progress: Callable[[int], None] | None = None,
        loaded: tuple[PreTrainedModel, PreTrainedTokenizerBase] | None = None,
    ):
        self.ref = ref
        self.batch_size = batch_size
        self.progress = progress
        # `loaded`: the (model, tokenizer) load_model(ref, dtype) already returned, shared.
        self.model, self.tokenizer = loaded or load_model(ref, dtype)
        self.eos_ids = self._eos_ids()

    def _eos_ids(self) -> list[int]:
        ids = self.model.generation_config.eos_token_id
        ids = [ids] if isinstance(ids, int) else list(ids or [])
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in ids:
            ids.append(self.tokenizer.eos_token_id)
        return ids

    def render(self, conversation: Sequence[Message]) -> str:
        text = self.tokenizer.apply_chat_template(
            list(conversation), tokenize=False, add_generation_prompt=True
        )
        assert isinstance(text, str), "tokenize=False must render the conversation to text"
        return text

    @torch.inference_mode()
    def chat(
        self, conversations: Sequence[Sequence[Message]], sampling: Sampling
    ) -> list[list[Completion]]:
        texts = [self.render(c) for c in conversations]
        encoded = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        rows = [(i, j) for i in range(len(texts)) for j in range(sampling.n)]
        # Longest first, so batches hold similar lengths and the first batch shows peak memory.
        rows.sort(key=lambda r: -len(encoded[r[0]]))
        out: list[list[Completion | None]] = [[None] * sampling.n for _ in texts]
        pad_id = self.tokenizer.pad_token_id
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start : start + self.batch_size]
            ids = [encoded[i] for i, _ in batch]
            width = max(len(x) for x in ids)
            input_ids = torch.tensor([[pad_id] * (width - len(x)) + x for x in ids])
            attention = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids])
            kwargs: dict = {
                "max_new_tokens": sampling.max_new_tokens,
                "pad_token_id": pad_id,
                "eos_token_id": self.eos_ids,
            }
            if sampling.stop_at_answer:
                kwargs["stopping_criteria"] = StoppingCriteriaList(
                    [AnswerStop(self.tokenizer, width)]
                )
            if sampling.temperature > 0:
                # Distinct per batch so repeated calls (votes, waves) draw independent samples.
                torch.manual_seed(sampling.seed * 1_000_003 + start)
                kwargs.update(
                    do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p
                )
            else:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            generated = self.model.generate(
                input_ids=input_ids, attention_mask=attention, **kwargs
            )[:, width:]
            for (i, j), row in zip(batch, generated.tolist(), strict=True):
                n_tokens = len(row)
                for pos, tok in enumerate(row):
                    if tok in self.eos_ids or tok == pad_id:
                        n_tokens = pos + 1
                        break
                text = self.tokenizer.decode(row[:n_tokens], skip_special_tokens=True)
                out[i][j] = Completion(text.strip(), len(encoded[i]), n_tokens)
            if self.progress:
                self.progress(len(batch))
        return [[c for c in per if c is not None] for per in out]

    def close(self) -> None:
        del self.model
        gc.collect()
