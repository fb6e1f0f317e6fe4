"""The rows a round's `train` step learns from (`training.data`).

`round`: this round's accepted rows only. `since_champion`: also the rows accepted by earlier
rounds that started from the same champion and were rejected by the gate. The champion wrote and
verified those rows itself, and it has not changed since, so they are as valid as this round's;
without them a rejected round's rows are thrown away, and on a small model a round often accepts
only a handful (BENCHMARKS.md: 6, 3 and 0 rows from three 8-seed rounds). Rows accumulate until
a candidate wins; the next champion starts afresh. `lineage`: also every row behind the
champion (the `train/rows.jsonl` of the round that made it, and of that round's champion's, back
to the base model; a round from before that file existed gives its accepted rows), so with
`training.mode: fresh` a new adapter on the base learns everything that made the champion plus
what came since.

Carried rows were accepted by the cascade of their own round. When this round's cascade runs
a call-free cycle check (`givens` or `operands`), carried rows that fail it are dropped (counted as
`carried_dropped`): a policy that tightens its cascade should not train on rows the tighter
cascade would reject, and that check needs no model call to replay. The champion's own rows
are kept as they are: they are what it was made from.

`training.max_rows` caps a round's rows: its own first, then the champion's, then the carried
ones from the newest rejected rounds, so a champion that sits through many rejected rounds does
not make each round's training longer than the last; the window moves on as rounds pass.

Rounds run one at a time and the earlier ones are final before this one trains, so a resumed
`train` step reads the same set again.
"""

from __future__ import annotations

from autoimprove.artifacts import is_complete, read_jsonl
from autoimprove.cascade.stages.cycle import CALL_FREE_CHECKS
from autoimprove.context import RoundContext
from autoimprove.store import RoundState


def carried_rows(ctx: RoundContext) -> list[tuple[int, list[dict]]]:
    """Accepted rows of earlier rejected rounds on this round's champion, by round, oldest
    first."""
    found_by_round: list[tuple[int, list[dict]]] = []
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
            found_by_round.append((earlier.id, found))
    return found_by_round


def champion_rows(ctx: RoundContext) -> tuple[list[dict], list[int]]:
    """The rows behind the champion, and the rounds they come from: the rows the round that
    made it trained on, then its parent's, back to the base model (a version no round of this
    workspace made ends the walk). A `continue` round's adapter carries its parents' training,
    so the whole chain counts, whatever each round's mode was."""
    made_by = {r.model_version: r for r in ctx.store.list_rounds() if r.model_version is not None}
    rows: list[dict] = []
    rounds: list[int] = []
    version = ctx.champion.version
    while version is not None and version in made_by:
        maker = made_by.pop(version)  # popped: a broken chain cannot loop
        assert maker.id is not None
        trained = ctx.workspace.step_dir(maker.id, "train") / "rows.jsonl"
        if not trained.exists():  # a round from before train/ kept its rows
            trained = ctx.workspace.step_dir(maker.id, "verify") / "accepted.jsonl"
        rows.extend(read_jsonl(trained))
        rounds.append(maker.id)
        version = maker.parent_version
    return rows, rounds


def training_set(ctx: RoundContext, accepted: list[dict]) -> tuple[list[dict], dict]:
    """This round's rows plus, under `since_champion` and `lineage`, the carried ones and
    under `lineage` the champion's own (each (prompt, completion) once), and a summary of
    where they came from."""
    data = ctx.policy.training.data
    by_round = carried_rows(ctx) if data in ("since_champion", "lineage") else []
    carried = [row for _, group in by_round for row in group]
    sources = [rid for rid, _ in by_round]
    inherited, lineage = champion_rows(ctx) if data == "lineage" else ([], [])
    dropped = 0
    for check in [
        CALL_FREE_CHECKS[s.mode]
        for s in ctx.policy.cascade.stages
        if s.type == "cycle" and s.mode in CALL_FREE_CHECKS
    ]:
        passing = [r for r in carried if not check(r["prompt"], r["completion"])]
        dropped, carried = dropped + len(carried) - len(passing), passing
    seen: set[tuple[str, str]] = set()
    tagged: list[tuple[str, dict]] = []
    for origin, group in (("round", accepted), ("carried", carried), ("champion", inherited)):
        for row in group:
            key = (row["prompt"], row["completion"])
            if key not in seen:
                seen.add(key)
                tagged.append((origin, row))
    kept, left_out = capped(tagged, ctx.policy.training.max_rows)
    rows = [row for _, row in kept]
    taken = {origin: sum(1 for o, _ in kept if o == origin) for origin in _PRIORITY}
    if left_out:  # name only the rounds whose rows are still in
        in_use = {id(row) for origin, row in kept if origin == "carried"}
        sources = [rid for rid, group in by_round if any(id(r) in in_use for r in group)]
    summary = {
        "round_rows": len(accepted),
        "carried_rows": taken["carried"],
        "carried_from_rounds": sources,
        "carried_dropped": dropped,
    }
    if data == "lineage":
        summary |= {"champion_rows": taken["champion"], "champion_rounds": lineage}
    if ctx.policy.training.max_rows is not None:
        summary["rows_left_out"] = left_out
    return rows, summary


_PRIORITY = ("round", "champion", "carried")


def capped(tagged: list[tuple[str, dict]], cap: int | None) -> tuple[list[tuple[str, dict]], int]:
    """At most `cap` of the (origin, row) pairs, in their order, and how many were left out:
    this round's rows first, then the champion's, then the carried ones from the newest
    rounds (they come oldest round first, so the last ones are kept)."""
    if cap is None or len(tagged) <= cap:
        return tagged, 0
    ranked = sorted(
        range(len(tagged)),
        key=lambda i: (_PRIORITY.index(tagged[i][0]), -i if tagged[i][0] == "carried" else i),
    )
    chosen = sorted(ranked[:cap])
    return [tagged[i] for i in chosen], len(tagged) - cap
