"""Cascade stages judged by ScriptedBackend (a test double): parsing, modes, shared re-solves."""

import re

import pytest

from autoimprove.cascade.stages import build_stage
from autoimprove.cascade.stages.base import JudgeContext, parse_verdict
from autoimprove.cascade.stages.cycle import numbers_in
from autoimprove.cascade.voting import StageRule, run_cascade
from autoimprove.types import Candidate
from tests.scripted_backend import ScriptedBackend


@pytest.mark.parametrize(
    "text, expected",
    [
        ("looks fine [[Y]]", True),
        ("[[Y]] at first... actually [[N]]", False),
        ("[[n]]", False),
        ("<think>[[N]]</think> verdict: [[Y]]", True),
        ("<think>[[Y]]</think> no verdict", None),
        ("Yes", None),
    ],
)
def test_parse_verdict_takes_last_outside_think(text, expected):
    assert parse_verdict(text) is expected


def ctx(backend):
    return JudgeContext(backend=backend, temperature=0.7, max_new_tokens=64)


def test_verdict_mode_unparseable_is_a_no():
    backend = ScriptedBackend(lambda prompt, s: "I think it is fine.")
    stage = build_stage("factuality", "verdict", ctx(backend))
    votes = stage.judge([Candidate("s", 0, "q", "a")], wave=0)
    assert [v.accept for v in votes] == [False]


def test_cycle_verdict_is_two_calls_per_vote():
    def reply(prompt, sampling):
        return "What is 2+2?" if "Reconstruct" in prompt else "same problem [[Y]]"

    backend = ScriptedBackend(reply)
    stage = build_stage("cycle", "verdict", ctx(backend))
    votes = stage.judge([Candidate("s", 0, "What is 2+2?", "4"), Candidate("t", 0, "q", "b")], 0)
    assert all(v.accept and v.calls == 2 for v in votes)
    assert len(backend.calls) == 4


def test_cycle_quantities_needs_every_original_number():
    def reply(prompt, sampling):
        # The reconstruction keeps 3 and 1,200 but drops 7 when the solution forgot it.
        return "Tom buys 3 pens at 1,200 each." if "forgot" in prompt else "3 pens, 7 pencils, 1200"

    backend = ScriptedBackend(reply)
    stage = build_stage("cycle", "quantities", ctx(backend))
    prompt = "Tom buys 3 pens and 7 pencils; pens cost 1,200. Total?"
    ok, bad = stage.judge(
        [Candidate("s", 0, prompt, "uses all"), Candidate("s", 1, prompt, "forgot one")], 0
    )
    assert ok.accept and ok.calls == 1
    assert not bad.accept and "missing quantities: ['7']" in bad.text
    assert numbers_in("1,200 and 3.50") == {"1200", "3.5"}


def test_cycle_givens_rejects_a_solution_that_drops_a_number_without_a_call():
    backend = ScriptedBackend(lambda prompt, s: pytest.fail("givens must not call the model"))
    stage = build_stage("cycle", "givens", ctx(backend))
    prompt = "Xavier has $50, earns 98 and spends 140. How much now? Think it through."
    used_all = "50 + 98 = 148, 148 - 140 = 8. The answer is 8."
    dropped = "<think>50 dollars</think>140 - 98 = 42. The answer is 42."
    ok, bad = stage.judge(
        [Candidate("s", 0, prompt, used_all), Candidate("s", 1, prompt, dropped)], 0
    )
    assert ok.accept and (ok.calls, ok.tokens) == (0, 0)
    # A number only inside a think block does not count: judges see the visible solution.
    assert not bad.accept and "unused quantities: ['50']" in bad.text
    assert stage.calls_per_vote == 0 and backend.calls == []


