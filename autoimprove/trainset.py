"""The rows a round's `train` step learns from (`training.data`).

`round`: this round's accepted rows only. `since_champion`: also the rows accepted by earlier
rounds that started from the same champion and were rejected by the gate. The champion wrote and
verified those rows itself, and it has not changed since, so they are as valid as this round's;
without them a rejected round's rows are thrown away, and on a small model a round often accepts
only a handful (BENCHMARKS.md: 6, 3 and 0 rows from three 8-seed rounds). Rows accumulate until
a candidate wins; the next champion starts afresh.

Rounds run one at a time and the earlier ones are final before this one trains, so a resumed
`train` step reads the same set again.
"""

from __future__ import annotations

from autoimprove.artifacts import is_complete, read_jsonl
from autoimprove.context import RoundContext
from autoimprove.store import RoundState


def carried_rows(ctx: RoundContext) -> tuple[list[dict], list[int]]:
    """Accepted rows of earlier rejected rounds on this round's champion, and those rounds' ids."""
    rows: list[dict] = []
    sources: list[int] = []
    for earlier in sorted(ctx.store.list_rounds(), key=lambda r: r.id or 0):
        assert earlier.id is not None
        if (
            earlier.id >= ctx.round_id
            or earlier.state != RoundState.REJECTED
            or earlier.parent_version != ctx.champion.version
        ):
            continue
        folder = ctx.workspace.step_dir(earlier.id, "verify")
        if not is_complete(folder):
            continue
        found = read_jsonl(folder / "accepted.jsonl")
        if found:
            rows.extend(found)
            sources.append(earlier.id)
    return rows, sources


def training_set(ctx: RoundContext, accepted: list[dict]) -> tuple[list[dict], dict]:
    """This round's rows plus, under `since_champion`, the carried ones (each (prompt,
    completion) once), and a summary of where they came from."""
    carried, sources = (
        carried_rows(ctx) if ctx.policy.training.data == "since_champion" else ([], [])
    )
    seen: set[tuple[str, str]] = set()
    rows: list[dict] = []
    taken = 0
    for origin, group in (("round", accepted), ("carried", carried)):
        for row in group:
            key = (row["prompt"], row["completion"])
            if key not in seen:
                seen.add(key)
                rows.append(row)
                taken += origin == "carried"
    return rows, {
        "round_rows": len(accepted),
        "carried_rows": taken,
        "carried_from_rounds": sources,
    }
