"""The stop-at-answer rule: a sequence stops once its stated answer is complete, not before."""

import pytest

from autoimprove.backends.hf import _STATED_ANSWER


@pytest.mark.parametrize(
    "tail, stops",
    [
        ("so the answer is 42.\n", True),
        ("The answer is $1,250 dollars", True),
        ("The answer is: 7\n", True),
        ("Therefore, the answer is -3. ", True),
        ("the answer is 4", False),  # 4 might become 42
        ("the answer is 1,2", False),  # mid-number
        ("the answer is 12.", False),  # 12.5 is still possible
        ("the answer is", False),
        ("3 + 4 = 7 apples.\n", False),
    ],
)
def test_stated_answer_pattern(tail, stops):
    assert bool(_STATED_ANSWER.search(tail)) is stops
