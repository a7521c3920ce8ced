"""issue 15: evaluating a model in NHWC layout (what ``load_model`` does for a run trained with ``channels_last``)
finds the same adversarial outcomes as the default NCHW layout: both are float32, only the conv kernels differ.

Checked on a robust model, the study's committed Madry model (Fashion-MNIST, eps 0.1), the way the issue asks of
any faster attack path: per-example agreement of the robust masks >= 99% (measured: 100% on 1,000 images for PGD-20
and on 100 for AutoAttack standard, ``load_model``'s docstring)."""
import pytest
import torch

from ot_robust.attacks import correct_mask, make_attack
from ot_robust.core.data import as_tensors, get_dataset
from ot_robust.training.api import load_model

RUN = "results/study-fashion/train/pgd_at"


@pytest.mark.parametrize("spec", ["pgd-linf eps=0.1 steps=20 step=0.0125 seed=0", "fgsm eps=0.1",
                                  "cw-linf eps=0.1 steps=10 step=0.025 seed=0"])
def test_nhwc_evaluation_agrees_with_nchw_per_example(spec):
    nchw = load_model(RUN, "cpu")
    nhwc = load_model(RUN, "cpu", channels_last=True)
    assert next(nhwc.parameters()).is_contiguous(memory_format=torch.channels_last)
    x, y = as_tensors(get_dataset("fashion-mnist", "test"), 400)
    robust = [correct_mask(nchw, make_attack(spec)(m, x, y), y) for m in (nchw, nhwc)]
    agree = (robust[0] == robust[1]).float().mean().item()
    assert agree >= 0.99, f"{spec}: NHWC and NCHW agree on {agree:.1%} of the images"
    assert 0.3 < robust[0].float().mean().item() < 0.95  # a robust model: the attack has work on both sides
