"""Train a potential on energies, forces and stress and write it as a potential file.

    python -m nnp.train --data train.xyz --output Si.nnp [--config cfg.yaml]
        [--descriptor A52] [--epochs N] [--seed S] [--device cuda] [--ensemble N]
        [--report DIR] [--resume] [--force]

Settings are `TrainConfig` fields: defaults, then the YAML file (unknown keys
are an error), then the command line. The loss of a set of structures is

    L = energy_weight · mean_s((E_s^pred − E_s)/N_s)²
      + force_weight  · mean_{i,c}(F_ic^pred − F_ic)²
      + stress_weight · mean_{s,v}((W_sv^pred − W_sv)/N_s)²     (v: 6 Voigt components)

in eV²/atom², eV²/Å² and eV²/atom² (W = −σV, the virial; only structures with
a stress label). Adam on minibatches runs first, then (lbfgs_fraction of the
epochs) full-batch L-BFGS. A fraction of the structures is held out for
validation, and the model with the lowest validation loss is kept. With
`refit` (the default) that model is the holdout twin: the model written to
OUTPUT trains on every structure with the same settings, alongside it in a
second process, and the holdout model's validation errors are what the
summary and the report give as validation errors. The training state is
checkpointed to OUTPUT.ckpt (and OUTPUT.holdout.ckpt) every
checkpoint_every seconds and after the last epoch; --resume continues from
there.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import json
import math
import multiprocessing
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from nnp.train import checkpoints
from nnp.io import potential_file
from nnp.io.atomic import file_sha256
from nnp.io import settings
from nnp import descriptors as descriptors_mod
from nnp.data import Batch, FeaturizedDataset, isolated_atom, read_structures, split
from nnp.model.network import ACTIVATIONS, SCALING_MODES, NNPModel
from nnp.io.potential_file import Repulsion

LR_SCHEDULES = ("plateau", "cosine")
LBFGS_MAX_EVALUATIONS = 20  # loss evaluations per L-BFGS epoch, line search included
# Å between the shortest training distance and the end of the core. 0.1
# (a core ending at 1.7 Å for Si) let the 2000-epoch default hold pairs at
# 1.6-1.75 Å in a 2000 K liquid, where it only extrapolates; ending at 1.8 Å,
# the same network keeps the liquid free of them (docs/robustness.md). The
# core never reaches the training data either way.
CORE_MARGIN = 0.025
# Full-batch (L-BFGS) passes keep the collated training set when the
# featurised data is at most this large (the cache is a second copy).
FULL_BATCH_CACHE_BYTES = 4 * 2**30


@dataclass
class TrainConfig:
    """Every training setting (YAML keys are these field names)."""

    descriptor: str = descriptors_mod.DEFAULT_PRESET  # a nnp.descriptors preset name
    hidden_layers: int = 2
    hidden_nodes: int = 30
    activation: str = "tanh"  # hidden layers; the output layer is linear
    scaling: str = "minmax"  # minmax (robust to outlying frames, e.g. close contacts) or standard (mean/std)
    # Defaults chosen on a 10 % validation split of the Si data (214
    # structures; docs/accuracy.md): 200 Adam epochs (~1 s each on one
    # core), then 1400 L-BFGS iterations (~0.2-0.4 s). The network alone
    # still improves after that (S64, force weight 0.06: validation MAE
    # 2.74 meV/atom and 0.075 eV/Å after 1600 epochs, 2.61 and 0.074 after
    # 2000); its mean with the quadratic term does not: in three 2000-epoch
    # runs (initial weights 0, 2, 100) its best epoch came at 537-1445.
    epochs: int = 1600
    batch_size: int = 2  # structures per optimiser step
    learning_rate: float = 5e-3  # Adam
    lr_schedule: str = "cosine"  # cosine (to lr_min over the epochs) or plateau (ReduceLROnPlateau on validation loss)
    lr_min: float = 1e-5
    plateau_factor: float = 0.5
    plateau_patience: int = 10  # epochs
    energy_weight: float = 1.0  # on (eV/atom)²
    force_weight: float = 0.06  # on (eV/Å)²; at 1600 epochs 0.04: 2.85 meV/atom, 0.076 eV/Å; 0.06: 2.74, 0.075; 0.08: 3.12, 0.074
    stress_weight: float = 0.01  # on the virial per atom, (eV/atom)²; structures with a stress label
    # The last lbfgs_fraction of the epochs are full-batch L-BFGS iterations.
    lbfgs_fraction: float = 0.875
    lbfgs_history: int = 100
    patience: int = 0  # stop a phase after this many epochs without a better validation loss; 0: never
    weight_decay: float = 0.0  # L2 penalty 0.5·wd·|w|² on all weights and biases (Adam and L-BFGS)
    validation_fraction: float = 0.1
    seed: int = 0
    # Seed of the validation split alone; -1: `seed`. --ensemble gives its
    # members seeds seed … seed+N−1, so by default each has its own split;
    # with a fixed split_seed they share one, and the validation errors of
    # their mean are measured too.
    split_seed: int = -1
    # torch intra-op threads (0 = all cores). One by default: on a busy 2-core
    # machine two threads ran 10-60x slower than one (on an idle one, 1.6x faster).
    threads: int = 1
    device: str = "cpu"  # torch device: cpu, cuda, cuda:1, ...
    # A ZBL repulsive core for every element pair, switched off between
    # core_outer − core_width and core_outer (Å), so MD cannot collapse atoms
    # below the shortest training distance, where the network only extrapolates.
    # core_outer 0: CORE_MARGIN (0.025 Å) below the shortest distance in the
    # training data, rounded down to 0.05 Å, so the core does not touch the
    # training data.
    core_repulsion: bool = True
    core_outer: float = 0.0
    core_width: float = 0.5
    log_every: int = 0  # epochs between progress lines; 0 = about 50 lines in all
    # Seconds between checkpoints (0: after every epoch). Saving the L-BFGS
    # history and the learning curve takes ~35 ms, a sixth of an L-BFGS epoch
    # of the Si default; an interrupted run loses at most this much work
    # (resumed runs end with the same model either way).
    checkpoint_every: float = 10.0
    # Energy (eV) of one isolated atom per element, from the same DFT setup as
    # the data; each is trained on as a one-atom structure (never held out
    # for validation). Condensed-phase data say nothing about E_i(G = 0):
    # without this, models can bind far too weakly (the Si default gives a
    # cohesive energy of 1.8 eV instead of 4.5, and its liquid boils at
    # 1 atm; docs/robustness.md).
    isolated_atom_energies: dict[str, float] = field(default_factory=dict)
    # python -m nnp.train writes a model trained on every structure. With
    # validation_fraction > 0, a holdout twin (the same settings, the
    # validation structures left out and used to select its best epoch) trains
    # alongside, in a second process: its errors on the left-out structures
    # are the validation errors reported. On the Si data, 21 more training
    # structures lowered the validation force MAE by about 0.002 eV/Å (over
    # three initialisations; the energy MAE did not change measurably;
    # docs/accuracy.md). False: the written model is the holdout model.
    # Only the command line refits; nnp.train.train() trains one model.
    refit: bool = True
    # The model written is the mean of the trained network and a quadratic
    # model in the same scaled descriptors, E_i = e0 + (1 − w) NN(x) + w Q(x)
    # with w = quadratic_weight (0: the network alone). Q(x) = b·x + xᵀAx is
    # fitted before the network is trained (it depends on the data and the
    # scaling only), in closed form, to the same loss on the same structures,
    # with a relative ridge penalty quadratic_ridge (nnp.model.quadratic). The best
    # epoch is chosen on the mean. Its errors are only loosely correlated with
    # the network's: on the Si data the mean has ~7 % lower validation force
    # MAE than either model (docs/accuracy.md).
    quadratic_weight: float = 0.5
    quadratic_ridge: float = 1e-8

    def check(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ValueError(f"config: {msg}")

        if self.descriptor not in descriptors_mod.preset_names():
            raise ValueError(
                f"config: unknown descriptor preset {self.descriptor!r}; choose from {descriptors_mod.preset_names()}"
            )
        need(self.hidden_layers >= 0, "hidden_layers must be >= 0")
        need(self.hidden_nodes >= 1, "hidden_nodes must be >= 1")
        need(self.activation in ACTIVATIONS, f"activation must be one of {ACTIVATIONS}")
        need(self.scaling in SCALING_MODES, f"scaling must be one of {SCALING_MODES}")
        need(self.epochs >= 0, "epochs must be >= 0")
        need(self.batch_size >= 1, "batch_size must be >= 1")
        need(self.learning_rate > 0 and math.isfinite(self.learning_rate), "learning_rate must be > 0")
        need(self.lr_schedule in LR_SCHEDULES, f"lr_schedule must be one of {LR_SCHEDULES}")
        need(0 <= self.lr_min <= self.learning_rate, "need 0 <= lr_min <= learning_rate")
        need(0 < self.plateau_factor < 1, "plateau_factor must be in (0, 1)")
        need(self.plateau_patience >= 0, "plateau_patience must be >= 0")
        need(min(self.energy_weight, self.force_weight, self.stress_weight) >= 0, "loss weights must be >= 0")
        need(0 <= self.lbfgs_fraction <= 1, "lbfgs_fraction must be in [0, 1]")
        need(self.lbfgs_history >= 1, "lbfgs_history must be >= 1")
        need(self.patience >= 0, "patience must be >= 0")
        need(self.core_outer >= 0 and math.isfinite(self.core_outer), "core_outer must be >= 0 (0: automatic)")
        need(self.core_width > 0 and math.isfinite(self.core_width), "core_width must be > 0")
        try:
            device = torch.device(self.device)
        except (RuntimeError, ValueError):
            raise ValueError(f"config: device {self.device!r} is not a torch device (cpu, cuda, cuda:0, ...)") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"config: device {self.device!r} asked for, but torch sees no CUDA GPU "
                             f"(torch {torch.__version__}; the CPU build has no CUDA)")
        need(device.type in ("cpu", "cuda"), f"device must be cpu or cuda, got {self.device!r}")
        need(self.energy_weight + self.force_weight + self.stress_weight > 0, "the loss weights cannot all be 0")
        need(self.weight_decay >= 0, "weight_decay must be >= 0")
        need(0 <= self.validation_fraction < 1, "validation_fraction must be in [0, 1)")
        need(self.split_seed >= -1, "split_seed must be >= 0 (or -1: the same as seed)")
        need(self.threads >= 0, "threads must be >= 0")
        need(self.checkpoint_every >= 0 and math.isfinite(self.checkpoint_every),
             "checkpoint_every must be >= 0 seconds (0: every epoch)")
        need(self.log_every >= 0, "log_every must be >= 0")
        need(0 <= self.quadratic_weight <= 1, "quadratic_weight must be in [0, 1] (0: the network alone)")
        need(self.quadratic_ridge >= 0 and math.isfinite(self.quadratic_ridge), "quadratic_ridge must be >= 0")
        from ase.data import chemical_symbols

        for element, energy in self.isolated_atom_energies.items():
            need(element in chemical_symbols[1:], f"isolated_atom_energies: {element!r} is not an element symbol")
            need(isinstance(energy, (int, float)) and not isinstance(energy, bool) and math.isfinite(energy),
                 f"isolated_atom_energies: the energy of {element} must be a finite number of eV, got {energy!r}")

    @property
    def split_seed_used(self) -> int:
        """The seed that draws the validation split."""
        return self.seed if self.split_seed < 0 else self.split_seed

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> "TrainConfig":
        return cls().updated(values, source)

    def updated(self, values: dict[str, Any], source: str = "config") -> "TrainConfig":
        """A copy with `values` applied; unknown keys and wrong types are errors."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ValueError(f"{source}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(fields)}")
        new = {}
        for key, value in values.items():
            new[key] = settings.coerce(type(getattr(self, key)), value, key, source)
        return dataclasses.replace(self, **new)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> "TrainConfig":
        return cls.from_dict(*settings.read_yaml_mapping(path))

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ------------------------------------------------------------------ training

