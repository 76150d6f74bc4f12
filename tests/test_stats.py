"""Wilson intervals and McNemar's exact test against published and hand-computed values."""

from __future__ import annotations

import math

import pytest

from mot_plugin.stats import mcnemar_exact, paired_counts, wilson_interval


@pytest.mark.parametrize("successes, n, low, high", [
    (8, 10, 0.4902, 0.9433),
    (0, 10, 0.0, 0.2775),
    # Newcombe (1998), Statistics in Medicine 17:857-872, Table I, method 3 (score interval)
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
    (29, 29, 0.8830, 1.0),
])
def test_wilson_known_values(successes, n, low, high):
    assert wilson_interval(successes, n) == pytest.approx((low, high), abs=5e-5)


def test_wilson_35_of_300_by_the_closed_formula():
    # p = 35/300 = 7/60, z^2 = 3.841459; centre = (p + z^2/600) / (1 + z^2/300),
    # half = z / (1 + z^2/300) * sqrt(p (1 - p) / 300 + z^2 / 360000)
    z2 = 1.959964 ** 2
    p = 7 / 60
    denominator = 1 + z2 / 300
    centre = (p + z2 / 600) / denominator
    half = math.sqrt(z2) / denominator * math.sqrt(p * (1 - p) / 300 + z2 / 360000)
    assert centre == pytest.approx(0.121513, abs=1e-6)
    assert wilson_interval(35, 300) == pytest.approx((centre - half, centre + half), rel=1e-12)
    assert wilson_interval(35, 300) == pytest.approx((0.0851, 0.1579), abs=5e-5)


def test_wilson_edges():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(5, 10, z=1.0)
    assert low < 0.5 < high and high - low < wilson_interval(5, 10)[1] - wilson_interval(5, 10)[0]
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


@pytest.mark.parametrize("b, c, p", [(1, 9, 0.021484375), (9, 1, 0.021484375), (5, 5, 1.0), (0, 6, 0.03125),
                                     (0, 0, 1.0), (0, 1, 1.0), (2, 10, 0.0385742)])
def test_mcnemar_exact_known_values(b, c, p):
    assert mcnemar_exact(b, c) == pytest.approx(p, abs=1e-6)


def test_mcnemar_exact_large_counts_stay_finite():
    assert 0.0 <= mcnemar_exact(1000, 1300) < 1e-8


def test_paired_counts():
    a = [True, True, False, False, True]
    b = [True, False, True, False, False]
    assert paired_counts(a, b) == (1, 2, 1, 1)
    with pytest.raises(ValueError):
        paired_counts([True], [])


def _closed_wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The closed formula mot used before scipy.stats computed it."""
    p, z2 = k / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return (0.0 if k == 0 else max(0.0, centre - half)), (1.0 if k == n else min(1.0, centre + half))


def test_scipy_gives_the_numbers_of_the_closed_formulas():
    for n in range(1, 61):
        for k in range(n + 1):
            assert wilson_interval(k, n) == pytest.approx(_closed_wilson(k, n), abs=1e-12), (k, n)
    for b in range(25):
        for c in range(25):
            if b + c:
                exact = min(1.0, 2 * sum(math.comb(b + c, i) for i in range(min(b, c) + 1)) / 2 ** (b + c))
                assert mcnemar_exact(b, c) == pytest.approx(exact, abs=1e-12), (b, c)
