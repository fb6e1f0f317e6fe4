"""The audit's scoring: per-stage and whole-cascade yield, precision and recall against labels."""

from pathlib import Path

from autoimprove.audit import load_labeled, score
from autoimprove.types import Candidate, Verdict


def test_precision_and_recall_per_stage_and_overall():
    # Problem p (label 4): candidates say 4, 4, 5. Problem q (label 9): candidates say 9, 2.
    candidates = [
        Candidate("p", 0, "x", "The answer is 4."),
        Candidate("p", 1, "x", "The answer is 4."),
        Candidate("p", 2, "x", "The answer is 5."),
        Candidate("q", 0, "y", "The answer is 9."),
        Candidate("q", 1, "y", "The answer is 2."),
    ]
    verdicts = [
        Verdict("p", 0, True, stages_passed=("cycle", "correctness")),
        Verdict("p", 1, False, "correctness", stages_passed=("cycle",)),  # a correct one lost
        Verdict("p", 2, True, stages_passed=("cycle", "correctness")),  # a wrong one kept
        Verdict("q", 0, False, "cycle"),
        Verdict("q", 1, False, "correctness", stages_passed=("cycle",)),
    ]
    out = score(candidates, verdicts, {"p": "4", "q": "9"}, ["cycle", "correctness"], 10)
    assert out["correct_candidates"] == 3 and out["base_precision"] == 0.6
    cycle, correctness = out["stages"]
    assert (cycle["entered"], cycle["passed"]) == (5, 4)
    assert cycle["precision"] == 0.5 and cycle["recall"] == round(2 / 3, 4)
    assert (correctness["entered"], correctness["passed"]) == (4, 2)
    assert correctness["precision"] == 0.5 and correctness["recall"] == 0.5
    whole = out["cascade"]
    assert whole["accepted"] == 2 and whole["precision"] == 0.5
    assert whole["recall"] == round(1 / 3, 4) and whole["calls_per_accepted"] == 5.0
    assert whole["problems_with_accepted"] == 1


def test_bad_labeled_rows_are_skipped_and_counted(tmp_path: Path):
    path = tmp_path / "labeled.jsonl"
    path.write_text(
        '{"id": "a", "prompt": "What is 1+1?", "answer": "2"}\n'
        "{broken\n"
        '{"id": "b", "prompt": "no answer"}\n'
        '{"id": "c", "prompt": " ", "answer": "3"}\n'
        '{"id": "d", "prompt": "What is 2+2?", "answer": 4}\n'
    )
    rows, bad = load_labeled(path)
    assert [r.id for r in rows] == ["a", "d"] and rows[1].answer == "4" and bad == 3
    assert [r.id for r in load_labeled(path, limit=1)[0]] == ["a"]
