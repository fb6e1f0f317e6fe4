"""Loader and scorer for the lm-eval task ``autoimprove_arith_heldout`` (see the YAML beside it).

lm-eval imports this file by path (``!function utils.<name>``), so it must not rely on being part
of a package; it only imports ``autoimprove.answers``, which is installed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets

from autoimprove.answers import answers_match, extract_answer

_HERE = Path(__file__).resolve().parent


def load_heldout(data_files: dict[str, str] | str | None = None, **_: Any) -> datasets.DatasetDict:
    """The splits named in ``dataset_kwargs.data_files``; relative paths are taken from this folder.

    lm-eval calls this with the task's ``metadata`` and ``dataset_kwargs`` as keyword arguments;
    everything but ``data_files`` is ignored. Reading the JSONL directly (rather than
    ``load_dataset("json")``) also keeps the task off the HF datasets cache and the network.
    """
    files = {"test": data_files} if isinstance(data_files, str) else data_files
    files = files or {"test": "arith_heldout.jsonl"}
    splits: dict[str, datasets.Dataset] = {}
    for split, name in files.items():
        path = Path(name) if Path(name).is_absolute() else _HERE / name
        with path.open(encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle if line.strip()]
        # Answers stay strings: lm-eval's doc_to_target renders them, and answers_match compares
        # canonical strings anyway.
        splits[split] = datasets.Dataset.from_list(
            [{"id": r["id"], "question": r["question"], "answer": str(r["answer"])} for r in rows]
        )
    return datasets.DatasetDict(splits)


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """Exact match of the final answer extracted from the (single) generation."""
    predicted = extract_answer(results[0]) if results else None
    return {"exact_match": float(answers_match(predicted, doc["answer"]))}
