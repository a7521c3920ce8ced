"""Statistics for robust-accuracy numbers: intervals, paired tests, seed aggregates and the claims-verdict rule.

Every accuracy of this project is a proportion of n test images, so it carries a 95% Wilson score interval
(Wilson 1927; Newcombe 1998, method 3). Two models evaluated on the *same* images are compared with the exact
McNemar test on the discordant pairs (McNemar 1947; exact binomial form, Fagerland et al. 2013) and a Wald interval
for the paired difference of proportions; several seeds give mean +- Student-t interval. Accuracies and
differences are in percentage points.

The verdict rule (README, "Claims and verdicts") is :func:`verdict`.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

Z95 = 1.959963984540054  # the 97.5% standard-normal quantile


def _check_counts(k, n) -> None:
    if not (isinstance(n, (int, np.integer)) and n >= 1):
        raise ValueError(f"n={n!r}: the number of examples must be an integer >= 1")
    if not (0 <= k <= n):
        raise ValueError(f"k={k!r}: the number correct must be in [0, n={n}]")


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k / n``, in percent: ``(low, high)``.

    Args:
        k: number of successes (e.g. examples still classified correctly under attack), 0 <= k <= n.
        n: number of trials (examples), >= 1.
        confidence: two-sided level in (0, 1).
    Raises:
        ValueError: k outside [0, n], n < 1, or confidence outside (0, 1).
    """
    _check_counts(k, n)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence!r} must be in (0, 1)")
    from scipy.stats import norm

    z = Z95 if confidence == 0.95 else float(norm.ppf(0.5 + confidence / 2))
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    lo = 0.0 if k == 0 else max(0.0, centre - half)  # exact ends: no round-off above 0 / below 100
    hi = 1.0 if k == n else min(1.0, centre + half)
    return 100 * lo, 100 * hi


def accuracy_summary(mask: Sequence[bool] | np.ndarray) -> dict[str, float | int]:
    """``{"accuracy", "n", "ci_low", "ci_high"}`` (percent, 95% Wilson) of a per-example correctness mask."""
    m = np.asarray(mask, dtype=bool)
    k, n = int(m.sum()), int(m.size)
    lo, hi = wilson_interval(k, n)
    return {"accuracy": 100 * k / n, "n": n, "ci_low": lo, "ci_high": hi}


def mcnemar(a: Sequence[bool] | np.ndarray, b: Sequence[bool] | np.ndarray) -> dict[str, float | int]:
    """Exact McNemar test of two models' per-example correctness on the same images.

    Args:
        a, b: (n,) bool masks (correct under the attack), the same images in the same order.
    Returns:
        ``{"n", "a_only", "b_only", "diff", "ci_low", "ci_high", "p_value"}``: ``diff`` = acc(a) - acc(b) in
        points with a 95% Wald interval for paired proportions; ``p_value`` two-sided exact binomial on the
        discordant pairs (1.0 when there are none).
    Raises:
        ValueError: masks of different lengths or empty.
    """
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"masks must be 1-D, non-empty and the same length (same images); got {a.shape} and {b.shape}")
    n = a.size
    n10, n01 = int((a & ~b).sum()), int((~a & b).sum())
    from scipy.stats import binomtest

    p = 1.0 if n10 + n01 == 0 else float(binomtest(n10, n10 + n01, 0.5).pvalue)
    d = (n10 - n01) / n
    se = math.sqrt(max((n10 + n01) / n - d * d, 0.0) / n)
    return {"n": n, "a_only": n10, "b_only": n01, "diff": 100 * d, "ci_low": 100 * (d - Z95 * se),
            "ci_high": 100 * (d + Z95 * se), "p_value": p}


def t_interval(values: Sequence[float], confidence: float = 0.95) -> dict[str, float | int]:
    """Mean and Student-t interval of per-seed values: ``{"mean", "ci_low", "ci_high", "sd", "n"}``.

    With one value the interval is (nan, nan): one seed says nothing about seed-to-seed spread.
    Raises ValueError for an empty sequence or non-finite values.
    """
    v = np.asarray(list(values), dtype=float)
    if v.size == 0 or not np.isfinite(v).all():
        raise ValueError(f"values={list(values)!r}: need at least one finite value")
    m = float(v.mean())
    if v.size == 1:
        return {"mean": m, "ci_low": math.nan, "ci_high": math.nan, "sd": math.nan, "n": 1}
    from scipy.stats import t

    sd = float(v.std(ddof=1))
    half = float(t.ppf(0.5 + confidence / 2, v.size - 1)) * sd / math.sqrt(v.size)
    return {"mean": m, "ci_low": m - half, "ci_high": m + half, "sd": sd, "n": int(v.size)}


VERDICTS = ("reproduced", "contradicted", "inconclusive")


def verdict(paper_effect: float, ci_low: float, ci_high: float, margin: float | None = None) -> str:
    """The claims-verdict rule (README, "Claims and verdicts").

    * A directional claim (``margin`` None: "A beats B", paper effect = A - B in points, sign is the claim):
      **reproduced** if our 95% interval excludes 0 on the paper's side, **contradicted** if it excludes 0 on the
      other side, else **inconclusive**. A paper effect of 0 is a claim of no difference: reproduced if the
      interval lies within +-1 point, else inconclusive unless it excludes 0 (contradicted).
    * A bounded claim (``margin`` given: "the drop is at most paper_effect + margin", e.g. GOT's eps plateau):
      reproduced if ``ci_high <= paper_effect + margin``, contradicted if ``ci_low > paper_effect + margin``,
      else inconclusive.
    Raises ValueError for a NaN bound or ci_low > ci_high.
    """
    if math.isnan(ci_low) or math.isnan(ci_high) or ci_low > ci_high:
        raise ValueError(f"interval ({ci_low}, {ci_high}) must be finite with low <= high")
    if margin is not None:
        bound = paper_effect + margin
        return "reproduced" if ci_high <= bound else "contradicted" if ci_low > bound else "inconclusive"
    if paper_effect == 0:
        if -1 <= ci_low and ci_high <= 1:
            return "reproduced"
        return "contradicted" if ci_low > 0 or ci_high < 0 else "inconclusive"
    s = 1 if paper_effect > 0 else -1
    lo, hi = (ci_low, ci_high) if s > 0 else (-ci_high, -ci_low)
    return "reproduced" if lo > 0 else "contradicted" if hi < 0 else "inconclusive"
