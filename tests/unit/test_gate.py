"""The gate: exact McNemar, paired bootstrap, min_gain, and reasons that carry the numbers."""

import pytest

from autoimprove.gate import decide, mcnemar_exact, paired_bootstrap
from autoimprove.policy import PromotionSection
from autoimprove.types import EvalResult


def result(correct: list[bool]) -> EvalResult:
    ids = tuple(str(i) for i in range(len(correct)))
    return EvalResult("t", len(correct), sum(correct) / len(correct), ids, tuple(correct))


def test_mcnemar_known_values():
    # Two-sided exact binomial on discordant pairs: b=10, c=0 -> 2 * 0.5**10.
    assert mcnemar_exact(10, 0) == pytest.approx(2 * 0.5**10)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(3, 7) == mcnemar_exact(7, 3)
    # 1 vs 0 discordant can never be significant.
    assert mcnemar_exact(1, 0) == 1.0


def test_clear_win_is_promoted():
    champion = result([False] * 30 + [True] * 70)
    candidate = result([True] * 30 + [True] * 70)
    d = decide(champion, candidate, PromotionSection(min_gain=0.05, alpha=0.05))
    assert d.promote
    assert d.candidate_only_correct == 30 and d.champion_only_correct == 0
    assert d.gain == pytest.approx(0.3)
    assert "0.700" in d.reason and "1.000" in d.reason and d.reason.startswith("Promoted")


def test_tie_is_rejected():
    same = result([True, False] * 50)
    d = decide(same, same, PromotionSection())
    assert not d.promote
    assert d.p_value == 1.0
    assert "not significant" in d.reason


def test_small_gain_not_significant():
    champion = result([False] * 3 + [True] * 97)
    candidate = result([True] * 3 + [True] * 97)  # 3 wins, 0 losses: p = 0.25
    d = decide(champion, candidate, PromotionSection(alpha=0.05))
    assert not d.promote
    assert d.p_value == pytest.approx(0.25)


def test_significant_but_below_min_gain():
    champion = result([False] * 12 + [True] * 188)
    candidate = result([True] * 12 + [True] * 188)
    d = decide(champion, candidate, PromotionSection(min_gain=0.1, alpha=0.05))
    assert d.p_value < 0.05
    assert not d.promote
    assert "below min_gain" in d.reason


def test_regression_is_rejected():
    champion = result([True] * 100)
    candidate = result([False] * 40 + [True] * 60)
    d = decide(champion, candidate, PromotionSection(min_gain=-1.0))
    assert not d.promote
    assert "significant regression" in d.reason


def test_different_items_refused():
    with pytest.raises(ValueError, match="different items"):
        decide(result([True]), result([True, False]), PromotionSection())


def test_paired_bootstrap_agrees_in_direction():
    champion = tuple([False] * 30 + [True] * 70)
    candidate = tuple([True] * 30 + [True] * 70)
    assert paired_bootstrap(candidate, champion, samples=2000) < 0.01
    assert paired_bootstrap(champion, champion) == 1.0
    d = decide(result(list(champion)), result(list(candidate)), PromotionSection(test="bootstrap"))
    assert d.promote and "bootstrap" in d.reason


def test_alpha_one_promotes_a_tie_but_never_a_net_loss():
    same = result([True, False] * 50)
    d = decide(same, same, PromotionSection(min_gain=0.0, alpha=1.0))
    assert d.promote and d.p_value == 1.0
    worse = result([False, False] * 50)
    d = decide(same, worse, PromotionSection(min_gain=-1.0, alpha=1.0))
    assert not d.promote


def test_require_beat_rejects_a_significant_win_below_the_baseline():
    champion = result([False] * 40 + [True] * 60)  # 0.60
    candidate = result([True] * 20 + [False] * 20 + [True] * 60)  # 0.80, 20 won / 0 lost
    uq_ttc = result([True] * 85 + [False] * 15)  # 0.85
    maj = result([True] * 75 + [False] * 25)  # 0.75
    policy = PromotionSection(require_beat="uq_ttc")
    d = decide(champion, candidate, policy, {"uq_ttc": uq_ttc, "maj_at_k": maj})
    assert not d.promote and "does not reach uq_ttc 0.850" in d.reason
    assert d.baselines == {"uq_ttc": 0.85, "maj_at_k": 0.75} and d.required_beat == "uq_ttc"
    d = decide(champion, candidate, PromotionSection(require_beat="maj_at_k"), {"maj_at_k": maj})
    assert d.promote and "reaches maj_at_k 0.750" in d.reason
    # Equal to the baseline is enough: one call matching many is the paper's claim.
    d = decide(champion, candidate, policy, {"uq_ttc": candidate})
    assert d.promote
    with pytest.raises(ValueError, match="not measured"):
        decide(champion, candidate, policy, {})


