"""nnp train --model gp: the sparse GP's training run (docs/gp.md).

The same data, descriptor, split, scaling, reference energies and repulsive
core as the network's run (nnp.train.training_set, initial_model); the GP
(nnp.train.gp_fit) replaces the network. As with the network, the holdout
fit (validation structures left out) gives the validation errors, measured
through the C++ core on the written format, and with `refit` the file
written is fitted to every structure. The memory of the fit (featurised
data and the stacked design matrix) is estimated before anything is
featurised, and a fit over the budget is refused with one line.
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
from nnp.analysis import report
from nnp.analysis.metrics import Predictions, metrics, predict_potential
from nnp.data import FeaturizedDataset
from nnp.io import potential_file
from nnp.io.potential_file import PotentialData
from nnp.model import quadratic
from nnp.progress import Bar, fmt_time
from nnp.train import gp_fit, memory
from nnp.train.config import TrainConfig
from nnp.train.console import print_line
from nnp.train.initial_model import build_model
from nnp.train.outputs import CONFIG_PREFIX
from nnp.train.training_set import featurize, split_structures, with_isolated_atoms

GIB = 2.0**30


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
    q = None
    if config.gp_mean == "quadratic":  # the same fit as the network's quadratic term
        q = quadratic.fit(data, train_idx, {e: model.scaling(e)[0] for e in model.elements},
                          {e: model.scaling(e)[1] for e in model.elements}, config.energy_weight,
                          config.force_weight, config.stress_weight, config.quadratic_ridge,
                          baseline=quadratic.core_baseline(model))
    mean = gp_fit.prior_mean(model, q)
    fitted = gp_fit.fit(data, train_idx, mean, gp_fit.GPSettings.of(config))
    pot = mean.to_potential_data()
    for e, m in pot.models.items():
        m.layers, m.gp = [], fitted.processes[e]
    return GPResult(pot, fitted, train_idx, val_idx)


def predictions(result: GPResult, structures: list, which: str) -> Predictions | None:
    """Predictions of the potential (through the C++ core) on its
    "train" or "validation" structures; None when there are none."""
    idx = result.train_indices if which == "train" else result.validation_indices
    if len(idx) == 0:
        return None
    pot = _core.Potential.from_spec(potential_file.to_spec(result.potential))
    return predict_potential(pot, [structures[i] for i in idx])


def validation_metrics(result: GPResult, structures: list) -> dict | None:
    """Overall errors on the validation structures (nnp.analysis.metrics keys)."""
    p = predictions(result, structures, "validation")
    return None if p is None else metrics(p)["overall"]


def check_memory(structures: list, descriptors, config: TrainConfig) -> tuple[float, int]:
    """(estimated peak bytes, label rows) of the fit to every structure (the
    larger of the holdout fit and the refit); ValueError with one line when
    over the budget, before anything is featurised."""
    shape = memory.data_shape(structures, descriptors, config)
    stored = memory.estimate(shape, config, streamed=False, twin=False)  # the fit needs stored derivatives
    with_stress = [bool(a.pbc.all()) and a.calc is not None and "stress" in a.calc.results for a in structures]
    with_stress += [False] * len(config.isolated_atom_energies)
    n_rows = gp_fit.count_rows(shape.element_atoms.sum(1), np.array(with_stress) & (config.gp_sigma_virial > 0))
    limit, source = memory.budget(config)
    data = stored.base + stored.data + (stored.quadratic if config.gp_mean == "quadratic" else 0.0)
    need = gp_fit.check_memory(n_rows, len(descriptors.elements), config.gp_sparse, limit, source, data_bytes=data)
    return need, n_rows


def _errors_line(name: str, m: dict | None) -> str:
    if m is None:
        return f"{name}: not measured (no structures)"
    stress = m.get("stress_rmse_GPa")
    return (f"{name} RMSE: E {m['energy_rmse_meV_atom']:7.3f} meV/atom  F {m['force_rmse_eV_A']:.4f} eV/Å"
            + (f"  S {stress:.3f} GPa" if stress is not None else "")
            + f"  MAE: E {m['energy_mae_meV_atom']:.3f} meV/atom  F {m['force_mae_eV_A']:.4f} eV/Å")


def _kernel_line(config: TrainConfig) -> str:
    hyper = f"zeta {config.gp_zeta}" if config.gp_kernel == "dot" else f"lengthscale {config.gp_lengthscale:g}"
    return (f"GP: kernel {config.gp_kernel} (delta {config.gp_delta:g} eV, {hyper}), {config.gp_sparse} sparse points "
            f"per element ({config.gp_selection}), prior mean {config.gp_mean}, "
            f"noise E {config.gp_sigma_energy:g} eV/atom, "
            f"F {config.gp_sigma_force:g} eV/Å, V {config.gp_sigma_virial:g} eV/atom")


def _print_validation(p: Predictions | None) -> dict | None:
    """Print the validation errors (overall and per config_type); return the overall ones."""
    if p is None:
        print_line("validation: not measured (no validation structures)")
        return None
    m = metrics(p)
    if len(m["config_types"]) > 1:
        print_line("validation by config_type:")
        for name, g in m["config_types"].items():
            print_line(f"  {name:16s} {g['n_structures']:4d} structures  " + _errors_line("", g).lstrip())
    print_line(_errors_line("validation", m["overall"]))
    return m["overall"]


def _comments(config: TrainConfig, data: FeaturizedDataset, data_path: Path, digest: str, final: GPResult,
              holdout: GPResult, validation: dict | None) -> list[str]:
    split = (f"all {len(final.train_indices)} train (refit); the holdout fit: {len(holdout.train_indices)} train, "
             f"{len(holdout.validation_indices)} validation" if final is not holdout else
             f"{len(final.train_indices)} train, {len(final.validation_indices)} validation")
    return [
        "trained by nnp (nnp train --model gp): a sparse Gaussian process per element, no network",
        f"date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}",
        f"data: {data_path.resolve()}",
        f"data sha256: {digest}",
        f"data: {len(data)} structures, {data.n_total_atoms} atoms; {split}",
        CONFIG_PREFIX + json.dumps(config.as_dict(), sort_keys=True),
        _errors_line("validation", validation) + (" (the holdout fit)" if final is not holdout else ""),
    ]


def run(structures: list, descriptors, config: TrainConfig, output: Path, data_path: Path, digest: str,
        report_dir: Path | None = None, overwrite: bool = False) -> int:
    """Fit (holdout, then refit), write `output` (and the report), print the errors; 0 on success."""
    every = with_isolated_atoms(structures, config)
    need, n_rows = check_memory(structures, descriptors, config)
    print_line(_kernel_line(config))
    limit, source = memory.budget(config)
    print_line(f"memory: estimated peak {need / GIB:.2f} GiB ({n_rows} label rows x "
               f"{len(descriptors.elements) * config.gp_sparse} sparse points; budget {limit / GIB:.1f} GiB, {source})")
    t = time.perf_counter()
    bar = Bar(len(every), "featurising", "structures")
    data = featurize(structures, descriptors, config, progress=lambda done, total: bar.update(done))
    bar.close()
    print_line(f"featurised in {fmt_time(time.perf_counter() - t)} ({data.nbytes() / 2**20:.0f} MiB)")
    holdout = fit_potential(data, descriptors, config)
    print_line(f"holdout fit: {len(holdout.train_indices)} structures, {holdout.fit.n_rows} label rows, "
               f"{fmt_time(holdout.fit.seconds)}")
    val_pred = predictions(holdout, every, "validation")
    validation = _print_validation(val_pred)
    final = holdout
    if config.refits and len(holdout.validation_indices):
        final = fit_potential(data, descriptors, config.updated({"validation_fraction": 0.0}))
        print_line(f"refit on all {len(final.train_indices)} structures: {fmt_time(final.fit.seconds)}")
    train_pred = predictions(final, every, "train")
    print_line(_errors_line("train", metrics(train_pred)["overall"])
               + ("  (the written model, all structures)" if final is not holdout else ""))
    final.potential.comments = _comments(config, data, data_path, digest, final, holdout, validation)
    potential_file.write(final.potential, output, overwrite=True)  # the CLI refused to overwrite unless --force
    print_line(f"peak memory (this process) {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    print_line(f"wrote {output}")
    if report_dir is not None:
        sets = {"train": train_pred} | ({"validation": val_pred} if val_pred is not None else {})
        notes = [f"A sparse GP ({config.gp_kernel} kernel, {config.gp_sparse} sparse points per element), "
                 "fitted in closed form: no learning curve."]
        if final is not holdout:
            notes.append(f"train: the written model, fitted to all {len(final.train_indices)} structures (refit); "
                         f"validation: the holdout fit to the other {len(holdout.train_indices)} structures.")
        report.write_report(report_dir, sets, None, overwrite=overwrite, notes=notes)
        print_line(f"wrote the report to {report_dir}")
    return 0
