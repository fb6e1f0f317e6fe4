"""Transformers generation backend: the CPU default, also usable on one GPU.

Loads the base model and, if the model reference has one, the champion's LoRA adapter, merged
into the weights (1.05x the tokens/s of the unmerged PEFT model on 2 bf16 cores, BENCHMARKS.md).
Generation is always batched: conversations are expanded to `n` rows each, sorted by prompt
length so a batch pads little, left-padded, and generated `batch_size` rows at a time (batch 16
gave 10.8x the tokens/s of batch 1 on 2 CPU cores). Each prompt in a batch is encoded once and
its KV cache copied to its rows; sampling works on the top-50 tokens only (together 1.65x the
tokens/s of per-row prompts and whole-vocabulary warpers, BENCHMARKS.md).
"""

from __future__ import annotations

import gc
import re
from collections import Counter
from collections.abc import Callable, Sequence

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DynamicCache,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from autoimprove.backends.base import Message
from autoimprove.types import Completion, ModelRef, Sampling

# Sampling keeps the `TOP_K` most likely tokens (what `generate` does by default), then top-p.
TOP_K = 50

# "the answer is 42." -- a complete number followed by something that is not part of it.
_STATED_ANSWER = re.compile(r"answer is[:\s]*\$?\s*-?\d[\d,]*(?:\.\d+)?(?:[^\d,.]|[.,]\D)", re.I)


