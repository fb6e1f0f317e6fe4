"""Screening (generation.screen): the rest of a seed's samples are drawn only where two of its
first samples agree. Sampling logic on ScriptedBackend (a test double)."""

import itertools

import pytest

from autoimprove.backends.base import user_turn
from autoimprove.generate import _screened, agreeing_pair
from autoimprove.policy import PolicyError, parse_policy
from autoimprove.types import Completion, Sampling
from tests.scripted_backend import ScriptedBackend


def _said(*answers):
    return [Completion(f"So the answer is {a}." if a else "I am not sure.", 9, 5) for a in answers]


def test_a_pair_needs_two_equal_stated_answers():
    assert agreeing_pair(_said("12", "7", "12"))
    assert agreeing_pair(_said("1,200", "1200"))
    assert not agreeing_pair(_said("12", "7", "8"))
    assert not agreeing_pair(_said(None, None))


def test_only_seeds_whose_first_samples_agree_get_the_rest():
    counter = itertools.count()
    seeds_seen = []

    def reply(prompt, sampling):
        seeds_seen.append(sampling.seed)
        if prompt == "steady":
            return "The answer is 5."
        return f"The answer is {next(counter)}."  # every sample differs

    backend = ScriptedBackend(reply)
    sampling = Sampling(n=4, temperature=0.8, seed=7)
    out = _screened(backend, [user_turn("steady"), user_turn("erratic")], sampling, screen=2)
    assert [len(per) for per in out] == [4, 2]
    assert backend.calls == ["steady"] * 2 + ["erratic"] * 2 + ["steady"] * 2
    first, second = set(seeds_seen[:4]), set(seeds_seen[4:])
    assert first == {7} and len(second) == 1 and second != first, "a new random stream"


def test_screen_must_be_below_n(tmp_path):
    text = """
seeds: {pool: x.jsonl}
generation: {n: 4, screen: 4}
cascade: {stages: [{type: correctness, mode: pool, votes: 2}]}
registry: {model_name: t}
"""
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, folder=tmp_path)
    assert any("generation" in e and "screen" in e for e in caught.value.errors)
    ok = parse_policy(text.replace("screen: 4", "screen: 3"), folder=tmp_path)
    assert ok.generation.screen == 3
