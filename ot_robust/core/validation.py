"""One input-validation vocabulary for the public boundaries (attacks, evaluate, sanity, defenses, training):
every check raises ``ValueError`` naming the bad value and what is allowed.

* :func:`check_eps` - a perturbation budget on the [0, 1] pixel scale: finite, >= 0; Linf above 1 is refused with
  "did you mean 8/255?" (the 0-255 scale forgotten); L2/L1 above :data:`MAX_L2_EPS`.
* :func:`check_step` - the step-size rule shared by evaluation attacks and training adversaries.
* :func:`check_images` - floating, finite (no NaN / Inf), in [0, 1]; :func:`check_image_batch` adds the
  ``(N, C, H, W)`` shape (a batch without its channel dimension is refused, naming ``x.unsqueeze(1)``).
* :func:`check_model` - a one-batch probe of a model before an evaluation: it accepts the images' shape (else both
  shapes are named), returns a logits tensor ``(B, num_classes)`` (not a tuple or dict), and, where gradients are
  needed, its output has an autograd graph back to the input.
* :func:`check_labels` - integer class indices of shape (B,) matching the batch, in [0, num_classes).
* :func:`check_number`, :func:`check_int`, :func:`check_choice` - scalar parameters (a finite number in an interval,
  ``"8/255"`` accepted; an integer >= a bound; one of the allowed values), for the defenses, the OT solvers and the
  attacks alike.
"""
from __future__ import annotations

import math

import torch

#: an L2 / L1 budget larger than this exceeds the diameter of any image this project handles (3x512x512: 887)
MAX_L2_EPS = 1000.0


def check_eps(eps, norm: str = "linf", name: str = "eps", allow_inf: bool = False) -> float:
    """``float(eps)`` if it is a valid budget for ``norm`` on the [0, 1] pixel scale, else ValueError."""
    try:
        v = float(eps)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={eps!r} must be a number on the [0, 1] pixel scale") from None
    if math.isnan(v) or v < 0 or (math.isinf(v) and not allow_inf):
        raise ValueError(f"{name}={eps!r} must be a finite number >= 0 (on the [0, 1] pixel scale)")
    if math.isinf(v):
        return v
    if norm == "linf" and v > 1:
        hint = f"; did you mean {v:g}/255 = {v / 255:.4g}?" if v <= 255 else ""
        raise ValueError(f"{name}={eps!r} is above 1 on the [0, 1] pixel scale (an Linf budget of more than the "
                         f"whole pixel range){hint}")
    if norm != "linf" and v > MAX_L2_EPS:
        raise ValueError(f"{name}={eps!r} ({norm}) exceeds {MAX_L2_EPS:g}, more than the diameter of any image; "
                         "give the budget on the [0, 1] pixel scale")
    return v


def check_images(x: torch.Tensor, name: str = "x") -> None:
    """Raise ValueError unless ``x`` is a floating tensor of finite values in [0, 1]."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of images in [0, 1], got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise ValueError(f"{name} must be a floating tensor in [0, 1], got dtype {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}); give at least one image")
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        raise ValueError(f"{name} holds {int(bad.sum())} NaN/Inf value(s); images must be finite, in [0, 1]")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        raise ValueError(f"{name} must lie in [0, 1] (images on the [0, 1] pixel scale); "
                         f"got min {lo:.4g}, max {hi:.4g}")


def check_image_batch(x: torch.Tensor, name: str = "x") -> None:
    """Raise ValueError unless ``x`` is a batch of images ``(N, C, H, W)``, floating, finite, in [0, 1]."""
    if isinstance(x, torch.Tensor) and x.dim() != 4:
        shape = tuple(x.shape)
        hint = (f"; a grayscale batch {shape} needs its channel dimension: x.unsqueeze(1) gives "
                f"{(shape[0], 1) + shape[1:]}" if x.dim() == 3 else "")
        raise ValueError(f"{name} has shape {shape}; images must be a batch (N, C, H, W) with a channel "
                         f"dimension{hint}")
    check_images(x, name)


def _first_layer(model) -> str:
    """What the first Conv / Linear layer of ``model`` expects, in words ("" when it has none)."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.conv._ConvNd):
            return f"its first layer {type(m).__name__} expects {m.in_channels} input channel(s)"
        if isinstance(m, torch.nn.Linear):
            return f"its first layer Linear expects {m.in_features} input features per image"
    return ""


