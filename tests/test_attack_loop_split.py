"""The attack loop split into threat-model steps (:mod:`ot_robust.attacks.threat`) and a best-iterate tracker
(:mod:`ot_robust.attacks.tracker`) composed by :func:`ot_robust.attacks.loop.perturb`.

GOLDEN holds sha256 digests (first 32 hex digits) of ``x_adv.numpy().tobytes()``, combined with those of
``fooled_at`` and of the callback's ``(restart, step)`` calls and losses where a configuration uses them, for a grid of
``perturb`` configurations on a tiny seeded conv net (BatchNorm + dropout); GOLDEN_INIT those of ``random_init``.
They were produced by the pre-split loop (one 140-line ``perturb``) at commit 3a7a86b, with the package copied aside
and ``PYTHONPATH=<copy>:tests python tests/test_attack_loop_split.py`` (torch 2.14.1, CPU, one thread), so the split
is checked to be bit-for-bit identical. Another CPU kernel changes some of them (L2 norms, summed losses: measured on
two machines), so the test recomputes them on the machine it runs on, from the pre-split package that ``git archive``
takes out of this checkout's history (:func:`_reference`), the recorded values being the fallback for a checkout
without that commit. Never regenerate them from the code under test.
"""
import hashlib
import math
import os
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

import pytest
import torch
from torch import nn

from ot_robust.attacks import ce_loss, perturb, random_init

try:
    from _models import one_thread
except ImportError:  # run as a script from the repository root
    from tests._models import one_thread


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.3),
                         nn.Flatten(), nn.Linear(4 * 6 * 6, 5))


def _data():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(8, 3, 6, 6, generator=g)
    x[0, 0] = 0.0  # pixels on the box faces
    x[1, 1] = 1.0
    with torch.no_grad():
        pred = _net().eval()(x).argmax(1)
    y = pred.clone()
    y[-2:] = (pred[-2:] + 1) % 5  # two examples misclassified from the start
    return x, y, (y + 1) % 5


def _scalar_loss(logits, y):
    return ce_loss(logits, y).mean()  # batch-coupled: one number


CONFIGS = {
    "linf_uniform": {},
    "linf_normal": dict(init="normal", init_std=0.05),
    "linf_none": dict(init="none"),
    "linf_r3": dict(restarts=3),
    "linf_mom": dict(momentum=0.9),
    "linf_r3_mom_stop": dict(restarts=3, momentum=0.9, stop_fooled=True),
    "linf_targeted": dict(targeted=True),
    "linf_targeted_stop_r3": dict(targeted=True, stop_fooled=True, restarts=3),
    "linf_last": dict(keep_best=False),
    "linf_last_r3": dict(keep_best=False, restarts=3),
    "linf_train_mode": dict(eval_mode=False),
    "linf_train_mode_last": dict(eval_mode=False, keep_best=False, init="normal"),
    "linf_stop": dict(stop_fooled=True),
    "linf_fooled_at": dict(fooled_at=True),
    "linf_fooled_at_stop": dict(fooled_at=True, stop_fooled=True),
    "linf_noclip": dict(clip_start=False, keep_best=False, eps=0.3),
    "linf_noclip_normal": dict(clip_start=False, keep_best=False, init="normal", init_std=0.1),
    "linf_noclip_steps0": dict(clip_start=False, keep_best=False, steps=0),
    "linf_steps0": dict(steps=0),
    "linf_steps0_r3": dict(steps=0, restarts=3),
    "linf_scalar": dict(loss=_scalar_loss),
    "linf_scalar_steps0": dict(loss=_scalar_loss, steps=0),
    "linf_scalar_cb": dict(loss=_scalar_loss, callback=True),
    "linf_callback_r3": dict(callback=True, restarts=3),
    "linf_callback_stop": dict(callback=True, stop_fooled=True),
    "linf_inf": dict(eps=math.inf, step_size=0.2),
    "linf_global_rng": dict(gen=False),
    "linf_big": dict(eps=0.05, step_size=0.05, steps=6),  # oscillating iterates: best != last
    "linf_big_last": dict(eps=0.05, step_size=0.05, steps=6, keep_best=False),
    "linf_big_r3_stop": dict(eps=0.05, step_size=0.05, steps=6, restarts=3, stop_fooled=True),
    "linf_big_fooled_at_cb": dict(eps=0.05, step_size=0.05, steps=6, fooled_at=True, callback=True),
    "l2_big": dict(norm="l2", eps=0.3, step_size=0.3, steps=6),
    "l2_big_last_r3": dict(norm="l2", eps=0.3, step_size=0.3, steps=6, keep_best=False, restarts=3),
    "l2_uniform": dict(norm="l2", eps=0.2, step_size=0.06),
    "l2_normal": dict(norm="l2", eps=0.2, step_size=0.06, init="normal", init_std=0.1),
    "l2_none": dict(norm="l2", eps=0.2, step_size=0.06, init="none"),
    "l2_r3_mom": dict(norm="l2", eps=0.2, step_size=0.06, restarts=3, momentum=0.9),
    "l2_targeted_stop": dict(norm="l2", eps=0.2, step_size=0.06, targeted=True, stop_fooled=True),
    "l2_last": dict(norm="l2", eps=0.2, step_size=0.06, keep_best=False),
    "l2_fooled_at_mom": dict(norm="l2", eps=0.2, step_size=0.06, fooled_at=True, momentum=0.5),
    "l2_noclip": dict(norm="l2", eps=2.0, step_size=0.3, clip_start=False, keep_best=False),
    "l2_inf": dict(norm="l2", eps=math.inf, step_size=0.5),
    "l2_callback_train": dict(norm="l2", eps=0.2, step_size=0.06, callback=True, eval_mode=False),
}

