"""Where the held-out lm-eval tasks live: finding, checking and hashing them.

Shipped tasks live in `autoimprove/tasks/` (read offline from JSONL); `evaluation.include_path`
adds a folder of the operator's. This module is the only reader of held-out items outside
lm-eval, and it hands them to seed decontamination as word n-grams only. `task_hash` is what a
cached champion result depends on from the task's definition.
"""

from __future__ import annotations

import functools
import hashlib
import re
from importlib import resources
from pathlib import Path

from autoimprove.artifacts import read_jsonl
from autoimprove.decontam import word_ngrams
from autoimprove.policy import EvaluationSection


def task_dirs(evaluation: EvaluationSection) -> list[Path]:
    """The shipped task folder plus the policy's `include_path`."""
    shipped = Path(str(resources.files("autoimprove").joinpath("tasks")))
    return [shipped] + ([Path(evaluation.include_path)] if evaluation.include_path else [])


def task_folder(evaluation: EvaluationSection) -> Path | None:
    """The folder of the local task `evaluation.task` names; None for a built-in lm-eval task."""
    pattern = re.compile(rf"^task:\s*['\"]?{re.escape(evaluation.task)}['\"]?\s*$", re.MULTILINE)
    for root in task_dirs(evaluation):
        for yaml_file in sorted(root.rglob("*.yaml")):
            if pattern.search(yaml_file.read_text(encoding="utf-8")):
                return yaml_file.parent
    return None


def check_tasks(evaluation: EvaluationSection) -> list[str]:
    """Problems with the policy's lm-eval tasks (main and guards), found before any compute.

    Shipped and `include_path` tasks are found by file. Any other name must be a task built
    into lm-eval whose data loads here (offline: only if already in the datasets cache)."""
    fields = {evaluation.task: "evaluation.task"}
    for i, guard in enumerate(evaluation.guard_tasks):
        fields.setdefault(guard, f"evaluation.guard_tasks[{i}]")
    remote = [t for t in fields if task_folder(evaluation.model_copy(update={"task": t})) is None]
    if not remote:
        return []
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=[str(p) for p in task_dirs(evaluation)])
    errors = []
    for task in remote:
        if task not in manager.all_tasks:
            errors.append(
                f"{fields[task]}: unknown lm-eval task {task!r} (not shipped in autoimprove/tasks, "
                "not in evaluation.include_path, not built into lm-eval)"
            )
            continue
        try:
            manager.load([task])
        except Exception as exc:  # noqa: BLE001 - datasets raises many kinds; all mean "no data"
            first = str(exc).splitlines()[0] if str(exc) else ""
            errors.append(
                f"{fields[task]}: {task!r} is built into lm-eval but its data cannot be loaded on "
                f"this machine ({type(exc).__name__}: {first}); run once with network access "
                "to fill the datasets cache, or use a local task"
            )
    return errors


def heldout_ngrams(evaluation: EvaluationSection, n: int) -> set[tuple[str, ...]]:
    """Word n-grams of every held-out item of a local task (empty for a built-in task)."""
    folder = task_folder(evaluation)
    grams: set[tuple[str, ...]] = set()
    if folder is None:
        return grams
    for path in sorted(folder.glob("*.jsonl")):
        for row in read_jsonl(path):
            for value in row.values():
                if isinstance(value, str) and len(value.split()) >= n:
                    grams |= word_ngrams(value, n)
    return grams


def task_manager(evaluation: EvaluationSection, task: str):  # noqa: ANN202 - lm-eval type
    """An lm-eval TaskManager that finds `task` (and our shipped and included tasks)."""
    from lm_eval.tasks import TaskManager

    # Indexing lm-eval's hundreds of built-in tasks costs seconds; skip it for a local task.
    local = task_folder(evaluation.model_copy(update={"task": task})) is not None
    return TaskManager(
        include_path=[str(p) for p in task_dirs(evaluation)], include_defaults=not local
    )


def task_hash(evaluation: EvaluationSection, task: str) -> str:
    """A digest of `task`'s definition: its folder's files, or lm-eval's version if built in."""
    return _hash_task(task_folder(evaluation.model_copy(update={"task": task})), task)


@functools.cache  # once per task per process: every champion-side spec of a task needs it
def _hash_task(folder: Path | None, task: str) -> str:
    digest = hashlib.sha256(task.encode())
    if folder is None:  # a built-in lm-eval task: its definition comes with the lm-eval version
        from importlib.metadata import version

        digest.update(version("lm_eval").encode())
        return digest.hexdigest()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return digest.hexdigest()
