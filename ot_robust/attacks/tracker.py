"""Keep-best bookkeeping of the attack loop: per example, the best iterate over all steps and restarts.

"Best" is fooling first (misclassified; predicted as the target when targeted), then the higher signed loss (the
loss when untargeted, minus the loss when targeted). Over restarts this is the per-example worst case of Madry et
al. (2018)'s restarted PGD. The tracker also records when each example was first fooled (``fooled_at``) and, on the
evaluation fast path, which examples are still attacked (fooled ones leave the batch: ``drop``).
"""

from __future__ import annotations

import torch


class BestIterate:
    """The best ``delta`` per example of a batch of ``B`` (``truth``: labels ``(B,)`` judged against).

    Args:
        truth: ``(B,)`` true labels (untargeted) or target labels (targeted).
        targeted: success is ``pred == truth`` and a lower loss is better (else ``pred != truth``, higher loss).
        drop: fooled examples leave the batch: :meth:`restart` and :meth:`drop_fooled` shrink :attr:`cur`.
        fooled_at: an int64 ``(B,)`` tensor filled in place with the index ``t`` of the first fooling iterate
            (``steps + 1`` where none); ``steps``: the number of updates of a run.

    Attributes: ``delta`` ``(B, ...)``, ``loss`` ``(B,)`` (signed), ``fooled`` bool ``(B,)`` of the best iterates
    (None before the first :meth:`update`, which must cover the whole batch); ``cur``: the batch indices still
    attacked (None = all).
    """

    def __init__(self, truth: torch.Tensor | None, targeted: bool = False, drop: bool = False,
                 fooled_at: torch.Tensor | None = None, steps: int = 0):
        self.truth, self.targeted, self.drop, self.fooled_at = truth, targeted, drop, fooled_at
        self.sign = -1.0 if targeted else 1.0
        self.delta = self.loss = self.fooled = self.cur = None
        if fooled_at is not None:
            fooled_at.fill_(steps + 1)

    def restart(self) -> torch.Tensor | None:
        """Start a restart: with ``drop``, only the examples not fooled so far are attacked; returns :attr:`cur`."""
        self.cur = None
        if self.drop and self.fooled is not None and bool(self.fooled.any()):
            self.cur = self.remaining()
        return self.cur

    def update(self, delta: torch.Tensor, logits: torch.Tensor, loss: torch.Tensor, t: int) -> None:
        """Score the iterate ``delta`` (rows of :attr:`cur`) with its ``logits`` ``(b, K)`` and per-example ``loss``
        ``(b,)`` after ``t`` updates, keeping it where it beats the best so far."""
        cur = self.cur
        pred = logits.argmax(1)
        lab = self.truth if cur is None else self.truth[cur]
        succ = pred == lab if self.targeted else pred != lab
        if self.fooled_at is not None:
            first = self.fooled_at if cur is None else self.fooled_at[cur]
            first = torch.where(succ & (first > t), torch.full_like(first, t), first)
            if cur is None:
                self.fooled_at.copy_(first)
            else:
                self.fooled_at[cur] = first
        val = loss.detach() * self.sign
        if self.delta is None:  # the first call covers the whole batch
            self.delta, self.loss, self.fooled = delta.clone(), val, succ
            return
        bd, bl, bs = (self.delta, self.loss, self.fooled) if cur is None else (self.delta[cur], self.loss[cur],
                                                                               self.fooled[cur])
        better = (succ & ~bs) | ((succ == bs) & (val > bl))
        bshape = (-1,) + (1,) * (delta.dim() - 1)
        bd, bl, bs = torch.where(better.view(bshape), delta, bd), torch.where(better, val, bl), bs | succ
        if cur is None:
            self.delta, self.loss, self.fooled = bd, bl, bs
        else:
            self.delta[cur], self.loss[cur], self.fooled[cur] = bd, bl, bs

    def drop_fooled(self) -> torch.Tensor | None:
        """After an :meth:`update`: the mask ``(b,)`` of the attacked rows to keep when some were fooled (and
        :attr:`cur` shrunk accordingly), else None (nothing leaves)."""
        keep = ~(self.fooled if self.cur is None else self.fooled[self.cur])
        if bool(keep.all()):
            return None
        self.cur = keep.nonzero().squeeze(1) if self.cur is None else self.cur[keep]
        return keep

    def remaining(self) -> torch.Tensor:
        """The indices of the examples not fooled by any iterate so far, shape ``(n,)``."""
        return (~self.fooled).nonzero().squeeze(1)
