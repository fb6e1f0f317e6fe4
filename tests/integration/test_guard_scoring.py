"""`evaluation.guard_scoring: on_promotion` on the tiny model, through real lm-eval and the gate.

The answering model says "The answer is 5." to everything, before and after its LoRA round, so
every candidate ties its champion. Round 1 runs the default promotion test (alpha 0.05): a tie
is rejected on the main task, so its guard task is never scored. Round 2 runs with a gate that
promotes a tie: the guard task is then scored on both sides and reaches the gate."""

import sqlite3

import pytest

from autoimprove.cli import app
from tests.integration.test_round import invoke, runner, write_policy

GUARD = "autoimprove_arith_transfer"


@pytest.fixture(scope="module")
def rounds(answering_model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("guard-scoring")
    ws = folder / "ws"
    shown = []
    for promotion in ("", "min_gain: -1.0, alpha: 1.0"):
        policy = write_policy(
            folder,
            answering_model_dir,
            evaluation=f"guard_tasks: [{GUARD}], guard_scoring: on_promotion",
            promotion=promotion,
        )
        shown.append(invoke("round", "--policy", str(policy), "--workspace", str(ws)))
    return ws, shown


def scored_models(ws, round_id: int) -> set[str]:
    db = sqlite3.connect(ws / "state.db")
    query = "select distinct model from eval_items where round_id = ?"
    return {m for (m,) in db.execute(query, (round_id,))}


def test_a_candidate_that_fails_the_main_test_is_not_scored_on_guards(rounds):
    ws, (first, _) = rounds
    assert first["decision"] == "rejected"
    assert "not significant" in first["reason"]
    ev = first["eval"]
    assert ev["guards"] == {}
    assert "not significant" in ev["guards_not_scored"]
    assert scored_models(ws, first["id"]) == {"champion", "candidate"}
    result = runner.invoke(
        app, ["show", str(first["id"]), "--workspace", str(ws)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "not scored: the candidate did not pass the main test" in result.output


def test_a_candidate_that_passes_the_main_test_is_scored_on_guards_before_the_gate(rounds):
    ws, (_, second) = rounds
    assert second["decision"] == "promoted", second["reason"]
    assert "holds every guard task" in second["reason"]
    ev = second["eval"]
    assert ev.get("guards_not_scored") is None
    assert set(ev["guards"][GUARD]) == {"champion", "candidate"}
    assert ev["guards"][GUARD]["candidate"]["n"] == 8
    assert scored_models(ws, second["id"]) == {
        "champion",
        "candidate",
        f"guard/{GUARD}/champion",
        f"guard/{GUARD}/candidate",
    }
