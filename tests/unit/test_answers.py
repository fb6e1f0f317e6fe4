"""Final-answer extraction: boxed, 'the answer is', last number, think blocks ignored."""

import pytest

from autoimprove.answers import answers_match, extract_answer, normalize_number, strip_think


@pytest.mark.parametrize(
    "text, expected",
    [
        ("So the total is \\boxed{1,234}.", "1234"),
        ("\\boxed{\\frac{1}{2}} no wait \\boxed{42}", "42"),
        ("The answer is 42.", "42"),
        ("The final answer is: $12.50", "12.5"),
        ("Final answer: 7 apples. Check: 3 + 4 = 7", "7"),
        ("3 + 4 = 7, then 7 * 2 = 14 apples", "14"),
        ("<think>maybe 99</think>She has 5 left.", "5"),
        ("The answer is 8. Double-check: 2*4 = 8, and 100 other things", "8"),
        ("He owes -3 dollars", "-3"),
        ("No numbers at all.", None),
        ("<think>unclosed 12", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_strict_needs_a_stated_answer():
    truncated = "Step 3: add them.\n4. **Subtract"
    assert extract_answer(truncated) == "4"
    assert extract_answer(truncated, strict=True) is None
    assert extract_answer("so \\boxed{12}", strict=True) == "12"
    assert extract_answer("Thus the answer is 7.", strict=True) == "7"


def test_answer_is_beats_later_numbers():
    # The explicit statement wins over a number mentioned afterwards.
    assert extract_answer("The answer is 30. (That is 3 times 10.)") == "30"


def test_normalize_number():
    assert normalize_number("1,000") == "1000"
    assert normalize_number("12.0") == "12"
    assert normalize_number("$ 5") == "5"
    assert normalize_number("abc") is None


def test_answers_match():
    assert answers_match("12", "12.0")
    assert not answers_match("12", "13")
    assert not answers_match(None, "1")


def test_strip_think():
    assert strip_think("<think>a</think>b") == "b"
