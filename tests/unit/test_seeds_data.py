"""The shipped arithmetic data: pool shape, held-out labels, decontamination and reproducibility.

Plus small unit tests for ``autoimprove.decontam``, which the decontamination checks rely on.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from autoimprove.decontam import (
    exact_overlaps,
    ngram_index,
    normalize_text,
    overlaps,
    word_ngrams,
)

ROOT = Path(__file__).resolve().parents[2]
POOL = ROOT / "seeds" / "arith_pool.jsonl"
HELDOUT = ROOT / "autoimprove" / "tasks" / "arith_heldout" / "arith_heldout.jsonl"
GENERATOR = ROOT / "seeds" / "make_arith.py"


def _read_jsonl(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _load_generator() -> ModuleType:
    # seeds/ is a folder of data plus a script, not a package, so import the script by path.
    spec = importlib.util.spec_from_file_location("make_arith", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pool() -> list[Any]:
    return _read_jsonl(POOL)


@pytest.fixture(scope="module")
def heldout() -> list[Any]:
    return _read_jsonl(HELDOUT)


# --- the pool -------------------------------------------------------------------------------


def test_pool_rows_are_unlabeled_prompts_with_unique_ids(pool: list[Any]) -> None:
    assert len(pool) >= 2000
    for row in pool:
        assert isinstance(row, dict)
        assert isinstance(row.get("prompt"), str) and row["prompt"].strip()
        assert "answer" not in row  # the method is label-free; the pool must not carry labels
        assert row.get("domain") == "arith"
    ids = [row["id"] for row in pool]
    assert len(set(ids)) == len(ids)


def test_pool_has_no_duplicate_prompts(pool: list[Any]) -> None:
    normalized = [normalize_text(row["prompt"]) for row in pool]
    assert len(set(normalized)) == len(normalized)


# --- the held-out set -----------------------------------------------------------------------


def test_heldout_rows_have_integer_answers(heldout: list[Any]) -> None:
    assert len(heldout) >= 200
    ids = [row["id"] for row in heldout]
    assert len(set(ids)) == len(ids)
    for row in heldout:
        assert isinstance(row["question"], str) and row["question"].strip()
        assert isinstance(row["answer"], str)
        assert int(row["answer"]) >= 0
        assert str(int(row["answer"])) == row["answer"]  # canonical: no sign, padding or commas


# --- decontamination between them -----------------------------------------------------------


def test_no_identical_item_between_pool_and_heldout(pool: list[Any], heldout: list[Any]) -> None:
    pool_texts = [row["prompt"] for row in pool]
    heldout_texts = [row["question"] for row in heldout]
    assert exact_overlaps(pool_texts, heldout_texts) == []


def test_no_shared_8gram_between_pool_and_heldout(pool: list[Any], heldout: list[Any]) -> None:
    pool_texts = [row["prompt"] for row in pool]
    heldout_texts = [row["question"] for row in heldout]
    shared = overlaps(pool_texts, heldout_texts, n=8)
    examples = [(pool[i]["id"], heldout[j]["id"]) for i, j in shared[:5]]
    assert shared == [], f"{len(shared)} contaminated pairs, e.g. {examples}"


# --- reproducibility ------------------------------------------------------------------------


def test_generator_reproduces_the_shipped_files(pool: list[Any], heldout: list[Any]) -> None:
    generated_pool, generated_heldout, _dropped = _load_generator().build_all()
    assert generated_heldout == heldout
    assert generated_pool == pool


def test_audit_file_is_labeled_reproducible_and_disjoint(
    pool: list[Any], heldout: list[Any]
) -> None:
    audit = _read_jsonl(GENERATOR.parent / "arith_audit.jsonl")
    module = _load_generator()
    regenerated = module.build_audit([r["prompt"] for r in pool], [r["question"] for r in heldout])
    assert regenerated == audit and len(audit) == 60
    assert all(r["answer"].isdigit() for r in audit)
    assert not {r["prompt"] for r in audit} & {r["prompt"] for r in pool}
    assert overlaps([r["prompt"] for r in audit], [r["question"] for r in heldout], n=8) == []


def test_transfer_task_is_reproducible_labeled_and_unlike_the_pool(pool: list[Any]) -> None:
    spec = importlib.util.spec_from_file_location(
        "make_transfer", GENERATOR.parent / "make_transfer.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shipped = _read_jsonl(HELDOUT.parent / "arith_transfer.jsonl")
    assert module.build_transfer() == shipped and len(shipped) == 480
    assert all(r["answer"].isdigit() for r in shipped)
    assert len({module.problem_key(r["question"]) for r in shipped}) == 480
    assert overlaps([r["prompt"] for r in pool], [r["question"] for r in shipped], n=8) == []


def test_pool_answers_for_measurement_cover_the_pool(pool: list[Any]) -> None:
    answers = _load_generator().pool_answers()
    assert set(answers) == {row["prompt"] for row in pool}
    first = next(r for r in pool if r["id"] == "arith-pool-00001")
    assert "54 cakes" in first["prompt"] and answers[first["prompt"]] == "5"  # (54-29)/(2+3)


def test_generator_is_deterministic_across_calls() -> None:
    module = _load_generator()
    assert module.build_heldout(n=30) == module.build_heldout(n=30)
    questions = [row["question"] for row in module.build_heldout(n=30)]
    assert module.build_pool(questions, n=50) == module.build_pool(questions, n=50)


# --- autoimprove.decontam -------------------------------------------------------------------


def test_normalize_text_lowercases_strips_punctuation_and_collapses_space() -> None:
    assert normalize_text("  Ana's  $12.50\tbill,\nplease! ") == "anas 1250 bill please"
    assert normalize_text("") == ""


def test_word_ngrams_counts_and_short_texts() -> None:
    grams = word_ngrams("a b c d e", n=3)
    assert grams == {("a", "b", "c"), ("b", "c", "d"), ("c", "d", "e")}
    # Shorter than n: one gram of the whole text, so identical short texts still match.
    assert word_ngrams("Hello, world", n=8) == {("hello", "world")}
    assert word_ngrams("  ...  ", n=8) == set()
    with pytest.raises(ValueError):
        word_ngrams("a b", n=0)


def test_overlaps_finds_shared_ngrams_after_normalization() -> None:
    a = [
        "One two three four five six seven eight nine.",
        "Nothing in common here at all, really nothing.",
    ]
    b = ["zero ONE two three, four five six seven EIGHT!", "unrelated"]
    assert overlaps(a, b, n=8) == [(0, 0)]
    assert overlaps(a, b, n=9) == []
    first_eight = ("one", "two", "three", "four", "five", "six", "seven", "eight")
    assert ngram_index(b, n=8)[first_eight] == {0}


def test_exact_overlaps_compares_normalized_text() -> None:
    assert exact_overlaps(["Hello,  World!"], ["x", "hello world"]) == [(0, 1)]
    assert exact_overlaps(["Hello World"], ["Hello World again"]) == []
