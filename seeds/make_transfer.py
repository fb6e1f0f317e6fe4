"""Generate the transfer check: word problems unlike the seed pool in structure and phrasing.

What it makes
    ``autoimprove/tasks/arith_heldout/arith_transfer.jsonl`` -- 480 labeled problems read by the
    lm-eval task ``autoimprove_arith_transfer`` (same loader and scorer as the held-out task),
    60 of each structure, no two the same problem (names aside).

Why it exists
    The held-out task shares the pool's 18 problem structures (only the wording family
    differs), so a gain there may be the model learning those templates. These problems use
    eight structures the pool never has (percentages, unit conversion, clock times, averages,
    working backwards, ratios, perimeter costs, comparisons of two offers) and a different
    closing instruction. A round that helps arithmetic reasoning should help here too; a round
    that only memorised the pool's shapes will not. Use it as a guard task
    (`evaluation.guard_tasks`) or as the main task of a transfer run.

Why 480
    Version 1 had 120 problems. On them the promoted model gained 7.5 points (24 won, 15 lost,
    exact McNemar p = 0.20): a paired test on 120 items cannot tell a gain that size from
    noise; four times the items could, had the rates held (they did not: on these 480 the
    same model gained 4.8 points, p = 0.050; BENCHMARKS.md). Version 2 also widens the number
    ranges so that 60 distinct problems of each structure exist with room to spare.

Run ``python seeds/make_transfer.py`` to rewrite the file (deterministic).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT_PATH = ROOT / "autoimprove" / "tasks" / "arith_heldout" / "arith_transfer.jsonl"
SIZE = 480
SEED = 20_251_126
INSTRUCTION = "Work it out, and put the final number alone on the last line."
NAMES = ["Priya", "Tomas", "Aiko", "Kwame", "Lucia", "Omar", "Greta", "Ravi", "Noor", "Felix"]
NUMBER_WORDS = {2: "two", 3: "three", 4: "four"}

Problem = tuple[str, int]


def _percent(rng: random.Random) -> Problem | None:
    price = rng.randrange(40, 400, 20)
    off = rng.choice([10, 20, 25, 30, 40, 50])
    count = rng.randint(2, 4)
    name = rng.choice(NAMES)
    text = (
        f"A lamp is priced at ${price}. During a sale its price drops by {off} percent. "
        f"{name} buys {NUMBER_WORDS[count]} of these lamps at the sale price. "
        f"What does {name} pay in dollars?"
    )
    return text, count * (price - price * off // 100)


def _units(rng: random.Random) -> Problem | None:
    each = rng.choice([125, 200, 250, 400, 500, 600, 750])
    count = rng.randint(2, 40)
    if each * count % 1000:
        return None
    text = rng.choice(
        [
            f"Each loaf of bread uses {each} grams of flour. A bakery bakes {count} loaves. "
            "How many kilograms of flour does the bakery use?",
            f"Each bottle holds {each} millilitres of juice. A cafe fills {count} bottles. "
            "How many litres of juice does the cafe use?",
            f"Each shelf board is {each} millimetres long. A carpenter lays {count} boards end "
            "to end. How many metres long is the row?",
        ]
    )
    return text, each * count // 1000


def _clock(rng: random.Random) -> Problem | None:
    start_h, start_m = rng.randint(1, 3), rng.choice([0, 10, 15, 20, 30, 45])
    length = rng.randint(70, 170)
    end = start_h * 60 + start_m + length
    if end <= 4 * 60:
        return None
    text = (
        f"A film begins at {start_h}:{start_m:02d} in the afternoon and runs for {length} minutes. "
        "How many minutes after 4:00 in the afternoon does it finish?"
    )
    return text, end - 4 * 60


def _average(rng: random.Random) -> Problem | None:
    scores = [rng.randint(60, 95) for _ in range(3)]
    target = rng.randint(75, 90)
    needed = 4 * target - sum(scores)
    if not 0 <= needed <= 100:
        return None
    name = rng.choice(NAMES)
    listed = ", ".join(str(s) for s in scores)
    text = (
        f"{name} scored {listed} on three quizzes. What score does {name} need on the fourth "
        f"quiz for the mean of all four quizzes to be exactly {target}?"
    )
    return text, needed


def _backwards(rng: random.Random) -> Problem | None:
    left = rng.randint(3, 40)
    spent = rng.randint(2, 20)
    name = rng.choice(NAMES)
    text = (
        f"{name} spent half of the money in a wallet on a book, then spent ${spent} on lunch, "
        f"and now has ${left} remaining. How many dollars were in the wallet at the start?"
    )
    return text, 2 * (left + spent)


def _ratio(rng: random.Random) -> Problem | None:
    a, b = rng.choice(
        [(1, 2), (2, 3), (3, 5), (1, 4), (3, 4), (2, 5), (1, 3), (4, 5), (3, 7), (2, 7)]
    )
    total = (a + b) * rng.randint(3, 20)
    colour, share = rng.choice([("red", a), ("green", b)])
    text = (
        f"A jar holds red and green marbles in the ratio {a} to {b}. There are {total} marbles "
        f"in the jar altogether. How many of them are {colour}?"
    )
    return text, total * share // (a + b)


def _fence(rng: random.Random) -> Problem | None:
    length, width = rng.randint(5, 30), rng.randint(3, 20)
    cost = rng.randint(2, 9)
    text = (
        f"A rectangular yard measures {length} meters by {width} meters. Fencing costs ${cost} "
        "per meter. How many dollars does it cost to fence the whole boundary?"
    )
    return text, 2 * (length + width) * cost


def _offers(rng: random.Random) -> Problem | None:
    months = rng.randint(6, 24)
    flat, monthly = rng.randint(50, 300), rng.randint(5, 30)
    other = rng.randint(10, 45)
    first, second = flat + monthly * months, other * months
    if first == second:
        return None
    text = (
        f"Gym A charges a ${flat} joining fee plus ${monthly} per month. Gym B has no joining "
        f"fee and charges ${other} per month. Over {months} months, how many dollars cheaper is "
        "the cheaper gym?"
    )
    return text, abs(first - second)


STRUCTURES: list[Callable[[random.Random], Problem | None]] = [
    _percent,
    _units,
    _clock,
    _average,
    _backwards,
    _ratio,
    _fence,
    _offers,
]


def problem_key(text: str) -> str:
    """The problem with its person's name blanked: two texts that differ only in the name are
    the same problem, and would count twice in a paired test."""
    for name in NAMES:
        text = text.replace(name, "_")
    return text


def build_transfer(n: int = SIZE, seed: int = SEED) -> list[dict[str, str]]:
    rng = random.Random(seed)
    seen: set[str] = set()
    rows: list[dict[str, str]] = []
    while len(rows) < n:
        made = STRUCTURES[len(rows) % len(STRUCTURES)](rng)
        if made is None:
            continue
        text, answer = made
        key = problem_key(text)
        if key in seen:
            continue
        seen.add(key)
        rows.append(
            {
                "id": f"arith-transfer-{len(rows) + 1:04d}",
                "question": f"{text} {INSTRUCTION}",
                "answer": str(answer),
            }
        )
    return rows


def main() -> None:
    rows = build_transfer()
    with OUT_PATH.open("w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} transfer rows to {OUT_PATH.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