def test_cycle_operands_needs_every_given_number_next_to_a_written_operation():
    """The two shapes of a confident mistake that `givens` let through in a measured round:
    a given number restated in prose (or equal to a step's result) but left out of the sums,
    and one of two equal quantities used once."""
    backend = ScriptedBackend(lambda prompt, s: pytest.fail("operands must not call the model"))
    stage = build_stage("cycle", "operands", ctx(backend))
    school = "4 classes of 18 students; 12 are absent. Groups of 6: how many groups?"
    right = (
        "4 \\times 18 = 72 students, 72 - 12 = 60 come, "
        "\\frac{60 \\text{ students}}{6 \\text{ per group}} = 10. The answer is 10."
    )
    restated = "12 students are absent. 4 \\times 18 = 72, 72 \\div 6 = 12. The answer is 12."
    honey = "Batches of 13 take 5 spoons each. For 26 scones she has 5 spoons. How many to buy?"
    once = "26 / 13 = 2 batches, 2 * 5 = 10 spoons. The answer is 10."
    twice = "26 / 13 = 2 batches, 2 * 5 = 10 spoons, 10 - 5 = 5. The answer is 5."
    no_steps = "She needs two batches, so ten spoons; with 5 already, 5 more. The answer is 5."
    votes = stage.judge(
        [
            Candidate("a", 0, school, right),
            Candidate("a", 1, school, restated),
            Candidate("b", 0, honey, once),
            Candidate("b", 1, honey, twice),
            Candidate("b", 2, honey, no_steps),
        ],
        0,
    )
    assert [v.accept for v in votes] == [True, False, False, True, False]
    assert "unused quantities: ['12']" in votes[1].text
    assert "unused quantities: ['5']" in votes[2].text
    # No written operation: checked as `givens` (13 and 26 are never mentioned).
    assert "unused quantities: ['13', '26']" in votes[4].text
    assert all((v.calls, v.tokens) == (0, 0) for v in votes) and backend.calls == []
    # The same solutions under `givens`: only the one without steps fails.
    givens = build_stage("cycle", "givens", ctx(backend))
    plain = givens.judge([Candidate("a", 1, school, restated), Candidate("b", 0, honey, once)], 0)
    assert all(v.accept for v in plain)


def test_agreement_shares_resolves_per_seed_and_wave():
    answers = {"qA": "The answer is 10.", "qB": "The answer is 5."}
    backend = ScriptedBackend(lambda prompt, s: answers[prompt])
    stage = build_stage("correctness", "agreement", ctx(backend))
    batch = [
        Candidate("A", 0, "qA", "so the answer is 10"),
        Candidate("A", 1, "qA", "so the answer is 11"),
        Candidate("B", 0, "qB", "the answer is 5"),
    ]
    votes = stage.judge(batch, wave=0)
    assert [v.accept for v in votes] == [True, False, True]
    assert len(backend.calls) == 2, "one re-solve per seed, shared by its candidates"
    assert [v.calls for v in votes] == [1, 0, 1]
    stage.judge(batch[:1], wave=0)
    assert len(backend.calls) == 2, "a wave's re-solve is drawn once"
    stage.judge(batch[:1], wave=1)
    assert len(backend.calls) == 3


def test_agreement_rejects_cut_off_texts_that_end_on_the_same_number():
    # Both texts were cut off at a list item "4."; that is not an answer, so no agreement.
    backend = ScriptedBackend(lambda prompt, s: "First add.\n4. Then")
    stage = build_stage("correctness", "agreement", ctx(backend))
    (vote,) = stage.judge([Candidate("A", 0, "qA", "Start.\n4. Then")], wave=0)
    assert not vote.accept


def test_cascade_with_agreement_filters_wrong_answers():
    # Re-solves always say 10; candidates answering 10 pass 3 unanimous votes, others stop at 1.
    backend = ScriptedBackend(lambda prompt, s: "Thus the answer is 10.")
    stage = build_stage("correctness", "agreement", ctx(backend))
    candidates = [Candidate("A", j, "qA", f"answer is {a}") for j, a in enumerate([9, 10, 10])]
    result = run_cascade(
        candidates, [StageRule("correctness", 3)], lambda s, w, b: stage.judge(b, w)
    )
    assert [(v.accepted, v.skipped, v.rejected_at) for v in result.verdicts] == [
        (False, False, "correctness"),
        (True, False, None),
        (False, True, None),
    ]
    assert len(backend.calls) == 3  # 3 re-solves for the one seed, nothing per candidate


def test_unknown_stage_names_known_ones():
    with pytest.raises(KeyError, match=re.escape("known: correctness, cycle, factuality")):
        build_stage("vibes", "verdict", ctx(ScriptedBackend(lambda p, s: "")))


def test_pool_mode_uses_the_seeds_other_candidates_and_no_calls():
    from autoimprove.cascade.stages.base import peers_of

    backend = ScriptedBackend(lambda prompt, s: pytest.fail("pool mode must not call the model"))
    batch = [
        Candidate("A", 0, "qA", "so the answer is 10"),
        Candidate("A", 1, "qA", "The answer is 10."),
        Candidate("A", 2, "qA", "the answer is 11"),
        Candidate("A", 3, "qA", "The answer is 10"),
        Candidate("B", 0, "qB", "the answer is 5"),
        Candidate("B", 1, "qB", "no stated answer, maybe 5"),
    ]
    context = JudgeContext(
        backend=backend, temperature=0.7, max_new_tokens=8, peers=peers_of(batch)
    )
    stage = build_stage("correctness", "pool", context)
    result = run_cascade(
        batch, [StageRule("correctness", 2)], lambda s, w, b: stage.judge(b, w), first_valid=False
    )
    accepted = {(v.seed_id, v.candidate_index) for v in result.verdicts if v.accepted}
    # Each "10" has two agreeing peers; "11" has none; B's peers never state an answer.
    assert accepted == {("A", 0), ("A", 1), ("A", 3)}
    assert all(v.calls == 0 for v in result.votes) and backend.calls == []
    three = run_cascade(
        batch, [StageRule("correctness", 3)], lambda s, w, b: stage.judge(b, w), first_valid=False
    )
    assert not any(v.accepted for v in three.verdicts), "no answer has three agreeing peers"