GPA = 160.21766208  # eV/Å³ -> GPa
# Voigt order xx yy zz yz xz xy: the six independent stress/virial components.
_VOIGT_I = (0, 1, 2, 1, 0, 0)
_VOIGT_J = (0, 1, 2, 2, 2, 1)


@dataclass
class Metrics:
    """Errors over a set of structures: energy per atom (eV/atom), force
    components (eV/Å), the six stress components of periodic structures with a
    stress label (eV/Å³; NaN when there are none)."""

    loss: float
    energy_rmse: float
    force_rmse: float
    energy_mae: float = math.nan
    force_mae: float = math.nan
    stress_rmse: float = math.nan
    stress_mae: float = math.nan

    def __str__(self) -> str:
        s = f"E {1000 * self.energy_rmse:7.2f} meV/atom  F {self.force_rmse:.4f} eV/Å"
        if math.isfinite(self.stress_rmse):
            s += f"  S {GPA * self.stress_rmse:.3f} GPa"
        return s

    def mae_str(self) -> str:
        s = f"E {1000 * self.energy_mae:7.2f} meV/atom  F {self.force_mae:.4f} eV/Å"
        if math.isfinite(self.stress_mae):
            s += f"  S {GPA * self.stress_mae:.3f} GPa"
        return s


@dataclass
class TrainResult:
    model: NNPModel
    train: Metrics
    validation: Metrics | None
    best_epoch: int
    train_indices: np.ndarray
    validation_indices: np.ndarray
    history: list[dict[str, float]] = field(default_factory=list)
    # With a quadratic term: the validation errors of its two parts alone
    # ("network", "quadratic"); empty otherwise.
    parts: dict[str, Metrics] = field(default_factory=dict)


@dataclass
class _Errors:
    """Per-batch error tensors: energy per atom (S,), force components (3N,),
    virial per atom (S', 6) eV/atom and stress (S', 6) eV/Å³ of the S'
    structures with a stress label."""

    energy: torch.Tensor
    force: torch.Tensor
    virial: torch.Tensor
    stress: torch.Tensor


