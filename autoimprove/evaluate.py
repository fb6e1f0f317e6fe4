"""Step `evaluate`: held-out pass@1 of champion and candidate through lm-eval, same items.

The held-out set is an lm-eval task (shipped ones live in `autoimprove/tasks/`, read offline
from JSONL). Each model is loaded with its adapter merged into the weights (an unmerged PEFT
adapter made evaluation 1.9x slower here) and handed to lm-eval's `hf` model class as an
in-memory model. Per-item correctness is kept for the gate's paired test. This module is also the
only reader of held-out items, which it exposes to seed decontamination as n-grams only.
Each model's results are sealed as they finish (`work/evaluate/<model>/`), so a resumed step
evaluates only what is missing. Output: `evaluate/champion.jsonl`, `evaluate/candidate.jsonl`
(per item), `evaluate/summary.json`.
"""

from __future__ import annotations

import json
import re
import time
from importlib import resources
from pathlib import Path

from autoimprove import stopping
from autoimprove.artifacts import atomic_dir, is_complete, read_jsonl, write_jsonl
from autoimprove.context import RoundContext
from autoimprove.decontam import word_ngrams
from autoimprove.faults import fault_point
from autoimprove.policy import EvaluationSection
from autoimprove.types import EvalResult, ModelRef

STEP = "evaluate"
METRIC = "exact_match"


def task_dirs(evaluation: EvaluationSection) -> list[Path]:
    """The shipped task folder plus the policy's `include_path`."""
    shipped = Path(str(resources.files("autoimprove").joinpath("tasks")))
    return [shipped] + ([Path(evaluation.include_path)] if evaluation.include_path else [])


def _task_folder(evaluation: EvaluationSection) -> Path | None:
    pattern = re.compile(rf"^task:\s*['\"]?{re.escape(evaluation.task)}['\"]?\s*$", re.MULTILINE)
    for root in task_dirs(evaluation):
        for yaml_file in sorted(root.rglob("*.yaml")):
            if pattern.search(yaml_file.read_text(encoding="utf-8")):
                return yaml_file.parent
    return None


def heldout_ngrams(evaluation: EvaluationSection, n: int) -> set[tuple[str, ...]]:
    """Word n-grams of every held-out item of a local task (empty for a built-in task)."""
    folder = _task_folder(evaluation)
    grams: set[tuple[str, ...]] = set()
    if folder is None:
        return grams
    for path in sorted(folder.glob("*.jsonl")):
        for row in read_jsonl(path):
            for value in row.values():
                if isinstance(value, str) and len(value.split()) >= n:
                    grams |= word_ngrams(value, n)
    return grams


def evaluate_model(
    ref: ModelRef, evaluation: EvaluationSection, dtype: str, system_prompt: str | None
) -> EvalResult:
    """Greedy pass@1 of one model on the policy's held-out task, per item."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from autoimprove.backends.hf import load_model

    model, tokenizer = load_model(ref, dtype)
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=evaluation.batch_size)
    # Indexing lm-eval's hundreds of built-in tasks costs seconds; skip it for a local task.
    manager = TaskManager(
        include_path=[str(p) for p in task_dirs(evaluation)],
        include_defaults=_task_folder(evaluation) is None,
    )
    results = simple_evaluate(
        model=lm,
        tasks=[evaluation.task],
        task_manager=manager,
        limit=evaluation.limit,
        log_samples=True,
        apply_chat_template=True,
        system_instruction=system_prompt,
        gen_kwargs={"max_gen_toks": evaluation.max_new_tokens, "do_sample": False},
        bootstrap_iters=0,
    )
    assert results is not None, "lm-eval returned no results"
    samples = sorted(results["samples"][evaluation.task], key=lambda s: s["doc_id"])
    item_ids = tuple(str(s["doc"].get("id", s["doc_id"])) for s in samples)
    correct = tuple(bool(s[METRIC]) for s in samples)
    responses = tuple(str(s["filtered_resps"][0]) for s in samples)
    del lm, model
    n = len(samples)
    return EvalResult(
        task=evaluation.task,
        n=n,
        pass_at_1=sum(correct) / n if n else 0.0,
        item_ids=item_ids,
        correct=correct,
        responses=responses,
    )


def _rows(result: EvalResult) -> list[dict]:
    return [
        {"item_id": i, "correct": c, "response": r}
        for i, c, r in zip(result.item_ids, result.correct, result.responses, strict=True)
    ]


def eval_result(task: str, rows: list[dict]) -> EvalResult:
    """An EvalResult from stored per-item rows (`item_id`, `correct`, `response`)."""
    n = len(rows)
    correct = tuple(bool(r["correct"]) for r in rows)
    return EvalResult(
        task=task,
        n=n,
        pass_at_1=sum(correct) / n if n else 0.0,
        item_ids=tuple(str(r["item_id"]) for r in rows),
        correct=correct,
        responses=tuple(str(r["response"]) for r in rows),
    )


def run(ctx: RoundContext) -> dict:
    """Evaluate champion, then candidate (each sealed as a shard, so a resume skips one done)."""
    from autoimprove.train import adapter_dir

    policy = ctx.policy
    models = {
        "champion": ctx.champion,
        "candidate": ModelRef(str(ctx.base_dir), str(adapter_dir(ctx)), None),
    }
    for name, ref in models.items():
        folder = ctx.shard_dir(STEP, name)
        if is_complete(folder):
            continue
        stopping.check()
        started = time.perf_counter()
        result = evaluate_model(
            ref, policy.evaluation, policy.model.dtype, policy.model.system_prompt
        )
        seconds = time.perf_counter() - started
        with atomic_dir(folder) as out:
            write_jsonl(out / "items.jsonl", _rows(result))
            (out / "stats.json").write_text(json.dumps({"seconds": seconds}))
        fault_point(STEP, "after_shard")
    summary: dict = {"task": policy.evaluation.task}
    with atomic_dir(ctx.step_dir(STEP)) as out:
        for name in models:
            folder = ctx.shard_dir(STEP, name)
            rows = read_jsonl(folder / "items.jsonl")
            result = eval_result(policy.evaluation.task, rows)
            write_jsonl(out / f"{name}.jsonl", rows)
            summary[name] = {"pass_at_1": result.pass_at_1, "n": result.n}
            seconds = json.loads((folder / "stats.json").read_text())["seconds"]
            summary[f"eval_{name}_seconds"] = round(seconds, 2)
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary
