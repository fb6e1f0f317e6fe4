"""Benchmark: the cycle stage's `givens` and `operands` checks replayed on rounds that already ran.

`givens` rejects a candidate whose visible solution never uses one of the numbers the question
gives; `operands` one that does not put each of them into a written arithmetic step as often as
the question gives it. Neither makes a model call, both are deterministic, so replaying them on
recorded candidates is exact, and so is pool agreement (no call either). For every round of the
workspaces given, on the same candidates, with the service's own stage code:

- what each check does to all candidates: right ones it rejects (its cost) and wrong ones (its use);
- pool agreement v=2 (all-valid) alone and followed by each check;
- the rows the round accepted (its whole cascade) alone and followed by each check: exact too, as
  the cascade's stages are unanimous and all-valid, so a row passes them in any order.

Rounds with identical candidates and accepted rows (the same seeds, model and cascade, in
several workspaces) count once. Right/wrong is measured against the answer
`seeds/make_arith.py` recomputes for each pool seed (a measurement only; the service never sees
labels).

    python bench/givens.py WORKSPACE [WORKSPACE ...] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
from pathlib import Path

from learning import pool_answers  # bench/ is on sys.path when run as a script

from autoimprove.answers import answers_match, extract_answer
from autoimprove.artifacts import read_jsonl
from autoimprove.cascade.stages import build_stage
from autoimprove.cascade.stages.base import JudgeContext, peers_of
from autoimprove.types import Candidate


def _count(passed: list[Candidate], right: dict[tuple[str, int], bool]) -> dict:
    correct = sum(right[(c.seed_id, c.index)] for c in passed)
    return {"rows": len(passed), "correct": correct}


def replay_round(folder: Path, answers: dict[str, str]) -> dict:
    """`givens` against pool agreement and against what the round accepted, on its candidates."""
    candidates = [
        Candidate(c["seed_id"], c["index"], c["prompt"], c["text"])
        for c in read_jsonl(folder / "generate" / "candidates.jsonl")
    ]
    ctx = JudgeContext(backend=None, temperature=0.7, max_new_tokens=8)  # type: ignore[arg-type]
    ctx.peers = peers_of(candidates)
    pool = build_stage("correctness", "pool", ctx)
    uses_all, operands = (
        {
            (v.seed_id, v.candidate_index)
            for v in build_stage("cycle", mode, ctx).judge(candidates, 0)
            if v.accept
        }
        for mode in ("givens", "operands")
    )
    agreed = [
        {(v.seed_id, v.candidate_index) for v in pool.judge(candidates, wave) if v.accept}
        for wave in range(2)
    ]
    right = {
        (c.seed_id, c.index): (a := extract_answer(c.text, strict=True)) is not None
        and answers_match(a, answers[c.prompt])
        for c in candidates
    }
    took = folder / "verify" / "accepted.jsonl"
    accepted = (
        {(r["seed_id"], r["candidate_index"]) for r in read_jsonl(took)} if took.exists() else set()
    )
    pooled = set.intersection(*agreed)

    def count(*passed: set) -> dict:
        return _count(
            [c for c in candidates if all((c.seed_id, c.index) in p for p in passed)], right
        )

    return {
        "candidates": count(),
        "givens_alone": count(uses_all),
        "operands_alone": count(operands),
        "pool_v2": count(pooled),
        "pool_v2_then_givens": count(pooled, uses_all),
        "pool_v2_then_operands": count(pooled, operands),
        "accepted": count(accepted),
        "accepted_then_givens": count(accepted, uses_all),
        "accepted_then_operands": count(accepted, operands),
    }


def _champion(workspace: Path, round_id: int) -> str:
    with sqlite3.connect(workspace / "state.db") as db:
        found = db.execute("select parent_version from rounds where id = ?", (round_id,)).fetchone()
    return f"v{found[0]}" if found and found[0] else "base"


def _cell(c: dict) -> str:
    return f"{c['rows']}, {c['correct'] / c['rows']:.2f}" if c["rows"] else "0, -"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspaces", nargs="+")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    answers, seen, out = pool_answers(), set(), []
    for ws in map(Path, args.workspaces):
        for folder in sorted((ws / "rounds").iterdir()):
            made = folder / "generate" / "candidates.jsonl"
            took = folder / "verify" / "accepted.jsonl"
            if not made.exists():
                continue
            digest = hashlib.sha256(
                made.read_bytes() + (took.read_bytes() if took.exists() else b"")
            ).hexdigest()
            if digest in seen:
                continue
            seen.add(digest)
            result = replay_round(folder, answers)
            out.append({"round": f"{ws.name}/{folder.name}", **result})
            out[-1]["champion"] = _champion(ws, int(folder.name))
    print(
        "| round | model | candidates right | givens keeps: right / wrong | operands keeps: "
        "right / wrong | pool v=2 (rows, precision) | + givens | + operands | accepted "
        "| + givens | + operands |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in out:
        c, g, o = r["candidates"], r["givens_alone"], r["operands_alone"]
        wrong = c["rows"] - c["correct"]
        print(
            f"| {r['round']} | {r['champion']} | {c['correct']}/{c['rows']} "
            f"| {g['correct']}/{c['correct']} / {g['rows'] - g['correct']}/{wrong} "
            f"| {o['correct']}/{c['correct']} / {o['rows'] - o['correct']}/{wrong} "
            f"| {_cell(r['pool_v2'])} | {_cell(r['pool_v2_then_givens'])} "
            f"| {_cell(r['pool_v2_then_operands'])} "
            f"| {_cell(r['accepted'])} | {_cell(r['accepted_then_givens'])} "
            f"| {_cell(r['accepted_then_operands'])} |"
        )
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
