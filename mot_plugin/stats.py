"""Small-sample statistics for accuracies: Wilson intervals and McNemar's exact test (scipy.stats)."""

from __future__ import annotations


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a proportion (z = 1.959964: 95%); (0.0, 1.0) when n = 0."""
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n, got {successes} of {n}")
    if n == 0:
        return 0.0, 1.0
    from scipy.stats import binomtest, norm

    ci = binomtest(successes, n).proportion_ci(confidence_level=2 * norm.cdf(z) - 1, method="wilson")
    return (0.0 if successes == 0 else max(0.0, ci.low)), (1.0 if successes == n else min(1.0, ci.high))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar test on the discordant counts `b` and `c` (a binomial test of
    min(b, c) successes in b + c trials at p = 1/2); 1.0 when b = c = 0."""
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be non-negative, got {b} and {c}")
    if b + c == 0:
        return 1.0
    from scipy.stats import binomtest

    return min(1.0, binomtest(min(b, c), b + c, 0.5).pvalue)


def paired_counts(a: list[bool], b: list[bool]) -> tuple[int, int, int, int]:
    """(both right, only `a` right, only `b` right, neither) over the same problems in the same order."""
    if len(a) != len(b):
        raise ValueError(f"paired results differ in length: {len(a)} and {len(b)}")
    both = sum(1 for x, y in zip(a, b) if x and y)
    only_a = sum(1 for x, y in zip(a, b) if x and not y)
    only_b = sum(1 for x, y in zip(a, b) if y and not x)
    return both, only_a, only_b, len(a) - both - only_a - only_b
