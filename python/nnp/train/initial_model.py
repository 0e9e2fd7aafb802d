"""The model before its first epoch: initialised networks, descriptor
scaling and reference energies from the training structures, the fixed
repulsive core, and the quadratic term fitted in closed form."""

from __future__ import annotations

import math
import time

from nnp.data import FeaturizedDataset
from nnp.io.potential_file import Repulsion
from nnp.model import quadratic
from nnp.model.network import NNPModel
from nnp.progress import fmt_time
from nnp.train.config import TrainConfig
from nnp.train.console import Log, print_line
from nnp.train.training_set import shortest_distance

# Å between the shortest training distance and the end of the core: far
# enough that the core never reaches the training data, close enough that MD
# cannot bring atoms into the gap below it, where the network only
# extrapolates (docs/robustness.md, docs/training.md).
CORE_MARGIN = 0.025


def core_repulsion(data: FeaturizedDataset, descriptors, config: TrainConfig) -> list[Repulsion]:
    """The ZBL cores `config` asks for (none, or one per element pair)."""
    if not config.core_repulsion:
        return []
    outer = config.core_outer
    if outer == 0.0:
        shortest = shortest_distance(data)
        if not math.isfinite(shortest):
            return []  # no neighbours at all: nothing tells where the data ends
        outer = math.floor((shortest - CORE_MARGIN) / 0.05) * 0.05
    inner = outer - config.core_width
    if inner <= 0:
        raise ValueError(f"config: the repulsive core would end at {outer:.3g} Å, leaving no room for "
                         f"core_width {config.core_width} Å; set core_outer/core_width or core_repulsion: false")
    elements = descriptors.elements
    return [Repulsion(a, b, round(inner, 6), round(outer, 6))
            for i, a in enumerate(elements) for b in elements[i:]]


def build_model(data: FeaturizedDataset, descriptors, config: TrainConfig, train_idx) -> NNPModel:
    """Initialised weights, scaling and reference energies from the training
    set, and the repulsive core (fixed; the network learns E − E_core)."""
    model = NNPModel(descriptors, [config.hidden_nodes] * config.hidden_layers, config.activation,
                     repulsion=core_repulsion(data, descriptors, config))
    model.init_weights(config.seed)
    model.fit_scaling(data, train_idx, config.scaling)
    model.fit_reference_energies(data, train_idx)
    return model


def fit_quadratic_term(model: NNPModel, data: FeaturizedDataset, train_idx, config: TrainConfig,
                       log: Log = print_line) -> quadratic.QuadraticFit:
    """The quadratic model (nnp.model.quadratic.QuadraticFit) fitted to the
    structures `train_idx` with the config's loss weights, in `model`'s
    descriptor scaling, to the labels minus its repulsive core."""
    t = time.perf_counter()
    fitted = quadratic.fit(data, train_idx, {e: model.scaling(e)[0] for e in model.elements},
                           {e: model.scaling(e)[1] for e in model.elements}, config.energy_weight,
                           config.force_weight, config.stress_weight, config.quadratic_ridge,
                           baseline=quadratic.core_baseline(model))
    log(f"quadratic term fitted in {fmt_time(time.perf_counter() - t)}; the model written is "
        f"{1 - config.quadratic_weight:g} x network + {config.quadratic_weight:g} x quadratic model")
    return fitted