@pytest.mark.parametrize(
    "solution, steps",
    [
        (r"21 \text{ plants} - 2 \text{ plants die} = 20 \text{ plants}", [("21 - 2", "20")]),
        (r"\[ 3 \times 7 = 21 \]  and  \(\frac{54}{2} = 27\)", [("3 * 7", "21"), ("54 / 2", "27")]),
        (
            "27 + 36 + 18 = 71 seats; 1,200 / 4 = 300.",
            [("27 + 36 + 18", "71"), ("1200 / 4", "300")],
        ),
        ("20 × 8 = 160, so 12 - 40 = -28", [("20 * 8", "160"), ("12 - 40", "-28")]),
        ("so 2x + 3 = 7, then (54 - 29) / 5 = 5", []),
    ],
)
def test_written_steps_are_found_in_plain_latex_and_unicode(solution, steps):
    from autoimprove.cascade.stages.factuality import written_steps

    assert written_steps(solution) == steps


def test_factuality_steps_rejects_a_step_the_model_recomputes_differently():
    def reply(prompt, sampling):
        assert sampling.temperature == 0.0, "steps are recomputed greedily"
        a, op, b = re.search(r"Compute (\S+) (\S) (\S+)\.", prompt).groups()
        if (a, op, b) == ("48", "+", "22"):
            return "The answer is 60."  # a slip the real model makes one way round only
        return f"The answer is {eval(a + op + b):g}."  # otherwise it knows binary arithmetic

    backend = ScriptedBackend(reply)
    stage = build_stage("factuality", "steps", ctx(backend))
    right = Candidate("s", 0, "q", "3 rows of 7: 3 * 7 = 21. 21 - 2 = 19. The answer is 19.")
    slip = Candidate("s", 1, "q", "3 rows of 7: 3 * 7 = 21. 21 - 2 = 20. The answer is 20.")
    prose = Candidate("t", 0, "q", "Nineteen plants are left. The answer is 19.")
    chain = Candidate("u", 0, "q", "27 + 36 + 18 = 81 seats, and 2 + 3 * 4 = 20. So 81.")
    doubt = Candidate("v", 0, "q", "48 + 22 = 70 apples. The answer is 70.")
    votes = stage.judge([right, slip, prose, chain, doubt], wave=0)
    assert [v.accept for v in votes] == [True, False, True, True, True]
    assert "21 - 2 = 20: model says 19 (X)" in votes[1].text
    assert "2 + 3 * 4 = 20: mixed operations, not checked" in votes[3].text
    assert "48 + 22 = 70: model says 60 / 70" in votes[4].text
    # Each question once for all candidates; a chain one operation at a time on the model's own
    # intermediate result (27 + 36, then 63 + 18); a last + or * also the other way round.
    asked = {re.search(r"Compute (.+?)\. Finish", c).group(1) for c in backend.calls}
    assert len(backend.calls) == len(asked)
    assert asked == {
        "3 * 7",
        "7 * 3",
        "21 - 2",
        "27 + 36",
        "63 + 18",
        "18 + 63",
        "48 + 22",
        "22 + 48",
    }
    assert [v.calls for v in votes] == [3, 0, 0, 3, 2]


def test_factuality_steps_charges_a_shared_question_once():
    backend = ScriptedBackend(
        lambda prompt, s: "The answer is {:g}.".format(
            eval(re.search(r"Compute (.+?)\. Finish", prompt).group(1))
        )
    )
    stage = build_stage("factuality", "steps", ctx(backend))
    alone = Candidate("s", 0, "q", "48 + 22 = 70. The answer is 70.")
    chain = Candidate("t", 0, "q", "48 + 22 + 5 = 75. The answer is 75.")
    votes = stage.judge([alone, chain], wave=0)
    assert all(v.accept for v in votes)
    # Asked: 48 + 22, 22 + 48 (alone's last +), 70 + 5 and 5 + 70 (the chain's).
    assert len(backend.calls) == 4
    assert sum(v.calls for v in votes) == 4 and [v.calls for v in votes] == [2, 2]


def test_the_policy_names_every_call_free_cycle_check():
    """The policy's one-vote rule and the stage's check table list the same call-free modes."""
    from autoimprove.cascade.stages.cycle import CALL_FREE_CHECKS
    from autoimprove.policy import CALL_FREE_MODES

    assert set(CALL_FREE_CHECKS) == set(CALL_FREE_MODES)
