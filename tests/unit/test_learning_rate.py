"""`training.learning_rate_budget`: the rate a round trains at, from the rows it has."""

import pytest

from autoimprove.policy import TrainingSection
from autoimprove.train import learning_rate


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (8, 1e-3),  # 1 step an epoch, 2 steps: 2e-3 / 2 = the cap itself
        (24, 1e-3),
        (25, 5e-4),  # 2 steps an epoch, 4 in all
        (60, 2e-3 / 6),  # a lineage round: 3 steps an epoch
        (0, 1e-3),  # no rows: never divide by zero, never above the cap
    ],
)
def test_the_budget_is_spread_over_the_rounds_steps(rows, expected):
    cfg = TrainingSection(
        learning_rate=1e-3, learning_rate_budget=2e-3, epochs=2, batch_size=24, grad_accum=12
    )
    assert learning_rate(cfg, rows) == pytest.approx(expected)


def test_without_a_budget_every_round_takes_the_policys_rate():
    cfg = TrainingSection(learning_rate=1e-3, epochs=2, batch_size=24, grad_accum=12)
    assert [learning_rate(cfg, rows) for rows in (1, 60, 600)] == [1e-3] * 3
