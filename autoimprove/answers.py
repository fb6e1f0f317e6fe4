"""Final-answer extraction and comparison: the one place that turns free text into an answer.

Used by the cascade (agreement mode compares the candidate's answer with independent re-solves),
by the held-out lm-eval task (pass@1 is exact match on the extracted answer) and, later, by the
test-time baselines (majority vote over extracted answers). Keeping all three on one extractor
is what makes their numbers comparable.

Order of precedence, most explicit first: the last ``\\boxed{...}``; the last "the answer is X" /
"final answer: X"; the last number in the text. Text inside ``<think>...</think>`` is ignored.
"""

from __future__ import annotations

import re

_THINK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL | re.IGNORECASE)
_NUMBER = r"-?\$?\s?\d[\d,]*(?:\.\d+)?"
_ANSWER_IS = re.compile(
    r"(?:(?:the\s+)?(?:final\s+)?answer\s+is|final\s+answer\s*[:=]|answer\s*[:=])\s*[:=]?\s*"
    r"(?:\\\(|\$)?\s*(?:\\boxed\{)?\s*(" + _NUMBER + r")",
    re.IGNORECASE,
)
_ANY_NUMBER = re.compile(_NUMBER)


def strip_think(text: str) -> str:
    """Remove ``<think>...</think>`` blocks (an unclosed one runs to the end of the text)."""
    return _THINK.sub("", text)


def _last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}``, with nested braces balanced."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i = start + len("\\boxed{")
    depth = 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j]
    return None


def normalize_number(raw: str) -> str | None:
    """Canonical string for a numeric answer: no $, commas or spaces; 12.0 -> 12; else None."""
    cleaned = raw.replace("$", "").replace(",", "").replace(" ", "").strip().rstrip(".")
    try:
        value = float(cleaned)
    except ValueError:
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    if value == int(value):
        return str(int(value))
    return f"{value:.6g}"


def extract_answer(text: str, strict: bool = False) -> str | None:
    """The final answer of a solution as a canonical string, or None if it states none.

    `strict` accepts only an explicitly stated answer (boxed or "the answer is"), never the last
    number: a solution cut off mid-way ends on whatever number it was writing (often a step
    number like "4."), and two cut-off texts agreeing on that is not self-verification.
    """
    visible = strip_think(text)
    boxed = _last_boxed(visible)
    if boxed is not None:
        numbers = _ANY_NUMBER.findall(boxed)
        if numbers:
            return normalize_number(numbers[-1])
        stripped = boxed.strip()
        return stripped or None
    stated = _ANSWER_IS.findall(visible)
    if stated:
        return normalize_number(stated[-1])
    if strict:
        return None
    numbers = _ANY_NUMBER.findall(visible)
    if numbers:
        return normalize_number(numbers[-1])
    return None


def answers_match(predicted: str | None, reference: str | None) -> bool:
    """True when both answers exist and are equal after normalization."""
    if predicted is None or reference is None:
        return False
    a = normalize_number(predicted) or predicted.strip()
    b = normalize_number(reference) or reference.strip()
    return a == b
