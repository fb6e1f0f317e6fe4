"""Seed pools: bad rows skipped and counted, duplicates and contamination dropped, no reuse."""

import json

import pytest

from autoimprove.decontam import word_ngrams
from autoimprove.seeds import load_pool, sample_seeds


def write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bad_rows_are_skipped_and_counted(tmp_path):
    pool = write(
        tmp_path / "pool.jsonl",
        [
            json.dumps({"id": "a", "prompt": "What is 2 + 3?"}),
            "{not json",
            json.dumps(["a", "list"]),
            json.dumps({"id": "b", "prompt": ""}),
            json.dumps({"id": "c", "prompt": 7}),
            json.dumps({"id": "d"}),
            json.dumps({"id": "e", "prompt": "What is 4 + 5?", "answer": "9", "domain": "math"}),
            "",
        ],
    )
    seeds, report = load_pool(pool)
    assert [s.id for s in seeds] == ["a", "e"]
    assert seeds[1].domain == "math"
    assert report.rows == 7 and report.bad_rows == 5 and report.loaded == 2
    assert report.with_answer_field == 1
    assert report.bad_examples[0] == "pool.jsonl:2"


def test_duplicates_and_contamination_dropped(tmp_path):
    held_out = "Mia has twelve red apples and gives away five of them to her friend"
    pool = write(
        tmp_path / "pool.jsonl",
        [
            json.dumps({"id": "1", "prompt": "What is 2 + 3?"}),
            json.dumps({"id": "2", "prompt": "what is 2 + 3 ?"}),
            json.dumps({"id": "3", "prompt": "Yesterday " + held_out + ". How many remain?"}),
        ],
    )
    seeds, report = load_pool(pool, word_ngrams(held_out, 8), 8)
    assert [s.id for s in seeds] == ["1"]
    assert report.duplicates == 1 and report.contaminated == 1


def test_missing_or_repeated_ids_get_stable_ones(tmp_path):
    pool = write(
        tmp_path / "p.jsonl",
        [
            json.dumps({"prompt": "alpha beta"}),
            json.dumps({"id": "x", "prompt": "gamma"}),
            json.dumps({"id": "x", "prompt": "delta"}),
        ],
    )
    seeds, _ = load_pool(pool)
    assert seeds[0].id.startswith("sha-") and seeds[1].id == "x" and seeds[2].id.startswith("sha-")
    assert load_pool(pool)[0] == seeds


def test_folder_pool_and_missing_pool(tmp_path):
    write(tmp_path / "a.jsonl", [json.dumps({"id": "1", "prompt": "p one"})])
    write(tmp_path / "b.jsonl", [json.dumps({"id": "2", "prompt": "p two"})])
    seeds, _ = load_pool(tmp_path)
    assert [s.id for s in seeds] == ["1", "2"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_pool(tmp_path / "nope.jsonl")


def test_sampling_never_reuses_and_is_reproducible(tmp_path):
    write(tmp_path / "p.jsonl", [json.dumps({"id": str(i), "prompt": f"q {i}"}) for i in range(10)])
    seeds, _ = load_pool(tmp_path / "p.jsonl")
    used: set[str] = set()
    rounds = []
    for r in range(4):
        picked = sample_seeds(seeds, used, 3, rng_seed=r)
        assert not {s.id for s in picked} & used
        used |= {s.id for s in picked}
        rounds.append(picked)
    assert [len(r) for r in rounds] == [3, 3, 3, 1]
    assert sample_seeds(seeds, set(), 3, 5) == sample_seeds(seeds, set(), 3, 5)
