"""Analysis figures of the three papers as reusable functions (each returns arrays; ``plot_*`` returns a Figure).

* :mod:`.tsne` - t-SNE of clean / PGD / feature-scattering features (FS supplement Fig. 2, GOT Fig. 6).
* :mod:`.landscape` - CE loss surfaces along the adversarial and a Rademacher direction (FS Fig. 4).
* :mod:`.activations` - channel-wise penultimate activation magnitudes, clean vs PGD-20 (OTJR Fig. 2, 8).
* :mod:`.input_gradients` - ``|grad_x CE|`` across PGD iterations (OTJR Fig. 3, Tables 5 and 12).
* :mod:`.grad_ratios` - per-parameter gradient-norm ratios adversarial / clean (OTJR Fig. 4, 6).
* :mod:`.decision_cells` - predicted class on a plane through an input, with the eps-ball (OTJR supp. Fig. 9).
* :mod:`.toy` - 2-D perturbation schemes (FS Fig. 2) and SW movement directions (OTJR Fig. 5).

A profile's trained models are located by :mod:`ot_robust.profiles.paths` (a layer above).

Every function takes images ``(N, C, H, W)`` in [0, 1], labels ``(N,)``, ``n_examples`` and ``progress`` (tqdm bar);
attacks are callables ``attack(model, x, y) -> x_adv`` (:func:`pgd` and :func:`feature_scattering` build the papers').
"""

from ._common import default_eps, feature_scattering, pgd
from .activations import ActivationMagnitudes, activation_magnitudes, plot_activation_magnitudes
from .decision_cells import DecisionCells, decision_cells, orthonormal_directions, plot_decision_cells
from .grad_ratios import GradRatios, gradient_norm_ratios, per_example_grad_norms, plot_gradient_ratios
from .landscape import LossLandscape, adversarial_direction, loss_landscape, plot_loss_landscapes
from .toy import (MovementDirections, ToyMLP, ToyPerturbations, make_toy_data, movement_directions,
                  plot_movement_directions, plot_toy_perturbations, toy_clouds, toy_perturbations, train_toy_model)
from .tsne import TSNEResult, extract_features, plot_tsne_grid, tsne_features

_INPUT_GRADIENTS = ("input_gradient_l1", "mean_abs_input_gradient", "TABLE12_STEPS", "input_gradient_curves",
                    "plot_input_gradients")


def __getattr__(name: str):
    """Lazy re-export of :mod:`.input_gradients` (owned by the OTJR work; imported on first use)."""
    if name in _INPUT_GRADIENTS:
        from . import input_gradients

        return getattr(input_gradients, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "default_eps", "pgd", "feature_scattering",
    "TSNEResult", "extract_features", "tsne_features", "plot_tsne_grid",
    "LossLandscape", "adversarial_direction", "loss_landscape", "plot_loss_landscapes",
    "ActivationMagnitudes", "activation_magnitudes", "plot_activation_magnitudes",
    "GradRatios", "per_example_grad_norms", "gradient_norm_ratios", "plot_gradient_ratios",
    "DecisionCells", "orthonormal_directions", "decision_cells", "plot_decision_cells",
    "ToyMLP", "ToyPerturbations", "MovementDirections", "make_toy_data", "train_toy_model", "toy_perturbations",
    "plot_toy_perturbations", "movement_directions", "toy_clouds", "plot_movement_directions",
]
