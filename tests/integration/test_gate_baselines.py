"""The gate's comparison on the tiny model through real lm-eval: candidate, champion, maj@k and
UQ-TTC on the same items, a guard task, the champion cache across rounds, and `show --json`."""

import json
import sqlite3

import pytest

from autoimprove.cli import app
from tests.integration.test_round import invoke, runner, write_policy


@pytest.fixture(scope="module")
def compared(answering_model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("baselines")
    policy = write_policy(
        folder,
        answering_model_dir,
        evaluation="baselines: {maj_at_k: 3, uq_ttc: 2}, guard_tasks: [autoimprove_arith_heldout]",
        promotion="require_beat: uq_ttc",
    )
    ws = folder / "ws"
    first = invoke("round", "--policy", str(policy), "--workspace", str(ws))
    second = invoke("round", "--policy", str(policy), "--workspace", str(ws))
    return ws, first, second


def test_all_four_are_scored_on_the_same_items_with_intervals_and_costs(compared):
    ws, first, _ = compared
    ev = first["eval"]
    for name in ("candidate", "champion", "maj_at_k", "uq_ttc"):
        result = ev[name]
        assert result["n"] == 8, name
        low, high = result["ci95"]
        assert 0 <= low <= result["pass_at_1"] <= high <= 1, name
    assert ev["candidate"]["calls_per_question"] == ev["champion"]["calls_per_question"] == 1
    assert ev["maj_at_k"]["calls_per_question"] == 3
    # UQ-TTC: 2 samples plus at least one judge re-solve per question.
    assert ev["uq_ttc"]["calls_per_question"] >= 3
    assert ev["uq_ttc"]["tokens_per_question"] > ev["champion"]["tokens_per_question"] > 0
    assert 0 <= ev["p_value"] <= 1
    gate = json.loads(
        sqlite3.connect(ws / "state.db")
        .execute("select summary_json from rounds where id = 1")
        .fetchone()[0]
    )["gate"]
    assert gate["baselines"] == {
        "maj_at_k": ev["maj_at_k"]["pass_at_1"],
        "uq_ttc": ev["uq_ttc"]["pass_at_1"],
    }
    assert gate["required_beat"] == "uq_ttc"
    assert set(gate["guards"]) == {"autoimprove_arith_heldout"}

    db = sqlite3.connect(ws / "state.db")
    rows = db.execute(
        "select model, item_id, response from eval_items where round_id = 1"
    ).fetchall()
    by_model: dict[str, list] = {}
    for model, item, response in rows:
        by_model.setdefault(model, []).append((item, response))
    ids = {m: sorted(i for i, _ in v) for m, v in by_model.items()}
    assert set(ids) == {
        "candidate",
        "champion",
        "maj_at_k",
        "uq_ttc",
        "guard/autoimprove_arith_heldout/champion",
        "guard/autoimprove_arith_heldout/candidate",
    }
    assert all(v == ids["champion"] for v in ids.values()), "every model saw the same items"
    # maj@k's filtered response is the majority *final answer*, not a whole solution.
    assert all(len(r.split()) <= 1 for _, r in by_model["maj_at_k"])


def test_the_champion_is_evaluated_once_while_it_stays_champion(compared):
    ws, first, second = compared
    ev1, ev2 = first["eval"], second["eval"]
    champion_side = ("champion", "maj_at_k", "uq_ttc")
    if first["decision"] == "promoted":  # a new champion: nothing may come from the cache
        assert not any(ev2[n]["cached"] for n in champion_side)
        return
    for name in champion_side:
        assert ev2[name]["cached"] and not ev1[name]["cached"], name
        assert ev2[name]["pass_at_1"] == ev1[name]["pass_at_1"]
    assert not ev2["candidate"]["cached"]
    # The guard here is the main task itself, so even round 1 reused the champion's result.
    guard1 = ev1["guards"]["autoimprove_arith_heldout"]["champion"]
    assert guard1["cached"] and ev1["seconds_saved_by_cache"] == guard1["seconds"]
    assert ev2["guards"]["autoimprove_arith_heldout"]["champion"]["cached"]
    assert ev2["seconds_saved_by_cache"] > ev1["seconds_saved_by_cache"]
    cache = ws / "cache" / "evals"
    assert len([p for p in cache.iterdir() if not p.name.startswith(".")]) == 3


def test_show_renders_the_comparison(compared):
    ws, *_ = compared
    result = runner.invoke(
        app, ["show", "1", "--workspace", str(ws)], env={"COLUMNS": "250"}, catch_exceptions=False
    )
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for name in ("candidate", "champion", "maj_at_k", "uq_ttc"):
        assert f"pass@1 {name}" in text
    assert "3 calls/question" in text and "paired test p" in text
    assert "guard autoimprove_arith_heldout" in text
