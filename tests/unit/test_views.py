"""`show N`'s table: where a round's training rows came from."""

import json

from rich.console import Console

from autoimprove.store import RoundRow
from autoimprove.views import round_detail, summary_table


def shown(train: dict) -> str:
    summary = {
        "generate": {"seeds": 16, "candidates": 64},
        "verify": {"funnel": {"candidates": 64, "accepted": 19}, "judge_calls": 30},
        "train": {"loss_first": 0.157, "loss_last": 0.106, **train},
    }
    row = RoundRow(
        id=4,
        state="REJECTED",
        policy_hash="h",
        policy_json="{}",
        parent_version="1",
        summary_json=json.dumps(summary),
    )
    console = Console(width=200, record=True)
    console.print(summary_table(round_detail(row)))
    return console.export_text()


def test_lineage_rows_are_shown_with_the_rounds_they_come_from():
    text = shown(
        {
            "train_rows": 57,
            "carried_rows": 30,
            "carried_from_rounds": [2, 3],
            "carried_dropped": 2,
            "champion_rows": 8,
            "champion_rounds": [1],
            "rows_left_out": 4,
        }
    )
    assert (
        "57 (30 carried from rejected round(s) 2, 3; 2 carried rows dropped by the cycle check; "
        "8 behind the champion, round(s) 1; 4 left out by training.max_rows)"
    ) in text


def test_a_round_trained_on_its_own_rows_shows_no_origin_line():
    text = shown({"train_rows": 19, "carried_rows": 0, "carried_from_rounds": []})
    assert "training rows" not in text and "0.157 → 0.106" in text
    assert "training steps" not in text  # rounds from before the rate was recorded


def test_the_rate_a_round_trained_at_is_shown_with_its_steps():
    text = shown({"train_rows": 60, "train_steps": 6, "learning_rate": 2e-3 / 6})
    assert "training steps × rate" in text and "6 × 0.00033" in text
