"""Frozen-activation-pattern replay (ot_robust.defenses.linearize) and the double-backprop-free Jacobian penalty."""
import pytest
import torch
from torch import nn

from ot_robust.defenses.jacobian import jacobian_frobenius, jacobian_frobenius_fd, random_unit_vectors
from ot_robust.defenses.linearize import pattern_forward


class _Net(nn.Module):
    """Conv-ReLU-maxpool-(BatchNorm)-dropout-linear: every piece the replay must handle."""

    def __init__(self, bn=False, act=None):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4) if bn else nn.Identity()
        self.act = act or nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(4 * 3 * 3, 5)

    def forward(self, x):
        h = self.pool(self.act(self.bn(self.conv(x))))
        return self.fc(self.drop(torch.relu(h.flatten(1))))


def _setup(bn=False, seed=0):
    torch.manual_seed(seed)
    net = _Net(bn).double().train()
    x = torch.randn(6, 1, 8, 8, dtype=torch.float64)
    v = random_unit_vectors(1, 6, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)[0]
    return net, x, v


def _param_grad(net, x, v, fd, h=1e-2):
    torch.manual_seed(7)  # same dropout masks for both ways
    xc = x.clone().requires_grad_(True)
    if fd:
        z, replay = pattern_forward(net, xc)
        jr = jacobian_frobenius_fd(xc, z, replay, projections=v, h=h)
    else:
        z = net(xc)
        jr = jacobian_frobenius(xc, z, projections=v)
    grads = torch.autograd.grad(jr, list(net.parameters()), allow_unused=True)
    flat = torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, net.parameters())])
    return float(jr.detach()), flat


@pytest.mark.parametrize("h", [1e-3, 1e-1, 10.0])
def test_fd_gradient_equals_double_backprop_for_relu_networks_at_any_step(h):
    """Without BatchNorm the frozen piece is affine: the difference is the exact directional derivative."""
    net, x, v = _setup()
    value, exact = _param_grad(net, x, v, fd=False)
    value_fd, fd = _param_grad(net, x, v, fd=True, h=h)
    assert value_fd == pytest.approx(value, rel=1e-12)
    assert exact.abs().sum() > 0
    assert torch.allclose(fd, exact, rtol=1e-6, atol=1e-9 * float(exact.abs().max()))


def test_fd_gradient_is_first_order_accurate_with_batchnorm():
    net, x, v = _setup(bn=True)
    _, exact = _param_grad(net, x, v, fd=False)
    errors = [float((_param_grad(net, x, v, fd=True, h=h)[1] - exact).norm() / exact.norm()) for h in (1e-2, 1e-4)]
    assert errors[1] < 1e-3 and errors[1] < errors[0] / 10, errors  # O(h)


def test_plain_difference_without_the_frozen_pattern_would_be_wrong():
    """The reason for freezing: gradients of a ReLU network jump across activation boundaries."""
    net, x, v = _setup()
    _, exact = _param_grad(net, x, v, fd=False)
    torch.manual_seed(7)
    xc = x.clone().requires_grad_(True)
    z = net(xc)
    (g,) = torch.autograd.grad(z, xc, grad_outputs=v, retain_graph=True)
    t = 1.0 / g.flatten(1).norm(dim=1).mean()
    torch.manual_seed(7)
    s = 2 * (v * (net(x + t * g) - z)).sum() / t * (5 / 6)
    plain = torch.cat([gr.flatten() for gr in torch.autograd.grad(s, list(net.parameters()))])
    assert float((plain - exact).norm() / exact.norm()) > 0.05


def test_replay_reproduces_the_forward_and_leaves_rng_and_running_stats_alone():
    net, x, _ = _setup(bn=True)
    torch.manual_seed(3)
    z, replay = pattern_forward(net, x)
    stats = {k: b.clone() for k, b in net.named_buffers()}
    rng = torch.get_rng_state()
    again = replay(x)
    assert torch.allclose(again, z)                       # same dropout masks, same piece
    assert torch.equal(torch.get_rng_state(), rng)        # the global RNG did not move
    assert all(torch.equal(b, stats[k]) for k, b in net.named_buffers())
    assert torch.allclose(replay(x), z)                   # replayable more than once


def test_replay_is_affine_in_the_input_without_batchnorm():
    net, x, _ = _setup()
    z, replay = pattern_forward(net, x)
    d = torch.randn_like(x)
    lin = replay(x + 3.0 * d) - z
    assert torch.allclose(replay(x + d) - z, lin / 3.0, atol=1e-10)


def test_kinked_operations_that_cannot_be_frozen_raise():
    torch.manual_seed(0)
    net = _Net(act=nn.LeakyReLU(0.1)).train()
    with pytest.raises(ValueError, match="leaky_relu"):
        pattern_forward(net, torch.randn(2, 1, 8, 8))


def test_replay_of_another_shape_raises_and_bad_step_raises():
    net, x, v = _setup()
    xc = x.clone().requires_grad_(True)
    z, replay = pattern_forward(net, xc)
    with pytest.raises(RuntimeError, match="diverged"):
        replay(torch.randn(6, 1, 10, 10, dtype=torch.float64))
    with pytest.raises(ValueError, match="h"):
        jacobian_frobenius_fd(xc, z, replay, projections=v, h=0.0)


def test_half_precision_is_refused():
    net, x, v = _setup()
    net, x, v = net.half(), x.half(), v.half()
    xc = x.clone().requires_grad_(True)
    z, replay = pattern_forward(net, xc)
    with pytest.raises(ValueError, match="float16"):
        jacobian_frobenius_fd(xc, z, replay, projections=v)
