"""The model before its first epoch: initialised networks, descriptor
scaling and reference energies from the training structures, the fixed
repulsive core, and the quadratic term fitted in closed form."""

from __future__ import annotations

import math
import time

import torch

from nnp.data import FeaturizedDataset
from nnp.io.potential_file import Repulsion
from nnp.model import quadratic
from nnp.model.network import NNPModel
from nnp.progress import fmt_time
from nnp.train import distributed
from nnp.train.config import TrainConfig
from nnp.train.console import Log, print_line

# Å between the shortest training distance and the end of the core: far
# enough that the core never reaches the training data, close enough that MD
# cannot bring atoms into the gap below it, where the network only
# extrapolates (docs/robustness.md, docs/training.md).
CORE_MARGIN = 0.025


def shortest_pair_distances(data: FeaturizedDataset) -> dict[tuple[str, str], float]:
    """The shortest centre–neighbour distance (Å) of each element pair that
    occurs within the cutoff, keyed (a, b) in the data's element order
    (the data set knows it in both derivative modes)."""
    return data.shortest_pair_distances()


def core_repulsion(data: FeaturizedDataset, descriptors, config: TrainConfig) -> list[Repulsion]:
    """The ZBL cores `config` asks for (none, or one per element pair).

    With core_outer 0 each pair's core ends CORE_MARGIN below that pair's own
    shortest training distance (rounded down to 0.05 Å): O–O in water
    never comes as close as an O–H bond. A pair that never occurs within
    the cutoff gets its core from the shortest distance of any pair, as a
    lower bound nothing in the data contradicts, rather than no core at all,
    which would leave MD free to collapse it (docs/accuracy.md, water)."""
    if not config.core_repulsion:
        return []
    elements = descriptors.elements
    pairs = [(a, b) for i, a in enumerate(elements) for b in elements[i:]]
    if config.core_outer != 0.0:
        outer = {p: config.core_outer for p in pairs}
    else:
        by_pair = shortest_pair_distances(data)
        if not by_pair:
            return []  # no neighbours at all: nothing tells where the data ends
        anywhere = min(by_pair.values())
        outer = {(a, b): math.floor((by_pair.get((a, b), by_pair.get((b, a), anywhere)) - CORE_MARGIN) / 0.05) * 0.05
                 for a, b in pairs}
    cores = []
    for a, b in pairs:
        inner = outer[a, b] - config.core_width
        if inner <= 0:
            raise ValueError(f"config: the {a}-{b} repulsive core would end at {outer[a, b]:.3g} Å, leaving no "
                             f"room for core_width {config.core_width} Å; set core_outer/core_width or "
                             "core_repulsion: false")
        cores.append(Repulsion(a, b, round(inner, 6), round(outer[a, b], 6)))
    return cores


def build_model(data: FeaturizedDataset, descriptors, config: TrainConfig, train_idx) -> NNPModel:
    """Initialised weights, scaling and reference energies from the training
    set, and the repulsive core (fixed; the network learns E − E_core)."""
    model = NNPModel(descriptors, [config.hidden_nodes] * config.hidden_layers, config.activation,
                     repulsion=core_repulsion(data, descriptors, config))
    model.init_weights(config.seed)
    # Sharded data (nnp.train.distributed): train_idx are global; the
    # statistics of this rank's structures are combined over ranks.
    model.fit_scaling(data, distributed.owned(data, train_idx), config.scaling, reduce=distributed.reducer(data))
    model.fit_reference_energies(distributed.labels(data), train_idx)
    return model


def fit_quadratic_term(model: NNPModel, data: FeaturizedDataset, train_idx, config: TrainConfig,
                       log: Log = print_line, progress=None) -> quadratic.QuadraticFit:
    """The quadratic model (nnp.model.quadratic.QuadraticFit) fitted to the
    structures `train_idx` with the config's loss weights, in `model`'s
    descriptor scaling, to the labels minus its repulsive core.
    `progress(done, total)`, when given, follows the structures added."""
    t = time.perf_counter()
    fitted = quadratic.fit(data, distributed.owned(data, train_idx), {e: model.scaling(e)[0] for e in model.elements},
                           {e: model.scaling(e)[1] for e in model.elements}, config.energy_weight,
                           config.force_weight, config.stress_weight, config.quadratic_ridge,
                           baseline=quadratic.core_baseline(model), progress=progress,
                           reduce=distributed.reducer(data), chain=distributed.chain(data))
    log(f"quadratic term fitted in {fmt_time(time.perf_counter() - t)}; the model written is "
        f"{1 - config.quadratic_weight:g} x network + {config.quadratic_weight:g} x quadratic model")
    return fitted
