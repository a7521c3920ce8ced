"""GOT: adversarial generalization with optimal transport (GOT paper, ICLR 2022 submission, Sec. 3.2, Eq. 2-6).

GOT adds to an adversarial-training loss the Wasserstein distance between the *benign* and the *adversarial* joint
distributions of (latent feature, prediction) on a mini-batch::

    u_i = (z_i, h(z_i)),  z_i = g(x_i);   u^a_j = (z^a_j, h(z^a_j)),  z^a_j = g(x^a_j)
    d(u_i, u^a_j) = lam * d_x(z_i, z^a_j) + d_y(h(z_i), h(z^a_j))                     (Sec. 3.2, below Eq. 2)

approximated by the entropic semi-dual of Genevay et al. (2016) with a learned Kantorovich potential phi
(a linear layer on the latent space, App. A.3)::

    W = max_phi  E_u[phi(z)] - theta E_{u^a}[ log E_u[ M(y, y^a) exp((phi(z) - d(u, u^a)) / theta) ] ]   (Eq. 5, 6)

with ``M = 1`` (standard variant "S", Eq. 5) or ``M = 1[y = y^a]`` (label matching "LM", Eq. 6). The potential is
trained by its own optimiser (gradient *ascent*, inside :meth:`GOT.loss`); the classifier then *descends* on

    GOT-PGD    (Eq. 3):  alpha * CE(f(x'), y) + w_clean * CE(f(x), y) + beta * W,  x' = PGD on CE    (Madry)
    GOT-TRADES (Eq. 4):  alpha * KL(f(x) || f(x')) + w_clean * CE(f(x), y) + beta * W,  x' = PGD on KL (TRADES)

The adversarial examples come from the *unchanged* PGD / TRADES inner maximisation: in Eq. 3-4 the ``sup`` covers
only the CE (resp. KL) term, and Sec. 3.2 defines the adversary A independently of W ("Given an adversary A (e.g.
PGD or TRADES) ..."), so W is not part of the attack objective. ``h(z)`` is the softmax of the logits (for the
penultimate latent, h is the last linear layer; for a middle latent, h is the rest of the network).

Choices the paper leaves open (also in docs/got.md):
* how the potential is maximised (the paper trains "a linear real value layer" on the features and gives no
  optimiser): by default (``potential_solver="sinkhorn"``) exactly, on every batch: the maximiser of the semi-dual
  over all potentials on the batch is Sinkhorn's row potential of the same entropic problem
  (:func:`~ot_robust.ot.dual_potential`, masked kernel for LM), which the linear layer represents exactly whenever
  the rank of ``[z, 1]`` is the batch size (latent dimension >= B - 1: the CW CNN's 200-d latent at B = 128). The
  classifier then descends on the exact entropic W with the envelope gradient (the optimal plan).
  ``potential_solver="adam"`` keeps the earlier update for comparison (``potential_steps`` Adam steps at
  ``potential_lr`` per batch, best iterate kept, the linear potential carried across batches): on trained features
  (norms 30-53) it stays near phi = 0 for the S variants and its gradient is nearly uncorrelated with the gradient of
  W (docs/got.md, "The potential").
* the maximisation runs *before* the classifier's value is computed, so the classifier descends on the freshly
  maximised dual (envelope theorem) with phi frozen.
* which side of W the classifier descends on (``w_gradient``): by default only the *adversarial* side; the benign
  (z, h(z)) are the target, detached. Sec. 3.2 describes W as "pushing the adversarial distribution toward the benign
  data distribution" and Fig. 1 moves the adversarial points to the benign clusters; Eq. 3-4 as printed would also
  differentiate the benign side (``w_gradient="both"``). Measured on the MNIST sample (CW CNN, eps 0.3): with
  ``"both"`` W is minimised by collapsing every feature and prediction to one point (all costs 0, W = its floor
  ``theta log C`` for LM), and the classifier collapses to a constant prediction even after a warm-up epoch.
* a warm-up (``warmup_steps``, ``ramp_steps``; 0 in the paper): at a random initialisation every latent cost is
  small, the entropic plan is nearly uniform and W ~ the mean pairwise cost, whose gradient is 20-30x the CE's in
  every conv layer: W then collapses the features before CE has taught anything, with either ``w_gradient``.
  Training the base loss for one epoch first (then beta = 10) avoids it in our CPU runs.
* clean and adversarial batches go through the model in two forward passes (as TRADES' official code does), so
  BatchNorm statistics are not mixed.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attacks import ce_loss, perturb
from ..ot import KantorovichPotential, dual_potential, entropic_dual, joint_cost
from ..core.utils import all_reduce_mean_
from ..core.validation import check_choice, check_int, check_number
from .base import Defense, DefenseOutput, attack_params, register_defense
from .trades import kl_clean_adv, trades_perturb

VARIANTS = ("pgd", "trades")
D_X = {"cosine": "cosine", "l2": "euclidean", "sqeuclidean": "sqeuclidean"}
D_Y = {"kl": "kl", "l1": "l1"}
LATENTS = ("penultimate", "middle")
GRADIENTS = ("adversarial", "both")

#: Potential optimiser defaults (the paper gives none). Measured on a real MNIST batch of 128 (small_cnn after 40 clean
#: steps, PGD-10 adversaries at eps 0.3, phi started at 0; entropic primal by Sinkhorn 0.353, S variant): Adam 1e-3 with
#: 1 step per batch reaches only 0.26 after 6 batches; Adam 1e-2 with 5 steps gives 0.30 after one batch and 0.33-0.34
#: after two (the best a linear phi reaches is ~0.342); Adam 1e-1 oscillates (first step drops the dual to -0.02).
#: The potential is kept across batches, so it keeps tracking the slowly changing features. 5 steps on a (B, B) cost
#: matrix and a linear layer cost far less than one forward pass of the model.
POTENTIAL_DEFAULTS = dict(potential_lr=1e-2, potential_steps=5)
POTENTIAL_SOLVERS = ("sinkhorn", "adam")


class GOTDistance:
    """The GOT regulariser ``W_theta(Q_d^h, Q_a^h)`` (Eq. 5, or Eq. 6 with ``label_matching``) and its potential.

    Args:
        theta: entropic parameter (> 0; GOT App. A.3: 0.1).
        lam: weight of the latent cost d_x (> 0; GOT: 1.0).
        d_x: latent cost, ``"cosine"`` (GOT default), ``"l2"`` (Euclidean distance) or ``"sqeuclidean"``.
        d_y: cost on the simplex between predictions, ``"kl"`` (``KL(h(z_i) || h(z^a_j))``, GOT default) or ``"l1"``.
        label_matching: restrict the inner expectation to equal-label pairs (Eq. 6).
        potential_solver: ``"sinkhorn"`` (default): phi at the dual maximum on every batch
            (:func:`~ot_robust.ot.dual_potential`, stopped at row-marginal L1 error ``potential_tol`` or
            ``potential_max_iter`` iterations); ``"adam"``: the earlier update, ``potential_steps`` Adam ascent steps
            at ``potential_lr`` on a linear potential kept across batches (for comparison only: it does not reach the
            maximum on trained features, docs/got.md).
        potential_lr, potential_steps: Adam learning rate and ascent steps per call (``"adam"`` only).
        gradient: which side of W the classifier descends on. ``"adversarial"`` (default): the benign (z, h(z)) are
            the target, detached, and W moves the adversarial joint distribution toward them (GOT Sec. 3.2 and Fig. 1:
            W "push[es] the adversarial distribution toward the benign data distribution"); ``"both"``: Eq. 3-4 read
            literally, gradients reach both batches (measured: collapses to a constant prediction at CPU scale, see
            docs/got.md).
    The potential (:class:`~ot_robust.ot.KantorovichPotential`, a linear layer) is created on the first call, when the
    latent dimension is known, on the latent's device; :meth:`load_state_dict` may create it earlier.

    Raises:
        ValueError: theta, lam, potential_lr or potential_tol not > 0, potential_steps or potential_max_iter not an
        integer >= 1, unknown d_x / d_y, gradient or potential_solver.
    """

    def __init__(self, theta: float = 0.1, lam: float = 1.0, d_x: str = "cosine", d_y: str = "kl",
                 label_matching: bool = False, potential_lr: float = POTENTIAL_DEFAULTS["potential_lr"],
                 potential_steps: int = POTENTIAL_DEFAULTS["potential_steps"], gradient: str = "adversarial",
                 potential_solver: str = "sinkhorn", potential_tol: float = 1e-6, potential_max_iter: int = 100):
        self.theta = check_number("theta", theta, low_open=True)
        self.lam = check_number("lam", lam, low_open=True)
        if d_x not in D_X:
            raise ValueError(f"d_x={d_x!r} is not a GOT latent cost; allowed: {sorted(D_X)}")
        if d_y not in D_Y:
            raise ValueError(f"d_y={d_y!r} is not a GOT prediction cost; allowed: {sorted(D_Y)}")
        self.d_x, self.d_y = d_x, d_y
        self.label_matching = bool(label_matching)
        self.potential_lr = check_number("potential_lr", potential_lr, low_open=True)
        self.potential_steps = check_int("potential_steps", potential_steps)
        self.gradient = check_choice("gradient", gradient, GRADIENTS)
        self.potential_solver = check_choice("potential_solver", potential_solver, POTENTIAL_SOLVERS)
        self.potential_tol = check_number("potential_tol", potential_tol, low_open=True)
        self.potential_max_iter = check_int("potential_max_iter", potential_max_iter)
        self.potential: KantorovichPotential | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self._pending_optimizer_state = None

    # -- potential -------------------------------------------------------------------------------------------------
    def build(self, in_dim: int, device=None) -> KantorovichPotential:
        """Create (or move) the potential phi on ``in_dim``-dimensional latents and its Adam optimiser."""
        if self.potential is None:
            self.potential = KantorovichPotential(int(in_dim)).to(device)
        elif self.potential.linear.in_features != in_dim:
            raise ValueError(f"the potential was built for {self.potential.linear.in_features}-d latents, got "
                             f"{in_dim}-d (latent layer changed?)")
        self.potential.to(device)
        if self.optimizer is None:
            self.optimizer = torch.optim.Adam(self.potential.parameters(), lr=self.potential_lr)
            if self._pending_optimizer_state is not None:
                self.optimizer.load_state_dict(self._pending_optimizer_state)  # moves state to the param device
                self._pending_optimizer_state = None
        return self.potential

    def cost(self, z: Tensor, z_adv: Tensor, p: Tensor, p_adv: Tensor) -> Tensor:
        """``C_ij = lam d_x(z_i, z^a_j) + d_y(p_i, p^a_j)``: z (B, d), z_adv (B', d), p/p_adv probabilities (., K).

        Returns (B, B'), computed in float32 (safe under autocast).
        """
        return joint_cost(z.float(), z_adv.float(), p.float(), p_adv.float(), self.lam, D_X[self.d_x], D_Y[self.d_y])

    def dual(self, z: Tensor, C: Tensor, y: Tensor | None = None, y_adv: Tensor | None = None,
             frozen: bool = False) -> Tensor:
        """The semi-dual (Eq. 5, or Eq. 6 when ``label_matching``) at the current potential; scalar.

        z (B, d) benign latents (phi acts on them); C (B, B') costs; y (B,), y_adv (B',) labels (needed for LM).
        ``frozen`` evaluates phi with detached parameters (the classifier's view: no gradient reaches phi).
        """
        if self.potential is None:
            raise RuntimeError("GOTDistance.dual called before the potential was built (call build or the object)")
        if frozen:
            params = {k: v.detach() for k, v in self.potential.named_parameters()}
            phi = torch.func.functional_call(self.potential, params, (z.float(),))
        else:
            phi = self.potential(z.float())
        labels = (y, y if y_adv is None else y_adv) if self.label_matching else (None, None)
        if self.label_matching and y is None:
            raise ValueError("label matching (GOT Eq. 6) needs the labels y")
        return entropic_dual(phi, C, theta=self.theta, labels=labels[0], labels_adv=labels[1])

    @torch.enable_grad()
    def ascend(self, z: Tensor, C: Tensor, y: Tensor | None = None, y_adv: Tensor | None = None) -> float:
        """``potential_steps`` Adam ascent steps on the dual w.r.t. phi only (inputs detached), keeping the best
        iterate (so the ascent never lowers the dual: Adam's normalised steps can overshoot where the dual is flat).
        Returns the dual before the first step. Under torch.distributed the gradients are averaged over processes."""
        z, C = z.detach().float(), C.detach()
        params = list(self.potential.parameters())
        before = best = None
        best_params = None
        for step in range(self.potential_steps + 1):
            obj = self.dual(z, C, y, y_adv)
            value = float(obj.detach())
            if before is None:
                before = value
            if best is None or value > best:
                best, best_params = value, [p.detach().clone() for p in params]
            if step == self.potential_steps:
                break
            grads = list(torch.autograd.grad(-obj, params))
            all_reduce_mean_(grads)  # under torch.distributed: the mean over processes
            for p, g in zip(params, grads):
                p.grad = g
            self.optimizer.step()
        with torch.no_grad():
            for p, b in zip(params, best_params):
                p.grad = None
                p.copy_(b)
        return before

    def __call__(self, z: Tensor, z_adv: Tensor, logits: Tensor, logits_adv: Tensor,
                y: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
        """Maximise over phi, then return ``(W, logs)`` with W differentiable in the latents and logits (phi
        frozen: the envelope gradient). z (B, d), z_adv (B, d), logits / logits_adv (B, K), y (B,) (required for LM).

        logs: ``got_w`` (W at the maximised potential); ``"sinkhorn"``: ``got_potential_iters`` and
        ``got_potential_err`` (iterations, row-marginal L1 error reached); ``"adam"``: ``got_dual_before`` (dual at
        the incoming potential).
        """
        if z.dim() != 2 or z.shape != z_adv.shape:
            raise ValueError(f"z and z_adv must both have shape (B, d), got {tuple(z.shape)} and {tuple(z_adv.shape)}")
        if z.shape[0] < 2:
            raise ValueError(f"GOT couples the batch through OT: batch size must be >= 2, got {z.shape[0]}")
        if self.gradient == "adversarial":
            z, logits = z.detach(), logits.detach()
        if self.label_matching and y is None:
            raise ValueError("label matching (GOT Eq. 6) needs the labels y")
        C = self.cost(z, z_adv, logits.float().softmax(-1), logits_adv.float().softmax(-1))
        if self.potential_solver == "sinkhorn":
            labels = (y, y) if self.label_matching else (None, None)
            phi, info = dual_potential(C, self.theta, labels=labels[0], labels_adv=labels[1],
                                       tol=self.potential_tol, max_iter=self.potential_max_iter)
            w = entropic_dual(phi, C, theta=self.theta, labels=labels[0], labels_adv=labels[1])
            return w, {"got_w": float(w.detach()), "got_potential_iters": info["n_iter"],
                       "got_potential_err": info["err"]}
        self.build(z.shape[1], z.device)
        before = self.ascend(z, C, y)
        w = self.dual(z, C, y, frozen=True)
        return w, {"got_dual_before": before, "got_w": float(w.detach())}

    # -- state (potential weights + its optimiser) ---------------------------------------------------------------
    def state_dict(self) -> dict:
        """``{"potential": weights or None, "optimizer": Adam state or None}``."""
        return {"potential": None if self.potential is None else self.potential.state_dict(),
                "optimizer": None if self.optimizer is None else self.optimizer.state_dict()}

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Restore :meth:`state_dict` output; builds the potential from the saved weight shape if needed."""
        if state.get("potential") is not None:
            weight = state["potential"]["linear.weight"]
            if self.potential is None:
                self.potential = KantorovichPotential(weight.shape[1]).to(weight.device)
            self.potential.load_state_dict(state["potential"], strict=strict)
        if state.get("optimizer") is not None:
            opt_state = copy.deepcopy(state["optimizer"])  # never share (in-place updated) tensors with the source
            if self.optimizer is not None:
                self.optimizer.load_state_dict(opt_state)
            else:
                self._pending_optimizer_state = opt_state


@contextmanager
def _capture(module: nn.Module) -> Iterator[list]:
    out: list = []
    handle = module.register_forward_hook(lambda m, i, o: out.append(o))
    try:
        yield out
    finally:
        handle.remove()


def latent_module(model: nn.Module, latent: str) -> nn.Module | None:
    """The submodule whose output is the latent (None for ``"penultimate"`` / ``"middle"``, which the model returns
    itself). Raises ValueError for a name that is not a submodule of ``model`` (listing a few valid names)."""
    if latent in LATENTS:
        return None
    inner = getattr(model, "module", model)  # DDP / DataParallel wrappers
    module = dict(inner.named_modules()).get(latent) if isinstance(latent, str) and latent else None
    if module is None:
        names = [n for n, _ in inner.named_modules() if n][:12]
        raise ValueError(f"latent={latent!r} is neither one of {LATENTS} nor a submodule of "
                         f"{type(inner).__name__}; its submodules include {names}")
    return module


def latent_forward(model: nn.Module, x: Tensor, latent: str = "penultimate") -> tuple[Tensor, Tensor]:
    """``(logits (B, K), z (B, d))`` with z the latent of GOT's ablation Table 4.

    latent: ``"penultimate"`` (input of the last linear layer, GOT default), ``"middle"`` (the model's middle stage,
    ``model(x, return_features="middle")``), or the name of any submodule in ``model.named_modules()`` (its output,
    flattened; e.g. ``"stages.1"`` = the last max-pool of ``cw_cnn``, GOT's "middle layer" of Table 4).
    Raises ValueError for an unknown latent (see :func:`latent_module`).
    """
    module = latent_module(model, latent)
    if module is None:
        return model(x, return_features=True if latent == "penultimate" else "middle")
    with _capture(module) as out:
        logits = model(x)
    return logits, out[-1].flatten(1)


class GOT(Defense):
    """GOT-PGD / GOT-TRADES, standard (S) or label matching (LM): GOT Eq. 3-6 (see the module docstring).

    Args:
        variant: ``"pgd"`` (Eq. 3, CE inner maximisation, uniform random start) or ``"trades"`` (Eq. 4, KL inner
            maximisation from ``x + 0.001 N(0, 1)``).
        label_matching: False = GOT-*-S (Eq. 5), True = GOT-*-LM (Eq. 6).
        eps, step_size, steps: the training adversary (L_inf, [0, 1] pixel scale). GOT App. A.3: MNIST 0.3 / 0.01 /
            40; CIFAR-10/100, SVHN 8/255 / 2/255 / 20 (see :mod:`ot_robust.presets.got`).
        beta: weight of W (App. A.3: 10). alpha: weight of the adversarial term (1 for PGD, 6 for TRADES; None picks
            these). clean_weight: weight of CE on clean images (1 in Eq. 3-4; the appendix drops it for GOT-PGD on
            MNIST/CIFAR and uses 0.5 on SVHN: set by the presets).
        theta, lam, d_x, d_y, potential_solver, potential_tol, potential_max_iter, potential_lr, potential_steps:
            see :class:`GOTDistance` (default: phi at the dual maximum on every batch, by Sinkhorn).
        latent: which layer is the latent space (see :func:`latent_forward`); the potential acts on it.
        w_gradient: ``"adversarial"`` (default; benign side of W detached) or ``"both"`` (see :class:`GOTDistance`).
        clip_start: the training adversary's random start; None (default) follows the base method's official code:
            GOT-PGD Madry's (clipped into [0, 1] before the first gradient), GOT-TRADES TRADES' ``trades.py``
            (unclipped; runs made before the option resume clipped, recorded in ``config.json``).
        warmup_steps, ramp_steps: W's weight is 0 for the first ``warmup_steps`` training steps, then rises linearly
            to ``beta`` over ``ramp_steps`` (:meth:`beta_at`; both 0 = beta from the start, as in the paper). Our
            addition for short CPU runs: from a random initialisation W (weight 10) is minimised by collapsing the
            features before the classifier has learnt anything (docs/got.md).
    Raises:
        ValueError: unknown variant, eps < 0, step_size <= 0, steps < 1, beta/alpha/clean_weight < 0,
        warmup_steps/ramp_steps not integers >= 0, and the
        :class:`GOTDistance` errors; a latent layer that the model does not have (first call of :meth:`loss`);
        batch size < 2 (:meth:`validate`, the OT term couples the batch).
    """

    batch_coupled = True

    def __init__(self, variant: str = "pgd", label_matching: bool = False, eps: float = 8 / 255,
                 step_size: float = 2 / 255, steps: int = 10, beta: float = 10.0, alpha: float | None = None,
                 clean_weight: float = 1.0, theta: float = 0.1, lam: float = 1.0, d_x: str = "cosine",
                 d_y: str = "kl", latent: str = "penultimate",
                 potential_lr: float = POTENTIAL_DEFAULTS["potential_lr"],
                 potential_steps: int = POTENTIAL_DEFAULTS["potential_steps"], w_gradient: str = "adversarial",
                 warmup_steps: int = 0, ramp_steps: int = 0, potential_solver: str = "sinkhorn",
                 potential_tol: float = 1e-6, potential_max_iter: int = 100, clip_start: bool | None = None):
        super().__init__()
        self.variant = check_choice("variant", variant, VARIANTS)
        self.eps, self.step_size, self.steps = attack_params(eps, step_size, steps)
        self.beta = check_number("beta", beta)
        self.alpha = check_number("alpha", (1.0 if variant == "pgd" else 6.0) if alpha is None else alpha)
        self.clean_weight = check_number("clean_weight", clean_weight)
        if not isinstance(latent, str) or not latent:
            raise ValueError(f"latent={latent!r} must be {LATENTS} or a submodule name")
        self.latent = latent
        self.ot = GOTDistance(theta, lam, d_x, d_y, label_matching, potential_lr, potential_steps, w_gradient,
                              potential_solver, potential_tol, potential_max_iter)
        self.clip_start = (self.variant == "pgd") if clip_start is None else bool(clip_start)
        self.warmup_steps = check_int("warmup_steps", warmup_steps, low=0)
        self.ramp_steps = check_int("ramp_steps", ramp_steps, low=0)
        self.step = 0  # training steps taken (calls of loss() with the model in train mode); saved in state_dict
        self._checked_model = None

    def beta_at(self, step: int) -> float:
        """The weight of W at training step ``step``: 0 for the first ``warmup_steps`` steps (the base PGD-AT /
        TRADES loss alone), then rising linearly to ``beta`` over ``ramp_steps`` steps, then ``beta``."""
        if step < self.warmup_steps:
            return 0.0
        if self.ramp_steps == 0:
            return self.beta
        return self.beta * min(1.0, (step - self.warmup_steps + 1) / self.ramp_steps)

    def state_dict(self) -> dict:
        return {"ot": self.ot.state_dict(), "step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.ot.load_state_dict(state["ot"])
        self.step = int(state.get("step", 0))

    def attack(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """The training adversary of Eq. 3 (PGD on CE) or Eq. 4 (TRADES: PGD on KL(f(x) || f(x'))); last iterate."""
        if self.variant == "pgd":
            return perturb(model, x, y, ce_loss, self.eps, self.step_size, self.steps, init="uniform",
                           keep_best=False, clip_start=self.clip_start)
        return trades_perturb(model, x, self.eps, self.step_size, self.steps, clip_start=self.clip_start)

    def loss(self, model: nn.Module, x: Tensor, y: Tensor) -> DefenseOutput:
        """GOT training loss (Eq. 3 or 4) for a batch x (B, C, H, W) in [0, 1], y (B,); also ascends the potential."""
        if self._checked_model is not model:
            latent_module(model, self.latent)
            self._checked_model = model
        x_adv = self.attack(model, x, y)
        logits, z = latent_forward(model, x, self.latent)
        logits_adv, z_adv = latent_forward(model, x_adv, self.latent)
        w, logs = self.ot(z, z_adv, logits, logits_adv, y)
        ce_clean = F.cross_entropy(logits, y)
        if self.variant == "pgd":
            adv = F.cross_entropy(logits_adv, y)
        else:
            adv = kl_clean_adv(logits, logits_adv).mean()
        beta = self.beta_at(self.step)
        if model.training:
            self.step += 1
        loss = self.alpha * adv + self.clean_weight * ce_clean + beta * w
        logs.update({"ce_clean": float(ce_clean.detach()), "got_beta": beta,
                     ("ce_adv" if self.variant == "pgd" else "kl_adv"): float(adv.detach())})
        return DefenseOutput(loss=loss, logs=logs, logits_adv=logits_adv.detach())


def _register(name: str, variant: str, label_matching: bool) -> type:
    recorded = {"potential_solver": ("sinkhorn", "adam")}
    if variant == "trades":
        recorded["clip_start"] = (False, True)
    cls = type(name, (GOT,), {
        "recorded": recorded,
        "__doc__": f"GOT-{variant.upper()}-{'LM' if label_matching else 'S'}: :class:`GOT` with variant={variant!r}, "
                   f"label_matching={label_matching}.",
        "__init__": lambda self, **kw: GOT.__init__(self, variant=variant, label_matching=label_matching, **kw),
    })
    return register_defense(name)(cls)


GOTPGDS = _register("got_pgd_s", "pgd", False)
GOTPGDLM = _register("got_pgd_lm", "pgd", True)
GOTTRADESS = _register("got_trades_s", "trades", False)
GOTTRADESLM = _register("got_trades_lm", "trades", True)
