"""DDP through torch.distributed with 2 CPU processes (gloo): training matches the single-process run on the same
global batch; Feature Scattering's "global" coupling gives each process the gradient of the whole-batch OT
distance, "local" coupling the gradient of its own slice's distance."""
import json
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ot_robust.attacks.feature_scattering import feature_matching_distance
from ot_robust.models import get_model
from ot_robust.training.api import train
from ot_robust.training.distributed import DistInfo

WORLD = 2


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(rank, port):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)


def _worker(rank, port, out_dir, cfg, fs_cfg):
    """All the DDP work in one process group (one spawn: process start-up dominates the test time): PGD-AT
    training, the FS coupling gradient check, then FS training with both couplings."""
    _env(rank, port)
    dist.init_process_group("gloo")
    try:
        train(cfg, os.path.join(out_dir, "ddp"))
        torch.manual_seed(0)
        f = torch.randn(8, 10)
        f_adv = torch.randn(8, 10)
        b = 8 // WORLD
        sl = slice(rank * b, (rank + 1) * b)
        info = DistInfo(rank, WORLD)
        local = f_adv[sl].clone().requires_grad_(True)
        d = feature_matching_distance(info.gather_with_grad(f[sl]), info.gather_with_grad(local))
        (g,) = torch.autograd.grad(d, local)
        torch.save({"d": d.detach(), "g": g}, os.path.join(out_dir, f"rank{rank}.pt"))
        for coupling in ("local", "global"):
            train(dict(fs_cfg, method_params=dict(eps=0.1, coupling=coupling)), os.path.join(out_dir, coupling))
    finally:
        dist.destroy_process_group()


def _spawn(fn, *args):
    mp.spawn(fn, args=(_port(),) + args, nprocs=WORLD, join=True)


def _weights(run):
    return torch.load(os.path.join(run, "model.pt"), weights_only=True)["state_dict"]


CFG = dict(dataset="mnist-sample", model="small_cnn", method="pgd_at",
           method_params=dict(eps=0.1, step_size=0.05, steps=1, random_start=False), num_train=240,
           batch_size=40, epochs=1, lr=0.05, momentum=0.9, eval_n=16, eval_steps=1, progress=False, seed=1)
FS_CFG = dict(dataset="mnist-sample", model="small_cnn", method="feature_scattering", num_train=80,
              batch_size=20, epochs=1, eval_n=8, eval_steps=1, progress=False, ddp=True)


@pytest.fixture(scope="module")
def ddp_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    _spawn(_worker, str(out), dict(CFG, ddp=True), FS_CFG)
    return out


def test_ddp_matches_single_process(ddp_dir, tmp_path):
    # PGD-AT without random start (no per-process noise) on small_cnn (no BatchNorm): no batch coupling
    train(dict(CFG, ddp=False), tmp_path / "single")
    a, b = _weights(ddp_dir / "ddp"), _weights(tmp_path / "single")
    init = get_model("small_cnn", "mnist-sample").state_dict()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4), k
    assert any(not torch.allclose(a[k], init[k]) for k in a)          # it did train
    cfg_saved = json.loads((ddp_dir / "ddp" / "config.json").read_text())
    assert cfg_saved["world_size"] == WORLD
    m_ddp = json.loads((ddp_dir / "ddp" / "metrics.jsonl").read_text())
    m_one = json.loads((tmp_path / "single" / "metrics.jsonl").read_text())
    assert m_ddp["train_images"] == m_one["train_images"] == 240
    assert abs(m_ddp["train_loss"] - m_one["train_loss"]) < 1e-4


def test_fs_under_ddp_global_coupling_gradient_equals_full_batch(ddp_dir):
    tmp_path = ddp_dir
    torch.manual_seed(0)
    f, f_adv = torch.randn(8, 10), torch.randn(8, 10).requires_grad_(True)
    d = feature_matching_distance(f, f_adv)
    (g,) = torch.autograd.grad(d, f_adv)
    for rank in range(WORLD):
        r = torch.load(tmp_path / f"rank{rank}.pt")
        assert torch.allclose(r["d"], d.detach(), atol=1e-6)
        assert torch.allclose(r["g"], g[rank * 4:(rank + 1) * 4], atol=1e-6)
    # local coupling = the OT distance of the slice alone: a different problem
    d_local = feature_matching_distance(f[:4], f_adv[:4].detach())
    assert not torch.allclose(d_local, d.detach())
    for coupling in ("local", "global"):              # FS trains under DDP with both couplings
        assert (tmp_path / coupling / "model.pt").exists()
        saved = json.loads((tmp_path / coupling / "config.json").read_text())
        assert saved["config"]["method_params"]["coupling"] == coupling and saved["world_size"] == WORLD
