"""The ONE iterative attack loop shared by FGSM, PGD-Linf/L2, CW-k, MIM, TRADES and Feature Scattering.

:func:`perturb` is projected gradient *ascent* on a pluggable loss (Madry et al. 2018; FS paper Eq. (2)):

    x^{t+1} = P_{S_x}( x^t + alpha * step(g^t) ),   g^t = grad_x loss(f(x^t), y)

with ``step = sign`` for Linf and ``g / ||g||_2`` for L2, ``P_{S_x}`` the projection onto the eps-ball around ``x``
intersected with the image box [0, 1]. Momentum (MIM, Dong et al. 2018, Alg. 1) accumulates
``g^t / ||g^t||_1`` with decay ``mu`` before the step. The ball-dependent pieces (random start, step, projection) are
the step objects of :mod:`ot_robust.attacks.threat` (MadryLab ``robustness.attack_steps`` style; :func:`random_init`,
:func:`step_`, :func:`project_` are their functional forms, re-exported here); the keep-best bookkeeping
(best iterate, ``fooled_at``, fooled examples leaving the batch) is :class:`ot_robust.attacks.tracker.BestIterate`.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import nn

from ..core.validation import check_eps, check_images, check_labels  # noqa: F401  (check_images re-exported)
from .threat import INITS, NORMS, make_step, project_, random_init, step_  # noqa: F401  (re-exported)
from .tracker import BestIterate


@contextmanager
def model_mode(model: nn.Module, eval_mode: bool = True) -> Iterator[None]:
    """Put ``model`` in eval mode (if ``eval_mode``) and restore every submodule's previous mode, also on errors."""
    if not eval_mode:
        yield
        return
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def correct_mask(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int | None = None,
                 device=None) -> torch.Tensor:
    """``model(x).argmax(1) == y`` in eval mode (modes restored), without grad, in batches of ``batch_size`` (None:
    one batch) moved to ``device`` (default: the model's); a bool tensor ``(N,)`` on ``x``'s device."""
    if device is None:
        device = next(iter(model.parameters()), x).device
    bs = len(x) if batch_size is None else int(batch_size)
    with model_mode(model), torch.no_grad():
        return torch.cat([(model(x[i:i + bs].to(device)).argmax(1) == y[i:i + bs].to(device)).to(x.device)
                          for i in range(0, len(x), bs)]) if len(x) else torch.zeros(0, dtype=torch.bool)


def check_attack_params(eps, norm: str = "linf", **positive_ints) -> None:
    """Validate an attack's budget and counts: ``eps`` finite >= 0 (or None: no budget, e.g. C&W-L2 / DeepFool),
    ``norm`` in :data:`NORMS`, every keyword an integer >= 1. Raises ValueError naming the bad value."""
    if norm not in NORMS:
        raise ValueError(f"norm={norm!r}; allowed: {NORMS}")
    if eps is not None:
        check_eps(eps, norm)
    for k, v in positive_ints.items():
        if int(v) != v or v < 1:
            raise ValueError(f"{k}={v!r} must be an integer >= 1")


def _validate(x, y, eps, step_size, steps, norm, init, init_std, restarts, momentum, targeted, y_target):
    if norm not in NORMS:
        raise ValueError(f"norm={norm!r}; allowed: {NORMS}")
    if init not in INITS:
        raise ValueError(f"init={init!r}; allowed: {INITS}")
    check_eps(eps, norm, allow_inf=True)  # float('inf') = unbounded (the sanity suite's unbounded PGD)
    if not (step_size >= 0) or not math.isfinite(step_size):
        raise ValueError(f"step_size={step_size!r} must be a finite number >= 0")
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps={steps!r} must be an integer >= 0")
    if int(restarts) != restarts or restarts < 1:
        raise ValueError(f"restarts={restarts!r} must be an integer >= 1")
    if init_std < 0:
        raise ValueError(f"init_std={init_std!r} must be >= 0")
    if momentum is not None and not (0 <= momentum):
        raise ValueError(f"momentum={momentum!r} must be None or >= 0")
    if y is not None:
        check_labels(y, x.shape[0])
    if targeted and y_target is None:
        raise ValueError("targeted=True needs y_target (target labels of shape (B,))")
    if y_target is not None and (y_target.dim() != 1 or y_target.shape[0] != x.shape[0]):
        raise ValueError(f"y_target must have shape ({x.shape[0]},), got {tuple(y_target.shape)}")
    check_images(x)


