"""The named attack protocol (ot_robust.attacks.protocol) that evaluate relies on instead of dataclass fields."""
import torch

from ot_robust.attacks import (PGD, APGD, AutoAttack, SimBA, Transfer, fast_path, make_attack, restart_runs,
                               with_default_seed)
from ot_robust.evaluation.suite import _runs
from ot_robust.core.utils import derive_seed


def test_pgd_restart_study_splits_into_seeded_runs():
    atk = PGD(eps=0.1, steps=5, restarts=3, seed=7)  # a fixed seed is overridden per run, as before
    runs = restart_runs(atk, lambda j: 100 + j)
    assert [(r.restarts, r.seed) for r in runs] == [(1, 100), (1, 101), (1, 102)]
    assert _runs(atk, 5, 2) == [atk.replace(restarts=1, seed=derive_seed(5, 2, j)) for j in range(3)]
    assert restart_runs(PGD(eps=0.1, steps=5), lambda j: j) == [PGD(eps=0.1, steps=5)]


def test_internal_restarts_and_plain_callables_are_one_run():
    apgd = APGD(eps=0.1, restarts=2)  # torchattacks restarts internally
    assert restart_runs(apgd, lambda j: j) == [apgd]

    def mine(model, x, y):
        return x

    assert restart_runs(mine, lambda j: j) == [mine] and with_default_seed(mine, 3) is mine and fast_path(mine) is mine


def test_default_seed_only_replaces_none():
    assert with_default_seed(PGD(eps=0.1, steps=5), 9).seed == 9  # PGD's seed defaults to None
    fixed = SimBA(eps=0.1, seed=4)
    assert with_default_seed(fixed, 9) is fixed
    assert with_default_seed(SimBA(eps=0.1, seed=None), 9).seed == 9
    assert with_default_seed(AutoAttack(eps=0.1, seed=None), 9).seed == 9
    t = Transfer(source=torch.nn.Identity(), attack=PGD(eps=0.1, steps=2))
    assert with_default_seed(t, 9) is t  # no seed of its own


def test_fast_path_only_changes_the_pgd_family():
    pgd = make_attack("pgd-linf eps=0.1 steps=20 step=0.0125")
    assert fast_path(pgd).stop_fooled and not pgd.stop_fooled and fast_path(pgd).replace(stop_fooled=False) == pgd
    aa = AutoAttack(eps=0.1)
    assert fast_path(aa) is aa
