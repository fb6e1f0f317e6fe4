"""Step `evaluate`: held-out pass@1 of champion and candidate through lm-eval, same items.

The held-out set is an lm-eval task (shipped ones live in `autoimprove/tasks/`, read offline
from JSONL). Each model is loaded with its adapter merged into the weights (an unmerged PEFT
adapter made evaluation 1.9x slower here) and handed to lm-eval's `hf` model class as an
in-memory model. Per-item correctness is kept for the gate's paired test. This module is also the
only reader of held-out items, which it exposes to seed decontamination as n-grams only.
Output: `evaluate/champion.jsonl`, `evaluate/candidate.jsonl` (per item), `evaluate/summary.json`.
"""

from __future__ import annotations

import json
import re
import time
from importlib import resources
from pathlib import Path

from autoimprove.artifacts import atomic_dir, read_jsonl, write_jsonl
from autoimprove.backends.hf import load_model
from autoimprove.context import RoundContext
from autoimprove.decontam import word_ngrams
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


def run(ctx: RoundContext, candidate: ModelRef) -> tuple[EvalResult, EvalResult, dict]:
    policy = ctx.policy
    timings = {}
    started = time.perf_counter()
    champion = evaluate_model(
        ctx.champion, policy.evaluation, policy.model.dtype, policy.model.system_prompt
    )
    timings["eval_champion_seconds"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    challenger = evaluate_model(
        candidate, policy.evaluation, policy.model.dtype, policy.model.system_prompt
    )
    timings["eval_candidate_seconds"] = round(time.perf_counter() - started, 2)
    with atomic_dir(ctx.step_dir(STEP)) as out:
        write_jsonl(out / "champion.jsonl", _rows(champion))
        write_jsonl(out / "candidate.jsonl", _rows(challenger))
        summary = {
            "task": policy.evaluation.task,
            "champion": {"pass_at_1": champion.pass_at_1, "n": champion.n},
            "candidate": {"pass_at_1": challenger.pass_at_1, "n": challenger.n},
            **timings,
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    ctx.store.save_eval(ctx.round_id, "champion", champion)
    ctx.store.save_eval(ctx.round_id, "candidate", challenger)
    return champion, challenger, timings
