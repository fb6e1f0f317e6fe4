"""`evaluation.early_stop`: the candidate scored in two looks, each sealed on its own.

The evaluator is a named test double (`ScriptedEvaluator`): these tests check which items are
asked for, when the second look is skipped and what is sealed, not how answers are scored (the
real lm-eval path is covered in tests/integration/test_evaluate_registry.py)."""

import json

import pytest

from autoimprove import early_stop, evaluate
from autoimprove.artifacts import atomic_dir, is_complete, read_jsonl, write_jsonl
from autoimprove.context import RoundContext, Workspace
from autoimprove.policy import Policy
from autoimprove.types import EvalResult, ModelRef

CHAMPION = [True, False, True, False, True, False, True, False]


class ScriptedEvaluator:
    """Stands in for `evaluate_model`: item i is right iff `correct[i]`; records each call."""

    def __init__(self, correct: list[bool]):
        self.correct = correct
        self.asked: list[range] = []

    def __call__(self, ref, evaluation, dtype, system_prompt, task, loaded, items):  # noqa: ANN001, ANN204
        self.asked.append(items)
        ids = tuple(f"q{i}" for i in items)
        right = tuple(self.correct[i] for i in items)
        return EvalResult(task, len(ids), sum(right) / len(ids), ids, right, ("r",) * len(ids))


def context(tmp_path) -> RoundContext:
    policy = Policy.model_validate(
        {
            "seeds": {"pool": "p.jsonl"},
            "cascade": {"stages": [{"type": "correctness", "mode": "pool", "votes": 2}]},
            "evaluation": {"limit": 8, "early_stop": 4},
            "registry": {"model_name": "m"},
        }
    )
    ctx = RoundContext(1, policy, Workspace(tmp_path), None, tmp_path, ModelRef(str(tmp_path)))  # type: ignore[arg-type]
    rows = [{"item_id": f"q{i}", "correct": c} for i, c in enumerate(CHAMPION)]
    with atomic_dir(ctx.shard_dir("evaluate", "champion")) as out:
        write_jsonl(out / "items.jsonl", rows)
        (out / "stats.json").write_text(json.dumps({"seconds": 1.0}))
    return ctx


def two_looks(ctx: RoundContext, scripted: ScriptedEvaluator, monkeypatch) -> list[dict]:
    monkeypatch.setattr(evaluate, "evaluate_model", scripted)
    spec = evaluate.Spec("candidate", "autoimprove_arith_heldout", "greedy", "candidate")
    folder = ctx.shard_dir("evaluate", "candidate")
    early_stop.candidate_in_two_looks(ctx, spec, ModelRef("m"), lambda: ("model",), folder)
    assert is_complete(folder)
    return read_jsonl(folder / "items.jsonl")


def test_a_candidate_no_better_on_the_first_look_is_not_scored_further(tmp_path, monkeypatch):
    ctx = context(tmp_path)
    # First four items: wins q1, loses q0 and q2 -> 1 won / 2 lost.
    scripted = ScriptedEvaluator([False, True, False, False] + [True] * 4)
    rows = two_looks(ctx, scripted, monkeypatch)
    assert scripted.asked == [range(0, 4)]
    assert [r["item_id"] for r in rows] == ["q0", "q1", "q2", "q3"]
    assert early_stop.stopped_early(ctx) == {"after": 4, "of": 8, "won": 1, "lost": 2}


@pytest.mark.parametrize("first", [[True, True, True, False], [True, False, True, True]])
def test_a_candidate_ahead_on_the_first_look_is_scored_on_every_item(tmp_path, monkeypatch, first):
    ctx = context(tmp_path)
    scripted = ScriptedEvaluator(first + [False] * 4)
    rows = two_looks(ctx, scripted, monkeypatch)
    assert scripted.asked == [range(0, 4), range(4, 8)]
    assert [r["item_id"] for r in rows] == [f"q{i}" for i in range(8)]
    assert [r["correct"] for r in rows] == first + [False] * 4
    assert early_stop.stopped_early(ctx) is None


def test_a_resumed_evaluation_does_not_score_a_sealed_look_again(tmp_path, monkeypatch):
    ctx = context(tmp_path)
    two_looks(ctx, ScriptedEvaluator([True] * 8), monkeypatch)
    # Killed after the first look was sealed: the rest and the combined result are lost.
    for name in ("candidate--rest", "candidate"):
        for path in sorted(ctx.shard_dir("evaluate", name).rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        ctx.shard_dir("evaluate", name).rmdir()
    again = ScriptedEvaluator([True] * 8)
    rows = two_looks(ctx, again, monkeypatch)
    assert again.asked == [range(4, 8)]
    assert len(rows) == 8