# printed by the pre-split loop at 3a7a86b (see the module docstring); do not regenerate from the split code
GOLDEN = {
    "linf_uniform": "df3e06f308d53c263f3e39efe83a24d5",
    "linf_normal": "e0720d6246277f83a8c4d3eb49a24cbc",
    "linf_none": "788df373fa474e12375c6b2ecd302fb6",
    "linf_r3": "ab9907d946296480b8042c507a0449ab",
    "linf_mom": "aa6b09a1bf30553b38d2d5f8e4334889",
    "linf_r3_mom_stop": "e7121fff088dc288c52cab7795d85956",
    "linf_targeted": "42f6886fb7d4369cdd6ea6248e0cbd41",
    "linf_targeted_stop_r3": "46f07d3b9452b80549c8219c7b167edf",
    "linf_last": "df3e06f308d53c263f3e39efe83a24d5",
    "linf_last_r3": "ab9907d946296480b8042c507a0449ab",
    "linf_train_mode": "ad95b1fb88a0aa0b1978941e5de87b9b",
    "linf_train_mode_last": "d9736df74c0087f616cf26a0f0d70fdf",
    "linf_stop": "d5601262321bdbc9068d545df0f119e5",
    "linf_fooled_at": "bde32039c727081ef2684e91c3d8fe32",
    "linf_fooled_at_stop": "572a8d85c6b350f7eebb42a44e165acb",
    "linf_noclip": "d287557131d4149cf22f7a8a064b6019",
    "linf_noclip_normal": "cb063754e478f62011ce0942d20f61fd",
    "linf_noclip_steps0": "b68a87e3e7724b2cf3c17b70d70c8439",
    "linf_steps0": "b68a87e3e7724b2cf3c17b70d70c8439",
    "linf_steps0_r3": "05db7816ebdfbc40379e5d5c98dd302d",
    "linf_scalar": "df3e06f308d53c263f3e39efe83a24d5",
    "linf_scalar_steps0": "b68a87e3e7724b2cf3c17b70d70c8439",
    "linf_scalar_cb": "216005efc053f8d25e40bd0b345f3bb5",
    "linf_callback_r3": "4ae15084e339b1e394e4fc23ea0568de",
    "linf_callback_stop": "85ca68e043d84765a5f6925e43b2582f",
    "linf_inf": "fb4733b21e4a1becb137af49339cc8de",
    "linf_global_rng": "fde72775258d906e8dc2d0b7c2f630dc",
    "linf_big": "58bbc1706520bfccce9655d183bfb516",
    "linf_big_last": "f57e964eb74cbe10ea6b23e6ab66f712",
    "linf_big_r3_stop": "eaeadd7395394c28047112290a456a44",
    "linf_big_fooled_at_cb": "8af2629a17f65a9975018093966e562d",
    "l2_big": "d33c89c26e6f770a2f5ede0675bc09bb",
    "l2_big_last_r3": "441f202cb99fc34942e0d35f63c41ee9",
    "l2_uniform": "40f927025b8616f1cb581aba83e770b4",
    "l2_normal": "68f8a5284b1bc0945389e4d9f2c14c5f",
    "l2_none": "fa88756aaff4d390cb70462718c3fca1",
    "l2_r3_mom": "d1ad52e23639dd88201b78a864f5e4c8",
    "l2_targeted_stop": "826f691499d48415414135a6988de461",
    "l2_last": "40f927025b8616f1cb581aba83e770b4",
    "l2_fooled_at_mom": "0e5a7add38ec25589cc621f9b5ed27bc",
    "l2_noclip": "341deb014f81c8ad338f8fe77c69f090",
    "l2_inf": "0b90ac005f0e2ec56dfb64490bde06af",
    "l2_callback_train": "6124447f77229e504a25fdfcb3ed3280",
}
GOLDEN_INIT = [
    "bcc13294802e6d72d3db2b8e744fd623",  # ('linf', 'uniform', 0.3, True)
    "26077a195b66d8529fe5ae1bf4977d89",  # ('linf', 'uniform', 0.3, False)
    "34cfa8e3d33947534ab68b8633502849",  # ('linf', 'uniform', inf, True)
    "b23be96cceaa4f56112a6372b33fe4f5",  # ('linf', 'uniform', inf, False)
    "6bd02e7c27fa7f781e2dc12115df8644",  # ('linf', 'normal', 0.3, True)
    "a0bc1e031c4abf5f504b5672ea61c2b2",  # ('linf', 'normal', 0.3, False)
    "4562c462f71df7b729cc2f8bd7031de4",  # ('linf', 'normal', inf, True)
    "74af1986195af5b93c86bb01db293c5f",  # ('linf', 'normal', inf, False)
    "0ee0c7ac0933cd2c9de481994bf578c4",  # ('linf', 'none', 0.3, True)
    "0ee0c7ac0933cd2c9de481994bf578c4",  # ('linf', 'none', 0.3, False)
    "0ee0c7ac0933cd2c9de481994bf578c4",  # ('linf', 'none', inf, True)
    "0ee0c7ac0933cd2c9de481994bf578c4",  # ('linf', 'none', inf, False)
    "9d237e6259ff51d8dc5bd731938b8575",  # ('l2', 'uniform', 0.3, True)
    "bf79c81c8384d3a02d9d58ea9dae8afb",  # ('l2', 'uniform', 0.3, False)
    "668ce4bb78da406fafdc8023a57be2db",  # ('l2', 'uniform', inf, True)
    "cb7328f4d995260f791a11eb1569b112",  # ('l2', 'uniform', inf, False)
    "05bb6a8cccfc8464fe460c44c1078f5b",  # ('l2', 'normal', 0.3, True)
    "0fd0afb33d6c89b122ebba2a1fb3fd73",  # ('l2', 'normal', 0.3, False)
    "4562c462f71df7b729cc2f8bd7031de4",  # ('l2', 'normal', inf, True)
    "74af1986195af5b93c86bb01db293c5f",  # ('l2', 'normal', inf, False)
    "0ee0c7ac0933cd2c9de481994bf578c4",  # ('l2', 'none', 0.3, True)
    "0ee0c7ac0933cd2c9de481994bf578c4",  # ('l2', 'none', 0.3, False)
    "0ee0c7ac0933cd2c9de481994bf578c4",  # ('l2', 'none', inf, True)
    "0ee0c7ac0933cd2c9de481994bf578c4",  # ('l2', 'none', inf, False)
]


