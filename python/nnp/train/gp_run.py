"""python -m nnp.train --model gp: the sparse GP's training run.

The same data, descriptor, split, scaling, reference energies and repulsive
core as the network's run (nnp.train.training_set, initial_model); the GP
(nnp.train.gp_fit) replaces the network. As with the network, the holdout
fit (validation structures left out) gives the validation errors, measured
through the C++ core on the written format, and with `refit` the file
written is fitted to every structure.
"""

from __future__ import annotations

import datetime
import json
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnp import _core
from nnp.analysis.metrics import metrics, predict_potential
from nnp.data import FeaturizedDataset
from nnp.io import potential_file
from nnp.io.potential_file import PotentialData
from nnp.progress import fmt_time
from nnp.train import gp_fit
from nnp.train.config import TrainConfig
from nnp.train.console import print_line
from nnp.train.initial_model import build_model
from nnp.train.memory import budget
from nnp.train.training_set import featurize, split_structures, with_isolated_atoms


@dataclass
class GPResult:
    """A fitted GP potential and what it was fitted on."""

    potential: PotentialData
    fit: gp_fit.GPFit
    train_indices: np.ndarray
    validation_indices: np.ndarray


def fit_potential(data: FeaturizedDataset, descriptors, config: TrainConfig) -> GPResult:
    """The GP potential fitted to the training structures of `config`'s split."""
    fit_idx, train_idx, val_idx = split_structures(data, config)
    model = build_model(data, descriptors, config, fit_idx)
    fitted = gp_fit.fit(data, train_idx, model, gp_fit.GPSettings.of(config))
    pot = model.to_potential_data()
    for e, m in pot.models.items():
        m.layers, m.quadratic, m.gp = [], None, fitted.processes[e]
    return GPResult(pot, fitted, train_idx, val_idx)


def validation_metrics(result: GPResult, structures: list) -> dict | None:
    """Errors of the potential on its validation structures, through the C++ core."""
    if len(result.validation_indices) == 0:
        return None
    pot = _core.Potential.from_spec(potential_file.to_spec(result.potential))
    return metrics(predict_potential(pot, [structures[i] for i in result.validation_indices]))["overall"]


def _check_memory(structures: list, config: TrainConfig, n_elements: int) -> float:
    """The fit's estimate, refused (ValueError) before featurising when over budget."""
    n_atoms = np.array([len(a) for a in structures])
    stress = np.array([bool(a.pbc.all()) and a.calc is not None and "stress" in a.calc.results for a in structures])
    limit, name = budget(config)
    n_rows = gp_fit.count_rows(n_atoms, stress & (config.gp_sigma_virial > 0))
    return gp_fit.check_memory(n_rows, n_elements, config.gp_sparse, limit, name)


def _summary(name: str, m: dict | None) -> str:
    if m is None:
        return f"{name}: not measured (no validation structures)"
    return (f"{name}: energy RMSE {m['energy_rmse_meV/atom']:.3f} MAE {m['energy_mae_meV/atom']:.3f} meV/atom, "
            f"force RMSE {m['force_rmse_eV/Å']:.4f} MAE {m['force_mae_eV/Å']:.4f} eV/Å")


def _kernel_line(config: TrainConfig) -> str:
    hyper = f"zeta {config.gp_zeta}" if config.gp_kernel == "dot" else f"lengthscale {config.gp_lengthscale:g}"
    return (f"GP: kernel {config.gp_kernel} (delta {config.gp_delta:g} eV, {hyper}), {config.gp_sparse} sparse points "
            f"per element, sigma E {config.gp_sigma_energy:g} eV/atom F {config.gp_sigma_force:g} eV/Å "
            f"V {config.gp_sigma_virial:g} eV/atom")


def run(structures: list, descriptors, config: TrainConfig, output: Path, data_path: Path, digest: str) -> int:
    """Fit (holdout, then refit), write `output`, print the errors; 0 on success."""
    elements = descriptors.elements
    need = _check_memory(with_isolated_atoms(structures, config), config, len(elements))
    print_line(_kernel_line(config))
    print_line(f"memory: the fit needs about {need / 2**20:.0f} MiB")
    t = time.perf_counter()
    data = featurize(structures, descriptors, config)
    every = with_isolated_atoms(structures, config)
    print_line(f"featurised in {fmt_time(time.perf_counter() - t)} ({data.nbytes() / 2**20:.0f} MiB)")
    holdout = fit_potential(data, descriptors, config)
    validation = validation_metrics(holdout, every)
    print_line(f"holdout fit: {len(holdout.train_indices)} structures, {holdout.fit.n_rows} rows, "
               f"{fmt_time(holdout.fit.seconds)}")
    print_line(_summary("validation", validation))
    final = holdout
    if config.refits:
        final = fit_potential(data, descriptors, config.updated({"validation_fraction": 0.0}))
        print_line(f"refit on all {len(final.train_indices)} structures: {fmt_time(final.fit.seconds)}")
    final.potential.comments = [
        "trained by nnp (python -m nnp.train --model gp)",
        f"date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}",
        f"data: {data_path.resolve()}",
        f"data sha256: {digest}",
        f"data: {len(data)} structures, {data.n_total_atoms} atoms; fitted to {len(final.train_indices)}"
        + (f"; the holdout fit left out {len(holdout.validation_indices)} for validation" if final is not holdout else ""),
        "config: " + json.dumps(config.as_dict(), sort_keys=True),
        _summary("validation", validation),
    ]
    potential_file.write(final.potential, output, overwrite=True)  # the CLI refused to overwrite unless --force
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    print_line(f"peak memory (this process) {peak:.0f} MiB")
    print_line(f"wrote {output}")
    return 0