def test_guard_tasks_block_a_regression_beyond_tolerance_only():
    champion = result([False] * 40 + [True] * 60)
    candidate = result([True] * 20 + [False] * 20 + [True] * 60)
    guard_old = result([True] * 50 + [False] * 50)  # 0.50
    slight = result([True] * 48 + [False] * 52)  # -0.02: within the default tolerance
    worse = result([True] * 40 + [False] * 60)  # -0.10
    policy = PromotionSection()
    d = decide(champion, candidate, policy, guards={"transfer": (guard_old, slight)})
    assert d.promote and "holds every guard task" in d.reason
    assert d.guards["transfer"]["change"] == pytest.approx(-0.02)
    d = decide(champion, candidate, policy, guards={"transfer": (guard_old, worse)})
    assert not d.promote and "regresses on guard tasks (transfer -0.100" in d.reason
    d = decide(
        champion, candidate, PromotionSection(guard_tolerance=0.1), {}, {"t": (guard_old, worse)}
    )
    assert d.promote


def test_wilson_interval_edges():
    from autoimprove.gate import wilson_interval

    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(0, 20)
    assert low == 0.0 and 0.1 < high < 0.2  # never the degenerate [0, 0]
    low, high = wilson_interval(20, 20)
    assert high == 1.0 and 0.8 < low < 0.9
    low, high = wilson_interval(39, 100)
    assert low < 0.39 < high and high - low == pytest.approx(0.19, abs=0.01)


def test_guard_alpha_blocks_only_a_significant_guard_drop():
    champion = result([False] * 40 + [True] * 60)
    candidate = result([True] * 20 + [False] * 20 + [True] * 60)
    guard_old = result([True] * 24 + [False] * 24)
    noisy = result([True] * 21 + [False] * 27)  # -3 items of 48: -0.0625, p = 0.25
    real = result([False] * 12 + [True] * 12 + [False] * 24)  # -12 items of 48, p = 0.0005
    policy = PromotionSection(guard_alpha=0.05)
    d = decide(champion, candidate, policy, guards={"transfer": (guard_old, noisy)})
    assert d.promote and "holds every guard task" in d.reason
    assert (d.guards["transfer"]["won"], d.guards["transfer"]["lost"]) == (0, 3)
    assert d.guards["transfer"]["p"] == pytest.approx(0.25)
    # The same noisy drop blocks under the raw tolerance alone.
    assert not decide(
        champion, candidate, PromotionSection(), {}, {"t": (guard_old, noisy)}
    ).promote
    d = decide(champion, candidate, policy, guards={"transfer": (guard_old, real)})
    assert not d.promote
    assert (
        "transfer -0.250, 0 won / 12 lost, p=0.000488; tolerance 0.02, guard_alpha 0.05" in d.reason
    )


def test_guard_items_must_match():
    champion = result([True, False])
    with pytest.raises(ValueError, match="guard task"):
        decide(
            champion,
            champion,
            PromotionSection(),
            {},
            {"t": (result([True]), result([True, True]))},
        )


def test_a_candidate_stopped_early_is_rejected_even_by_a_lenient_policy():
    # A tie on the first look: alpha 1 and a negative min_gain would pass it on all items,
    # but a candidate scored on the first look only must never be promoted.
    same = result([True, False] * 10)
    stop = {"after": 20, "of": 40, "won": 0, "lost": 0}
    d = decide(same, same, PromotionSection(min_gain=-1.0, alpha=1.0), stopped_early=stop)
    assert not d.promote
    assert "the other 20 items were not scored" in d.reason and "early_stop" in d.reason
    assert d.n == 20