def _errors(model: NNPModel, batch: Batch, with_stress: bool, create_graph: bool,
            mix: tuple[float, dict[str, torch.Tensor]] | None = None) -> _Errors:
    """Errors of `model`'s predictions on `batch`; with `mix` = (w, other),
    of (1 − w)·model + w·other, `other` being fixed predictions for the same
    batch (the quadratic model's, when choosing the best epoch of a blend)."""
    out = model(batch, forces=True, stress=with_stress, create_graph=create_graph)
    if mix is not None:
        w, other = mix
        out = {k: (1.0 - w) * v + w * other[k] if k in other else v for k, v in out.items()}
    de = (out["energy"] - batch.energy) / batch.n_atoms
    df = (out["forces"] - batch.forces).reshape(-1)
    if with_stress:
        # NaN stress: no label, or not a periodic cell (no volume).
        ok = torch.isfinite(batch.stress[:, 0, 0]) & torch.isfinite(batch.volume)
        vol = batch.volume[ok].view(-1, 1, 1)
        # The loss uses the virial per atom, W/N = −σV/N (eV/atom, the scale
        # of the energy term); the metrics use the stress itself.
        w_ref = -batch.stress[ok] * vol
        dw = ((out["virial"][ok] - w_ref) / batch.n_atoms[ok].view(-1, 1, 1))[:, _VOIGT_I, _VOIGT_J]
        ds = (out["stress"][ok] - batch.stress[ok])[:, _VOIGT_I, _VOIGT_J]
    else:
        dw = ds = torch.zeros((0, 6), dtype=de.dtype, device=de.device)
    return _Errors(de, df, dw, ds)


def _device_of(model: NNPModel) -> torch.device:
    return next(model.parameters()).device


def evaluate(model: NNPModel, data: FeaturizedDataset, indices, config: TrainConfig, chunk: int = 32,
             batches=None, mix: tuple[float, list[dict[str, torch.Tensor]]] | None = None) -> Metrics:
    """Loss and errors over the structures `indices`, evaluated in chunks;
    `batches`, when given, are those structures already collated. With
    `mix` = (w, predictions per batch), the errors of (1 − w)·model + w·those
    predictions (`_errors`)."""
    indices = np.asarray(indices, dtype=np.int64)
    device = _device_of(model)
    if batches is None:
        batches = (data.collate(indices[start : start + chunk]).to(device) for start in range(0, len(indices), chunk))
    sums = dict(se=0.0, ae=0.0, sf=0.0, af=0.0, nf=0, sw=0.0, ss=0.0, as_=0.0, ns=0)
    for k, batch in enumerate(batches):
        err = _errors(model, batch, with_stress=True, create_graph=False,
                      mix=(mix[0], mix[1][k]) if mix is not None else None)
        err = _Errors(*(t.detach() for t in vars(err).values()))
        sums["se"] += float((err.energy**2).sum())
        sums["ae"] += float(err.energy.abs().sum())
        sums["sf"] += float((err.force**2).sum())
        sums["af"] += float(err.force.abs().sum())
        sums["nf"] += err.force.numel()
        sums["sw"] += float((err.virial**2).sum())
        sums["ss"] += float((err.stress**2).sum())
        sums["as_"] += float(err.stress.abs().sum())
        sums["ns"] += err.stress.numel()
    n, nf, ns = len(indices), sums["nf"], sums["ns"]
    mse_e, mse_f = sums["se"] / n, sums["sf"] / nf
    loss = config.energy_weight * mse_e + config.force_weight * mse_f
    if ns:
        loss += config.stress_weight * sums["sw"] / ns
    nan = math.nan
    return Metrics(
        loss, math.sqrt(mse_e), math.sqrt(mse_f), sums["ae"] / n, sums["af"] / nf,
        math.sqrt(sums["ss"] / ns) if ns else nan, sums["as_"] / ns if ns else nan,
    )


def metrics_by_config_type(model, data: FeaturizedDataset, indices, config: TrainConfig) -> dict[str, tuple[int, Metrics]]:
    """(structure count, Metrics) per config_type among `indices`."""
    groups: dict[str, list[int]] = {}
    for i in np.asarray(indices, dtype=np.int64):
        groups.setdefault(data.config_types[i], []).append(int(i))
    return {k: (len(v), evaluate(model, data, v, config)) for k, v in sorted(groups.items())}


