"""The five stages of one study run (a point with one regressor), each a
function of (Context, run) that returns its result as a JSON-ready dict:

  train       a potential with the training defaults, DIR/points/R/potential.nnp:
              a network trained (nnp.train.train) or a sparse GP fitted (nnp.train.gp_run)
  validation  errors and parity plots on the train and validation structures
  zero_k      0 K lattice constant and elastic constants
  melt        melt -> liquid -> quench -> amorphous: densities, pressure, g(r)
  crystal     NPT of the crystal: lattice constant, bulk modulus, g(r)

A stage raises one of `STAGE_ERRORS` when the point fails there (e.g. a
potential that blows up in the liquid); the runner records it and goes on.
"""

from __future__ import annotations

import datetime
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from nnp import descriptors as descriptors_mod
from nnp.analysis import properties as props
from nnp.analysis.metrics import metrics, predict_potential
from nnp.analysis.report import write_report
from nnp.constants import ATM_IN_BAR, BAR_IN_GPA
from nnp.io import potential_file
from nnp.io.atomic import atomic_open
from nnp.progress import Bar, fmt_time, on_terminal, outside_bars
from nnp.study.config import StudyConfig, split_run
from nnp.study.directory import StudyDir
from nnp.train import featurize, gp_run, train, with_isolated_atoms
from nnp.train.console import TerminalDisplay
from nnp.train.phases import with_epochs

A_GUESS = 5.43  # Å, start of the 0 K relaxation (and of MD when it failed)
# A liquid or amorphous phase under this fraction of the crystal's density has boiled.
COLLAPSED_DENSITY_FRACTION = 0.5


@dataclass
class Context:
    """What every stage of a study run needs: settings, directory, data, log."""

    config: StudyConfig
    sdir: StudyDir
    structures: list  # ASE Atoms (the subset the study uses)
    element: str
    mass: float
    checkpoint_seconds: float = 600.0
    log: Callable[[str], None] = print
    progress_seconds: float = 60.0
    t_start: float = field(default_factory=time.perf_counter)
    twins: dict[str, str | None] = field(default_factory=dict)  # see twin_of

    def md_settings(self) -> props.MDSettings:
        c = self.config
        return props.MDSettings(
            timestep=c.timestep_fs / 1000, pressure=c.pressure_atm, t_damp=c.t_damp_fs / 1000,
            p_damp=c.p_damp_fs / 1000, sample_every=c.sample_every, rdf_every=c.rdf_every,
            rdf_bins=c.rdf_bins, rdf_cutoff=c.rdf_cutoff, seed=4928459 + c.seed,
            checkpoint_seconds=self.checkpoint_seconds,
        )

    def pair(self, run: str) -> props.Pair:
        return props.Pair.nnp(self.sdir.potential(run), self.element, self.mass)


def crystal_stages(c: StudyConfig) -> list[props.MDStage]:
    T = c.crystal_temperature
    return [props.MDStage("equilibrate", c.steps(c.crystal_equilibrate_ps), T, T),
            props.MDStage("production", c.steps(c.crystal_ps), T, T, sample=True)]


def melt_stages(c: StudyConfig) -> list[props.MDStage]:
    Tm, Tl, Ta = c.melt_temperature, c.liquid_temperature, c.quench_end_temperature
    rho = c.liquid_density or None
    return [
        props.MDStage("melt", c.steps(c.melt_ps), Tm, Tm, density=rho),
        props.MDStage("liquid-equilibrate", c.steps(c.liquid_equilibrate_ps), Tl, Tl, density=rho),
        props.MDStage("liquid", c.steps(c.liquid_ps), Tl, Tl, sample=True, density=rho),
        props.MDStage("quench", c.steps(c.quench_ps), Tl, Ta),
        props.MDStage("amorphous-equilibrate", c.steps(c.amorphous_equilibrate_ps), Ta, Ta),
        props.MDStage("amorphous", c.steps(c.amorphous_ps), Ta, Ta, sample=True),
    ]


def md_cost(stage: str, c: StudyConfig) -> int:
    """Atom-steps of an MD stage (0 for the others)."""
    if stage == "crystal":
        return 8 * c.crystal_cells**3 * sum(s.steps for s in crystal_stages(c))
    if stage == "melt":
        return 8 * c.melt_cells**3 * sum(s.steps for s in melt_stages(c))
    return 0


def _train_log(ctx: Context, run: str) -> Callable[[str], None]:
    """Training lines, at most one per progress interval (plus the first)."""
    last = [-math.inf]

    def log(line: str) -> None:
        now = time.perf_counter()
        if now - last[0] >= ctx.progress_seconds:
            with outside_bars():
                ctx.log(f"    {run} {line.strip()}")
            last[0] = now

    return log