def perturb(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, loss_fn: Callable, eps: float,
            step_size: float, steps: int, norm: str = "linf", init: str = "uniform", init_std: float = 0.001,
            restarts: int = 1, momentum: float | None = None, targeted: bool = False,
            y_target: torch.Tensor | None = None, keep_best: bool = True, eval_mode: bool = True,
            generator: torch.Generator | None = None,
            callback: Callable[[int, int, torch.Tensor], None] | None = None,
            stop_fooled: bool = False, fooled_at: torch.Tensor | None = None,
            clip_start: bool = True) -> torch.Tensor:
    """Projected gradient ascent on ``loss_fn`` inside the eps-ball: the one loop behind every white-box attack.

    Args:
        model: maps images ``(B, C, H, W)`` in [0, 1] to logits ``(B, K)``.
        x: clean images ``(B, C, H, W)`` in [0, 1] (ValueError otherwise).
        y: labels ``(B,)`` passed to ``loss_fn`` (may be ``None`` for label-free losses such as FS's OT distance).
        loss_fn: ``loss_fn(logits_adv, labels)`` -> ``(B,)`` per-example loss, or a scalar for batch-coupled losses
            (Feature Scattering's OT distance); may close over precomputed clean logits. The loop maximizes it
            (untargeted) or minimizes it w.r.t. ``y_target`` (targeted).
        eps: budget on the [0, 1] pixel scale (Linf: max |delta|; L2: ||delta||_2 per example); ``inf`` = unbounded.
        step_size: alpha (Linf: per-pixel step; L2: L2 length of each step).
        steps: number of gradient steps (0 returns the projected starting point).
        norm: ``"linf"`` or ``"l2"``.
        init: ``"uniform"`` (Madry random start), ``"normal"`` (``init_std * N(0,1)``, TRADES) or ``"none"``.
        restarts: R random restarts; the per-example worst case is returned (needs a per-example loss).
        momentum: MIM decay ``mu`` (Dong et al. 2018), ``None`` = plain PGD.
        targeted: minimize ``loss_fn(logits, y_target)`` instead of maximizing ``loss_fn(logits, y)``.
        keep_best: return, per example, the best iterate seen (misclassified first, then highest loss) rather than the
            last one; with a scalar loss the last iterate is returned. Training (TRADES/PGD-AT) should pass ``False``
            to match the papers' last-iterate adversaries at no extra forward pass.
        eval_mode: put the model in ``eval()`` for the attack and restore every submodule's mode afterwards (also on
            exceptions); ``False`` leaves the mode untouched (defenses that attack in train mode).
        generator: torch.Generator for the random start (``None`` = global RNG).
        callback: called as ``callback(restart, step, loss)`` with the detached loss of each evaluated iterate
            (``step`` 0..steps-1 before each update, and ``steps`` for the final iterate when it is scored, i.e.
            ``keep_best`` or ``restarts > 1``; used for the FS supplement Fig. 1 loss curves).
        stop_fooled: the evaluation fast path: with ``keep_best``, a per-example loss, ``eval_mode`` and no
            ``callback``, an example leaves the batch once one of its iterates is misclassified (reaches the target
            when targeted), for later steps and restarts. Whether each example is fooled is unchanged (keep-best
            returns a fooling iterate whenever one was found, and an example's trajectory does not depend on the
            others in eval mode); only *which* fooling iterate is returned changes (the first one found rather than
            the highest-loss one), so leave it off where the examples themselves are used (transfer, figures).
        fooled_at: an int64 ``(B,)`` tensor to fill (``keep_best``, ``restarts=1``): the index ``t`` of the first
            iterate that fooled each example (``t`` updates made; ``steps + 1`` if none did). A ``k``-step run
            with the same start fools exactly the examples with ``fooled_at <= k``, so one run gives the
            accuracy after every number of steps (FS Fig. 3b-c, :func:`ot_robust.evaluation.curves.accuracy_vs_steps`).
        clip_start: project the random start into the image box [0, 1] before the first gradient (default, as
            MadryLab's PGD). ``False``: the first gradient is taken at the unclipped start ``x + delta`` (in the
            eps-ball, possibly outside [0, 1]) and the box is applied after the first step, as the official TRADES
            (``trades.py``), MART (``mart.py``) and Feature Scattering (``attack_methods.py``) training code do.
            Only with ``keep_best=False`` (a training adversary: the unclipped start is never returned; with
            ``steps=0`` the start is clipped on return).
    Returns:
        ``x_adv`` ``(B, C, H, W)``, detached, with ``||x_adv - x|| <= eps`` and values in [0, 1].
    Raises:
        ValueError: bad norm/init/eps/step/steps/restarts, inputs outside [0, 1], missing ``y_target``, a scalar loss
            with ``restarts > 1``.
    """
    _validate(x, y, eps, step_size, steps, norm, init, init_std, restarts, momentum, targeted, y_target)
    if not clip_start and (keep_best or restarts != 1):
        raise ValueError("clip_start=False (the official training codes' unclipped start) is a training-adversary "
                         f"option: it needs keep_best=False and restarts=1, got keep_best={keep_best}, "
                         f"restarts={restarts}")
    x = x.detach()
    labels = y_target if targeted else y
    truth = y_target if targeted else y  # what success is judged against
    sign = -1.0 if targeted else 1.0
    drop = bool(stop_fooled and keep_best and eval_mode and callback is None and truth is not None)
    if fooled_at is not None and (restarts != 1 or not keep_best or fooled_at.shape != (x.shape[0],)
                                  or fooled_at.dtype != torch.int64):
        raise ValueError(f"fooled_at needs restarts=1, keep_best=True and an int64 tensor of shape "
                         f"({x.shape[0]},); got restarts={restarts}, keep_best={keep_best}, "
                         f"{tuple(fooled_at.shape)} {fooled_at.dtype}")
    threat = make_step(norm, eps, step_size, momentum)
    best = BestIterate(truth, targeted, drop, fooled_at, steps)

    with model_mode(model, eval_mode):
        for r in range(restarts):
            delta = threat.random_perturb(x, init, init_std, generator, clip_start)  # whole batch (same RNG use)
            cur, xs, ls = best.restart(), x, labels  # cur: the batch indices still attacked (None = all)
            if cur is not None:
                delta, xs, ls = delta[cur], x[cur], labels[cur]
            bounds = (-xs, 1 - xs)
            buf = threat.momentum_buffer(xs)
            per_example = None
            for t in range(steps):
                if xs.shape[0] == 0:
                    break
                delta.requires_grad_(True)
                with torch.enable_grad():
                    logits = model(xs + delta)
                    if per_example is None and ls is not None:
                        check_labels(ls, xs.shape[0], logits.shape[-1], "y_target" if targeted else "y")
                    loss = loss_fn(logits, ls)
                    if per_example is None:
                        per_example = _check_loss(loss, xs.shape[0], restarts)
                    obj = loss.sum() if per_example else loss
                    (g,) = torch.autograd.grad(obj * sign if targeted else obj, delta)
                delta = delta.detach()
                if callback is not None:
                    callback(r, t, loss.detach())
                if per_example and keep_best:
                    best.update(delta, logits.detach(), loss, t)
                if buf is not None:  # MIM: g_{t+1} = mu * g_t + grad / ||grad||_1
                    g = threat.accumulate(buf, g)
                threat.project(threat.step(delta, g), xs, bounds)
                if drop and per_example:
                    keep = best.drop_fooled()
                    if keep is not None:  # fooled examples leave the batch (their best iterate is kept)
                        delta, xs, ls = delta[keep], xs[keep], ls[keep]
                        bounds = (-xs, 1 - xs)
                        buf = buf[keep] if buf is not None else None
            if per_example is False or (not keep_best and restarts == 1):
                if not clip_start and steps == 0:
                    threat.project(delta, x)
                return (x + delta).detach()
            if xs.shape[0] == 0:
                continue
            with torch.no_grad():  # the final iterate (not yet scored)
                logits = model(xs + delta)
                loss = loss_fn(logits, ls)
            if per_example is None and not _check_loss(loss, xs.shape[0], restarts):
                return (x + delta).detach()
            if callback is not None:
                callback(r, steps, loss.detach())
            best.update(delta, logits, loss, steps)
    return (x + best.delta).detach()


def _check_loss(loss: torch.Tensor, batch: int, restarts: int) -> bool:
    """True for a per-example ``(B,)`` loss, False for a scalar; ValueError otherwise or for scalar + restarts > 1."""
    if loss.dim() == 0:
        if restarts > 1:
            raise ValueError(f"restarts={restarts} needs a per-example loss of shape ({batch},); loss_fn returned a "
                             "scalar (batch-coupled losses such as the FS OT distance allow restarts=1 only)")
        return False
    if loss.shape != (batch,):
        raise ValueError(f"loss_fn must return shape ({batch},) or a scalar, got {tuple(loss.shape)}")
    return True