def _fmt_time(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def shortest_distance(data: FeaturizedDataset) -> float:
    """The shortest centre–neighbour distance in the featurised data (Å)."""
    lengths = [b.pair_vector.norm(dim=1).min() for b in data.blocks.values() if len(b.pair_vector)]
    return float(min(lengths)) if lengths else math.inf


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


def isolated_structures(data: FeaturizedDataset) -> np.ndarray:
    """Indices of the structures in which no atom has a neighbour."""
    pairs = sum((off[1:] - off[:-1]) for off in data.pair_offsets.values())
    return np.flatnonzero(pairs.numpy() == 0)


def with_isolated_atoms(structures: list, config: TrainConfig) -> list:
    """`structures` plus one labelled isolated atom per entry of
    config.isolated_atom_energies (elements must occur in the data)."""
    present = {s for a in structures for s in a.get_chemical_symbols()}
    missing = sorted(set(config.isolated_atom_energies) - present)
    if missing:
        raise ValueError(f"isolated_atom_energies: {', '.join(missing)} does not occur in the data "
                         f"(elements {', '.join(sorted(present))})")
    return list(structures) + [isolated_atom(e, E) for e, E in sorted(config.isolated_atom_energies.items())]


def featurize(structures: list, descriptors, config: TrainConfig) -> FeaturizedDataset:
    """The training set as `train` wants it: the structures plus the
    config's isolated atoms, descriptor derivatives in float32 (half the
    memory and about a fifth less time per evaluation than float64; the
    sums stay float64, and the exported model is evaluated in float64)."""
    return FeaturizedDataset.from_structures(with_isolated_atoms(structures, config), descriptors,
                                             derivative_dtype=np.float32)


def build_model(data: FeaturizedDataset, descriptors, config: TrainConfig, train_idx) -> NNPModel:
    """Initialised weights, scaling and reference energies from the training
    set, and the repulsive core (fixed; the network learns E − E_core)."""
    model = NNPModel(descriptors, [config.hidden_nodes] * config.hidden_layers, config.activation,
                     repulsion=core_repulsion(data, descriptors, config))
    model.init_weights(config.seed)
    model.fit_scaling(data, train_idx, config.scaling)
    model.fit_reference_energies(data, train_idx)
    return model


def _print(line: str) -> None:
    print(line, flush=True)


class _Objective:
    """The training loss over a fixed set of structures, with the normalising
    counts of that set, so that chunked sums add up to the full-batch loss."""

    def __init__(self, data: FeaturizedDataset, indices: np.ndarray, config: TrainConfig, device: torch.device):
        self.data, self.indices, self.config, self.device = data, indices, config, device
        self.with_stress = config.stress_weight > 0
        self.n_structures = len(indices)
        self.n_force = 3 * int(data.n_atoms[torch.as_tensor(indices)].sum())
        ok = torch.isfinite(data.stress[:, 0, 0]) & torch.isfinite(data.volume)
        self.n_stress = 6 * int(ok[torch.as_tensor(indices)].sum())
        self._cached: tuple[int, list[Batch]] | None = None  # (chunk size, batches)

    def loss(self, err: _Errors) -> torch.Tensor:
        c = self.config
        loss = c.energy_weight * (err.energy**2).sum() / self.n_structures
        loss = loss + c.force_weight * (err.force**2).sum() / self.n_force
        if self.with_stress and self.n_stress:
            loss = loss + c.stress_weight * (err.virial**2).sum() / self.n_stress
        return loss

    def batch_loss(self, model: NNPModel, indices) -> tuple[torch.Tensor, _Errors]:
        """The loss of a minibatch, normalised by its own counts."""
        batch = self.data.collate(indices).to(self.device)
        err = _errors(model, batch, self.with_stress, create_graph=True)
        c = self.config
        loss = c.energy_weight * (err.energy**2).mean() + c.force_weight * (err.force**2).mean()
        if self.with_stress and err.virial.numel():
            loss = loss + c.stress_weight * (err.virial**2).mean()
        return loss, err

    def chunks(self, chunk: int = 32):
        """The structures as fixed batches of `chunk` structures. Kept
        (on the device) when the set is small enough: gathering them anew
        took 40 % of each L-BFGS evaluation."""
        if self._cached is not None and self._cached[0] == chunk:
            yield from self._cached[1]
            return
        keep = self.data.nbytes() <= FULL_BATCH_CACHE_BYTES
        cached = []
        for start in range(0, len(self.indices), chunk):
            batch = self.data.collate(self.indices[start : start + chunk]).to(self.device)
            if keep:
                cached.append(batch)
            yield batch
        if keep:
            self._cached = (chunk, cached)

    def full_batch(self, model: NNPModel, chunk: int = 32) -> float:
        """Gradient of the full-set loss accumulated into .grad (chunked
        backward passes); returns the loss. Squared-error sums of this
        evaluation are kept in `last_sums` (energy, force) for the log."""
        total = sum_e = sum_f = 0.0
        for batch in self.chunks(chunk):
            err = _errors(model, batch, self.with_stress, create_graph=True)
            loss = self.loss(err)
            loss.backward()
            total += float(loss.detach())
            sum_e += float((err.energy.detach() ** 2).sum())
            sum_f += float((err.force.detach() ** 2).sum())
        self.last_sums = (sum_e, sum_f)
        return total


class _LbfgsClosure:
    """The full-batch loss and gradient for torch's L-BFGS, remembering the
    last evaluation. With one iteration per epoch, every step() starts by
    evaluating the point where the previous line search ended; answering
    that from memory (same parameters, bit for bit: same loss and gradient)
    nearly halves the L-BFGS time and changes nothing else."""

    def __init__(self, objective: _Objective, model: NNPModel, params: list[torch.Tensor]):
        self.objective, self.model, self.params = objective, model, params
        self._last: tuple[torch.Tensor, float, list[torch.Tensor], tuple[float, float]] | None = None

    def __call__(self) -> float:
        flat = torch.cat([p.detach().reshape(-1) for p in self.params])
        if self._last is not None and torch.equal(flat, self._last[0]):
            _, loss, grads, sums = self._last
            for p, g in zip(self.params, grads):
                p.grad = g.clone()
            self.objective.last_sums = sums
            return loss
        for p in self.params:
            if p.grad is not None:
                p.grad.zero_()
        loss = self.objective.full_batch(self.model)
        wd = self.objective.config.weight_decay
        if wd:  # the L2 penalty whose gradient Adam's weight_decay adds
            penalty = 0.5 * wd * sum((p**2).sum() for p in self.params)
            penalty.backward()
            loss += float(penalty.detach())
        self._last = (flat, loss, [p.grad.detach().clone() for p in self.params], self.objective.last_sums)
        return loss


def _phase_lengths(config: TrainConfig) -> tuple[int, int]:
    """(Adam epochs, L-BFGS epochs): Adam first, full-batch L-BFGS last."""
    n_lbfgs = int(round(config.epochs * config.lbfgs_fraction))
    return config.epochs - n_lbfgs, n_lbfgs


def _make_optimizer(name: str, n_epochs: int, params, config: TrainConfig):
    if name == "lbfgs":
        # No gradient/change tolerances: near an Adam minimum the gradient of
        # a loss of ~1e-4 is below torch's default 1e-7 and L-BFGS would not
        # move at all; the epoch count and `patience` decide when to stop.
        # One iteration per epoch; max_eval bounds the line search (torch's
        # default, 5/4 of max_iter, would leave it no evaluation at all).
        opt = torch.optim.LBFGS(params, lr=1.0, max_iter=1, max_eval=LBFGS_MAX_EVALUATIONS,
                                history_size=config.lbfgs_history, tolerance_grad=0.0, tolerance_change=0.0,
                                line_search_fn="strong_wolfe")
        return opt, None
    opt = torch.optim.Adam(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    if config.lr_schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=n_epochs, eta_min=config.lr_min)
    else:
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, factor=config.plateau_factor, patience=config.plateau_patience, min_lr=config.lr_min
        )
    return opt, sched


