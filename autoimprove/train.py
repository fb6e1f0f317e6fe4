"""Step `train`: one LoRA SFT round on the accepted samples (TRL SFTTrainer + PEFT).

Rows are prompt/completion conversations rendered with the model's chat template; the loss is on
the completion only (TRL's `completion_only_loss`). Mode `continue` trains the champion's adapter
further, `fresh` a new adapter on the base; either way every registry version is one adapter
over the same base. Output: `train/adapter/` (adapter_model.safetensors + config),
`train/rows.jsonl` (the rows trained on), `train/losses.json` and `train/summary.json`. Only
safetensors weights are written.

Training saves a checkpoint every `training.checkpoint_every` optimizer steps under
`work/train/checkpoints/` and seals each with a manifest once the trainer has written it. A
resumed step continues from the newest checkpoint whose manifest verifies, so a truncated newest
checkpoint falls back to the one before it. On a stop request training saves a checkpoint at
the end of the current step and exits; the adapter is sealed only when all epochs are done.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import torch
from datasets import Dataset
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback, set_seed
from transformers.trainer_callback import PrinterCallback
from trl import SFTConfig, SFTTrainer

from autoimprove import stopping
from autoimprove.artifacts import atomic_dir, is_complete, seal_in_place, write_jsonl
from autoimprove.backends.hf import resolve_dtype
from autoimprove.context import RoundContext
from autoimprove.faults import fault_point
from autoimprove.policy import Policy, TrainingSection
from autoimprove.types import ModelRef

STEP = "train"
CHECKPOINT_PREFIX = "checkpoint-"


class _Checkpoints(TrainerCallback):
    """Seal each checkpoint after the trainer wrote it; save and stop on a stop request."""

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201 - HF callback API
        if stopping.stop_requested():
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_save(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201 - HF callback API
        folder = Path(args.output_dir) / f"{CHECKPOINT_PREFIX}{state.global_step}"
        if folder.is_dir():
            seal_in_place(folder)
            fault_point(STEP, "after_checkpoint")
        return control


def _step_of(path: Path) -> int:
    suffix = path.name.removeprefix(CHECKPOINT_PREFIX)
    return int(suffix) if suffix.isdigit() else -1


def resume_point(checkpoints: Path) -> Path | None:
    """The newest checkpoint whose manifest verifies; newer incomplete ones are deleted."""
    if not checkpoints.is_dir():
        return None
    found = sorted(
        (p for p in checkpoints.glob(f"{CHECKPOINT_PREFIX}*") if _step_of(p) >= 0),
        key=_step_of,
        reverse=True,
    )
    for path in found:
        if is_complete(path):
            return path
        shutil.rmtree(path, ignore_errors=True)  # truncated by a kill: never resume from it
    return None


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


def learning_rate(cfg: TrainingSection, rows: int) -> float:
    """The round's learning rate: `learning_rate`, capped by `learning_rate_budget` spread
    over the optimizer steps `rows` take."""
    if cfg.learning_rate_budget is None:
        return cfg.learning_rate
    steps = math.ceil(rows / cfg.batch_size) * cfg.epochs
    return min(cfg.learning_rate, cfg.learning_rate_budget / max(steps, 1))


def train_adapter(
    start: ModelRef, rows: list[dict], policy: Policy, out_dir: Path, checkpoints: Path
) -> dict[str, object]:
    """Train a LoRA adapter on `rows` starting from `start` (resuming from a checkpoint in
    `checkpoints` when one is complete); save it into `out_dir`."""
    cfg = policy.training
    dtype = resolve_dtype(policy.model.dtype)
    tokenizer = AutoTokenizer.from_pretrained(start.base_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    base = AutoModelForCausalLM.from_pretrained(start.base_dir, dtype=dtype)
    set_seed(cfg.seed)  # the fresh adapter's initial weights too, so a rerun trains the same
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
    rate = learning_rate(cfg, len(rows))
    resume = resume_point(checkpoints)
    checkpoints.mkdir(parents=True, exist_ok=True)
    args = SFTConfig(
        output_dir=str(checkpoints),
        num_train_epochs=cfg.epochs,
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=rate,
        lr_scheduler_type="constant",
        warmup_steps=0,
        logging_steps=1,
        save_strategy="steps",
        save_steps=cfg.checkpoint_every,
        save_total_limit=2,  # the newest and one to fall back to
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
        callbacks=[_Checkpoints()],
    )
    # Losses go to the round summary and MLflow, not to stdout.
    trainer.remove_callback(PrinterCallback)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    seconds = time.perf_counter() - started
    stopping.check()  # stopped early: the checkpoint is saved, the adapter is not final
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    rates = [e["learning_rate"] for e in trainer.state.log_history if "learning_rate" in e]
    trainer.model.save_pretrained(str(out_dir), safe_serialization=True)
    return {
        "train_rows": len(rows),
        "train_steps": trainer.state.global_step,
        "learning_rate": rates[-1] if rates else rate,  # what the optimizer was given
        "train_seconds": round(seconds, 2),
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        "resumed_from_step": _step_of(resume) if resume else None,
        "losses": losses,
    }


def run(ctx: RoundContext) -> dict:
    from autoimprove.trainset import training_set
    from autoimprove.verify import load_accepted

    rows, origin = training_set(ctx, load_accepted(ctx))
    checkpoints = ctx.shard_dir(STEP, "checkpoints")
    with atomic_dir(ctx.step_dir(STEP)) as out:
        stats = train_adapter(training_start(ctx), rows, ctx.policy, out / "adapter", checkpoints)
        stats |= origin
        write_jsonl(out / "rows.jsonl", rows)  # what `training.data: lineage` inherits
        unsafe = [
            p.name for p in (out / "adapter").iterdir() if p.suffix in (".bin", ".pt", ".pth")
        ]
        assert not unsafe, f"training wrote pickle weights {unsafe}; only safetensors are allowed"
        summary = {k: v for k, v in stats.items() if k != "losses"}
        (out / "losses.json").write_text(json.dumps(stats["losses"]))
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    shutil.rmtree(checkpoints, ignore_errors=True)  # the sealed adapter supersedes them
    return summary


def training_start(ctx: RoundContext) -> ModelRef:
    """What the round's adapter is trained from: the champion (its adapter trained further,
    `training.mode: continue`) or the base model with a new adapter (`fresh`)."""
    if ctx.policy.training.mode == "fresh":
        return ModelRef(ctx.champion.base_dir)
    return ctx.champion


def adapter_dir(ctx: RoundContext) -> Path:
    return ctx.step_dir(STEP) / "adapter"
