"""Vote scheduling and counting for the cascade: pure logic, no I/O.

`run_cascade` asks for votes in *waves*: one vote for every live candidate at its current stage,
batched across all candidates, then drops candidates whose outcome is already decided (under the
unanimous rule, the first no). A seed whose candidate k is accepted stops judging its candidates
with index > k (first-valid): they can no longer be the seed's first accepted one. Lower-index
candidates keep going, so the accepted candidate per seed is exactly the one that naive voting
(every vote, every candidate, every stage) followed by "first accepted per seed" would choose,
provided the votes themselves are the same. `naive_accept_set` computes that reference and is
used by the property test and the naive-cost benchmark.

The caller supplies `ask(stage_index, wave, candidates) -> list[Vote]`; it is called with a batch
of candidates that all need vote number `wave` at stage `stage_index`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from autoimprove.types import Candidate, Verdict, Vote

AskFn = Callable[[int, int, list[Candidate]], list[Vote]]


@dataclass(frozen=True)
class StageRule:
    """How many votes a stage takes and how they combine."""

    name: str
    votes: int
    rule: str = "unanimous"  # "unanimous" | "majority"

    def outcome(self, yes: int, no: int) -> bool | None:
        """True/False once the stage's result is certain from the votes so far, else None."""
        if self.rule == "unanimous":
            if no > 0:
                return False
            return True if yes >= self.votes else None
        needed = self.votes // 2 + 1  # strictly more than half
        if yes >= needed:
            return True
        if no > self.votes - needed:
            return False
        return None


@dataclass
class CascadeResult:
    """Verdicts per candidate, every vote asked, and survivors counted per stage."""

    verdicts: list[Verdict]
    votes: list[Vote]
    entered: dict[str, int] = field(default_factory=dict)
    passed: dict[str, int] = field(default_factory=dict)

    def accepted(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.accepted]


def _key(c: Candidate) -> tuple[str, int]:
    return (c.seed_id, c.index)


def run_cascade(
    candidates: Sequence[Candidate],
    stages: Sequence[StageRule],
    ask: AskFn,
    first_valid: bool = True,
) -> CascadeResult:
    """Judge candidates through `stages` in lazy vote waves; see the module docstring."""
    stage_at: dict[tuple[str, int], int] = {_key(c): 0 for c in candidates}
    tally: dict[tuple[str, int], list[int]] = {_key(c): [0, 0] for c in candidates}
    passed_stages: dict[tuple[str, int], list[str]] = {_key(c): [] for c in candidates}
    final: dict[tuple[str, int], Verdict] = {}
    best_accepted: dict[str, int] = {}
    entered = {s.name: 0 for s in stages}
    passed = {s.name: 0 for s in stages}
    all_votes: list[Vote] = []
    by_key = {_key(c): c for c in candidates}
    if len(by_key) != len(candidates):
        raise ValueError("candidates must have unique (seed_id, index) pairs")
    entered[stages[0].name] = len(candidates)

    def live() -> list[Candidate]:
        return [c for c in candidates if _key(c) not in final]

    def skip_superseded() -> None:
        if not first_valid:
            return
        for c in live():
            best = best_accepted.get(c.seed_id)
            if best is not None and c.index > best:
                final[_key(c)] = Verdict(
                    c.seed_id,
                    c.index,
                    accepted=False,
                    skipped=True,
                    stages_passed=tuple(passed_stages[_key(c)]),
                )

    while pending := live():
        # Group live candidates by (stage, next vote number) so each ask() is one batch.
        groups: dict[tuple[int, int], list[Candidate]] = {}
        for c in pending:
            s = stage_at[_key(c)]
            yes, no = tally[_key(c)]
            groups.setdefault((s, yes + no), []).append(c)
        for (s, wave), batch in sorted(groups.items()):
            votes = ask(s, wave, batch)
            if len(votes) != len(batch):
                raise ValueError(
                    f"stage {stages[s].name}: asked {len(batch)} votes, got {len(votes)}"
                )
            all_votes.extend(votes)
            for c, vote in zip(batch, votes, strict=True):
                k = _key(c)
                tally[k][0 if vote.accept else 1] += 1
                decided = stages[s].outcome(*tally[k])
                if decided is None:
                    continue
                if not decided:
                    final[k] = Verdict(
                        c.seed_id,
                        c.index,
                        accepted=False,
                        rejected_at=stages[s].name,
                        stages_passed=tuple(passed_stages[k]),
                    )
                    continue
                passed[stages[s].name] += 1
                passed_stages[k].append(stages[s].name)
                tally[k] = [0, 0]
                if s + 1 < len(stages):
                    stage_at[k] = s + 1
                    entered[stages[s + 1].name] += 1
                else:
                    final[k] = Verdict(
                        c.seed_id, c.index, accepted=True, stages_passed=tuple(passed_stages[k])
                    )
                    best = best_accepted.get(c.seed_id)
                    if best is None or c.index < best:
                        best_accepted[c.seed_id] = c.index
        skip_superseded()

    verdicts = [final[_key(c)] for c in candidates]
    if first_valid:
        # A candidate accepted before a lower-index sibling was accepted is superseded too.
        verdicts = [
            v
            if not v.accepted or best_accepted[v.seed_id] == v.candidate_index
            else Verdict(
                v.seed_id, v.candidate_index, False, skipped=True, stages_passed=v.stages_passed
            )
            for v in verdicts
        ]
    return CascadeResult(verdicts=verdicts, votes=all_votes, entered=entered, passed=passed)


def naive_accept_set(
    candidates: Sequence[Candidate],
    stages: Sequence[StageRule],
    vote_of: Callable[[Candidate, int, int], bool],
    first_valid: bool = True,
) -> tuple[set[tuple[str, int]], int]:
    """Reference: every vote for every candidate at every stage, then count.

    Returns the accepted (seed_id, index) set and the number of votes naive voting asks for.
    `vote_of(candidate, stage_index, wave)` must be the same function lazy voting sees.
    """
    accepted: set[tuple[str, int]] = set()
    for c in candidates:
        ok = True
        for s, rule in enumerate(stages):
            yes = sum(vote_of(c, s, w) for w in range(rule.votes))
            if not rule.outcome(yes, rule.votes - yes):
                ok = False
        if ok:
            accepted.add(_key(c))
    asked = sum(rule.votes for rule in stages) * len(candidates)
    if first_valid:
        first: dict[str, int] = {}
        for seed_id, index in accepted:
            first[seed_id] = min(index, first.get(seed_id, index))
        accepted = set(first.items())
    return accepted, asked