def train(
    data: FeaturizedDataset,
    descriptors,
    config: TrainConfig,
    log=_print,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    data_digest: str = "",
) -> TrainResult:
    """Train on `data` as `config` says; returns the best model (lowest
    validation loss; training loss when nothing is held out).

    With `checkpoint`, the whole training state is saved there (atomically)
    after every epoch; with `resume` training continues from it and ends with
    the same model as an uninterrupted run.
    """
    config.check()
    device = torch.device(config.device)
    # Structures without a single neighbour pair (isolated atoms) always
    # train; the split, scaling and reference energies are of the others.
    isolated = isolated_structures(data)
    condensed = np.setdiff1d(np.arange(len(data)), isolated)
    if len(condensed) == 0:
        raise ValueError("every structure is an isolated atom: nothing to learn interactions from")
    train_sub, val_sub = split(len(condensed), config.validation_fraction, config.split_seed_used)
    model = build_model(data, descriptors, config, condensed[train_sub]).to(device)
    train_idx, val_idx = np.concatenate([condensed[train_sub], isolated]), condensed[val_sub]
    for core in model.repulsion:
        log(f"repulsive core {core.element_a}-{core.element_b}: ZBL, switched off between {core.r_inner:g} "
            f"and {core.r_outer:g} Å (shortest training distance {shortest_distance(data):.3f} Å)")
    gen = torch.Generator().manual_seed(config.seed)
    history: list[dict[str, float]] = []
    # The best epoch is chosen among the trained ones (epochs >= 1).
    best_state = copy.deepcopy(model.state_dict())
    best_epoch = 0
    best_loss = math.inf
    epoch = 0  # epochs completed
    stopped: list[str] = []  # phases ended early by `patience`
    saved = None
    if resume:
        saved = checkpoints.load(checkpoint, config, data_digest, device)
        model.load_state_dict(saved["model"])
        best_state, best_epoch, best_loss = saved["best_state"], saved["best_epoch"], saved["best_loss"]
        history, epoch, stopped = saved["history"], saved["epoch"], saved["stopped"]
        gen.set_state(saved["generator"])
        log(f"resuming from {checkpoint} after epoch {epoch}")

    n_adam, _ = _phase_lengths(config)
    objective = _Objective(data, train_idx, config, device)
    validation = _Objective(data, val_idx, config, device)  # keeps the validation batches
    # The quadratic term depends on the data and the scaling only: fitted once,
    # before training, so that the best epoch is chosen on the model written
    # (the blend), from its fixed validation predictions.
    fitted = fit_quadratic_term(model.cpu(), data, train_idx, config, log) if config.quadratic_weight > 0 else None
    model.to(device)
    mix = None
    if fitted is not None and len(val_idx):
        from nnp.model import quadratic

        q_model = quadratic.blend(model.cpu(), fitted, 1.0).to(device)
        model.to(device)
        mix = (config.quadratic_weight,
               [{k: v.detach() for k, v in q_model(b, forces=True, stress=True).items()} for b in validation.chunks()])
    params = [p for p in model.parameters() if p.requires_grad]
    log_every = config.log_every or max(1, round(config.epochs / 50))
    live = log is _print and sys.stdout.isatty()  # redraw one line between log lines
    t0 = last_checkpoint = time.perf_counter()
    first_epoch = epoch + 1
    opt = sched = current = closure = None
    stale = 0  # epochs without improvement, for early stopping
    while True:
        if epoch < n_adam and "adam" not in stopped:
            phase = "adam"
        elif epoch < config.epochs and "lbfgs" not in stopped:
            phase, epoch = "lbfgs", max(epoch, n_adam)
        else:
            break
        if phase != current:
            opt, sched = _make_optimizer(phase, n_adam, params, config)
            stale = 0
            if saved is not None and saved["phase"] == phase:  # resuming inside this phase
                opt.load_state_dict(saved["optimizer"])
                if sched is not None:
                    sched.load_state_dict(saved["scheduler"])
                stale = saved["stale"]
            current = phase
        epoch += 1
        model.train()
        if phase == "adam":
            perm = train_idx[torch.randperm(len(train_idx), generator=gen).numpy()]
            sum_e = sum_f = 0.0
            for start in range(0, len(perm), config.batch_size):
                loss, err = objective.batch_loss(model, perm[start : start + config.batch_size])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sum_e += float((err.energy.detach() ** 2).sum())
                sum_f += float((err.force.detach() ** 2).sum())
            train_rmse_e = math.sqrt(sum_e / objective.n_structures)
            train_rmse_f = math.sqrt(sum_f / objective.n_force)
            train_loss = config.energy_weight * train_rmse_e**2 + config.force_weight * train_rmse_f**2
        else:
            if closure is None:
                closure = _LbfgsClosure(objective, model, params)
            train_loss = float(opt.step(closure))  # the loss before the step
            # RMSEs of the last point the line search evaluated (usually the accepted one).
            train_rmse_e = math.sqrt(objective.last_sums[0] / objective.n_structures)
            train_rmse_f = math.sqrt(objective.last_sums[1] / objective.n_force)
        model.eval()
        val = evaluate(model, data, val_idx, config, batches=validation.chunks(), mix=mix) if len(val_idx) else None
        sel_loss = val.loss if val is not None else train_loss
        improved = sel_loss < best_loss
        if improved:
            best_loss, best_epoch = sel_loss, epoch
            best_state = copy.deepcopy(model.state_dict())
            stale = 0
        else:
            stale += 1
        lr = opt.param_groups[0]["lr"]
        if sched is not None:
            if config.lr_schedule == "cosine":
                sched.step()
            else:
                sched.step(sel_loss)
        history.append(
            dict(epoch=epoch, optimizer=phase, lr=lr, train_loss=train_loss, train_energy_rmse=train_rmse_e,
                 train_force_rmse=train_rmse_f,
                 val_loss=val.loss if val else math.nan,
                 val_energy_rmse=val.energy_rmse if val else math.nan,
                 val_force_rmse=val.force_rmse if val else math.nan,
                 val_energy_mae=val.energy_mae if val else math.nan,
                 val_force_mae=val.force_mae if val else math.nan)
        )
        if not math.isfinite(train_loss):
            raise FloatingPointError(f"training diverged at epoch {epoch} (loss {train_loss}); lower learning_rate")
        stop = config.patience > 0 and stale >= config.patience
        if stop:
            stopped.append(phase)
        due = time.perf_counter() - last_checkpoint >= config.checkpoint_every
        if checkpoint is not None and (due or stop or epoch == config.epochs):
            last_checkpoint = time.perf_counter()
            checkpoints.save(
                checkpoint, config=config, data_digest=data_digest, epoch=epoch, phase=phase,
                model=model, optimizer=opt, scheduler=sched, best_state=best_state, best_epoch=best_epoch,
                best_loss=best_loss, history=history, generator=gen, stale=stale, stopped=stopped,
            )
        elapsed = time.perf_counter() - t0
        eta = elapsed / (epoch - first_epoch + 1) * (config.epochs - epoch)
        line = (
            f"epoch {epoch:{len(str(config.epochs))}d}/{config.epochs} {phase:5s} loss {train_loss:.3e}"
            f"  train E {1000 * train_rmse_e:6.2f} F {train_rmse_f:.4f}"
            + (f"  val E {1000 * val.energy_rmse:6.2f} meV/atom F {val.force_rmse:.4f} eV/Å "
               f"(MAE {1000 * val.energy_mae:.2f}, {val.force_mae:.4f})" if val else "")
            + f"  lr {lr:.1e}  {_fmt_time(elapsed)} ETA {_fmt_time(eta)}{' *' if improved else ''}"
        )
        if epoch % log_every == 0 or epoch == config.epochs or epoch == first_epoch or stop:
            log(("\r\033[K" if live else "") + line)
        elif live:
            print("\r\033[K" + line, end="", flush=True)
        if stop:
            log(f"{phase}: no better validation loss in {config.patience} epochs; {phase} stops here")
    model.load_state_dict(best_state)
    model.eval()
    model.cpu()
    parts: dict[str, Metrics] = {}
    if fitted is not None:
        from nnp.model import quadratic

        network = model
        model = quadratic.blend(network, fitted, config.quadratic_weight)
        if len(val_idx):
            parts = {"network": evaluate(network, data, val_idx, config),
                     "quadratic": evaluate(quadratic.blend(network, fitted, 1.0), data, val_idx, config)}
    train_metrics = evaluate(model, data, train_idx, config)
    val_metrics = evaluate(model, data, val_idx, config) if len(val_idx) else None
    return TrainResult(model, train_metrics, val_metrics, best_epoch, train_idx, val_idx, history, parts)


def fit_quadratic_term(model: NNPModel, data: FeaturizedDataset, train_idx, config: TrainConfig, log=_print):
    """The quadratic model (nnp.model.quadratic.QuadraticFit) fitted to the
    structures `train_idx` with the config's loss weights, in `model`'s
    descriptor scaling, to the labels minus its repulsive core."""
    from nnp.model import quadratic

    t = time.perf_counter()
    fitted = quadratic.fit(data, train_idx, {e: model.scaling(e)[0] for e in model.elements},
                           {e: model.scaling(e)[1] for e in model.elements}, config.energy_weight,
                           config.force_weight, config.stress_weight, config.quadratic_ridge,
                           baseline=quadratic.core_baseline(model))
    log(f"quadratic term fitted in {_fmt_time(time.perf_counter() - t)}; the model written is "
        f"{1 - config.quadratic_weight:g} x network + {config.quadratic_weight:g} x quadratic model")
    return fitted


