"""The decide step's rule: a pure function of two evaluations and the promotion policy.

Promote iff the candidate's pass@1 minus the champion's is at least `min_gain` *and* a paired
test on the same items says the difference is unlikely to be noise (p <= alpha). Paired, because
both models answer the same items: only the discordant items (one right, the other wrong) carry
information. The exact McNemar test is a two-sided binomial test on those; the paired bootstrap
resamples items. The reason is one sentence with the numbers, for the round summary and registry.
"""

from __future__ import annotations

import random
from math import comb

from autoimprove.policy import PromotionSection
from autoimprove.types import EvalResult, GateDecision


def mcnemar_exact(candidate_only: int, champion_only: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (1.0 when there are none)."""
    n = candidate_only + champion_only
    if n == 0:
        return 1.0
    k = min(candidate_only, champion_only)
    tail = sum(comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_bootstrap(
    candidate: tuple[bool, ...], champion: tuple[bool, ...], samples: int = 10_000, seed: int = 0
) -> float:
    """Two-sided paired-bootstrap p-value for mean(candidate) - mean(champion) != 0."""
    n = len(candidate)
    if n == 0:
        return 1.0
    diffs = [int(a) - int(b) for a, b in zip(candidate, champion, strict=True)]
    observed = sum(diffs) / n
    if all(d == 0 for d in diffs):
        return 1.0
    rng = random.Random(seed)
    centered = [d - observed for d in diffs]  # resample under the null of no difference
    extreme = 0
    for _ in range(samples):
        mean = sum(centered[rng.randrange(n)] for _ in range(n)) / n
        if abs(mean) >= abs(observed) - 1e-12:
            extreme += 1
    return (extreme + 1) / (samples + 1)


def decide(champion: EvalResult, candidate: EvalResult, policy: PromotionSection) -> GateDecision:
    """Compare candidate to champion on the same items and decide promotion."""
    if champion.item_ids != candidate.item_ids:
        raise ValueError(
            "champion and candidate were evaluated on different items "
            f"({len(champion.item_ids)} vs {len(candidate.item_ids)} items); the paired test needs "
            "the same items"
        )
    n = candidate.n
    cand_only = sum(c and not h for c, h in zip(candidate.correct, champion.correct, strict=True))
    champ_only = sum(h and not c for c, h in zip(candidate.correct, champion.correct, strict=True))
    gain = candidate.pass_at_1 - champion.pass_at_1
    if policy.test == "mcnemar":
        p = mcnemar_exact(cand_only, champ_only)
        test = "exact McNemar"
    else:
        p = paired_bootstrap(candidate.correct, champion.correct)
        test = "paired bootstrap"
    gain_ok = gain >= policy.min_gain
    # Two-sided p, but only a significant *improvement* counts: a significant regression
    # must never pass a gate whose min_gain happens to be negative. (alpha 1 means "no test
    # required": then a tie passes when min_gain allows it, a net loss never does.)
    significant = p <= policy.alpha and cand_only >= champ_only
    promote = gain_ok and significant
    numbers = (
        f"candidate {candidate.pass_at_1:.3f} vs champion {champion.pass_at_1:.3f} on {n} items "
        f"(gain {gain:+.3f}, {cand_only} won / {champ_only} lost, {test} p={p:.3g})"
    )
    if promote:
        reason = (
            f"Promoted: {numbers} meets min_gain {policy.min_gain:+.3f} and alpha {policy.alpha}."
        )
    elif not gain_ok:
        reason = f"Rejected: {numbers} is below min_gain {policy.min_gain:+.3f}."
    elif p <= policy.alpha:
        reason = f"Rejected: {numbers} is a significant regression."
    else:
        reason = f"Rejected: {numbers} is not significant at alpha {policy.alpha}."
    return GateDecision(
        promote=promote,
        reason=reason,
        gain=gain,
        p_value=p,
        champion_pass_at_1=champion.pass_at_1,
        candidate_pass_at_1=candidate.pass_at_1,
        n=n,
        candidate_only_correct=cand_only,
        champion_only_correct=champ_only,
    )
