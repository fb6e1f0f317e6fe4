"""A tiny random causal LM with a tokenizer trained on the spot, fully offline.

``build_tiny_model(out_dir)`` writes a Hugging Face model directory (safetensors weights,
``PreTrainedTokenizerFast`` files with a Qwen-style ChatML ``chat_template``, and a
``generation_config.json``) in a few seconds. The weights are random but seeded, so the
directory is the same on every run; it is only good for exercising the plumbing.
"""

from __future__ import annotations

import random
from pathlib import Path

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
EOS_PAD = "<|endoftext|>"
SPECIAL_TOKENS = [EOS_PAD, IM_START, IM_END]

QWEN_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
VOCAB_SIZE = 512
SEED = 1234

# Qwen2.5-style ChatML template (system / user / assistant, add_generation_prompt).
CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message['role'] != 'system' %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- endif %}"
)

_NAMES = ["Ann", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivan", "Jo"]
_ITEMS = ["apples", "pens", "books", "coins", "cards", "eggs", "stamps", "shells"]
_SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "You are a helpful assistant.",
    "Solve the problem step by step and give the final answer.",
    "The answer is a number.",
    "Write a short function that returns the sum of two numbers.",
    "def add(a, b):\n    return a + b",
    "Please think carefully before you answer the question.",
    "What is the capital of France? The capital of France is Paris.",
    "system\nYou are a helpful assistant.\nuser\nHello!\nassistant\nHi, how can I help?",
]


def _corpus(n_lines: int = 400, seed: int = SEED) -> list[str]:
    """Synthetic English + digits + arithmetic word problems (deterministic)."""
    rng = random.Random(seed)
    lines: list[str] = list(_SENTENCES)
    lines.append(" ".join(str(i) for i in range(100)))
    while len(lines) < n_lines:
        name, other = rng.sample(_NAMES, 2)
        item = rng.choice(_ITEMS)
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        kind = rng.randrange(4)
        if kind == 0:
            lines.append(
                f"{name} has {a} {item}. {other} gives {name} {b} more. "
                f"How many {item} does {name} have now? {a} + {b} = {a + b}. "
                f"The answer is {a + b}."
            )
        elif kind == 1:
            hi, lo = max(a, b), min(a, b)
            lines.append(
                f"{name} had {hi} {item} and gave {lo} to {other}. How many are left? "
                f"{hi} - {lo} = {hi - lo}. #### {hi - lo}"
            )
        elif kind == 2:
            lines.append(
                f"Question: What is {a} times {b}? Answer: {a} * {b} = {a * b}. "
                f"Final answer: {a * b}"
            )
        else:
            lines.append(rng.choice(_SENTENCES))
    return lines


def build_tokenizer(vocab_size: int = VOCAB_SIZE):
    """Train a small byte-level BPE tokenizer and wrap it as PreTrainedTokenizerFast."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    # Same pipeline as transformers' Qwen2Tokenizer (NFC, Qwen split regex, byte-level), so
    # AutoTokenizer -- which rebuilds a Qwen2Tokenizer from vocab + merges because the model
    # type is qwen2 -- tokenizes exactly like the tokenizer.json written here.
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token=IM_END,
        pad_token=EOS_PAD,
        unk_token=None,
        additional_special_tokens=[IM_START, IM_END],
        model_max_length=2048,
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "right"
    return fast


def build_tiny_model(out_dir: Path) -> Path:
    """Build a tiny random Qwen2 causal LM + trained tokenizer in ``out_dir``; return it."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    tokenizer = build_tokenizer()
    eos_id = tokenizer.convert_tokens_to_ids(IM_END)
    pad_id = tokenizer.convert_tokens_to_ids(EOS_PAD)

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
    torch.manual_seed(SEED)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        bos_token_id=None,
        do_sample=False,
    )
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


if __name__ == "__main__":  # pragma: no cover - manual use
    import sys

    print(build_tiny_model(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/tiny_model")))


def teach_fixed_reply(model_dir: Path, out_dir: Path, reply: str, steps: int = 80) -> Path:
    """Copy of the tiny model trained (full weights, plain AdamW) to answer every chat with `reply`.

    A random tiny model never agrees with itself, so nothing would pass the cascade; one that
    always says "The answer is 5." agrees with its own re-solves and lets the whole round
    (training, evaluation, registry) run on real weights in seconds.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(SEED)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    rng = random.Random(SEED)
    questions = [line for line in _corpus(64, SEED + 1) if line.strip()]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        question = questions[step % len(questions)] + f" {rng.randint(1, 99)}"
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
        )
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        reply_ids = tokenizer(reply + IM_END, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt_ids + reply_ids])
        labels = torch.tensor([[-100] * len(prompt_ids) + reply_ids])
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir
