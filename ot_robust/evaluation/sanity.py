"""Gradient-masking sanity checks (Carlini et al. 2019, "On evaluating adversarial robustness", Sec. 5; the flags of
Croce & Hein's AutoAttack), run with every evaluation and reported as pass/flag with the numbers behind each.

Checks on the model (:func:`run_sanity`, cheap by default: ``SanityConfig``). A model whose output has no
autograd graph back to its input gets one flag, ``differentiable``, instead of a crash (Athalye et al. 2018):

* ``deterministic_forward`` - two eval-mode forward passes agree (randomized defenses need EOT attacks);
* ``nonzero_gradients`` - input gradients of the margin loss are non-zero (AutoAttack's ``check_zero_gradients``);
* ``iterative_vs_single_step`` - PGD is at least as strong as FGSM;
* ``accuracy_vs_epsilon`` - accuracy does not increase with eps and falls to ~0 at a large eps;
* ``unbounded_pgd`` - PGD with an unbounded budget reaches ~100% success on the correctly classified inputs
  (status ``"n/a"``, not a flag, when there are none);
* ``blackbox_vs_whitebox`` - Square (score-based black-box, :mod:`ot_robust.attacks.square`, our own code: the
  suite needs nothing beyond ``pip install .``) is not stronger than PGD;
* ``pgd_loss_plateau`` - the PGD loss over iterations for k random starts rises and plateaus, judged by its slope
  over the last steps (FS supplement Fig. 1; Carlini et al. 2019, Sec. 5.2).

Checks on a results table (:func:`check_table_consistency`, also usable on the papers' published numbers):
AutoAttack not weaker than PGD/CW (the OTJR Table 7 inconsistency), black-box not stronger than white-box,
iterative not weaker than single-step.

On per-example masks of the same images (:func:`check_pgd_autoattack_gap`): a PGD-to-AutoAttack gap above
``PGD_AA_GAP`` points is itself a masking sign (Croce & Hein 2020, Sec. 5: defenses whose PGD accuracy is far above
AutoAttack's; our FS at the official settings: PGD-40 56 vs AutoAttack 16 on the same 100 images).
:func:`check_weaker_family_vs_whitebox`: an attack of a weaker family (black-box, transfer, score-based such as
Square / SPSA, hard-label such as RayS) significantly stronger than white-box PGD on the same images, the attack named
(the Feature Scattering masking signature; Carlini et al. 2019, Sec. 5.2), judged by a 95% interval for the paired
difference (:func:`paired_difference_interval`, Newcombe 1998).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn

from ..attacks import FGSM, PGD, Square, fast_path, margin, model_mode
from ..core.stats import mcnemar, wilson_interval

_AA = re.compile(r"auto|^aa\b", re.I)
_BLACK = re.compile(r"square|simba|transfer|local|spsa|black|undefended|siamese", re.I)
_SINGLE = re.compile(r"fgsm", re.I)
_ITER = re.compile(r"pgd|cw|mim|apgd", re.I)


@dataclass
class SanityConfig:
    """Sizes and thresholds of the sanity suite (defaults: a few seconds on a CPU for a small CNN).

    Accuracies and tolerances are in percentage points.
    """

    n: int = 100
    steps: int = 10
    eps_multipliers: tuple = (1.0, 2.0, 4.0)
    max_acc_large_eps: float = 10.0
    unbounded_steps: int = 20
    min_unbounded_success: float = 98.0
    square_queries: int = 300
    loss_examples: int = 20
    loss_starts: int = 5
    plateau_ratio: float = 0.25
    max_zero_grad_frac: float = 0.1
    tol: float = 0.0
    seed: int = 0


PGD_AA_GAP = 10.0  #: points; PGD accuracy this far above AutoAttack's on the same images is flagged


def check_pgd_autoattack_gap(masks: dict[str, Any], pgd_column: str, threshold: float = PGD_AA_GAP
                             ) -> dict[str, Any]:
    """Flag a PGD-to-AutoAttack gap above ``threshold`` points on the images both ran on (the first
    ``len(masks["autoattack"])`` of the same order). ``masks``: {column: (n,) bool}, with ``clean``,
    ``pgd_column`` and ``autoattack``. Source: Croce & Hein 2020 (AutoAttack), Sec. 5."""
    aa = np.asarray(masks["autoattack"], dtype=bool)
    n = len(aa)
    pgd = np.asarray(masks[pgd_column][:n], dtype=bool) & np.asarray(masks["clean"][:n], dtype=bool)
    gap = 100.0 * (pgd.mean() - aa.mean())
    return _result("pgd_autoattack_gap", gap > threshold,
                   f"{pgd_column} {100 * pgd.mean():.1f}% vs AutoAttack {100 * aa.mean():.1f}% on the same {n} "
                   f"images: gap {gap:.1f} points (flag above {threshold:g})", gap=gap, n=n, threshold=threshold)


MIN_PAIRED_N = 20  #: fewer common images than this: :func:`check_weaker_family_vs_whitebox` says "n/a"


def paired_difference_interval(a: Any, b: Any) -> tuple[float, float]:
    """95% interval, in points, of ``acc(a) - acc(b)`` for two (n,) bool masks of the same images in the same order.

    Newcombe's hybrid score (square-and-add) interval for paired proportions: the two Wilson intervals combined with
    the continuity-corrected phi correlation (Newcombe 1998, Stat. Med. 17:2635-2650, method 10; as in Fagerland,
    Lydersen & Laake 2017, "Statistical analysis of contingency tables", Ch. 8). Unlike the Wald interval of
    :func:`ot_robust.core.stats.mcnemar` it is never zero-width and behaves well with few discordant pairs.
    """
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    n = a.size
    both, a_only, b_only = int((a & b).sum()), int((a & ~b).sum()), int((~a & b).sum())
    neither = n - both - a_only - b_only
    k1, k2 = both + a_only, both + b_only
    p1, p2 = k1 / n, k2 / n
    (l1, u1), (l2, u2) = ((lo / 100, hi / 100) for lo, hi in (wilson_interval(k1, n), wilson_interval(k2, n)))
    den = k1 * (n - k1) * k2 * (n - k2)
    ad = both * neither - a_only * b_only
    phi = 0.0 if den == 0 else (ad - n / 2 if ad > n / 2 else min(ad, 0)) / math.sqrt(den)
    lo = p1 - p2 - math.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    hi = p1 - p2 + math.sqrt(max((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0.0))
    return 100 * lo, 100 * hi


def check_weaker_family_vs_whitebox(masks: dict[str, Any], whitebox_column: str, families: dict[str, str],
                                    min_n: int = MIN_PAIRED_N) -> list[dict[str, Any]]:
    """Flag each attack of a weaker family that is significantly stronger than white-box PGD on the same images.

    A black-box, transfer, score-based or hard-label attack beating white-box PGD means the gradients mislead PGD
    (gradient masking; Carlini et al. 2019, Sec. 5.2; the Feature Scattering signature).

    Args:
        masks: {column: (n,) bool} per-example correctness of the same images in the same order, with ``clean``,
            ``whitebox_column`` and every column of ``families``. Lengths may differ (an attack run on the first
            images only): each comparison uses the common prefix, the first min(len) images. An image counts robust
            only if it is also correct on the clean input.
        whitebox_column: the white-box PGD column, e.g. ``"pgd20"``.
        families: {column: family in words}, e.g. ``{"rays": "hard-label", "square": "score-based black-box"}``.
        min_n: fewer common images than this gives ``"n/a"``.
    Returns:
        One result per column of ``families`` (in its order), check ``"weaker_family_vs_whitebox:<column>"``:
        ``"flag"`` when the 95% interval of the paired difference (white-box minus that attack, in points,
        :func:`paired_difference_interval`) lies above 0; ``"n/a"`` with fewer than ``min_n`` common images or
        none correct on the clean input. ``numbers``: column, family, whitebox_column, n, accuracy and
        whitebox_accuracy (%), difference, ci_low, ci_high (points), p_value (exact McNemar, for reference).
    Raises:
        ValueError: a column missing from ``masks`` (naming it and the columns there).
    """
    missing = [c for c in ("clean", whitebox_column, *families) if c not in masks]
    if missing:
        raise ValueError(f"masks lack column(s) {missing}; columns there: {sorted(masks)}")
    out = []
    for col, family in families.items():
        check = f"weaker_family_vs_whitebox:{col}"
        n = min(len(masks["clean"]), len(masks[whitebox_column]), len(masks[col]))
        clean = np.asarray(masks["clean"][:n], dtype=bool)
        wb = clean & np.asarray(masks[whitebox_column][:n], dtype=bool)
        other = clean & np.asarray(masks[col][:n], dtype=bool)
        base = dict(column=col, family=family, whitebox_column=whitebox_column, n=n)
        if n < min_n or not clean.any():
            why = f"{n} common image(s), fewer than {min_n}" if n < min_n else f"no image of {n} correct clean"
            out.append(_not_applicable(check, f"{col} ({family}) vs {whitebox_column} (white-box): {why}", **base))
            continue
        acc, wacc = 100.0 * int(other.sum()) / n, 100.0 * int(wb.sum()) / n  # exact, no float noise
        diff = 100.0 * (int(wb.sum()) - int(other.sum())) / n
        lo, hi = paired_difference_interval(wb, other)
        out.append(_result(check, lo > 0,
                           f"{col} ({family}) {acc:.1f}% vs {whitebox_column} (white-box) {wacc:.1f}% on the same {n} "
                           f"images: white-box minus {col} {diff:+.1f} points, 95% CI [{lo:.1f}, {hi:.1f}] "
                           f"(Newcombe, paired); flag when the interval lies above 0 (a {family} attack stronger "
                           "than white-box PGD: gradient masking)",
                           **base, accuracy=acc, whitebox_accuracy=wacc, difference=diff,
                           ci_low=lo, ci_high=hi, p_value=mcnemar(wb, other)["p_value"]))
    return out


def _result(check: str, flagged: bool, details: str, **numbers) -> dict[str, Any]:
    return {"check": check, "status": "flag" if flagged else "pass", "details": details, "numbers": numbers}


def _not_applicable(check: str, details: str, **numbers) -> dict[str, Any]:
    """A check that could not be judged on these inputs: status ``"n/a"`` (neither a pass nor a flag)."""
    return {"check": check, "status": "n/a", "details": f"not applicable: {details}", "numbers": numbers}


def _robust_acc(model: nn.Module, attack, x: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy in % (correct on clean and adversarial input)."""
    x_adv = fast_path(attack)(model, x, y)
    with torch.no_grad(), model_mode(model):
        ok = (model(x).argmax(1) == y) & (model(x_adv).argmax(1) == y)
    return 100.0 * int(ok.sum()) / len(ok)  # exact, no float32 noise


def _large_eps(eps: float, norm: str, d: int) -> float:
    return min(1.0, max(0.5, 8 * eps)) if norm == "linf" else min(math.sqrt(d), max(8 * eps, 0.25 * math.sqrt(d)))


def run_sanity(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str = "linf",
               config: SanityConfig | None = None) -> list[dict[str, Any]]:
    """Run the model checks on the first ``config.n`` examples of ``x`` ``(N, C, H, W)`` in [0, 1], labels ``y``.

    Returns a list of ``{"check", "status": "pass"|"flag"|"n/a", "details", "numbers"}``; ``"n/a"`` (not
    applicable, never a flag) where the inputs cannot judge a check: ``unbounded_pgd`` when no input is correctly
    classified (a success rate over 0 images).
    Raises:
        ValueError: eps <= 0 or not finite, unknown norm.
    """
    cfg = config or SanityConfig()
    if not (eps > 0 and math.isfinite(eps)):
        raise ValueError(f"sanity checks need a finite eps > 0, got {eps!r}")
    if norm not in ("linf", "l2"):
        raise ValueError(f"norm={norm!r}; allowed: 'linf', 'l2'")
    x, y = x[: cfg.n], y[: cfg.n]
    s, k = cfg.seed, cfg.steps
    out = []

    with torch.no_grad(), model_mode(model):
        l1, l2 = model(x), model(x)
    diff = (l1 - l2).abs().max().item()
    out.append(_result("deterministic_forward", diff > 1e-5 * max(1.0, l1.abs().max().item()),
                       "two eval-mode forward passes on the same input", max_abs_logit_diff=diff))

    with model_mode(model), torch.enable_grad():
        xg = x.clone().requires_grad_(True)
        out_g = margin(model(xg), y).sum()
        if not out_g.requires_grad:  # no autograd graph from input to output: nothing gradient-based can run
            out.append(_result("differentiable", True, "the model's output has no autograd graph back to its input "
                               "(torch.no_grad / detach / non-differentiable ops inside the forward): every "
                               "gradient-based attack is void on it (Athalye et al. 2018, obfuscated gradients)"))
            for r in out:
                r["numbers"]["config"] = asdict(cfg)
            return out
        (g,) = torch.autograd.grad(out_g, xg, allow_unused=True)
        g = torch.zeros_like(xg) if g is None else g
    zero_frac = (g.flatten(1).abs().amax(1) == 0).float().mean().item()
    out.append(_result("nonzero_gradients", zero_frac > cfg.max_zero_grad_frac,
                       "fraction of examples whose input gradient (margin loss) is exactly zero",
                       zero_fraction=zero_frac, threshold=cfg.max_zero_grad_frac))

    clean = _robust_acc(model, lambda m, a, b: a, x, y)
    pgd = _robust_acc(model, PGD(eps, k, norm=norm, seed=s), x, y)
    fgsm = _robust_acc(model, FGSM(eps, norm=norm), x, y)
    out.append(_result("iterative_vs_single_step", pgd > fgsm + cfg.tol,
                       f"PGD-{k} accuracy must not exceed FGSM accuracy", clean=clean, pgd=pgd, fgsm=fgsm))

    big = _large_eps(eps, norm, x[0].numel())
    cap = 1.0 if norm == "linf" else math.inf  # an Linf budget above 1 is the whole pixel range (and refused)
    grid = sorted({min(eps * m, cap) for m in cfg.eps_multipliers} | {big})
    accs = [pgd if e == eps else _robust_acc(model, PGD(e, k, norm=norm, seed=s), x, y) for e in grid]  # eps: ran
    rising = any(b > a + max(cfg.tol, 100.0 / len(x)) for a, b in zip(accs, accs[1:]))
    out.append(_result("accuracy_vs_epsilon", rising or accs[-1] > cfg.max_acc_large_eps,
                       f"PGD-{k} accuracy must not rise with eps and must be <= {cfg.max_acc_large_eps}% "
                       f"at eps={big:g}",
                       epsilons=grid, accuracy=accs))

    step = 0.1 if norm == "linf" else 0.1 * math.sqrt(x[0].numel())
    unb = PGD(math.inf, cfg.unbounded_steps, step_size=step, norm=norm, random_start=False, seed=s)
    x_adv = unb(model, x, y)
    with torch.no_grad(), model_mode(model):
        correct = model(x).argmax(1) == y
        fooled = model(x_adv).argmax(1) != y
    n_correct = int(correct.sum())
    if n_correct == 0:  # a success rate over 0 images is no evidence either way
        out.append(_not_applicable("unbounded_pgd", f"no correctly classified input among the {len(x)} checked, so "
                                   f"PGD-{cfg.unbounded_steps} with unbounded budget has nothing to fool",
                                   success_rate=None, n_correct=0, threshold=cfg.min_unbounded_success))
    else:
        success = 100.0 * int((fooled & correct).sum()) / n_correct
        out.append(_result("unbounded_pgd", success < cfg.min_unbounded_success,
                           f"PGD-{cfg.unbounded_steps} with unbounded budget must fool ~all correctly classified "
                           "inputs", success_rate=success, n_correct=n_correct,
                           threshold=cfg.min_unbounded_success))

    sq = _robust_acc(model, Square(eps=eps, norm=norm, queries=cfg.square_queries, seed=s), x, y)
    out.append(_result("blackbox_vs_whitebox", sq < pgd - cfg.tol,
                       f"Square ({cfg.square_queries} queries) must not beat PGD-{k}", square=sq, pgd=pgd))

    # as unbounded_pgd: the loss curve of inputs already misclassified says nothing of PGD
    if int(correct[: cfg.loss_examples].sum()) == 0:
        out.append(_not_applicable("pgd_loss_plateau", f"no correctly classified input among the "
                                   f"{min(len(x), cfg.loss_examples)} whose PGD loss curve is checked",
                                   n_correct=0))
    else:
        out.append(_loss_plateau(model, x, y, eps, norm, k, s, cfg))
    for r in out:
        r["numbers"]["config"] = asdict(cfg)
    return out