# --------------------------------------------------------------- refitting


@dataclass
class Member:
    """One model of a `python -m nnp.train` run: what was written to `output`
    (`final`) and the model whose validation errors are reported (`holdout`:
    its twin trained without the validation structures when refitting, else
    `final` itself). Both None: finished by an earlier run."""

    output: Path
    config: TrainConfig
    final: TrainResult | None
    holdout: TrainResult | None


def refits(config: TrainConfig) -> bool:
    return config.refit and config.validation_fraction > 0


def checkpoint_paths(output: Path) -> list[Path]:
    """The checkpoints of the written model and of its holdout twin."""
    return [checkpoints.path_for(output), Path(f"{output}.holdout.ckpt")]


def _twin_in_parallel(config: TrainConfig) -> bool:
    """One training per core. Not on one core (nothing to gain), not with
    CUDA (fork() is unsafe once it is initialised), and not with several
    torch threads per training (they would share the cores, and an OpenMP
    runtime used before fork() can hang in the child)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return torch.device(config.device).type == "cpu" and cores >= 2 and config.threads == 1


def _labelled(label: str):
    return lambda line: _print(f"[{label}] {line}")


def train_member(data: FeaturizedDataset, descriptors, config: TrainConfig, output: Path, resume: bool,
                 data_digest: str) -> tuple[TrainResult, TrainResult]:
    """(final, holdout): the model to write and the one whose validation
    errors are reported. With refit, the final model trains on every
    structure (config with validation_fraction 0) and the holdout model is
    `train(config)`, each bit for bit what a run of its own gives; on a CPU
    with two or more cores the holdout trains in a forked process alongside."""
    final_ckpt, holdout_ckpt = checkpoint_paths(output)
    if not refits(config):
        result = train(data, descriptors, config, checkpoint=final_ckpt, resume=resume and final_ckpt.exists(),
                       data_digest=data_digest)
        return result, result
    final_config = config.updated({"validation_fraction": 0.0})
    holdout_args = (data, descriptors, config, holdout_ckpt, resume and holdout_ckpt.exists(), data_digest)

    def train_final() -> TrainResult:
        return train(data, descriptors, final_config, log=_labelled("all data"), checkpoint=final_ckpt,
                     resume=resume and final_ckpt.exists(), data_digest=data_digest)

    if not _twin_in_parallel(config):
        holdout = _train_holdout(*holdout_args)
        return train_final(), holdout
    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_holdout_process, args=(sender, *holdout_args), daemon=True)
    child.start()
    sender.close()
    try:
        final = train_final()
        try:
            status, payload = receiver.recv()
        except EOFError:
            child.join()
            raise ChildProcessError(f"the holdout run ended without a result (exit code {child.exitcode})") from None
    finally:
        if child.is_alive():
            child.terminate()  # an interrupt: its checkpoint is at most checkpoint_every old
        child.join()
    if status == "error":
        raise payload
    result, text = payload
    model = NNPModel.from_potential_data(potential_file.loads(text, "<holdout model>"))
    return final, dataclasses.replace(result, model=model)


def _train_holdout(data, descriptors, config, checkpoint, resume, data_digest) -> TrainResult:
    return train(data, descriptors, config, log=_labelled("holdout"), checkpoint=checkpoint, resume=resume,
                 data_digest=data_digest)


def _die_with_parent() -> None:
    """A killed parent must not leave the holdout training on (and writing
    its checkpoint while a resumed run writes it too): Linux's
    PR_SET_PDEATHSIG sends this process SIGTERM when the parent dies."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux
        return
    if os.getppid() == 1:  # the parent died before prctl
        os._exit(1)


def _holdout_process(sender, *args) -> None:
    """Child-process body: the holdout result, its model as potential-file
    text (exact: 17 significant digits), or the exception."""
    _die_with_parent()
    try:
        result = _train_holdout(*args)
        text = potential_file.dumps(result.model.to_potential_data())
        sender.send(("ok", (dataclasses.replace(result, model=None), text)))
    except KeyboardInterrupt:
        pass  # the parent reports the interrupt
    except Exception as err:  # noqa: BLE001 - handed to the parent, which raises it
        sender.send(("error", err))
    finally:
        sender.close()


# ----------------------------------------------------------------------- CLI


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("nnp")
    except Exception:
        import nnp

        return str(getattr(nnp, "__version__", "unknown"))


def _elements_of(structures) -> tuple[str, ...]:
    """Elements present, ordered by atomic number."""
    from ase.data import atomic_numbers

    symbols = {s for a in structures for s in a.get_chemical_symbols()}
    return tuple(sorted(symbols, key=lambda s: atomic_numbers[s]))


def provenance(data_path: Path, digest: str, config: TrainConfig, final: TrainResult, holdout: TrainResult,
               data: FeaturizedDataset) -> list[str]:
    """Comment lines for the potential file (no wall time: same seed, same file
    apart from the date line)."""
    split_line = f"{len(final.train_indices)} train, {len(final.validation_indices)} validation"
    if holdout is not final:
        split_line = (f"all {len(final.train_indices)} train (refit); the holdout twin: "
                      f"{len(holdout.train_indices)} train, {len(holdout.validation_indices)} validation")
    lines = [
        f"trained by nnp {_version()} (python -m nnp.train)",
        f"date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}",
        f"data: {data_path.resolve()}",
        f"data sha256: {digest}",
        f"data: {len(data)} structures, {data.n_total_atoms} atoms; {split_line}",
        "config: " + json.dumps(config.as_dict(), sort_keys=True),
        f"train RMSE: {final.train}",
    ]
    if holdout.validation is not None:
        lines.append(f"validation RMSE: {holdout.validation}  (best epoch {holdout.best_epoch}"
                     + (" of the holdout twin)" if holdout is not final else ")"))
    return lines


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m nnp.train",
        description="Train a Behler–Parrinello potential on energies, forces (and stress) and write a potential file.",
    )
    p.add_argument("--data", required=True, help="labelled structures (any format ASE reads with energy and forces)")
    p.add_argument("--output", required=True, help="potential file to write (e.g. Si.nnp)")
    p.add_argument("--config", help="YAML file of TrainConfig settings")
    p.add_argument("--descriptor", help=f"descriptor preset (default {descriptors_mod.DEFAULT_PRESET}): "
                   + ", ".join(descriptors_mod.preset_names()))
    p.add_argument("--epochs", type=int, help="training epochs (0: write the untrained, initialised model)")
    p.add_argument("--seed", type=int, help="random seed (split, initial weights, batch order)")
    p.add_argument("--device", help="torch device to train on: cpu (default) or cuda")
    p.add_argument("--isolated-atom-energy", action="append", metavar="EL=EV",
                   help="energy of one isolated atom of element EL in eV, from the same DFT setup as the data; "
                        "trained on as a one-atom structure so the model binds with the right cohesive energy "
                        "(repeat for several elements)")
    p.add_argument("--ensemble", type=int, default=1, metavar="N",
                   help="train a committee of N models (seeds seed..seed+N-1, each with its own validation split "
                        "unless split_seed is set, which with refit is its holdout twin's); "
                        "writes OUTPUT's stem .0 ... .N-1, their mean as one potential (.mean) and a "
                        ".committee.json with their disagreement")
    p.add_argument("--report", metavar="DIR", help="write metrics (JSON), parity plots and the learning curve to DIR")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from its checkpoint (OUTPUT.ckpt), same settings and data")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs and discard an old checkpoint")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return _run(args)
    except (ValueError, FileNotFoundError, FileExistsError, FloatingPointError, ChildProcessError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; rerun the same command with --resume to continue from its last checkpoint",
              file=sys.stderr)
        return 130