def _sha(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().contiguous().numpy().tobytes()).hexdigest()[:32]


def _digest(name: str) -> str:
    cfg = dict(CONFIGS[name])
    model, (x, y, yt) = _net(), _data()
    loss = cfg.pop("loss", ce_loss)
    eps, step = cfg.pop("eps", 0.03), cfg.pop("step_size", 0.01)
    steps = cfg.pop("steps", 4)
    gen = torch.Generator().manual_seed(2) if cfg.pop("gen", True) else None
    fooled = torch.zeros(len(x), dtype=torch.int64) if cfg.pop("fooled_at", False) else None
    seen = []
    cb = (lambda r, t, l: seen.append((r, t, l.clone()))) if cfg.pop("callback", False) else None
    if cfg.get("targeted"):
        cfg["y_target"] = yt
    torch.manual_seed(5)  # the global RNG: dropout in train mode, the start when gen is None
    with one_thread():
        out = perturb(model, x, y, loss, eps, step, steps, generator=gen, fooled_at=fooled, callback=cb, **cfg)
    parts = [_sha(out)]
    if fooled is not None:
        parts.append(_sha(fooled))
    if cb is not None:
        parts.append(f"{[(r, t) for r, t, _ in seen]}" + _sha(torch.cat([l.reshape(-1) for _, _, l in seen])))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def _init_digest(norm: str, init: str, eps: float, clip: bool) -> str:
    x, _, _ = _data()
    return _sha(random_init(x, eps, norm, init, 0.2, torch.Generator().manual_seed(3), clip))


