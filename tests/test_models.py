"""Every registered model: shapes for its dataset's input, [0,1] contract, features, gradients to the input."""

import pytest
import torch

from ot_robust.models import MODELS, get_model
from ot_robust.core.utils import get_device

CASES = [  # (name, dataset, kwargs, feature dim)
    ("cw_cnn", "mnist", {}, 200),
    ("small_cnn", "mnist-sample", {}, 64),
    ("small_cnn", "cifar10", {}, 64),
    ("resnet18", "cifar10", {}, 512),
    ("preact_resnet18", "svhn", {}, 512),
    ("resnet50", "cifar100", {}, 2048),
    ("wrn", "cifar10", {"depth": 10, "width": 2}, 128),
    ("wrn28_10", "cifar10", {}, 640),
    ("wrn34_10", "cifar100", {}, 640),
]


@pytest.mark.parametrize("name,dataset,kw,fdim", CASES)
def test_shapes_features_and_input_gradients(name, dataset, kw, fdim):
    torch.manual_seed(0)
    model = get_model(name, dataset=dataset, **kw).eval()
    c = model.mean.shape[1]
    size = 28 if "mnist" in dataset else 32
    x = torch.rand(2, c, size, size, requires_grad=True)
    logits, feats = model(x, return_features=True)
    assert logits.shape == (2, model.num_classes) and feats.shape == (2, fdim) == (2, model.feature_dim)
    assert model.num_classes == (100 if dataset == "cifar100" else 10)
    assert torch.allclose(model(x), logits)
    _, middle = model(x, return_features="middle")
    assert middle.dim() == 2 and middle.shape[0] == 2
    logits.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_every_registered_model_is_covered():
    assert {c[0] for c in CASES} | {"wrn"} == set(MODELS)


def test_normalization_is_inside_the_model():
    model = get_model("small_cnn", dataset="mnist")
    assert torch.allclose(model.mean.flatten(), torch.tensor([0.1307])) and model.std.flatten()[0] > 0
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 1, H, W\)"):
        model(torch.rand(2, 3, 28, 28))


def test_bad_names_and_options():
    with pytest.raises(ValueError, match=r"unknown model 'resnet19'.*valid names.*resnet18"):
        get_model("resnet19")
    with pytest.raises(ValueError, match=r"depth=27"):
        get_model("wrn", depth=27)
    with pytest.raises(ValueError, match=r"return_features='logits'"):
        get_model("small_cnn", dataset="mnist")(torch.rand(1, 1, 28, 28), return_features="logits")


def test_device_choice():
    assert get_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert get_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            get_device("cuda")