def _featurize(ctx: Context, run: str, descriptors, config):
    bar = Bar(len(ctx.structures) + len(config.isolated_atom_energies), f"{run} featurising", "structures")
    data = featurize(ctx.structures, descriptors, config, progress=lambda done, total: bar.update(done))
    bar.close()
    return data


def _comments(ctx: Context, run: str, what: str, n_train: int, n_validation: int, seed: int) -> list[str]:
    point, _ = split_run(run)
    return [
        f"nnp.study run {run}: descriptor {point}, {what}, seed {seed}",
        f"data: {len(ctx.structures)} structures; {n_train} train, {n_validation} validation",
        f"date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}",
    ]


def run_train(ctx: Context, run: str) -> dict:
    point, model = split_run(run)
    if model == "gp":
        return _fit_gp(ctx, run)
    config = ctx.config.train_config(point, model)
    descriptors = descriptors_mod.preset(point, (ctx.element,))
    data = _featurize(ctx, run, descriptors, config)
    config = with_epochs(config, int(data.n_atoms.sum()))  # recorded below as a number
    log = _train_log(ctx, run)
    result = train(data, descriptors, config, log=log, display=TerminalDisplay(f"{run} training", log=log))
    what = f"{config.hidden_layers} x {config.hidden_nodes} {config.activation}"
    comments = _comments(ctx, run, what, len(result.train_indices), len(result.validation_indices), config.seed)
    potential_file.write(result.model.to_potential_data(comments), ctx.sdir.potential(run), overwrite=True)
    val = result.validation
    return {
        "n_functions": descriptors.size(ctx.element),
        "epochs": config.epochs,
        "best_epoch": result.best_epoch,
        "train_energy_rmse": result.train.energy_rmse,
        "train_force_rmse": result.train.force_rmse,
        "validation_energy_rmse": val.energy_rmse if val else None,
        "validation_force_rmse": val.force_rmse if val else None,
        "train_indices": [int(i) for i in result.train_indices],
        "validation_indices": [int(i) for i in result.validation_indices],
        "history": result.history,
    }


def _fit_gp(ctx: Context, run: str) -> dict:
    """The sparse GP of a point, fitted as `nnp train --model gp` fits it
    (same split, scaling, core and prior mean as the network's run) to the
    training structures alone: its validation errors describe the file."""
    point, model = split_run(run)
    config = ctx.config.train_config(point, model)
    descriptors = descriptors_mod.preset(point, (ctx.element,))
    need, _ = gp_run.check_memory(ctx.structures, descriptors, config)  # one line if it cannot fit
    data = _featurize(ctx, run, descriptors, config)
    result = gp_run.fit_potential(data, descriptors, config)
    n_train, n_val = len(result.train_indices), len(result.validation_indices)
    what = (f"sparse GP ({config.gp_kernel} kernel, {config.gp_sparse} sparse points per element, "
            f"prior mean {config.gp_mean})")
    result.potential.comments = _comments(ctx, run, what, n_train, n_val, config.seed)
    potential_file.write(result.potential, ctx.sdir.potential(run), overwrite=True)
    every = with_isolated_atoms(ctx.structures, config)
    train_m = _metrics_of(gp_run.predictions(result, every, "train"))
    val_m = _metrics_of(gp_run.predictions(result, every, "validation"))
    return {
        "n_functions": descriptors.size(ctx.element),
        "model": model,
        "n_sparse": {e: int(p.sparse_points.shape[0]) for e, p in result.fit.processes.items()},
        "label_rows": int(result.fit.n_rows),
        "fit_s": float(result.fit.seconds),
        "estimated_peak_bytes": float(need),
        "train_energy_rmse": train_m["energy_rmse_meV_atom"] / 1000 if train_m else None,
        "train_force_rmse": train_m["force_rmse_eV_A"] if train_m else None,
        "validation_energy_rmse": val_m["energy_rmse_meV_atom"] / 1000 if val_m else None,
        "validation_force_rmse": val_m["force_rmse_eV_A"] if val_m else None,
        "train_indices": [int(i) for i in result.train_indices],
        "validation_indices": [int(i) for i in result.validation_indices],
        "history": None,
    }


def _metrics_of(pred) -> dict | None:
    return None if pred is None else metrics(pred)["overall"]


