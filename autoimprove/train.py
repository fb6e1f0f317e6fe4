"""Step `train`: one LoRA SFT round on the accepted samples (TRL SFTTrainer + PEFT).

Rows are prompt/completion conversations rendered with the model's chat template; the loss is on
the completion only (TRL's `completion_only_loss`). Mode `continue` trains the champion's adapter
further, so every registry version is one adapter over the same base (a fresh adapter when the
champion is the base model). Output: `train/adapter/` (adapter_model.safetensors + config) and
`train/losses.json`. Only safetensors are written.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch
from datasets import Dataset
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.trainer_callback import PrinterCallback
from trl import SFTConfig, SFTTrainer

from autoimprove.artifacts import atomic_dir
from autoimprove.backends.hf import resolve_dtype
from autoimprove.context import RoundContext
from autoimprove.policy import Policy
from autoimprove.types import ModelRef

STEP = "train"


def training_rows(accepted: list[dict], system_prompt: str | None) -> Dataset:
    """Prompt/completion conversations, so the trainer masks the prompt out of the loss."""
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return Dataset.from_list(
        [
            {
                "prompt": [*system, {"role": "user", "content": row["prompt"]}],
                "completion": [{"role": "assistant", "content": row["completion"]}],
            }
            for row in accepted
        ]
    )


def train_adapter(
    start: ModelRef, rows: list[dict], policy: Policy, out_dir: Path
) -> dict[str, object]:
    """Train a LoRA adapter on `rows` starting from `start`; save it into `out_dir`."""
    cfg = policy.training
    dtype = resolve_dtype(policy.model.dtype)
    tokenizer = AutoTokenizer.from_pretrained(start.base_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    base = AutoModelForCausalLM.from_pretrained(start.base_dir, dtype=dtype)
    if start.adapter_dir:
        model = PeftModel.from_pretrained(base, start.adapter_dir, is_trainable=True)
    else:
        model = get_peft_model(
            base,
            LoraConfig(
                r=cfg.lora.r,
                lora_alpha=cfg.lora.alpha,
                lora_dropout=cfg.lora.dropout,
                target_modules=list(cfg.lora.target_modules),
                task_type="CAUSAL_LM",
            ),
        )
    per_device = cfg.batch_size // cfg.grad_accum
    with tempfile.TemporaryDirectory(prefix="autoimprove-train-") as scratch:
        args = SFTConfig(
            output_dir=scratch,
            num_train_epochs=cfg.epochs,
            per_device_train_batch_size=per_device,
            gradient_accumulation_steps=cfg.grad_accum,
            learning_rate=cfg.learning_rate,
            lr_scheduler_type="constant",
            warmup_steps=0,
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            max_length=cfg.max_length,
            completion_only_loss=True,
            seed=cfg.seed,
            use_cpu=not torch.cuda.is_available(),
            bf16=False,  # weights are already bf16 when the policy says so; no autocast on CPU
            activation_checkpointing=False,  # TRL turns it on by default; LoRA on 0.5B needs none
            dataloader_num_workers=0,
            disable_tqdm=True,
        )
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=training_rows(rows, policy.model.system_prompt),
            processing_class=tokenizer,
        )
        # Losses go to the round summary and MLflow, not to stdout.
        trainer.remove_callback(PrinterCallback)
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
        losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
        trainer.model.save_pretrained(str(out_dir), safe_serialization=True)
    return {
        "train_rows": len(rows),
        "train_steps": trainer.state.global_step,
        "train_seconds": round(seconds, 2),
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        "losses": losses,
    }


def run(ctx: RoundContext, accepted: list[dict]) -> dict:
    with atomic_dir(ctx.step_dir(STEP)) as out:
        stats = train_adapter(ctx.champion, accepted, ctx.policy, out / "adapter")
        unsafe = [
            p.name for p in (out / "adapter").iterdir() if p.suffix in (".bin", ".pt", ".pth")
        ]
        assert not unsafe, f"training wrote pickle weights {unsafe}; only safetensors are allowed"
        (out / "losses.json").write_text(json.dumps(stats["losses"]))
    return {k: v for k, v in stats.items() if k != "losses"}


def adapter_dir(ctx: RoundContext) -> Path:
    return ctx.step_dir(STEP) / "adapter"
