"""UQ-TTC's selection rule and costs, on ScriptedBackend (a test double), and the maj@k filter."""

from collections import defaultdict

from autoimprove.policy import Policy
from autoimprove.ttc import FinalAnswerFilter, answer, select
from autoimprove.types import Candidate, Verdict
from tests.scripted_backend import ScriptedBackend


def cands(*texts):
    return [Candidate("q", i, "p", t) for i, t in enumerate(texts)]


def test_select_takes_the_lowest_accepted_candidate_else_the_fallback():
    c = cands("The answer is 3.", "The answer is 4.", "The answer is 4.")
    verdicts = [Verdict("q", 2, True), Verdict("q", 1, True), Verdict("q", 0, False, "correctness")]
    assert select(c, verdicts, "first") == 1
    rejected = [Verdict("q", i, False, "correctness") for i in range(3)]
    assert select(c, rejected, "first") == 0
    assert select(c, rejected, "majority") == 1  # the first sample carrying the majority answer
    assert select(cands("no answer", "none"), [], "majority") == 0


def policy():
    return Policy.model_validate(
        {
            "seeds": {"pool": "unused.jsonl"},
            "generation": {"n": 2, "temperature": 0.8},
            "cascade": {"stages": [{"type": "correctness", "mode": "agreement", "votes": 2}]},
            "registry": {"model_name": "t"},
        }
    )


def test_answer_returns_the_verified_candidate_and_counts_every_call():
    # Per question, call k of the same prompt: samples first (2), then the judge's re-solves.
    script = {
        "What is 2+3?": [
            "The answer is 6.",
            "The answer is 5.",
            "The answer is 5.",
            "The answer is 5.",
        ],
        "What is 4+4?": [
            "The answer is 9.",
            "The answer is 9.",
            "The answer is 8.",
            "The answer is 8.",
        ],
    }
    seen = defaultdict(int)

    def reply(prompt, sampling):
        seen[prompt] += 1
        return script[prompt][seen[prompt] - 1]

    backend = ScriptedBackend(reply)
    first, second = answer(backend, list(script), policy(), n=2, fallback="first")
    # 2+3: sample 0 (6) loses to the re-solve (5), sample 1 (5) survives both votes.
    assert first.text == "The answer is 5." and first.accepted and first.chosen_index == 1
    assert first.calls == 2 + 2  # two samples + two shared re-solves
    # 4+4: both samples say 9, the re-solve says 8: nothing passes, the first sample answers.
    assert second.text == "The answer is 9." and not second.accepted and second.chosen_index == 0
    assert second.calls == 2 + 1  # the first re-solve already rejects both
    assert len(backend.calls) == first.calls + second.calls


def test_final_answer_filter_feeds_majority_vote_answers_not_texts():
    resps = [["so it is 12", "The answer is 12.", "I get 13"], ["no idea"]]
    assert FinalAnswerFilter().apply(resps, [{}, {}]) == [["12", "12", "13"], [""]]