def run_validation(ctx: Context, run: str) -> dict:
    trained = ctx.sdir.result(run, "train")
    pot = ctx.sdir.potential(run)
    point, model = split_run(run)
    # The indices count the isolated atoms (if any) after the structures, as the training set does.
    every = with_isolated_atoms(ctx.structures, ctx.config.train_config(point, model))
    sets = {}
    for name, key in (("train", "train_indices"), ("validation", "validation_indices")):
        idx = trained[key]
        if idx:
            sets[name] = predict_potential(pot, [every[i] for i in idx])
    # Parity plots and metrics.json of this run; the directory is the study's own.
    notes = ["A sparse GP, fitted in closed form: no learning curve."] if model == "gp" else ()
    result = write_report(ctx.sdir.parity(run), sets, trained.get("history"), overwrite=True, notes=notes)
    return {"metrics": result["sets"]}


def run_zero_k(ctx: Context, run: str) -> dict:
    pair = ctx.pair(run)
    c = ctx.config
    lattice = props.relax_lattice(pair, A_GUESS, c.elastic_cells)
    elastic = props.elastic_constants(pair, lattice.a, c.elastic_cells, c.elastic_strain)
    return {"a": lattice.a, "energy": lattice.energy, "residual_pressure_gpa": lattice.pressure, **elastic.as_dict()}


def summarise_samples(s: props.StageSamples, r: np.ndarray, natoms: int, mass: float, blocks: int) -> dict:
    """Means, block-average errors and g(r) of one sampled MD stage."""
    v = np.asarray(s.volume)
    rho = props.density(natoms, 1.0, mass) / v  # g/cm³ per sample
    g, coord = s.rdf(r)
    r_min, cn = props.first_shell_coordination(r, g, coord)
    out = {
        "samples": len(v),
        "temperature": float(np.mean(s.temperature)),
        "pressure_atm": float(np.mean(s.pressure)) / ATM_IN_BAR,
        "pressure_gpa": float(np.mean(s.pressure)) * BAR_IN_GPA,
        "pressure_gpa_err": props.block_error(np.asarray(s.pressure) * BAR_IN_GPA, blocks),
        "energy": float(np.mean(s.energy)),
        "volume_per_atom": float(v.mean()) / natoms,
        "density": float(rho.mean()),
        "density_err": props.block_error(rho, blocks),
        "rdf_samples": s.rdf_samples,
        "rdf_r": r, "rdf_g": g, "rdf_coordination": coord,
        "first_minimum": r_min, "coordination": cn,
    }
    if s.extrapolating:
        out["extrapolating_fraction"] = float(np.mean(s.extrapolating)) / natoms
    return out


class _MDProgress:
    """An MD run's progress (props.ProgressFn): on a terminal a bar per MD
    stage, redrawn every second; a line every ctx.progress_seconds and at
    the end of each stage (what a log file keeps)."""

    def __init__(self, ctx: Context, run: str, natoms: int):
        self.ctx, self.run, self.natoms = ctx, run, natoms
        self.bar: Bar | None = None
        self.stage, self.last_line = "", -math.inf
        # How often run_md reports: between its chunks of steps, so the MD is the same either way.
        self.interval = min(ctx.progress_seconds, 1.0) if on_terminal() else ctx.progress_seconds

    def __call__(self, name: str, done: int, total: int, ran: int, seconds: float) -> None:
        if total == 0:
            return
        speed = seconds / ran / self.natoms if ran else math.nan
        eta = speed * self.natoms * (total - done)
        if name != self.stage:
            self.close()
            self.bar, self.stage = Bar(total, f"{self.run} {name}", "steps", own_eta=True), name
        self.bar.update(done, f"{speed * 1e6:.0f} µs/atom/step", eta)
        now = time.perf_counter()
        if now - self.last_line >= self.ctx.progress_seconds or done == total:
            self.last_line = now
            with outside_bars():
                self.ctx.log(f"    {self.run} {name}: step {done}/{total} ({100 * done / total:.0f}%), "
                             f"{speed * 1e6:.0f} µs/atom/step, {fmt_time(seconds)}, stage ETA {fmt_time(eta)}")
        if done == total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _start_lattice(ctx: Context, run: str) -> float:
    zk = ctx.sdir.result(run, "zero_k")
    return zk["a"] if zk and zk.get("status") == "done" else A_GUESS


def _run_md(ctx: Context, run: str, stage: str, cells: int, stages, initial_temperature=None) -> props.MDResult:
    natoms = 8 * cells**3
    progress = _MDProgress(ctx, run, natoms)
    try:
        result = props.run_md(
            ctx.pair(run), _start_lattice(ctx, run), cells, stages, ctx.md_settings(),
            checkpoint=ctx.sdir.checkpoint(run, stage), progress=progress,
            progress_seconds=progress.interval, initial_temperature=initial_temperature,
        )
    finally:
        progress.close()
    # The sampled series, for reanalysis (other blocks, other estimators).
    series = {f"{name}_{q}": np.asarray(getattr(smp, q)) for name, smp in result.stages.items()
              for q in ("volume", "temperature", "pressure", "energy", "extrapolating")}
    with atomic_open(ctx.sdir.point(run) / f"{stage}_samples.npz", binary=True) as fh:
        np.savez_compressed(fh, natoms=result.natoms, sample_every=ctx.config.sample_every,
                            timestep_fs=ctx.config.timestep_fs, **series)
    return result