def _loss_plateau(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str, k: int, s: int,
                  cfg: SanityConfig) -> dict[str, Any]:
    """The ``pgd_loss_plateau`` check of :func:`run_sanity` (FS supplement Fig. 1; Carlini et al. 2019, Sec. 5.2)."""
    from .curves import pgd_loss_curves

    curves = pgd_loss_curves(model, x[: cfg.loss_examples], y[: cfg.loss_examples], n_starts=cfg.loss_starts,
                             steps=k, eps=eps, norm=norm, seed=s)
    mean = curves.groupby("iteration")["loss"].mean().to_numpy()
    rise = float(mean[-1] - mean[0])
    w = max(2, (len(mean) - 1) // 5)  # the last steps (a fifth of the run, at least 2)
    late_slope = float(mean[-1] - mean[-1 - w]) / w
    avg_slope = rise / max(1, len(mean) - 1)
    final = curves[curves.iteration == curves.iteration.max()]["loss"].to_numpy()
    return _result("pgd_loss_plateau", not rise > 1e-6 or late_slope > cfg.plateau_ratio * avg_slope,
                   f"mean PGD loss over {cfg.loss_starts} random starts must rise and then plateau: its slope "
                   f"over the last {w} steps <= {cfg.plateau_ratio} x its mean slope (still rising at the end = "
                   "too few steps; Carlini et al. 2019, Sec. 5.2)",
                   total_rise=rise, late_slope=late_slope, mean_slope=avg_slope,
                   final_loss_std_over_starts=float(np.std(final)))


def _kind(name: str) -> str:
    if _AA.search(name):
        return "autoattack"
    if _BLACK.search(name):
        return "black-box"
    if _SINGLE.search(name):
        return "single-step"
    if _ITER.search(name):
        return "iterative"
    return "other"


def check_table_consistency(rows: Iterable[dict] | Any, tol: float = 0.0) -> list[dict[str, Any]]:
    """Flag a results table whose numbers are inconsistent with a sound evaluation.

    ``rows``: dicts (or a DataFrame) with ``attack`` (name; classified by pattern: AutoAttack, black-box =
    square/simba/transfer/local/spsa, single-step = fgsm, iterative = pgd/cw/mim/apgd) and ``accuracy`` (%). Rows
    named ``clean`` or ``worst case`` are ignored. A check whose attack kinds are absent is not reported.
    Flags: AutoAttack accuracy > the lowest iterative accuracy (e.g. OTJR Table 7); a black-box accuracy < the lowest
    white-box accuracy; the lowest iterative accuracy > the FGSM accuracy (each with ``tol`` points of slack).
    """
    if hasattr(rows, "to_dict"):
        rows = rows.to_dict("records")
    groups: dict[str, list[tuple[str, float]]] = {}
    for r in rows:
        name = str(r["attack"])
        if name.lower().startswith(("clean", "worst")):
            continue
        groups.setdefault(_kind(name), []).append((name, float(r["accuracy"])))
    out = []
    it = min(groups.get("iterative", []), key=lambda t: t[1], default=None)
    if it and groups.get("autoattack"):
        aa = max(groups["autoattack"], key=lambda t: t[1])
        out.append(_result("autoattack_not_weaker_than_pgd", aa[1] > it[1] + tol,
                           f"{aa[0]} accuracy must not exceed {it[0]} accuracy", autoattack=aa[1], pgd=it[1]))
    white = groups.get("iterative", []) + groups.get("autoattack", []) + groups.get("single-step", [])
    if white and groups.get("black-box"):
        wb = min(white, key=lambda t: t[1])
        bb = min(groups["black-box"], key=lambda t: t[1])
        out.append(_result("table_blackbox_vs_whitebox", bb[1] < wb[1] - tol,
                           f"black-box {bb[0]} must not beat white-box {wb[0]}", blackbox=bb[1], whitebox=wb[1]))
    if it and groups.get("single-step"):
        fg = min(groups["single-step"], key=lambda t: t[1])
        out.append(_result("table_iterative_vs_single_step", it[1] > fg[1] + tol,
                           f"{it[0]} accuracy must not exceed {fg[0]} accuracy", iterative=it[1], single_step=fg[1]))
    return out