INITS = [(n, i, e, c) for n in ("linf", "l2") for i in ("uniform", "normal", "none") for e in (0.3, math.inf)
         for c in (True, False)]


PRE_SPLIT = "3a7a86b"  # the commit of the one-function loop


@pytest.fixture(scope="module")
def reference() -> dict:
    """``{"GOLDEN": ..., "GOLDEN_INIT": ...}`` printed by this file run on the pre-split package of this checkout's
    history, on this machine; the recorded digests when the history lacks that commit."""
    repo = Path(__file__).resolve().parents[1]
    try:
        tar = subprocess.run(["git", "archive", PRE_SPLIT, "ot_robust"], cwd=repo, capture_output=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"GOLDEN": GOLDEN, "GOLDEN_INIT": GOLDEN_INIT}
    with tempfile.TemporaryDirectory() as tmp:
        tarfile.open(fileobj=BytesIO(tar)).extractall(tmp)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([tmp, str(repo / "tests")])}
        # only the old copy may answer: an editable install's finder would fill a module it lacks from this checkout
        code = ("import sys, runpy; sys.meta_path = [f for f in sys.meta_path if '__editable__' not in "
                "getattr(f, '__module__', type(f).__module__)]; import ot_robust.attacks.loop as l; "
                f"print('LOOP =', repr(l.__file__)); runpy.run_path({__file__!r}, run_name='__main__')")
        out = subprocess.run([sys.executable, "-c", code], cwd=tmp, env=env, capture_output=True, text=True,
                             check=True).stdout
        ns: dict = {}
        exec(out, ns)  # the assignments the script prints
        loop_file = Path(ns["LOOP"]).resolve()
        assert loop_file.is_relative_to(Path(tmp).resolve()), loop_file
        assert "threat" not in loop_file.read_text(), "the reference must be the one-function loop"
    return {"GOLDEN": ns["GOLDEN"], "GOLDEN_INIT": ns["GOLDEN_INIT"]}


def test_the_reference_covers_every_configuration(reference):
    assert set(reference["GOLDEN"]) == set(CONFIGS) and len(reference["GOLDEN_INIT"]) == len(INITS)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_perturb_bit_identical_to_the_pre_split_loop(name, reference):
    assert _digest(name) == reference["GOLDEN"][name]


def test_random_init_bit_identical_to_the_pre_split_loop(reference):
    assert [_init_digest(*c) for c in INITS] == reference["GOLDEN_INIT"]


# --- the step objects (imported here: the golden digests above are printed by the pre-split code) ---------------


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 0.5), ("linf", math.inf), ("l2", math.inf)])
@pytest.mark.parametrize("init", ["uniform", "normal", "none"])
def test_random_start_inside_the_ball_and_box(norm, eps, init):
    from ot_robust.attacks.threat import L2Step, LinfStep, make_step

    x, _, _ = _data()
    s = make_step(norm, eps)
    assert isinstance(s, LinfStep if norm == "linf" else L2Step)
    for clip in (True, False):
        d = s.random_perturb(x, init, init_std=0.3, generator=torch.Generator().manual_seed(0), clip=clip)
        assert d.shape == x.shape
        assert bool((s.norms(d) <= eps * (1 + 1e-6)).all())
        if clip:
            assert bool(((x + d) >= 0).all() and ((x + d) <= 1).all())
    if init == "none":
        assert not d.any()


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 0.5)])
def test_step_then_project_keeps_ball_and_box(norm, eps):
    from ot_robust.attacks.threat import make_step

    x, _, _ = _data()
    s = make_step(norm, eps, 0.4)
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(4))
    d = torch.zeros_like(x)
    for _ in range(5):
        s.project(s.step(d, g), x)
        assert bool((s.norms(d) <= eps * (1 + 1e-6)).all())
        assert bool(((x + d) >= 0).all() and ((x + d) <= 1).all())
    lengths = s.norms(s.step(torch.zeros_like(x), g))
    assert torch.allclose(lengths, torch.full_like(lengths, 0.4))  # Linf: max |sign| * alpha; L2: alpha