def _element_energies(items: Sequence[str]) -> dict[str, float]:
    """EL=EV pairs of --isolated-atom-energy."""
    out = {}
    for item in items:
        element, sep, value = item.partition("=")
        try:
            out[element.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--isolated-atom-energy {item!r}: expected ELEMENT=ENERGY_EV, e.g. Si=-0.881") from None
        if not sep:
            raise ValueError(f"--isolated-atom-energy {item!r}: expected ELEMENT=ENERGY_EV, e.g. Si=-0.881")
    return out


def member_outputs(output: Path, n: int) -> list[Path]:
    """Output files of an n-model committee: Si.nnp -> Si.0.nnp, Si.1.nnp, ..."""
    if n == 1:
        return [output]
    return [output.with_name(f"{output.stem}.{k}{output.suffix}") for k in range(n)]


def mean_output(output: Path) -> Path:
    """The committee's mean as one potential file: Si.nnp -> Si.mean.nnp."""
    return output.with_name(f"{output.stem}.mean{output.suffix}")


def _check_outputs(args: argparse.Namespace, outputs: list[Path]) -> None:
    """Refuse, before any work is done, to overwrite anything without --force."""
    if len(outputs) > 1:
        mean = mean_output(Path(args.output))
        if mean.is_dir():
            raise ValueError(f"{mean} is a directory")
        if mean.exists() and not (args.force or args.resume):
            raise FileExistsError(f"{mean} exists; refusing to overwrite it (use --force)")
    for out in outputs:
        if out.is_dir():
            raise ValueError(f"{out} is a directory")
        if out.exists() and not args.force:
            raise FileExistsError(f"{out} exists; refusing to overwrite it (use --force)")
        ckpts = checkpoint_paths(out)
        if args.resume and not any(p.exists() for p in ckpts) and not out.exists():
            raise FileNotFoundError(f"no checkpoint {ckpts[0]} to resume from")
        for ckpt in ckpts:
            if ckpt.exists() and not (args.resume or args.force):
                raise FileExistsError(f"{ckpt} is the checkpoint of an interrupted run: continue it with --resume, "
                                      "or start over with --force")
    if args.report:
        report_dir = Path(args.report)
        if report_dir.exists() and (not report_dir.is_dir() or any(report_dir.iterdir())) and not args.force:
            raise FileExistsError(f"report directory {report_dir} exists and is not empty (use --force)")


def _run(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    output = Path(args.output)
    if args.ensemble < 1:
        raise ValueError("--ensemble must be >= 1")
    outputs = member_outputs(output, args.ensemble)
    _check_outputs(args, outputs)
    config = TrainConfig.from_yaml(args.config) if args.config else TrainConfig()
    cli = {k: getattr(args, k) for k in ("descriptor", "epochs", "seed", "device") if getattr(args, k) is not None}
    if args.isolated_atom_energy:
        cli["isolated_atom_energies"] = {**config.isolated_atom_energies,
                                         **_element_energies(args.isolated_atom_energy)}
    config = config.updated(cli, "command line")
    config.check()
    if refits(config) and config.patience > 0:
        raise ValueError("config: patience stops training on the validation loss, and the refit model (trained "
                         "on every structure) has no validation set: set refit: false to use early stopping")
    torch.set_num_threads(config.threads or os.cpu_count() or 1)

    data_path = Path(args.data)
    structures = read_structures(data_path)
    digest = file_sha256(data_path)
    elements = _elements_of(structures)
    descriptors = descriptors_mod.resolve(config.descriptor, elements, structures)
    _print(f"data: {data_path} ({len(structures)} structures, {sum(len(a) for a in structures)} atoms, "
           f"elements {' '.join(elements)})")
    _print(f"descriptor {config.descriptor}: {', '.join(f'{e} {descriptors.size(e)}' for e in elements)} functions, "
           f"cutoff {descriptors.cutoff:g} Å")
    t = time.perf_counter()
    if config.isolated_atom_energies:
        _print("isolated atoms (always trained): " + ", ".join(
            f"{e} {E:g} eV" for e, E in sorted(config.isolated_atom_energies.items())))
    data = featurize(structures, descriptors, config)
    _print(f"featurised in {_fmt_time(time.perf_counter() - t)} ({data.nbytes() / 2**20:.0f} MiB)")
    n_adam, n_lbfgs = _phase_lengths(config)
    _print(f"network: {config.hidden_layers} x {config.hidden_nodes} {config.activation}; {config.epochs} epochs "
           f"(Adam {n_adam}, batch {config.batch_size} structures, lr {config.learning_rate:g} {config.lr_schedule}; "
           f"L-BFGS {n_lbfgs}), weights E {config.energy_weight:g} F {config.force_weight:g} "
           f"S {config.stress_weight:g}, seed {config.seed}, device {config.device}")

    if refits(config):
        how = "alongside, in a second process" if _twin_in_parallel(config) else "first"
        _print(f"refit: the written model trains on all structures; its holdout twin, which leaves out the "
               f"validation structures (fraction {config.validation_fraction:g}) and gives the validation "
               f"errors, trains {how}")
    results = []
    for k, out in enumerate(outputs):
        member = config if len(outputs) == 1 else config.updated({"seed": config.seed + k})
        if len(outputs) > 1:
            _print(f"committee member {k + 1}/{len(outputs)}: seed {member.seed} -> {out}")
        if args.resume and out.exists() and not any(p.exists() for p in checkpoint_paths(out)):
            _print(f"{out} is finished; skipping it")
            results.append(Member(out, member, None, None))
            continue
        final, holdout = train_member(data, descriptors, member, out, args.resume, digest)
        pot = final.model.to_potential_data(provenance(data_path, digest, member, final, holdout, data))
        potential_file.write(pot, out, overwrite=True)  # refused above unless --force or resuming
        for path in checkpoint_paths(out):
            path.unlink(missing_ok=True)
        _print_summary(final, holdout, data, member)
        _print(f"wrote {out}")
        results.append(Member(out, member, final, holdout))
    if len(outputs) > 1:
        _write_committee(output, results, data, digest)
    if args.report:
        _write_report(Path(args.report), results[0], data, args.force)
    _print(f"wall time {_fmt_time(time.perf_counter() - t_start)}")
    return 0


def _print_summary(final: TrainResult, holdout: TrainResult, data: FeaturizedDataset, config: TrainConfig) -> None:
    groups = metrics_by_config_type(holdout.model, data, holdout.validation_indices, config)
    twin = " of the holdout model" if holdout is not final else ""
    if len(groups) > 1:
        _print(f"validation{twin} by config_type (RMSE | MAE):")
        for name, (count, m) in groups.items():
            _print(f"  {name:16s} {count:4d} structures  {m} | {m.mae_str()}")
    if holdout is not final:
        _print(f"holdout    RMSE: {holdout.train}  MAE: {holdout.train.mae_str()}  "
               f"(its {len(holdout.train_indices)} training structures)")
    _print(f"train      RMSE: {final.train}  MAE: {final.train.mae_str()}"
           + (f"  (the written model, all {len(final.train_indices)} structures)" if twin else ""))
    if holdout.validation is not None:
        for name, m in holdout.parts.items():
            _print(f"  {name + ' alone':15s} RMSE: {m}  MAE: {m.mae_str()}")
        _print(f"validation RMSE: {holdout.validation}  MAE: {holdout.validation.mae_str()}  "
               f"(best epoch {holdout.best_epoch}{twin}"
               + (f"; weight {config.quadratic_weight:g} on the quadratic term)" if holdout.parts else ")"))
    _print_isolated_atoms(final.model, data)


def _print_isolated_atoms(model: NNPModel, data: FeaturizedDataset) -> None:
    """The model's isolated-atom energies against the data's lowest energy
    per atom: the binding that MD far from the data (boiling, surfaces) sees."""
    lowest = float((data.energy / data.n_atoms).min())
    parts = []
    for e in data.elements:
        e_atom = float(model.predict([isolated_atom(e, math.nan)])[0]["energy"])  # the label is not used
        parts.append(f"{e} {e_atom:.3f} eV")
    _print(f"isolated atoms in the model: {', '.join(parts)} (lowest energy in the data: {lowest:.3f} eV/atom)")
    if len(isolated_structures(data)) == 0:
        _print("  no isolated atom was trained on, so this limit is unconstrained and the model may bind too "
               "weakly (a liquid that boils at 1 atm): give --isolated-atom-energy EL=EV from the data's DFT "
               "setup (docs/robustness.md)")


def _write_report(directory: Path, member, data: FeaturizedDataset, overwrite: bool) -> None:
    from nnp.analysis import report

    if member.final is None:
        _print(f"no report: {member.output} was finished by an earlier run")
        return
    final, holdout = member.final, member.holdout
    sets = {"train": report.predict_model(final.model, data, final.train_indices)}
    if len(holdout.validation_indices):
        sets["validation"] = report.predict_model(holdout.model, data, holdout.validation_indices)
    notes = []
    if holdout is not final:
        notes = [f"train: the written model, trained on all {len(final.train_indices)} structures (refit).",
                 f"validation: the holdout model, trained on the other {len(holdout.train_indices)} structures "
                 f"with the same settings; its best epoch ({holdout.best_epoch}) was chosen on these. "
                 "The learning curve is the holdout model's."]
    report.write_report(directory, sets, holdout.history, overwrite=overwrite, notes=notes)
    _print(f"wrote the report to {directory}")


def _mean_validation(results, data: FeaturizedDataset) -> tuple[Metrics | None, str]:
    """Validation errors of the members' mean when they share one split:
    the mean of the models that did not see it (the holdout twins with
    refit, else the members themselves); else None and the reason."""
    from nnp import committee

    if any(m.holdout is None for m in results):
        return None, "a member was finished by an earlier run, whose holdout model is gone"
    val = results[0].holdout.validation_indices
    if len(val) == 0:
        return None, "nothing was held out (validation_fraction 0)"
    if any(not np.array_equal(m.holdout.validation_indices, val) for m in results):
        return None, "the members have different validation splits (set split_seed to share one)"
    mean = committee.mean_potential([m.holdout.model.to_potential_data() for m in results])
    return evaluate(NNPModel.from_potential_data(mean), data, val, results[0].config), ""


def _metrics_json(m: Metrics) -> dict[str, float | None]:
    """Metrics in report units, NaN (no stress labels) as null."""
    values = {"energy_mae_meV_per_atom": 1000 * m.energy_mae, "energy_rmse_meV_per_atom": 1000 * m.energy_rmse,
              "force_mae_eV_per_A": m.force_mae, "force_rmse_eV_per_A": m.force_rmse,
              "stress_mae_GPa": GPA * m.stress_mae, "stress_rmse_GPa": GPA * m.stress_rmse}
    return {k: (v if math.isfinite(v) else None) for k, v in values.items()}


def _write_committee(output: Path, results, data: FeaturizedDataset, digest: str) -> None:
    """Disagreement of the committee on every structure, and what later
    uncertainty estimates need: member files, seeds, splits; and the
    members' mean as one potential file (`nnp.committee`)."""
    from nnp import committee

    mean = committee.write_mean([m.output for m in results], mean_output(output), overwrite=True)
    mean_validation, why_not = _mean_validation(results, data)
    models = [NNPModel.from_potential_data(potential_file.read(m.output)) for m in results]
    per_type: dict[str, list[tuple[float, float]]] = {}
    for start in range(0, len(data), 32):
        idx = np.arange(start, min(start + 32, len(data)))
        batch = data.collate(idx)
        preds = [m(batch, forces=True) for m in models]
        e = torch.stack([p["energy"].detach() / batch.n_atoms for p in preds])  # (K, S)
        f = torch.stack([p["forces"].detach() for p in preds])  # (K, N, 3)
        e_std = e.std(0, unbiased=False)
        f_var = f.var(0, unbiased=False).sum(-1)  # (N,)
        f_std = torch.sqrt(torch.zeros(len(idx), dtype=f_var.dtype).index_add(0, batch.atom_struct, f_var)
                           / (3 * batch.n_atoms))
        for s, i in enumerate(idx):
            per_type.setdefault(data.config_types[i], []).append((float(e_std[s]), float(f_std[s])))
    summary = {
        ct: {"structures": len(v), "energy_std_meV_per_atom": 1000 * float(np.sqrt(np.mean([x[0] ** 2 for x in v]))),
             "force_std_eV_per_A": float(np.sqrt(np.mean([x[1] ** 2 for x in v])))}
        for ct, v in sorted(per_type.items())
    }
    info = {
        "members": [str(m.output) for m in results],
        "mean": str(mean),
        "seeds": [m.config.seed for m in results],
        "split_seeds": [m.config.split_seed_used for m in results],
        "validation_fraction": results[0].config.validation_fraction,
        "refit": refits(results[0].config),
        "data_sha256": digest,
        "disagreement_by_config_type": summary,
        "mean_validation": _metrics_json(mean_validation) if mean_validation is not None else None,
    }
    path = output.with_name(f"{output.stem}.committee.json")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    _print("committee disagreement (RMS over structures of the std across members):")
    for ct, v in summary.items():
        _print(f"  {ct:16s} E {v['energy_std_meV_per_atom']:6.2f} meV/atom  F {v['force_std_eV_per_A']:.4f} eV/Å")
    _print(f"wrote {path}")
    _print(f"wrote {mean}: the mean of the {len(results)} members as one potential (one wider network per element)")
    if mean_validation is not None:
        twins = "holdout models'" if refits(results[0].config) else "members'"
        _print(f"validation of the mean (the {twins} mean on their shared split): RMSE {mean_validation}  "
               f"MAE: {mean_validation.mae_str()}")
    else:
        _print(f"  the validation errors of the mean are not measured: {why_not}")


if __name__ == "__main__":
    sys.exit(main())
