"""Re-evaluate a network at another input with its activation pattern frozen (for finite-difference JVPs).

``z, replay = pattern_forward(model, x)`` computes ``z = model(x)`` and records what makes a ReLU network piecewise:
the ReLU masks and the max-pooling argmax indices, plus the RNG state (so dropout draws the same masks).
``replay(x2)`` then evaluates the network *on the linear piece of x*: ReLUs multiply by the recorded masks,
max-pools gather at the recorded indices, dropout reuses its masks, BatchNorm normalizes with the batch statistics
of ``x2`` (its running statistics are left untouched). For a network without BatchNorm this is affine in ``x2`` and
``replay(x + t g) - z == t J(x) g`` for every ``t`` (up to rounding), with the same dependence on the parameters as
autograd's (which treats masks as constants): the basis of :func:`.jacobian.jacobian_frobenius_fd`. BatchNorm in
train mode is smooth, so there the difference is exact to O(t).

The recording is a :class:`torch.overrides.TorchFunctionMode`: it sees ``F.relu`` / ``torch.relu`` /
``Tensor.relu`` (and the in-place forms; ``nn.ReLU`` calls ``F.relu``) and ``F.max_pool2d`` (``nn.MaxPool2d``).
Other kinked operations (leaky ReLU, hardtanh, clamp, abs, other max-pools, ...) would break the frozen piece and
raise a ``ValueError`` naming the operation; smooth ones (BatchNorm, tanh, softplus, average pooling, ...) need no
freezing.
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

_RELU = {F.relu, torch.relu, Tensor.relu}
_RELU_INPLACE = {F.relu_, torch.relu_, Tensor.relu_}
_MAX_POOL = {F.max_pool2d}
_KINKED = {F.leaky_relu, F.leaky_relu_, F.relu6, F.hardtanh, F.hardtanh_, F.elu, F.selu, F.celu, F.rrelu,
           F.hardswish, F.hardsigmoid, F.max_pool1d, F.max_pool3d, F.adaptive_max_pool1d, F.adaptive_max_pool2d,
           F.adaptive_max_pool3d, F.threshold, torch.clamp, torch.clip, Tensor.clamp, Tensor.clamp_, torch.abs,
           Tensor.abs, torch.maximum, torch.minimum, torch.max, torch.min, Tensor.max, Tensor.min, torch.amax,
           torch.amin, torch.sign, torch.where}


def _max_pool_args(args, kwargs) -> tuple[Tensor, dict]:
    names = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
    params = dict(zip(names, args[1:]))
    params.update(kwargs or {})
    return args[0], params


class ActivationPattern(TorchFunctionMode):
    """Records (``mode="record"``) or replays (``mode="replay"``) ReLU masks and max-pool indices, in call order."""

    def __init__(self):
        super().__init__()
        self.mode = "record"
        self.saved: list[tuple[str, Tensor, torch.Size]] = []
        self.position = 0

    def _next(self, kind: str, shape: torch.Size) -> Tensor:
        if self.position >= len(self.saved):
            raise RuntimeError(f"replay called more {kind} operations than the recorded forward ({len(self.saved)})")
        saved_kind, value, saved_shape = self.saved[self.position]
        if saved_kind != kind or saved_shape != shape:
            raise RuntimeError(f"replay diverged from the recorded forward at operation {self.position}: "
                               f"{kind}{tuple(shape)} vs recorded {saved_kind}{tuple(saved_shape)}")
        self.position += 1
        return value

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _KINKED:
            raise ValueError(f"{getattr(func, '__name__', func)} is piecewise and cannot be frozen by "
                             "ActivationPattern (only ReLU and 2-D max-pooling are); use the exact double backprop "
                             "(jr_gradient='double_backward')")
        if func in _RELU or func in _RELU_INPLACE:
            x = args[0]
            inplace = func in _RELU_INPLACE or bool(kwargs.get("inplace", args[1] if len(args) > 1 else False))
            if self.mode == "record":
                # in x's dtype: multiplying by a bool mask is several times slower (type promotion)
                self.saved.append(("relu", (x > 0).to(x.dtype), x.shape))
                return func(*args, **kwargs)
            mask = self._next("relu", x.shape)
            return x.mul_(mask) if inplace else x * mask
        if func in _MAX_POOL:
            x, params = _max_pool_args(args, kwargs)
            want_indices = params.pop("return_indices", False)
            if self.mode == "record":
                out, idx = F.max_pool2d(x, return_indices=True, **params)
                self.saved.append(("max_pool2d", idx, x.shape))
                return (out, idx) if want_indices else out
            idx = self._next("max_pool2d", x.shape)
            out = x.flatten(2).gather(2, idx.flatten(2)).view(idx.shape)
            return (out, idx) if want_indices else out
        return func(*args, **kwargs)


@contextmanager
def frozen_running_stats(model: nn.Module):
    """Run extra train-mode forwards without touching BatchNorm's running statistics.

    The modules get copies of their buffers for the duration; the original tensors (which autograd may have saved
    for the backward of an earlier forward) are put back unmodified on exit.
    """
    saved = [(m, dict(m.named_buffers(recurse=False))) for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats]
    try:
        for m, buffers in saved:
            for k, b in buffers.items():
                setattr(m, k, b.clone())
        yield
    finally:
        for m, buffers in saved:
            for k, b in buffers.items():
                setattr(m, k, b)


def pattern_forward(model: nn.Module, x: Tensor, freeze: bool = True) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """``z = model(x)`` (unchanged: the same call as without recording) and ``replay(x2)`` (see the module doc).

    ``replay`` may be called several times; it leaves the global RNG state as it found it, and raises
    ``RuntimeError`` if the network takes a different path than when recorded (e.g. a batch of another shape).
    ``freeze=False`` replays only the dropout masks and spares the running statistics (ReLUs and max-pools then act
    on ``x2`` itself: the plain difference, kept for ``scripts/jr_finite_difference.py``).
    Raises ``ValueError`` if the network uses a kinked operation that cannot be frozen.
    """
    cuda = x.device.type == "cuda"
    cpu_state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state(x.device) if cuda else None
    pattern = ActivationPattern() if freeze else nullcontext()
    with pattern:
        z = model(x)

    def replay(x2: Tensor) -> Tensor:
        if freeze:
            pattern.mode, pattern.position = "replay", 0
        with torch.random.fork_rng(devices=[x.device] if cuda else [], device_type=x.device.type), \
                frozen_running_stats(model), pattern:
            torch.set_rng_state(cpu_state)
            if cuda:
                torch.cuda.set_rng_state(cuda_state, x.device)
            out = model(x2)
        if freeze and pattern.position != len(pattern.saved):
            raise RuntimeError(f"replay used {pattern.position} of the {len(pattern.saved)} recorded operations")
        return out

    return z, replay
