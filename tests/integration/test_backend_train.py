"""The transformers backend and LoRA training on a tiny locally built model (real TRL/PEFT)."""

import pytest
import torch
from safetensors.torch import load_file

from autoimprove.backends.base import user_turn
from autoimprove.backends.hf import HFBackend, left_pad
from autoimprove.policy import parse_policy
from autoimprove.train import resume_point, train_adapter
from autoimprove.types import ModelRef, Sampling

PROMPTS = ["What is 3 plus 4?", "A farmer has 12 cows and sells 5. How many are left now?", "Hi"]


def test_backend_returns_n_completions_with_token_counts(tiny_model_dir):
    backend = HFBackend(ModelRef(str(tiny_model_dir)), dtype="float32", batch_size=4)
    out = backend.chat(
        [user_turn(p) for p in PROMPTS], Sampling(n=3, temperature=1.0, max_new_tokens=12)
    )
    assert [len(per) for per in out] == [3, 3, 3]
    for per in out:
        for c in per:
            assert 1 <= c.completion_tokens <= 12
            assert c.prompt_tokens > 5
    # Sampling with the same seed is reproducible; a different seed gives different text.
    again = backend.chat(
        [user_turn(p) for p in PROMPTS], Sampling(n=3, temperature=1.0, max_new_tokens=12)
    )
    assert [[c.text for c in per] for per in again] == [[c.text for c in per] for per in out]
    other = backend.chat(
        [user_turn(p) for p in PROMPTS], Sampling(n=3, temperature=1.0, max_new_tokens=12, seed=9)
    )
    assert [[c.text for c in per] for per in other] != [[c.text for c in per] for per in out]


def test_batched_greedy_equals_one_at_a_time(tiny_model_dir):
    backend = HFBackend(ModelRef(str(tiny_model_dir)), dtype="float32", batch_size=8)
    greedy = Sampling(n=1, temperature=0.0, max_new_tokens=10)
    batched = [per[0].text for per in backend.chat([user_turn(p) for p in PROMPTS], greedy)]
    single = [backend.chat([user_turn(p)], greedy)[0][0].text for p in PROMPTS]
    assert batched == single, "left padding must not change what a prompt generates"


