"""A round under `evaluation.early_stop` on the tiny model, through real lm-eval and the gate.

The answering model says "The answer is 5." to everything, before and after its LoRA round, so
the candidate ties the champion on the first look (0 won, 0 lost) and is not scored further."""

import sqlite3

import pytest

from autoimprove.cli import app
from tests.integration.test_round import invoke, runner, write_policy


@pytest.fixture(scope="module")
def stopped(answering_model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("early")
    policy = write_policy(
        folder,
        answering_model_dir,
        evaluation="early_stop: 4, guard_tasks: [autoimprove_arith_transfer]",
        promotion="min_gain: -1.0, alpha: 1.0",  # would promote a tie on all items
    )
    ws = folder / "ws"
    return ws, invoke("round", "--policy", str(policy), "--workspace", str(ws))


def test_a_candidate_level_on_the_first_look_is_rejected_unscored_beyond_it(stopped):
    ws, shown = stopped
    ev = shown["eval"]
    assert ev["stopped_early"] == {"after": 4, "of": 8, "won": 0, "lost": 0}
    assert ev["champion"]["n"] == 8 and ev["candidate"]["n"] == 4
    assert shown["decision"] == "rejected"
    assert "early_stop" in shown["reason"] and "on 4 items" in shown["reason"]
    # The champion's guard task is scored (and cached for the next round); the candidate's not.
    assert set(ev["guards"]["autoimprove_arith_transfer"]) == {"champion"}
    db = sqlite3.connect(ws / "state.db")
    counts = dict(db.execute("select model, count(*) from eval_items group by model"))
    assert counts["candidate"] == 4 and counts["champion"] == 8


def test_show_says_where_the_evaluation_stopped(stopped):
    ws, shown = stopped
    show = ["show", str(shown["id"]), "--workspace", str(ws)]
    result = runner.invoke(app, show, env={"COLUMNS": "200"})  # one table row per line
    assert result.exit_code == 0, result.output
    assert "after 4 of 8 items: 0 won / 0 lost" in result.output
    assert "not scored (stopped early)" in result.output
