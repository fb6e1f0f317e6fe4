"""The decide step's rule: a pure function of two evaluations and the promotion policy.

Promote iff the candidate's pass@1 minus the champion's is at least `min_gain` *and* a paired
test on the same items says the difference is unlikely to be noise (p <= alpha). Paired, because
both models answer the same items: only the discordant items (one right, the other wrong) carry
information. The exact McNemar test is a two-sided binomial test on those; the paired bootstrap
resamples items. The reason is one sentence with the numbers, for the round summary and registry.
"""

from __future__ import annotations

import random
from math import comb, sqrt

from autoimprove.policy import PromotionSection
from autoimprove.types import EvalResult, GateDecision


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a pass rate (sane at 0, n and small n; (0, 1) when n=0)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, center - half), min(1.0, center + half))


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


def _discordant(old: EvalResult, new: EvalResult, what: str) -> tuple[int, int]:
    """(items only `new` got right, items only `old` got right): what a paired test reads."""
    if old.item_ids != new.item_ids:
        raise ValueError(
            f"{what} were evaluated on different items ({len(old.item_ids)} vs "
            f"{len(new.item_ids)} items); the paired test needs the same items"
        )
    won = sum(c and not h for c, h in zip(new.correct, old.correct, strict=True))
    lost = sum(h and not c for c, h in zip(new.correct, old.correct, strict=True))
    return won, lost


def _guard_numbers(old: EvalResult, new: EvalResult) -> dict[str, float]:
    won, lost = _discordant(old, new, "a guard task's champion and candidate")
    return {
        "champion": old.pass_at_1,
        "candidate": new.pass_at_1,
        "change": new.pass_at_1 - old.pass_at_1,
        "won": float(won),
        "lost": float(lost),
        "p": mcnemar_exact(won, lost),
    }


def _regressed(g: dict[str, float], policy: PromotionSection) -> bool:
    """A drop beyond the tolerance; with `guard_alpha`, only one the paired test calls real."""
    if g["change"] >= -policy.guard_tolerance - 1e-12:
        return False
    return policy.guard_alpha is None or g["p"] <= policy.guard_alpha


def decide(
    champion: EvalResult,
    candidate: EvalResult,
    policy: PromotionSection,
    baselines: dict[str, EvalResult] | None = None,
    guards: dict[str, tuple[EvalResult, EvalResult]] | None = None,
    stopped_early: dict | None = None,
) -> GateDecision:
    """Compare candidate to champion on the same items and decide promotion.

    Then, when the policy asks, the candidate must also reach the `require_beat` baseline's
    pass@1, and lose no more than `guard_tolerance` on any guard task (champion, candidate);
    with `guard_alpha` set, a bigger drop blocks only when exact McNemar on that task's items
    gives p <= guard_alpha (on 48 items one item is 2 points: a raw tolerance is noise there).

    `stopped_early` (evaluation's first-look numbers) means the candidate was scored on its
    first items only and did not win more than it lost there: rejected, whatever the policy.
    """
    cand_only, champ_only = _discordant(champion, candidate, "champion and candidate")
    baselines = baselines or {}
    guards = guards or {}
    n = candidate.n
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
    numbers = (
        f"candidate {candidate.pass_at_1:.3f} vs champion {champion.pass_at_1:.3f} on {n} items "
        f"(gain {gain:+.3f}, {cand_only} won / {champ_only} lost, {test} p={p:.3g})"
    )
    beat = baselines.get(policy.require_beat) if policy.require_beat != "none" else None
    if policy.require_beat != "none" and beat is None:
        raise ValueError(f"require_beat {policy.require_beat} but that baseline was not measured")
    beat_ok = beat is None or candidate.pass_at_1 >= beat.pass_at_1
    guard_numbers = {task: _guard_numbers(old, new) for task, (old, new) in guards.items()}
    regressed = sorted(task for task, g in guard_numbers.items() if _regressed(g, policy))
    promote = gain_ok and significant and beat_ok and not regressed and not stopped_early
    if stopped_early:
        reason = (
            f"Rejected: {numbers}; it won no more items than it lost on this first look, so "
            f"the other {stopped_early['of'] - stopped_early['after']} items were not scored "
            "(evaluation.early_stop)."
        )
    elif not gain_ok:
        reason = f"Rejected: {numbers} is below min_gain {policy.min_gain:+.3f}."
    elif not significant and p <= policy.alpha:
        reason = f"Rejected: {numbers} is a significant regression."
    elif not significant:
        reason = f"Rejected: {numbers} is not significant at alpha {policy.alpha}."
    elif not beat_ok:
        assert beat is not None
        reason = (
            f"Rejected: {numbers} passes the paired test but does not reach "
            f"{policy.require_beat} {beat.pass_at_1:.3f} (require_beat)."
        )
    elif regressed:
        worst = ", ".join(
            f"{t} {guard_numbers[t]['change']:+.3f}, {guard_numbers[t]['won']:.0f} won / "
            f"{guard_numbers[t]['lost']:.0f} lost, p={guard_numbers[t]['p']:.3g}"
            for t in regressed
        )
        rule = f"tolerance {policy.guard_tolerance}"
        if policy.guard_alpha is not None:
            rule += f", guard_alpha {policy.guard_alpha}"
        reason = (
            f"Rejected: {numbers} passes the paired test but regresses on guard tasks "
            f"({worst}; {rule})."
        )
    else:
        extra = f", reaches {policy.require_beat} {beat.pass_at_1:.3f}" if beat else ""
        extra += ", holds every guard task" if guards else ""
        reason = (
            f"Promoted: {numbers} meets min_gain {policy.min_gain:+.3f} and alpha "
            f"{policy.alpha}{extra}."
        )
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
        baselines={name: r.pass_at_1 for name, r in baselines.items()},
        required_beat=policy.require_beat,
        guards=guard_numbers,
    )
