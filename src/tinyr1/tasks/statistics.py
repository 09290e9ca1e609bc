"""How sure a measured accuracy is: the one definition of the intervals and tests ``tinyr1 eval``, ``tinyr1
compare --evals``, the run report and ``benchmarks/seeds_table.py`` print.

- ``wilson_interval``: the 95% Wilson score interval of one accuracy (right answers out of n questions). Unlike
  the normal approximation it stays inside [0, 1] and is sensible at 0 or n right.
- ``paired_comparison``: two evaluations of the *same* questions (a model before and after training). Only the
  questions whose verdict changed carry information about the difference, so it counts wrong->right and
  right->wrong, tests them with the exact two-sided McNemar (binomial) test, and gives Newcombe's interval for the
  difference of paired accuracies (his method 10: the two Wilson intervals combined with the correlation of the
  paired verdicts). Two accuracies with overlapping intervals can still differ clearly when paired.
"""

from __future__ import annotations

import math

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile: a two-sided 95% interval


def wilson_interval(right: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of the proportion ``right / n``; (0.0, 1.0) when n is 0.

    >>> [round(x, 4) for x in wilson_interval(412, 1000)]
    [0.3819, 0.4428]
    >>> [round(x, 4) for x in wilson_interval(0, 32)], [round(x, 4) for x in wilson_interval(32, 32)]
    ([0.0, 0.1072], [0.8928, 1.0])
    """
    if n <= 0:
        return 0.0, 1.0
    p = right / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact_p(gained: int, lost: int) -> float:
    """The exact two-sided McNemar p-value: under "no difference" each changed verdict is a fair coin, so the
    smaller count is Binomial(gained + lost, 1/2); 1.0 when nothing changed.

    >>> round(mcnemar_exact_p(16, 6), 4), mcnemar_exact_p(0, 0), mcnemar_exact_p(5, 5)
    (0.0525, 1.0, 1.0)
    """
    n = gained + lost
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(gained, lost) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def paired_comparison(before: list[bool], after: list[bool], z: float = Z95) -> dict:
    """Counts, accuracies, the difference ``after - before`` with Newcombe's interval, and McNemar's p-value for
    two lists of verdicts on the same questions in the same order.

    >>> c = paired_comparison([True] * 59 + [True] * 6 + [False] * 16 + [False] * 80,
    ...                       [True] * 59 + [False] * 6 + [True] * 16 + [False] * 80)
    >>> c["wrong_to_right"], c["right_to_wrong"], round(c["difference"], 4), [round(x, 4) for x in c["ci95"]]
    (16, 6, 0.0621, [0.0046, 0.1186])
    """
    if len(before) != len(after):
        raise ValueError(f"paired verdicts need the same questions: {len(before)} against {len(after)}")
    n = len(before)
    both = sum(1 for b, a in zip(before, after, strict=True) if b and a)
    lost = sum(1 for b, a in zip(before, after, strict=True) if b and not a)
    gained = sum(1 for b, a in zip(before, after, strict=True) if a and not b)
    neither = n - both - lost - gained
    right_before, right_after = both + lost, both + gained
    p1, p2 = (right_before / n, right_after / n) if n else (0.0, 0.0)
    l1, u1 = wilson_interval(right_before, n, z)
    l2, u2 = wilson_interval(right_after, n, z)
    # The correlation of the paired verdicts, continuity-corrected as Newcombe's method 10 does; 0 where a margin
    # is empty (every verdict the same on one side).
    margins = right_before * (n - right_before) * right_after * (n - right_after)
    cross = both * neither - lost * gained
    corrected = cross - n / 2 if cross > n / 2 else (0.0 if cross >= 0 else cross)
    phi = corrected / math.sqrt(margins) if margins else 0.0
    d = p2 - p1
    low = d - math.sqrt(max(0.0, (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2))
    high = d + math.sqrt(max(0.0, (u2 - p2) ** 2 - 2 * phi * (u2 - p2) * (p1 - l1) + (p1 - l1) ** 2))
    return {"n": n, "both_right": both, "both_wrong": neither, "wrong_to_right": gained, "right_to_wrong": lost,
            "accuracy_before": p1, "accuracy_after": p2, "difference": d,
            "ci95": (max(-1.0, low), min(1.0, high)), "p_value": mcnemar_exact_p(gained, lost)}


def format_interval(low: float, high: float, signed: bool = False) -> str:
    """``0.382–0.443``; with ``signed``, ``+0.005 to +0.119`` (a dash would read as a minus sign).

    >>> format_interval(0.38181, 0.44279), format_interval(-0.0123, 0.1186, signed=True)
    ('0.382–0.443', '-0.012 to +0.119')
    """
    return f"{low:+.3f} to {high:+.3f}" if signed else f"{low:.3f}–{high:.3f}"


def describe_paired(c: dict, metric: str = "accuracy_strict") -> list[str]:
    """The comparison in three lines of text, as ``tinyr1 compare --evals`` prints it and the report shows it."""
    return [f"{metric} on the same {c['n']} questions: {c['accuracy_before']:.3f} -> {c['accuracy_after']:.3f}",
            f"wrong->right {c['wrong_to_right']}, right->wrong {c['right_to_wrong']} (both right "
            f"{c['both_right']}, both wrong {c['both_wrong']})",
            f"difference {c['difference']:+.3f} (95% CI {format_interval(*c['ci95'], signed=True)}), exact McNemar "
            f"p = {c['p_value']:.3g}"]
