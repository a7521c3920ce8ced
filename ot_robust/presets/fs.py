"""Feature Scattering's presets (``fs-``, ``madry-``, ``standard-``, ``random-targeted-<dataset>-wrn28-10``).

Feature Scattering (Zhang & Wang 2019, Sec. 5 and official code): WRN-28-10, batch 60 (rebuttal: "Batch size of
60 is used"), SGD momentum 0.9, weight decay 2e-4, lr 0.1 (CIFAR) / 0.01 (SVHN), x0.1 at epochs 60 and 90,
200 epochs, eps 8/255, T = 1 step of size eps, label smoothing Delta = 0.5, Sinkhorn tau = 0.01; standard
augmentation (random crop with 4-pixel padding + horizontal flip; SVHN crop only, the dataset default).
Madry / Standard (FS Sec. 5, the baselines it trains): 100 epochs, decay at 60 and 90, same optimiser; Madry
PGD 7 steps of 2/255 in an 8/255 ball (FS Fig. 3 caption: "Madry ... trained with the attack iteration of 7").
FS trains the baselines with the same batch size and weight decay as its own model (one training script).
"""
from __future__ import annotations

_FS = dict(eps=8 / 255, steps=1, label_smoothing=0.5, reg=0.01, perturbation="feature_scattering", matching="ot",
           solver="sinkhorn")
_MADRY = dict(eps=8 / 255, step_size=2 / 255, steps=7, random_start=True)
_COMMON = dict(model="wrn28_10", batch_size=60, optimizer="sgd", momentum=0.9, weight_decay=2e-4,
               schedule="multistep", milestones=[60, 90], gamma=0.1)
_LR = {"cifar10": 0.1, "cifar100": 0.1, "svhn": 0.01}

PRESETS: dict[str, dict] = {}
for _ds, _lr in _LR.items():
    PRESETS[f"fs-{_ds}-wrn28-10"] = dict(_COMMON, dataset=_ds, lr=_lr, epochs=200, method="feature_scattering",
                                         method_params=dict(_FS))
    PRESETS[f"madry-{_ds}-wrn28-10"] = dict(_COMMON, dataset=_ds, lr=_lr, epochs=100, method="pgd_at",
                                            method_params=dict(_MADRY))
    PRESETS[f"standard-{_ds}-wrn28-10"] = dict(_COMMON, dataset=_ds, lr=_lr, epochs=100, method="standard",
                                               method_params={})
    PRESETS[f"random-targeted-{_ds}-wrn28-10"] = dict(_COMMON, dataset=_ds, lr=_lr, epochs=100,
                                                      method="random_targeted", method_params=dict(_MADRY))