def check_model(model, x: torch.Tensor, need_grad: bool = True, name: str = "model") -> int:
    """One-batch probe of ``model`` on the first two images of ``x`` ``(N, C, H, W)`` in [0, 1], in eval mode (every
    submodule's mode restored): the model must run on that shape, return a floating logits tensor
    ``(B, num_classes)`` (not a tuple, list or dict) and, with ``need_grad``, give an output with an autograd graph
    back to its input (gradient-based attacks differentiate it). Returns ``num_classes``.

    Raises:
        ValueError: naming the images' shape and what the model expects, the type or shape it returned, or a
            missing autograd graph (``torch.no_grad`` / ``.detach()`` inside ``forward``).
    """
    xb = x[:2].detach().clone().requires_grad_(need_grad)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.enable_grad():
            try:
                out = model(xb)
            except RuntimeError as e:  # shape mismatches (channels, image size) surface as RuntimeError
                c, (h, w) = xb.shape[1], xb.shape[-2:]
                expects = _first_layer(model)
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                raise ValueError(f"{name} fails on images of shape {tuple(xb.shape)} ({c} channel(s), {h}x{w}: "
                                 f"{xb[0].numel()} values per image)"
                                 f"{': ' + expects if expects else ''} ({first}); give data of the shape the model "
                                 "was built for") from None
            if not isinstance(out, torch.Tensor):
                items = f" of {len(out)} items" if isinstance(out, (tuple, list, dict)) else ""
                raise ValueError(f"{name}(x) returned a {type(out).__name__}{items}, not a logits tensor (B, "
                                 "num_classes); wrap the model so that forward returns only the logits")
            if out.dim() != 2 or out.shape[0] != len(xb) or out.shape[1] < 2 or not torch.is_floating_point(out):
                raise ValueError(f"{name}(x) on images of shape {tuple(xb.shape)} returned {out.dtype} of shape "
                                 f"{tuple(out.shape)}; expected floating logits ({len(xb)}, num_classes >= 2)")
            if need_grad:
                if not out.requires_grad:
                    why = "output.requires_grad is False while the input requires grad"
                elif torch.autograd.grad(out.sum(), xb, allow_unused=True)[0] is None:
                    why = "the output's gradient with respect to the input is None"
                else:
                    why = ""
                if why:
                    raise ValueError(f"{name}'s output has no autograd graph back to its input ({why}: torch.no_grad, "
                                     ".detach() or a non-differentiable op inside forward), so gradient-based attacks "
                                     "cannot run on it; remove that from forward, or evaluate with black-box attacks "
                                     "only")
    finally:
        for m, training in modes:
            m.training = training
    return int(out.shape[1])


def check_labels(y: torch.Tensor, batch: int, num_classes: int | None = None, name: str = "y") -> None:
    """Raise ValueError unless ``y`` holds ``batch`` integer class indices in [0, num_classes)."""
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.shape[0] != batch:
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"{name} must have shape ({batch},) (one label per image), got {shape}")
    if torch.is_floating_point(y) or y.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer class indices, got dtype {y.dtype}")
    if batch and int(y.min()) < 0:
        raise ValueError(f"{name} holds label {int(y.min())}; labels are class indices >= 0")
    if num_classes is not None and batch and int(y.max()) >= num_classes:
        raise ValueError(f"{name} holds label {int(y.max())} but the model has {num_classes} classes "
                         f"(allowed: 0..{num_classes - 1})")


def check_step(eps: float, step_size: float, steps: int, norm: str = "linf", random_start: bool = True) -> float:
    """The step-size rule of every PGD-style loop (evaluation attacks and training adversaries alike): a finite
    step > 0 (0 only with eps 0), and a single Linf step without a random start no larger than eps (the projection
    would cut it back). Returns ``float(step_size)``; raises ValueError naming the value."""
    try:
        v = float(step_size)
    except (TypeError, ValueError):
        raise ValueError(f"step_size={step_size!r} must be a number on the [0, 1] pixel scale") from None
    if not (0 <= v < math.inf) or (v == 0 and eps > 0):
        raise ValueError(f"step_size={step_size!r} must be a finite number > 0")
    if steps == 1 and norm == "linf" and not random_start and v > eps:
        raise ValueError(f"a single Linf step of size {v:g} exceeds the budget eps={eps:g}; the projection would "
                         "cut it back to eps (use step <= eps)")
    return v


def check_number(name: str, value, low: float = 0.0, low_open: bool = False, high: float = math.inf,
                 high_open: bool = True) -> float:
    """``float(value)`` if finite and inside the interval (``low_open``/``high_open`` exclude the ends).

    Strings such as ``"8/255"`` are accepted. Raises ValueError naming ``name``, the value and the allowed range.
    """
    from .utils import parse_number

    try:
        v = parse_number(value) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} must be a number") from None
    ok = math.isfinite(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        lo = f"{'(' if low_open else '['}{low:g}"
        hi = f"{high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name}={value!r} must be a finite number in {lo}, {hi}")
    return v


def check_int(name: str, value, low: int = 1) -> int:
    """``int(value)`` if it is an integer >= ``low``; ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < low:
        raise ValueError(f"{name}={value!r} must be an integer >= {low}")
    return int(value)


def _type_name(typ) -> str:
    return typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)


def check_keys(obj, schema: dict, where: str, required: tuple = ()) -> None:
    """A mapping ``obj`` whose keys all lie in ``schema`` (key -> type or tuple of types), holding every key of
    ``required``, each value an instance of its type; a bool passes only where the schema allows bool (YAML's
    ``true`` is not a number). ``where`` names ``obj`` in the message (``audit.rays``). Raises ValueError naming the
    bad key or value and what is allowed."""
    if not isinstance(obj, dict):
        raise ValueError(f"{where} must be a mapping with keys {sorted(schema)}, got {obj!r}")
    unknown = sorted(set(obj) - set(schema))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {where}; allowed: {sorted(schema)}")
    missing = [k for k in required if k not in obj]
    if missing:
        raise ValueError(f"missing required key(s) {missing} in {where}")
    for k, typ in schema.items():
        if k not in obj:
            continue
        types = typ if isinstance(typ, tuple) else (typ,)
        if not isinstance(obj[k], types) or (isinstance(obj[k], bool) and bool not in types):
            raise ValueError(f"{where}.{k} must be {_type_name(typ)}, got {obj[k]!r}")


def check_choice(name: str, value, allowed) -> str:
    """``value`` if it is one of ``allowed``; ValueError listing them otherwise."""
    if value not in allowed:
        raise ValueError(f"{name}={value!r}; allowed: {tuple(allowed)}")
    return value
