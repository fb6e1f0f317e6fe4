"""Lazy vote waves + first-valid choose exactly what naive full voting chooses, for fewer votes."""

from hypothesis import given, settings
from hypothesis import strategies as st

from autoimprove.cascade.voting import StageRule, naive_accept_set, run_cascade
from autoimprove.types import Candidate, Vote


def make_candidates(seeds: int, n: int) -> list[Candidate]:
    return [Candidate(f"s{s}", j, f"q{s}", f"a{s}.{j}") for s in range(seeds) for j in range(n)]


@st.composite
def scenario(draw):
    seeds = draw(st.integers(1, 5))
    n = draw(st.integers(1, 5))
    stages = [
        StageRule(name, draw(st.integers(1, 4)), draw(st.sampled_from(["unanimous", "majority"])))
        for name in draw(
            st.lists(
                st.sampled_from(["cycle", "factuality", "correctness"]),
                min_size=1,
                max_size=3,
                unique=True,
            )
        )
    ]
    # A fixed table of vote outcomes: the same votes for lazy and naive voting.
    table = {
        (f"s{s}", j, k, w): draw(st.booleans())
        for s in range(seeds)
        for j in range(n)
        for k in range(len(stages))
        for w in range(stages[k].votes)
    }
    first_valid = draw(st.booleans())
    return make_candidates(seeds, n), stages, table, first_valid


@settings(max_examples=400, deadline=None)
@given(scenario())
def test_lazy_waves_match_naive_voting(case):
    candidates, stages, table, first_valid = case
    asked: list[tuple[str, int, int, int]] = []
    batch_sizes: list[int] = []

    def ask(stage_index, wave, batch):
        batch_sizes.append(len(batch))
        votes = []
        for c in batch:
            key = (c.seed_id, c.index, stage_index, wave)
            assert key not in asked, f"vote {key} asked twice"
            asked.append(key)
            votes.append(Vote(c.seed_id, c.index, stages[stage_index].name, wave, table[key], ""))
        return votes

    result = run_cascade(candidates, stages, ask, first_valid=first_valid)
    lazy = {(v.seed_id, v.candidate_index) for v in result.verdicts if v.accepted}
    naive, naive_votes = naive_accept_set(
        candidates, stages, lambda c, s, w: table[(c.seed_id, c.index, s, w)], first_valid
    )
    assert lazy == naive
    assert len(asked) <= naive_votes
    assert len(result.votes) == len(asked)
    if first_valid:
        assert len({seed for seed, _ in lazy}) == len(lazy), "at most one accepted per seed"


def test_waves_are_batched_across_candidates():
    candidates = make_candidates(seeds=3, n=4)
    stages = [StageRule("cycle", 1), StageRule("correctness", 3)]
    batches = []

    def ask(stage_index, wave, batch):
        batches.append((stage_index, wave, len(batch)))
        return [Vote(c.seed_id, c.index, stages[stage_index].name, wave, True, "") for c in batch]

    result = run_cascade(candidates, stages, ask, first_valid=False)
    # Everyone says yes: one batch per (stage, wave), each holding all 12 candidates.
    assert batches == [(0, 0, 12), (1, 0, 12), (1, 1, 12), (1, 2, 12)]
    assert len(result.accepted()) == 12
    assert result.entered == {"cycle": 12, "correctness": 12}


def test_unanimous_rejection_stops_asking_and_names_the_stage():
    candidates = make_candidates(seeds=1, n=2)
    stages = [StageRule("factuality", 5)]

    def ask(stage_index, wave, batch):
        return [Vote(c.seed_id, c.index, "factuality", wave, c.index == 1, "") for c in batch]

    result = run_cascade(candidates, stages, ask, first_valid=True)
    first, second = result.verdicts
    assert (first.accepted, first.rejected_at) == (False, "factuality")
    assert second.accepted
    assert sum(1 for v in result.votes if v.candidate_index == 0) == 1  # stopped after the first no


def test_first_valid_skips_later_candidates_of_an_accepted_seed():
    candidates = make_candidates(seeds=1, n=4)
    stages = [StageRule("correctness", 2)]

    def ask(stage_index, wave, batch):
        return [Vote(c.seed_id, c.index, "correctness", wave, True, "") for c in batch]

    result = run_cascade(candidates, stages, ask, first_valid=True)
    assert [v.accepted for v in result.verdicts] == [True, False, False, False]
    assert all(v.skipped for v in result.verdicts[1:])


def test_majority_rule():
    rule = StageRule("x", 3, "majority")
    assert rule.outcome(2, 0) is True
    assert rule.outcome(0, 2) is False
    assert rule.outcome(1, 1) is None
    unanimous = StageRule("x", 3)
    assert unanimous.outcome(2, 0) is None
    assert unanimous.outcome(3, 0) is True
    assert unanimous.outcome(2, 1) is False