class RowStop:
    """Which rows are done before end of turn: they stated "the answer is N" (`answer`), or
    their text contains one of `strings` (lm-eval's `until`). The rest of such a row is wasted
    compute.

    Decodes only the last `tail` tokens of each row, so the check stays cheap next to a forward
    pass.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        answer: bool = True,
        strings: Sequence[str] = (),
        tail: int = 16,
    ):
        self.tokenizer = tokenizer
        self.answer = answer
        self.strings = tuple(s for s in strings if s)
        self.tail = tail

    def done(self, tails: list[list[int]]) -> torch.Tensor:
        # Special tokens kept: one right after the number also completes it ("5.<|im_end|>").
        texts = self.tokenizer.batch_decode(tails, skip_special_tokens=False)
        return torch.tensor(
            [
                (self.answer and bool(_STATED_ANSWER.search(t)))
                or any(s in t for s in self.strings)
                for t in texts
            ],
            dtype=torch.bool,
        )


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
    """Base model (+ adapter merged in) and its tokenizer, in eval mode, left padding.

    On the first CUDA GPU when there is one (hide it with CUDA_VISIBLE_DEVICES=""), else CPU."""
    tokenizer = AutoTokenizer.from_pretrained(ref.base_dir)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(ref.base_dir, dtype=resolve_dtype(dtype))
    if ref.adapter_dir:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, ref.adapter_dir).merge_and_unload()
    if torch.cuda.is_available():
        model = model.to("cuda")  # type: ignore[arg-type]  # nn.Module.to(device)
    model.eval()
    return model, tokenizer


def left_pad(ids: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id rows left-padded to one width, and their attention mask."""
    width = max(len(x) for x in ids)
    return (
        torch.tensor([[pad_id] * (width - len(x)) + x for x in ids]),
        torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids]),
    )


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
        # Longest first, so batches hold similar lengths and the first batch shows peak memory;
        # a conversation's rows stay together, in order (decode's `copies` relies on it).
        rows.sort(key=lambda r: (-len(encoded[r[0]]), r[0], r[1]))
        out: list[list[Completion | None]] = [[None] * sampling.n for _ in texts]
        pad_id = self.tokenizer.pad_token_id
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start : start + self.batch_size]
            # A conversation's n rows share one prompt: encode it once, copy its KV cache.
            copies = Counter(i for i, _ in batch)  # insertion order = the batch's order
            input_ids, attention = left_pad([encoded[i] for i in copies], pad_id)
            generated = self.decode(
                input_ids, attention, sampling, seed=start, copies=list(copies.values())
            )
            for (i, j), row in zip(batch, generated, strict=True):
                text = self.tokenizer.decode(row, skip_special_tokens=True)
                out[i][j] = Completion(text.strip(), len(encoded[i]), len(row))
            if self.progress:
                self.progress(len(batch))
        return [[c for c in per if c is not None] for per in out]

    @torch.inference_mode()
    def decode(
        self,
        input_ids: torch.Tensor,
        attention: torch.Tensor,
        sampling: Sampling,
        seed: int = 0,
        stop_strings: Sequence[str] = (),
        copies: Sequence[int] | None = None,
    ) -> list[list[int]]:
        """Generate for a left-padded batch; each row's new tokens up to and including its stop.

        `copies[k]`: how many rows prompt k becomes (its n samples). The prompt is encoded once
        and its KV cache copied; the output has sum(copies) rows, prompt by prompt. Measured on
        the quickstart's prompts (about 150 tokens) the prompt pass was a seventh of a batch's
        time, paid n times.

        A row leaves the batch the step it finishes (end of turn, its stated answer under
        `stop_at_answer`, or one of `stop_strings` in its text): its KV cache rows are dropped,
        so later steps compute only the rows still going. `generate` kept finished rows in the
        batch until the longest one ended; measured on the quickstart's candidates that was a
        fifth of the row-steps (BENCHMARKS.md, "Padding waste").
        """
        device = self.model.device
        input_ids, attention = input_ids.to(device), attention.to(device)
        stop = None
        if sampling.stop_at_answer or any(stop_strings):
            stop = RowStop(self.tokenizer, sampling.stop_at_answer, stop_strings)
        sample = sampling.temperature > 0
        generator = None
        if sample:
            # Distinct per batch so repeated calls (votes, waves) draw independent samples.
            generator = torch.Generator(device).manual_seed(sampling.seed * 1_000_003 + seed)
        eos = torch.tensor(self.eos_ids, device=device)
        cache = DynamicCache(config=self.model.config)
        positions = (attention.long().cumsum(-1) - 1).clamp(min=0)
        # Logits of the last prompt position only: over the whole prompt they would be a
        # (rows x prompt x 151,936-vocab) tensor, gigabytes, for nothing.
        logits = self.model(
            input_ids=input_ids,
            attention_mask=attention,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits[:, -1, :]
        position = positions[:, -1]
        if copies is not None:
            expand = torch.repeat_interleave(
                torch.arange(len(copies), device=device), torch.tensor(copies, device=device)
            )
            cache.batch_select_indices(expand)
            logits, attention, position = logits[expand], attention[expand], position[expand]
        rows = len(position)
        live = torch.arange(rows, device=device)  # the batch row each live row came from
        out: list[list[int]] = [[] for _ in range(rows)]
        for step in range(sampling.max_new_tokens):
            logits = logits.float()
            if sample:
                tokens = sample_tokens(logits, sampling, generator, rows, live)
            else:
                tokens = logits.argmax(dim=-1)
            for row, token in zip(live.tolist(), tokens.tolist(), strict=True):
                out[row].append(token)
            finished = torch.isin(tokens, eos)
            if stop is not None:
                tails = [out[row][-stop.tail :] for row in live.tolist()]
                finished |= stop.done(tails).to(device)
            if step == sampling.max_new_tokens - 1 or bool(finished.all()):
                break
            if bool(finished.any()):
                keep = (~finished).nonzero().squeeze(1)
                cache.batch_select_indices(keep)
                attention, tokens = attention[keep], tokens[keep]
                position, live = position[keep], live[keep]
            attention = torch.cat([attention, attention.new_ones((len(live), 1))], dim=1)
            position = position + 1
            logits = self.model(
                input_ids=tokens[:, None],
                attention_mask=attention,
                position_ids=position[:, None],
                past_key_values=cache,
                use_cache=True,
            ).logits[:, -1, :]
        return out

    def close(self) -> None:
        del self.model
        gc.collect()


def sampling_distribution(
    logits: torch.Tensor, sampling: Sampling
) -> tuple[torch.Tensor, torch.Tensor]:
    """The tokens a sampled step may draw and their (unnormalized) probabilities, per row.

    The distribution `generate` samples from (temperature, top-k 50, then top-p, as transformers'
    warpers define them), computed on the `TOP_K` best tokens instead of the whole vocabulary:
    sorting and drawing noise over 151,936 tokens for 64 rows cost 0.48 s a step on 2 cores,
    against 0.80 s for the model's forward pass (BENCHMARKS.md, "Sampling over the top-k").
    """
    top, index = (logits / sampling.temperature).topk(min(TOP_K, logits.shape[-1]), dim=-1)
    probs = torch.softmax(top, dim=-1)  # sorted, most likely first
    if sampling.top_p < 1.0:
        # transformers' rule: drop a token when it and every less likely token together hold
        # at most 1 - top_p of the mass. The most likely token always stays.
        tail = probs.flip(-1).cumsum(-1).flip(-1)
        drop = tail <= 1 - sampling.top_p
        drop[:, 0] = False
        probs = probs.masked_fill(drop, 0.0)
    return index, probs


def sample_tokens(
    logits: torch.Tensor,
    sampling: Sampling,
    generator: torch.Generator | None,
    rows: int,
    live: torch.Tensor,
) -> torch.Tensor:
    """One token per live row, drawn from `sampling_distribution`.

    Exponential race: argmax p / E with E ~ Exp(1) is a draw from p. Noise is drawn for all
    `rows` of the batch at every step and indexed by `live`, so what a row samples does not
    depend on which other rows have already finished.
    """
    index, probs = sampling_distribution(logits, sampling)
    noise = torch.empty(rows, probs.shape[-1], device=probs.device).exponential_(
        generator=generator
    )
    pick = (probs / noise[live]).argmax(dim=-1)
    return index.gather(-1, pick[:, None]).squeeze(1)