def _batch(backend: HFBackend, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    ids = [backend.tokenizer(backend.render(user_turn(p)))["input_ids"] for p in prompts]
    return left_pad(ids, backend.tokenizer.pad_token_id)


def test_decode_matches_transformers_generate(tiny_model_dir):
    backend = HFBackend(ModelRef(str(tiny_model_dir)), dtype="float32")
    backend.eos_ids = [-1]  # nothing ends early: every row runs the full length
    input_ids, attention = _batch(backend, PROMPTS)
    ours = backend.decode(input_ids, attention, Sampling(temperature=0.0, max_new_tokens=12))
    device = backend.model.device  # the GPU where there is one (tests/integration/test_gpu.py)
    theirs = backend.model.generate(
        input_ids=input_ids.to(device),
        attention_mask=attention.to(device),
        max_new_tokens=12,
        min_new_tokens=12,
        do_sample=False,
        pad_token_id=backend.tokenizer.pad_token_id,
    )[:, input_ids.shape[1] :]
    assert ours == theirs.tolist()


def test_finished_rows_leave_the_batch_without_disturbing_the_rest(tiny_model_dir):
    """A row that ends drops out of the batch (and its KV cache); the rows still going must
    sample exactly what they would have in the full batch."""
    backend = HFBackend(ModelRef(str(tiny_model_dir)), dtype="float32")
    sampled = Sampling(temperature=1.0, max_new_tokens=16)
    backend.eos_ids = [-1]
    input_ids, attention = _batch(backend, PROMPTS)
    full = backend.decode(input_ids, attention, sampled)
    # Make a token the first row emits early an end token, so rows finish at different steps.
    end = next(t for t in full[0][2:] if any(t not in row for row in full))
    backend.eos_ids = [end]
    cut = backend.decode(input_ids, attention, sampled)
    expected = [row[: row.index(end) + 1] if end in row else row for row in full]
    assert cut == expected
    assert len({len(row) for row in cut}) > 1, "rows must have finished at different steps"


def test_shared_prompt_copies_equal_repeated_rows(tiny_model_dir):
    """Encoding a prompt once and copying its KV cache to its n rows must sample exactly what n
    separately encoded copies of the prompt sample."""
    backend = HFBackend(ModelRef(str(tiny_model_dir)), dtype="float32")
    sampled = Sampling(temperature=1.0, max_new_tokens=12, seed=3)
    input_ids, attention = _batch(backend, PROMPTS)
    copies = [3, 1, 2]
    repeat = torch.repeat_interleave(torch.arange(3), torch.tensor(copies))
    shared = backend.decode(input_ids, attention, sampled, copies=copies)
    separate = backend.decode(input_ids[repeat], attention[repeat], sampled)
    assert len(shared) == 6
    assert shared == separate
    assert shared[0] != shared[1], "the copies of one prompt must draw different samples"


def test_screening_draws_the_rest_only_where_answers_agree(tiny_model_dir, answering_model_dir):
    """On real models: the answering model's first two samples agree (both say 5), so every
    prompt gets all n; the random tiny model states no answer, so each prompt keeps its first 2."""
    from autoimprove.generate import _screened

    sampling = Sampling(n=4, temperature=0.7, max_new_tokens=12)
    conversations = [user_turn(p) for p in PROMPTS]
    agreeing = HFBackend(ModelRef(str(answering_model_dir)), dtype="float32")
    out = _screened(agreeing, conversations, sampling, screen=2)
    assert [len(per) for per in out] == [4, 4, 4]
    assert all("answer is 5" in c.text for per in out for c in per)
    random = HFBackend(ModelRef(str(tiny_model_dir)), dtype="float32")
    assert [len(per) for per in _screened(random, conversations, sampling, screen=2)] == [2, 2, 2]


POLICY = """
model: {dtype: float32}
seeds: {pool: x.jsonl}
cascade: {stages: [{type: correctness, mode: agreement, votes: 1}]}
training:
  epochs: 2
  batch_size: 2
  learning_rate: 0.001
  lora: {r: 4, alpha: 8, target_modules: [q_proj, v_proj]}
registry: {model_name: t}
"""

ROWS = [
    {"prompt": "What is 2 + 2?", "completion": "2 + 2 = 4. The answer is 4."},
    {"prompt": "What is 3 + 5?", "completion": "3 + 5 = 8. The answer is 8."},
    {"prompt": "What is 6 - 1?", "completion": "6 - 1 = 5. The answer is 5."},
]


def _lora_b(adapter_dir):
    tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))
    return {k: v for k, v in tensors.items() if "lora_B" in k}


def test_training_changes_lora_weights_and_writes_only_safetensors(tiny_model_dir, tmp_path):
    policy = parse_policy(POLICY, folder=tmp_path)
    first = tmp_path / "round1"
    stats = train_adapter(ModelRef(str(tiny_model_dir)), ROWS, policy, first, tmp_path / "ck1")
    assert stats["train_rows"] == 3 and stats["train_steps"] == 4  # 2 epochs x ceil(3/2)
    assert stats["learning_rate"] == pytest.approx(0.001)  # no budget: the policy's rate
    assert stats["loss_first"] is not None and stats["loss_last"] is not None
    files = sorted(p.name for p in first.iterdir())
    assert "adapter_model.safetensors" in files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl"))]
    b1 = _lora_b(first)
    assert b1 and all(torch.count_nonzero(t) > 0 for t in b1.values()), "LoRA B starts at zero"

    # `continue` mode: round 2 starts from round 1's adapter and moves it further.
    second = tmp_path / "round2"
    train_adapter(ModelRef(str(tiny_model_dir), str(first)), ROWS, policy, second, tmp_path / "ck2")
    b2 = _lora_b(second)
    assert b2.keys() == b1.keys()
    assert any(not torch.equal(b1[k], b2[k]) for k in b1)