def test_bad_norm_and_init_are_rejected():
    from ot_robust.attacks.threat import make_step

    with pytest.raises(ValueError, match="norm='l1'"):
        make_step("l1", 0.1)
    with pytest.raises(ValueError, match="init='gauss'"):
        make_step("l2", 0.1).random_perturb(torch.zeros(1, 3), "gauss")


def test_momentum_accumulates_l1_normalised_gradients():
    from ot_robust.attacks.threat import make_step

    s = make_step("linf", 0.1, momentum=0.5)
    buf = s.momentum_buffer(torch.zeros(2, 3))
    g = torch.tensor([[1.0, -1.0, 2.0], [0.0, 0.0, 4.0]])
    first = s.accumulate(buf, g).clone()
    assert torch.allclose(first, g / torch.tensor([[4.0], [4.0]]))
    assert torch.allclose(s.accumulate(buf, g), 0.5 * first + first)
    assert make_step("linf", 0.1).momentum_buffer(torch.zeros(2, 3)) is None


# --- the tracker ----------------------------------------------------------------------------------------------


def test_tracker_prefers_fooling_then_higher_loss_and_drops_fooled_examples():
    from ot_robust.attacks.tracker import BestIterate

    fooled = torch.zeros(3, dtype=torch.int64)
    tr = BestIterate(torch.tensor([0, 1, 2]), targeted=False, drop=True, fooled_at=fooled, steps=5)
    assert fooled.tolist() == [6, 6, 6] and tr.restart() is None
    one_hot = lambda c: torch.nn.functional.one_hot(torch.tensor(c), 3).float()  # noqa: E731  (logits)
    tr.update(torch.full((3, 1), 0.0), one_hot([0, 1, 2]), torch.tensor([1.0, 1.0, 1.0]), 0)
    assert tr.drop_fooled() is None  # nobody fooled: nobody leaves
    tr.update(torch.full((3, 1), 1.0), one_hot([1, 1, 2]), torch.tensor([0.5, 2.0, 0.5]), 1)
    assert tr.drop_fooled().tolist() == [False, True, True] and tr.cur.tolist() == [1, 2]
    tr.update(torch.full((2, 1), 2.0), one_hot([0, 2]), torch.tensor([0.1, 0.7]), 2)  # rows of cur only
    assert tr.delta.view(-1).tolist() == [1.0, 2.0, 0.0]  # fooled (lower loss) beats unfooled; then higher loss
    assert tr.fooled.tolist() == [True, True, False] and fooled.tolist() == [1, 2, 6]
    assert tr.drop_fooled().tolist() == [False, True] and tr.cur.tolist() == [2]
    assert tr.restart().tolist() == [2] == tr.remaining().tolist()  # the next restart attacks example 2 only
    tr.update(torch.full((1, 1), 3.0), one_hot([0]), torch.tensor([0.0]), 3)
    assert tr.delta.view(-1).tolist() == [1.0, 2.0, 3.0] and fooled.tolist() == [1, 2, 3]
    assert tr.remaining().numel() == 0


def test_tracker_targeted_minimises_the_loss_and_keeps_all_without_drop():
    from ot_robust.attacks.tracker import BestIterate

    tr = BestIterate(torch.tensor([1]), targeted=True)
    hit = torch.tensor([[0.0, 1.0]])
    tr.update(torch.zeros(1, 1), hit, torch.tensor([3.0]), 0)
    tr.update(torch.ones(1, 1), hit, torch.tensor([1.0]), 1)  # both reach the target: the lower loss wins
    assert tr.delta.item() == 1.0 and tr.fooled.tolist() == [True] and tr.restart() is None


if __name__ == "__main__":  # print the digests (run with the pre-split loop only)
    print("GOLDEN = {")
    for n in CONFIGS:
        print(f'    "{n}": "{_digest(n)}",')
    print("}")
    print("GOLDEN_INIT = [")
    for c in INITS:
        print(f'    "{_init_digest(*c)}",  # {c}')
    print("]")
