"""Benchmark: verifier levers replayed side by side on the same generated candidates.

Reads the candidates a round generated (`rounds/<id>/generate/candidates.jsonl`, n per seed) and
judges them again with pool agreement for every (candidates n' <= n, votes v < n', first-valid or
all-valid): a candidate passes when at least v of its seed's other n'-1 candidates (the first n'
drawn) state the same final answer, exactly as the `correctness: pool` stage decides. Pool
agreement makes no model calls, so the replay is exact and costs nothing; only generation cost
differs with n', and it is charged as the share of the round's generated tokens the first n'
candidates used, times the round's generation seconds.

Screening (`screen`): draw only the first s candidates of every seed, and the rest (up to n)
only for seeds where two of those s state the same final answer. A seed whose first samples all
disagree rarely reaches the votes pool agreement needs, so its remaining samples are mostly
wasted generation. Replayed on the same candidates: a screened-out seed costs the tokens of its
first s candidates and yields no rows (with v >= 2 and s = 2 none could pass anyway); with n = 4,
v = 2, s = 3 loses no row at all (a row needs 3 of 4 agreeing, so 2 of the first 3 must).

Precision is measured against the answer `seeds/make_arith.py` recomputes for each pool seed
(a measurement only; the service never sees labels).

    python bench/levers.py WORKSPACE [--round 1]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _grouped(candidates: list[dict]) -> tuple[dict[str, list[dict]], int, int]:
    """Candidates by seed, the fewest any seed has, and all their generated tokens."""
    by_seed: dict[str, list[dict]] = defaultdict(list)
    for c in candidates:
        by_seed[c["seed_id"]].append(c)
    n = min(len(v) for v in by_seed.values())
    return by_seed, n, sum(c["completion_tokens"] for c in candidates)


def replay(candidates: list[dict], seconds: float, answers: dict[str, str]) -> list[dict]:
    from autoimprove.answers import answers_match, extract_answer

    by_seed, n, total_tokens = _grouped(candidates)
    rows = []
    for size in sorted({4, n} if n >= 4 else {n}):
        drawn = {s: sorted(cs, key=lambda c: c["index"])[:size] for s, cs in by_seed.items()}
        tokens = sum(c["completion_tokens"] for cs in drawn.values() for c in cs)
        cost = seconds * tokens / total_tokens
        stated = {
            s: [extract_answer(c["text"], strict=True) for c in cs] for s, cs in drawn.items()
        }
        right = {
            s: [a is not None and answers_match(a, answers[cs[0]["prompt"]]) for a in stated[s]]
            for s, cs in drawn.items()
        }
        base = sum(sum(r) for r in right.values()) / sum(len(r) for r in right.values())
        for votes in range(1, size):
            for first_valid in (False, True):
                kept = correct = 0
                for s in drawn:
                    passed = [
                        i
                        for i, mine in enumerate(stated[s])
                        if mine is not None
                        and sum(
                            answers_match(mine, other)
                            for j, other in enumerate(stated[s])
                            if j != i
                        )
                        >= votes
                    ]
                    if first_valid:
                        passed = passed[:1]
                    kept += len(passed)
                    correct += sum(right[s][i] for i in passed)
                rows.append(
                    {
                        "n": size,
                        "votes": votes,
                        "first_valid": first_valid,
                        "rows": kept,
                        "precision": round(correct / kept, 3) if kept else None,
                        "correct": correct,
                        "seeds": len(drawn),
                        "base_precision": round(base, 3),
                        "generation_seconds": round(cost, 1),
                        "rows_per_generation_hour": round(kept / cost * 3600, 1),
                    }
                )
    return rows


def screen_replay(
    candidates: list[dict], seconds: float, answers: dict[str, str], votes: int = 2
) -> list[dict]:
    """Pool agreement (all-valid, `votes`) on each seed's candidates, with and without screening
    on the first s of them; generation cost charged per token of the candidates drawn."""
    from autoimprove.answers import answers_match, extract_answer

    by_seed, n, total_tokens = _grouped(candidates)
    out = []
    for screen in [n, *range(n - 1, 1, -1)]:
        tokens = kept = correct = continued = 0
        for cs in by_seed.values():
            cs = sorted(cs, key=lambda c: c["index"])[:n]
            stated = [extract_answer(c["text"], strict=True) for c in cs]
            first = stated[:screen]
            go_on = screen == n or any(
                a is not None and b is not None and answers_match(a, b)
                for i, a in enumerate(first)
                for b in first[i + 1 :]
            )
            drawn = n if go_on else screen
            continued += go_on
            tokens += sum(c["completion_tokens"] for c in cs[:drawn])
            for i in range(drawn):
                mine = stated[i]
                agree = sum(
                    mine is not None and answers_match(mine, stated[j])
                    for j in range(drawn)
                    if j != i and stated[j] is not None
                )
                if agree >= votes:
                    kept += 1
                    correct += answers_match(mine, answers[cs[i]["prompt"]])
        cost = seconds * tokens / total_tokens
        out.append(
            {
                "n": n,
                "votes": votes,
                "screen": None if screen == n else screen,
                "seeds": len(by_seed),
                "seeds_continued": continued,
                "tokens": tokens,
                "rows": kept,
                "correct": correct,
                "precision": round(correct / kept, 3) if kept else None,
                "generation_seconds": round(cost, 1),
                "rows_per_generation_hour": round(kept / cost * 3600, 1),
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace")
    parser.add_argument("--round", type=int, default=1)
    args = parser.parse_args()
    gen = Path(args.workspace) / "rounds" / f"{args.round:05d}" / "generate"
    candidates = [json.loads(x) for x in (gen / "candidates.jsonl").read_text().splitlines() if x]
    shards = sorted((gen.parent / "work" / "generate").glob("*/stats.json"))
    seconds = sum(json.loads(p.read_text())["seconds"] for p in shards)
    if not seconds:
        raise SystemExit(f"no generation timings under {gen.parent / 'work' / 'generate'}")
    from learning import pool_answers  # bench/ is on sys.path when run as a script

    rows = replay(candidates, seconds, pool_answers())
    print(
        "| n | votes | judging | rows | precision (correct/rows) "
        "| rows per hour of generation (wall, 2 cores) |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        judging = "first-valid" if r["first_valid"] else "all-valid"
        precision = f"{r['precision']} ({r['correct']}/{r['rows']})" if r["rows"] else "-"
        print(
            f"| {r['n']} | {r['votes']} | {judging} | {r['rows']} | {precision} "
            f"| {r['rows_per_generation_hour']} |"
        )
    n = min(r["n"] for r in rows)
    screened = [
        r for v in range(2, n) for r in screen_replay(candidates, seconds, pool_answers(), v)
    ]
    print()
    print(
        "| votes | screen | seeds drawn to n | tokens | rows | precision (correct/rows) "
        "| rows per hour of generation |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in screened:
        precision = f"{r['precision']} ({r['correct']}/{r['rows']})" if r["rows"] else "-"
        print(
            f"| {r['votes']} | {r['screen'] or 'none'} | {r['seeds_continued']} of {r['seeds']} "
            f"| {r['tokens']} | {r['rows']} | {precision} | {r['rows_per_generation_hour']} |"
        )
    print(json.dumps({"seconds": seconds, "rows": rows, "screen": screened}))


if __name__ == "__main__":
    main()