def run_melt(ctx: Context, run: str) -> dict:
    c = ctx.config
    res = _run_md(ctx, run, "melt", c.melt_cells, melt_stages(c))
    out = {"natoms": res.natoms, "start_lattice": _start_lattice(ctx, run),
           "seconds_per_atom_step": res.seconds / max(res.steps_run * res.natoms, 1) if res.steps_run else None}
    crystal_density = props.density(8, out["start_lattice"] ** 3, ctx.mass)
    for name in ("liquid", "amorphous"):
        out[name] = summ = summarise_samples(res.stages[name], res.r, res.natoms, ctx.mass, c.blocks)
        # A condensed phase at under half the crystal's density has boiled
        # (models that bind too weakly do at 1 atm): its g(r) means nothing.
        summ["boiled"] = bool(summ["density"] < COLLAPSED_DENSITY_FRACTION * crystal_density)
        if summ["boiled"]:
            ctx.log(f"    {run} {name}: density {summ['density']:.3f} g/cm³, under "
                    f"{COLLAPSED_DENSITY_FRACTION:g} of the crystal's {crystal_density:.3f}: the model's {name} boiled")
    return out


def run_crystal(ctx: Context, run: str) -> dict:
    c = ctx.config
    # Velocities at 2T: equipartition brings the harmonic crystal to T at once.
    res = _run_md(ctx, run, "crystal", c.crystal_cells, crystal_stages(c), 2 * c.crystal_temperature)
    s = res.stages["production"]
    out = summarise_samples(s, res.r, res.natoms, ctx.mass, c.blocks)
    v = np.asarray(s.volume)
    a = (v / c.crystal_cells**3) ** (1 / 3)
    b, b_err = props.bulk_modulus_from_volumes(v, c.crystal_temperature, c.blocks)
    out.update(
        natoms=res.natoms, start_lattice=_start_lattice(ctx, run),
        a=float(a.mean()), a_err=props.block_error(a, c.blocks),
        bulk_modulus=b, bulk_modulus_err=b_err,
        seconds_per_atom_step=res.seconds / max(res.steps_run * res.natoms, 1) if res.steps_run else None,
    )
    return out


RUNNERS = {"train": run_train, "validation": run_validation, "zero_k": run_zero_k,
           "melt": run_melt, "crystal": run_crystal}
# Errors that mean "this point failed here", not a bug: the study records them and goes on.
STAGE_ERRORS = (props.LammpsError, FloatingPointError, ValueError, RuntimeError)


def headline(stage: str, d: dict) -> str:
    """The key numbers of a finished stage, for the log."""
    try:
        if stage == "train":
            how = (f"{sum(d['n_sparse'].values())} sparse points, fit {fmt_time(d['fit_s'])}"
                   if d.get("model") == "gp" else f"best epoch {d['best_epoch']}")
            return (f": validation RMSE E {1000 * d['validation_energy_rmse']:.2f} meV/atom, "
                    f"F {d['validation_force_rmse']:.4f} eV/Å ({how})")
        if stage == "validation":
            m = d["metrics"]["validation"]["overall"]
            return (f": validation E MAE {m['energy_mae_meV_atom']:.2f} meV/atom, "
                    f"F MAE {m['force_mae_eV_A']:.4f} eV/Å")
        if stage == "zero_k":
            return (f": a0 {d['a']:.4f} Å, C11 {d['c11']:.1f}, C12 {d['c12']:.1f}, C44 {d['c44']:.1f}, "
                    f"B {d['bulk_modulus']:.1f} GPa")
        if stage == "melt":
            return (f": liquid ρ {d['liquid']['density']:.3f} g/cm³, P {d['liquid']['pressure_gpa']:.2f} GPa, "
                    f"amorphous ρ {d['amorphous']['density']:.3f} g/cm³, "
                    f"CN {d['liquid']['coordination']:.2f} / {d['amorphous']['coordination']:.2f}"
                    + (" (BOILED)" if d["liquid"].get("boiled") or d["amorphous"].get("boiled") else ""))
        if stage == "crystal":
            return (f": a {d['a']:.4f} ± {d['a_err']:.4f} Å, "
                    f"B {d['bulk_modulus']:.1f} ± {d['bulk_modulus_err']:.1f} GPa")
    except (KeyError, TypeError, ValueError):
        pass
    return ""