def test_training_resumes_from_the_newest_complete_checkpoint(tiny_model_dir, tmp_path):
    """A truncated newest checkpoint is skipped; training continues from the one before and
    ends where an uninterrupted run ends."""
    text = POLICY.replace(
        "training:\n", "training:\n  checkpoint_every: 1\n  learning_rate_budget: 0.002\n"
    )
    assert "checkpoint_every: 1" in text
    policy = parse_policy(text, folder=tmp_path)
    checkpoints = tmp_path / "ck"
    full = train_adapter(ModelRef(str(tiny_model_dir)), ROWS, policy, tmp_path / "a", checkpoints)
    assert full["resumed_from_step"] is None and full["train_steps"] == 4
    assert full["learning_rate"] == pytest.approx(0.002 / 4)  # the budget over 4 steps
    kept = sorted(p.name for p in checkpoints.glob("checkpoint-*"))
    assert kept == ["checkpoint-3", "checkpoint-4"]  # the newest two, each sealed
    assert all((checkpoints / k / "MANIFEST.json").is_file() for k in kept)

    # A kill while checkpoint-4 was being written: its weights are cut short.
    weights = checkpoints / "checkpoint-4" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    assert resume_point(checkpoints) == checkpoints / "checkpoint-3"
    assert not (checkpoints / "checkpoint-4").exists()

    resumed = train_adapter(
        ModelRef(str(tiny_model_dir)), ROWS, policy, tmp_path / "b", checkpoints
    )
    assert resumed["resumed_from_step"] == 3 and resumed["train_steps"] == 4
    assert resumed["learning_rate"] == full["learning_rate"]
    a, b = _lora_b(tmp_path / "a"), _lora_b(tmp_path / "b")
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_a_row_stops_once_it_has_stated_its_answer(answering_model_dir):
    """With no end token to stop it, `stop_at_answer` ends each row right after "answer is 5."
    (once the number is complete); without it the row runs to max_new_tokens."""
    backend = HFBackend(ModelRef(str(answering_model_dir)), dtype="float32")
    backend.eos_ids = [-1]
    input_ids, attention = _batch(backend, PROMPTS)
    stopped = backend.decode(input_ids, attention, Sampling(max_new_tokens=40, stop_at_answer=True))
    running = backend.decode(input_ids, attention, Sampling(max_new_tokens=40))
    for short, full in zip(stopped, running, strict=True):
        text = backend.tokenizer.decode(short, skip_special_tokens=True)
        assert text.rstrip().endswith("answer is 5.")
        assert len(short) < len(full) == 40 and full[: len(short)] == short


def _generate_until(lm, contexts: list[str], gen_kwargs: dict) -> list[str]:
    from lm_eval.api.instance import Instance

    requests = [
        Instance("generate_until", doc={}, arguments=(c, dict(gen_kwargs)), idx=0, doc_id=i)
        for i, c in enumerate(contexts)
    ]
    return lm.generate_until(requests, disable_tqdm=True)


def test_pruned_lm_eval_model_answers_like_lm_evals_hf(answering_model_dir, tiny_model_dir):
    """Our lm-eval model (`autoimprove-hf`: finished rows leave the batch) gives lm-eval's `hf`
    greedy texts; a row that reaches a stop string ends there without changing the others."""
    from lm_eval.models.huggingface import HFLM

    from autoimprove.backends.hf import load_model
    from autoimprove.backends.lm_eval_hf import PrunedHFLM

    model, tokenizer = load_model(ModelRef(str(answering_model_dir)), "float32")
    stock = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=4)
    pruned = PrunedHFLM(model, tokenizer, batch_size=4)
    contexts = [pruned.decoder.render(user_turn(p)) for p in PROMPTS]
    greedy = {"until": [], "max_gen_toks": 16, "do_sample": False}
    plain = _generate_until(stock, contexts, greedy)
    assert plain == ["The answer is 5."] * 3
    assert _generate_until(pruned, contexts, greedy) == plain
    assert pruned.pruned_batches == pruned.batches == 1

    # Sampled (maj@k's path), the random model: rows differ. A stop string from the middle of
    # the first text ends that row there; the same draws are replayed (batch counter reset).
    model, tokenizer = load_model(ModelRef(str(tiny_model_dir)), "float32")
    pruned = PrunedHFLM(model, tokenizer, batch_size=4)
    sampled = {"until": [], "max_gen_toks": 16, "do_sample": True, "temperature": 1.0}
    full = _generate_until(pruned, contexts, sampled)
    stop = next(
        piece
        for piece in (full[0][i : i + 2] for i in range(2, len(full[0]) - 2))
        if piece.strip() and sum(piece in text for text in full) == 1
    )
    pruned.batches = 0
    cut = _generate_until(pruned, contexts, {**sampled, "until": [stop]})
    assert cut[0] == full[0][: full[0].index(stop)] and cut[1:] == full[1:]
    assert pruned.pruned_batches == 2, "both sampled batches went through the decode loop"
