"""The descriptor-length study, end to end (docs/science.md, "The study the
project reproduces").

    python -m nnp.study --data train.xyz --out DIR [--quick] [--config study.yaml]
        [--points A16,B64] [--update] [--restart] [--force] [--retry-failed] [--report-only]

For every descriptor preset of series A and B at lengths 16, 28, 40, 52, 64
(`StudyConfig.points`), with one data split and seed for all:

  train       a 2x30 potential (training defaults), DIR/points/P/potential.nnp
  validation  energy/force/stress MAE and RMSE and parity plots (nnp.analysis.report)
  zero_k      0 K lattice constant, C11, C12, C44 (relaxed and not), B = (C11+2C12)/3
  melt        melt -> liquid (g(r), pressure; NVT at liquid_density) -> NPT quench
              -> amorphous (g(r), density); a phase that boiled is flagged
  crystal     NPT of the crystal: lattice constant, bulk modulus from volume
              fluctuations (block-average error bars), g(r)

Stages run stage by stage over all points (cheap ones first), so errors and 0 K
numbers appear long before the 1 ns runs finish. Each finished stage of each
point is stored as DIR/points/P/STAGE.json and never recomputed; long MD
stages also checkpoint (LAMMPS restart files) every --checkpoint-minutes, so a
killed run resumes where it stopped. DIR/study.json holds the settings, data
digest and training settings: a rerun with other settings is refused (use
--update to rerun only the stages the changes affect, keeping the old results
in DIR/superseded/, --restart to discard the results, or another DIR). A stage that fails (e.g. a
potential that blows up in the liquid) is recorded as failed with its error
and the study goes on; --retry-failed runs such stages again.

Outputs, rewritten after every stage pass (and every 30 min in long passes):
DIR/report.md, DIR/errors.csv, DIR/properties.csv, DIR/rdf_*.csv and plots
(errors_vs_length.png, rdf_{crystal,amorphous,liquid}.png,
bulk_modulus_vs_length.png, elastic_vs_length.png).

Two processes may share a DIR with disjoint --points (e.g. one per core).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import shutil
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from nnp.analysis import properties as props
from nnp.io.potential_file import file_sha256
from nnp.analysis.report import json_clean
from nnp.study.config import STAGE_SETTINGS, StudyConfig

FORMAT = "nnp-study 1"
STAGES = ("train", "validation", "zero_k", "melt", "crystal")
STAGE_TITLES = {
    "train": "training",
    "validation": "validation errors",
    "zero_k": "0 K lattice and elastic constants",
    "melt": "melt-quench (liquid, amorphous)",
    "crystal": "crystal NPT",
}
A_GUESS = 5.43  # Å, start of the 0 K relaxation (and of MD when it failed)
REPORT_INTERVAL_S = 1800.0  # rewrite the report at least this often in long passes
# A liquid or amorphous phase under this fraction of the crystal's density has boiled.
COLLAPSED_DENSITY_FRACTION = 0.5
DEFAULT_SPEED = 30e-6  # s/atom/step before anything was measured (the real run: 18-40, two processes on 2 cores)


class StudyError(ValueError):
    """Bad input or a study directory that cannot be used as asked."""


# ------------------------------------------------------------------ helpers


def fmt_time(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def write_json(path: Path, data: Any) -> None:
    from nnp.data import atomic_open

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as fh:
        json.dump(json_clean(data), fh, indent=1, allow_nan=False, ensure_ascii=False)
        fh.write("\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as err:
        raise StudyError(f"{path} is not valid JSON ({err}); delete it to recompute that stage") from None


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def config_differences(stored: dict, current: dict) -> list[str]:
    a, b = _flatten(stored), _flatten(current)
    return [f"{k}: stored {a.get(k, '(unset)')!r}, now {b.get(k, '(unset)')!r}"
            for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


# ---------------------------------------------------------------- directory


class StudyDir:
    """Where everything lives: DIR/study.json, DIR/points/P/STAGE.json, ..."""

    CONFIG = "study.json"

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        # Parsed stage files by path, with the (mtime, size) they were read at:
        # progress estimates read every result often; another process sharing
        # DIR (disjoint --points) may write new ones.
        self._cache: dict[Path, tuple[tuple[int, int], Any]] = {}

    @property
    def config_file(self) -> Path:
        return self.root / self.CONFIG

    def point(self, p: str) -> Path:
        return self.root / "points" / p

    def stage_file(self, p: str, stage: str) -> Path:
        return self.point(p) / f"{stage}.json"

    def potential(self, p: str) -> Path:
        return self.point(p) / "potential.nnp"

    def checkpoint(self, p: str, stage: str) -> Path:
        return self.point(p) / f"{stage}.checkpoint"

    def parity(self, p: str) -> Path:
        return self.point(p) / "validation"

    def result(self, p: str, stage: str) -> dict | None:
        path = self.stage_file(p, stage)
        try:
            st = path.stat()
        except FileNotFoundError:
            self._cache.pop(path, None)
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        hit = self._cache.get(path)
        if hit is None or hit[0] != stamp:
            hit = (stamp, read_json(path))
            self._cache[path] = hit
        return hit[1]

    def save(self, p: str, stage: str, data: dict) -> None:
        write_json(self.stage_file(p, stage), data)

    def remove_results(self) -> None:
        """Everything the study wrote (and nothing else)."""
        from nnp.study import report as study_report

        shutil.rmtree(self.root / "points", ignore_errors=True)
        for name in (self.CONFIG, *study_report.OUTPUT_FILES):
            (self.root / name).unlink(missing_ok=True)


def identity(config: StudyConfig, data_digest: str, n_structures: int) -> dict[str, Any]:
    """What must match for stored results to be reused."""
    train = config.train_config(config.points[0]).as_dict()
    for k in ("descriptor", "threads", "log_every", "device"):  # per point, or not changing numbers
        train.pop(k, None)
    return json_clean({
        "format": FORMAT,
        "study": config.as_dict(),
        "train": train,
        "data_sha256": data_digest,
        "structures": n_structures,
    })


def stage_identity(ident: dict, stage: str) -> dict:
    """The part of a study identity that a stage's results depend on."""
    study = ident.get("study", {})
    return {"format": ident.get("format"), "data_sha256": ident.get("data_sha256"),
            "structures": ident.get("structures"), "train": ident.get("train"),
            "study": {k: study.get(k) for k in STAGE_SETTINGS[stage]}}


def stale_stages(stored: dict, current: dict) -> list[str]:
    """Stages whose settings differ between two identities."""
    # Flattened, as config_differences compares: an empty mapping added to
    # the settings (a new option left at its default) changes nothing.
    return [s for s in STAGES if _flatten(stage_identity(stored, s)) != _flatten(stage_identity(current, s))]


def supersede(sdir: StudyDir, stages: Sequence[str]) -> Path | None:
    """Move every stored result of `stages` (stage files, samples, MD
    checkpoints; the potential with training, the parity plots with
    validation) to DIR/superseded/TIME/points/P/, never deleting them."""
    moved = None
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    points_dir = sdir.root / "points"
    for pdir in sorted(points_dir.iterdir()) if points_dir.is_dir() else []:
        p = pdir.name
        for stage in stages:
            paths = [sdir.stage_file(p, stage), sdir.checkpoint(p, stage), pdir / f"{stage}_samples.npz"]
            paths += {"train": [sdir.potential(p)], "validation": [sdir.parity(p)]}.get(stage, [])
            for path in paths:
                if path.exists():
                    moved = sdir.root / "superseded" / stamp
                    dest = moved / "points" / p / path.name
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(path), dest)
    return moved


def prepare_directory(sdir: StudyDir, ident: dict, extra: dict, restart: bool, force: bool,
                      update: bool = False, log: Callable[[str], None] = print) -> None:
    """Create or check DIR before any work: refuse a foreign non-empty
    directory (unless force) and results of other settings (unless restart,
    or update: keep what the changed settings do not touch)."""
    root = sdir.root
    if root.exists() and not root.is_dir():
        raise StudyError(f"{root} exists and is not a directory")
    stored = read_json(sdir.config_file) if root.is_dir() else None
    ours = stored is not None  # a study directory: the study may write there
    if stored is not None and restart:
        sdir.remove_results()
        stored = None
    if stored is not None:
        old = stored.get("identity", {})
        diffs = config_differences(old, ident)
        if not diffs:
            return
        stale = stale_stages(old, ident)
        if not update:
            shown = "\n  ".join(diffs[:12]) + (f"\n  ... ({len(diffs)} in all)" if len(diffs) > 12 else "")
            redo = f"the {', '.join(stale)} stage(s)" if stale else "nothing (only the point selection changed)"
            raise StudyError(
                f"{root} holds results of different settings:\n  {shown}\n"
                f"refusing to mix them: use another --out, --update to keep the results these changes do "
                f"not affect and rerun {redo} (the old results are moved to {root / 'superseded'}), "
                "or --restart to discard the stored results"
            )
        moved = supersede(sdir, stale)
        log(f"settings changed ({len(diffs)}): rerunning {', '.join(stale) or 'nothing'}"
            + (f"; the superseded results are in {moved}" if moved else ""))
        write_json(sdir.config_file, {**stored, "identity": ident, "updated": extra.get("created")})
        return
    if root.is_dir() and any(root.iterdir()) and not (force or ours):
        raise StudyError(
            f"{root} exists, is not empty and is not a study directory (no {StudyDir.CONFIG}); "
            "choose a new or empty --out, or --force to write the study into it "
            "(files with the study's output names would be overwritten)"
        )
    root.mkdir(parents=True, exist_ok=True)
    write_json(sdir.config_file, {"identity": ident, **extra})


# -------------------------------------------------------------------- stages


@dataclass
class Context:
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

    def pair(self, point: str) -> props.Pair:
        return props.Pair.nnp(self.sdir.potential(point), self.element, self.mass)


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


def _train_log(ctx: Context, point: str) -> Callable[[str], None]:
    """Training lines, at most one per progress interval (plus the first)."""
    last = [-math.inf]

    def log(line: str) -> None:
        now = time.perf_counter()
        if now - last[0] >= ctx.progress_seconds:
            ctx.log(f"    {point} {line.strip()}")
            last[0] = now

    return log


def run_train(ctx: Context, point: str) -> dict:
    from nnp import descriptors as descriptors_mod
    from nnp.io import potential_file
    from nnp.train import featurize, train

    config = ctx.config.train_config(point)
    descriptors = descriptors_mod.preset(point, (ctx.element,))
    data = featurize(ctx.structures, descriptors, config)
    result = train(data, descriptors, config, log=_train_log(ctx, point))
    comments = [
        f"nnp.study point {point}: descriptor {point}, {config.hidden_layers} x "
        f"{config.hidden_nodes} {config.activation}, seed {config.seed}",
        f"data: {len(ctx.structures)} structures; {len(result.train_indices)} train, "
        f"{len(result.validation_indices)} validation",
        f"date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}",
    ]
    potential_file.write(result.model.to_potential_data(comments), ctx.sdir.potential(point), overwrite=True)
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


def run_validation(ctx: Context, point: str) -> dict:
    from nnp.analysis import report

    trained = ctx.sdir.result(point, "train")
    pot = ctx.sdir.potential(point)
    sets = {}
    for name, key in (("train", "train_indices"), ("validation", "validation_indices")):
        idx = trained[key]
        if idx:
            sets[name] = report.predict_potential(pot, [ctx.structures[i] for i in idx])
    # Parity plots and metrics.json of this point; the directory is the study's own.
    result = report.write_report(ctx.sdir.parity(point), sets, trained.get("history"), overwrite=True)
    return {"metrics": result["sets"]}


def run_zero_k(ctx: Context, point: str) -> dict:
    pair = ctx.pair(point)
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
        "pressure_atm": float(np.mean(s.pressure)) / props.ATM_IN_BAR,
        "pressure_gpa": float(np.mean(s.pressure)) * 1e-4,
        "pressure_gpa_err": props.block_error(np.asarray(s.pressure) * 1e-4, blocks),
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


def _md_progress(ctx: Context, point: str, natoms: int) -> props.ProgressFn:
    def progress(name: str, done: int, total: int, ran: int, seconds: float) -> None:
        if total == 0:
            return
        speed = seconds / ran / natoms if ran else math.nan
        eta = speed * natoms * (total - done)
        ctx.log(f"    {point} {name}: step {done}/{total} ({100 * done / total:.0f}%), "
                f"{speed * 1e6:.0f} µs/atom/step, {fmt_time(seconds)}, stage ETA {fmt_time(eta)}")

    return progress


def _start_lattice(ctx: Context, point: str) -> float:
    zk = ctx.sdir.result(point, "zero_k")
    return zk["a"] if zk and zk.get("status") == "done" else A_GUESS


def _run_md(ctx: Context, point: str, stage: str, cells: int, stages, initial_temperature=None) -> props.MDResult:
    natoms = 8 * cells**3
    result = props.run_md(
        ctx.pair(point), _start_lattice(ctx, point), cells, stages, ctx.md_settings(),
        checkpoint=ctx.sdir.checkpoint(point, stage), progress=_md_progress(ctx, point, natoms),
        progress_seconds=ctx.progress_seconds, initial_temperature=initial_temperature,
    )
    # The sampled series, for reanalysis (other blocks, other estimators).
    from nnp.data import atomic_open

    series = {f"{name}_{q}": np.asarray(getattr(smp, q)) for name, smp in result.stages.items()
              for q in ("volume", "temperature", "pressure", "energy", "extrapolating")}
    with atomic_open(ctx.sdir.point(point) / f"{stage}_samples.npz", binary=True) as fh:
        np.savez_compressed(fh, natoms=result.natoms, sample_every=ctx.config.sample_every,
                            timestep_fs=ctx.config.timestep_fs, **series)
    return result


def run_melt(ctx: Context, point: str) -> dict:
    c = ctx.config
    res = _run_md(ctx, point, "melt", c.melt_cells, melt_stages(c))
    out = {"natoms": res.natoms, "start_lattice": _start_lattice(ctx, point),
           "seconds_per_atom_step": res.seconds / max(res.steps_run * res.natoms, 1) if res.steps_run else None}
    crystal_density = props.density(8, out["start_lattice"] ** 3, ctx.mass)
    for name in ("liquid", "amorphous"):
        out[name] = summ = summarise_samples(res.stages[name], res.r, res.natoms, ctx.mass, c.blocks)
        # A condensed phase at under half the crystal's density has boiled
        # (models that bind too weakly do at 1 atm): its g(r) means nothing.
        summ["boiled"] = bool(summ["density"] < COLLAPSED_DENSITY_FRACTION * crystal_density)
        if summ["boiled"]:
            ctx.log(f"    {point} {name}: density {summ['density']:.3f} g/cm³, under "
                    f"{COLLAPSED_DENSITY_FRACTION:g} of the crystal's {crystal_density:.3f}: the model's {name} boiled")
    return out


def run_crystal(ctx: Context, point: str) -> dict:
    c = ctx.config
    # Velocities at 2T: equipartition brings the harmonic crystal to T at once.
    res = _run_md(ctx, point, "crystal", c.crystal_cells, crystal_stages(c), 2 * c.crystal_temperature)
    s = res.stages["production"]
    out = summarise_samples(s, res.r, res.natoms, ctx.mass, c.blocks)
    v = np.asarray(s.volume)
    a = (v / c.crystal_cells**3) ** (1 / 3)
    b, b_err = props.bulk_modulus_from_volumes(v, c.crystal_temperature, c.blocks)
    out.update(
        natoms=res.natoms, start_lattice=_start_lattice(ctx, point),
        a=float(a.mean()), a_err=props.block_error(a, c.blocks),
        bulk_modulus=b, bulk_modulus_err=b_err,
        seconds_per_atom_step=res.seconds / max(res.steps_run * res.natoms, 1) if res.steps_run else None,
    )
    return out


RUNNERS = {"train": run_train, "validation": run_validation, "zero_k": run_zero_k,
           "melt": run_melt, "crystal": run_crystal}
# Errors that mean "this point failed here", not a bug: the study records them and goes on.
STAGE_ERRORS = (props.LammpsError, FloatingPointError, ValueError, RuntimeError)


# ----------------------------------------------------------------- the study


class Estimator:
    """Rough wall-time estimates of stages from what finished so far."""

    def __init__(self, ctx: Context):
        self.ctx = ctx

    def _measured(self, stage: str) -> list[float]:
        vals = []
        for p in self.ctx.config.points:
            r = self.ctx.sdir.result(p, stage)
            if r and r.get("status") == "done" and r.get("wall_s"):
                vals.append(r["wall_s"])
        return vals

    def speed(self, point: str) -> float:
        """s/atom/step of a point's potential: its own melt/crystal run, else the mean."""
        own, every = [], []
        for p in self.ctx.config.points:
            for stage in ("melt", "crystal"):
                r = self.ctx.sdir.result(p, stage)
                if r and r.get("status") == "done" and r.get("seconds_per_atom_step"):
                    (own if p == point else every).append(r["seconds_per_atom_step"])
        vals = own or every
        return float(np.mean(vals)) if vals else DEFAULT_SPEED

    def stage(self, stage: str, point: str) -> float:
        cost = md_cost(stage, self.ctx.config)
        if cost:
            return cost * self.speed(point)
        vals = self._measured(stage)
        return float(np.mean(vals)) if vals else math.nan

    def remaining(self, todo: Sequence[tuple[str, str]]) -> str:
        """"about 3h10m", or "over 3h10m" while some stage kind has no measurement yet."""
        est = [self.stage(s, p) for s, p in todo if twin_of(self.ctx, p) is None]
        known = [e for e in est if math.isfinite(e)]
        if not known:
            return "an unknown time"
        return f"{'about' if len(known) == len(est) else 'over'} {fmt_time(sum(known))}"


def _status(ctx: Context, point: str, stage: str) -> str | None:
    r = ctx.sdir.result(point, stage)
    return r.get("status") if r else None


def pending(ctx: Context, points: Sequence[str], retry_failed: bool) -> list[tuple[str, str]]:
    todo = []
    for stage in STAGES:
        for p in points:
            st = _status(ctx, p, stage)
            if st == "done" or (st == "failed" and not retry_failed):
                continue
            todo.append((stage, p))
    return todo


def run_study(ctx: Context, points: Sequence[str], retry_failed: bool = False,
              write_outputs: Callable[[], None] | None = None) -> None:
    """Every missing stage of every point in `points`, stage by stage."""
    est = Estimator(ctx)
    todo = pending(ctx, points, retry_failed)
    total = len(todo)
    if not todo:
        ctx.log("every stage of the selected points is done")
    last_outputs = time.perf_counter()
    for k, (stage, point) in enumerate(todo):
        if stage != "train":
            trained = _status(ctx, point, "train")
            if trained != "done":
                ctx.log(f"[{k + 1}/{total}] {point} {STAGE_TITLES[stage]}: skipped (no potential: training "
                        f"{'failed' if trained == 'failed' else 'not done'})")
                continue
        if _status(ctx, point, stage) == "done":
            # Another process sharing DIR finished it since the list was made.
            ctx.log(f"[{k + 1}/{total}] {point} {STAGE_TITLES[stage]}: done meanwhile by another process")
            continue
        twin = twin_of(ctx, point)
        if twin is not None and _status(ctx, twin, stage) in ("done", "failed"):
            copy_twin(ctx, twin, point, stage)
            ctx.log(f"[{k + 1}/{total}] {point} {STAGE_TITLES[stage]}: the same descriptor as {twin}, "
                    f"its result reused")
            continue
        remaining = est.remaining(todo[k:])
        cost = md_cost(stage, ctx.config)
        what = f", {cost:,} atom-steps" if cost else ""
        ctx.log(f"[{k + 1}/{total}] {point} {STAGE_TITLES[stage]}{what} — study {fmt_time(time.perf_counter() - ctx.t_start)}"
                f" so far, {remaining} to go")
        t0 = time.perf_counter()
        try:
            data = RUNNERS[stage](ctx, point)
            status = {"status": "done"}
        except STAGE_ERRORS as err:
            message = f"{type(err).__name__}: {err}"
            ctx.log(f"    {point} {stage} FAILED: {message}")
            data = {}
            status = {"status": "failed", "error": message,
                      "where": traceback.format_exc(limit=-3).strip().splitlines()[-3:]}
        wall = time.perf_counter() - t0
        ctx.sdir.save(point, stage, {**status, "stage": stage, "point": point, "wall_s": wall, **data})
        shutil.rmtree(ctx.sdir.checkpoint(point, stage), ignore_errors=True)
        if status["status"] == "done":
            ctx.log(f"    {point} {stage} done in {fmt_time(wall)}{_headline(stage, data)}")
        end_of_pass = k + 1 == total or todo[k + 1][0] != stage
        if write_outputs and (end_of_pass or time.perf_counter() - last_outputs > REPORT_INTERVAL_S):
            write_outputs()
            last_outputs = time.perf_counter()


def twin_of(ctx: Context, point: str) -> str | None:
    """An earlier point of the study with exactly the same descriptor (A64
    and B64 both hold every function): same data, split, seed and settings,
    so the same potential and results."""
    from nnp import descriptors as descriptors_mod

    if point not in ctx.twins:
        mine = descriptors_mod.preset(point, (ctx.element,))
        earlier = ctx.config.points[: ctx.config.points.index(point)]
        ctx.twins[point] = next((q for q in earlier if descriptors_mod.preset(q, (ctx.element,)) == mine), None)
    return ctx.twins[point]


def copy_twin(ctx: Context, twin: str, point: str, stage: str) -> None:
    sdir = ctx.sdir
    data = sdir.result(twin, stage)
    if stage == "train" and data.get("status") == "done":
        from nnp.data import atomic_open

        sdir.point(point).mkdir(parents=True, exist_ok=True)
        with atomic_open(sdir.potential(point), binary=True) as fh:
            fh.write(sdir.potential(twin).read_bytes())
    if stage == "validation" and sdir.parity(twin).is_dir():
        shutil.copytree(sdir.parity(twin), sdir.parity(point), dirs_exist_ok=True)
    samples = sdir.point(twin) / f"{stage}_samples.npz"
    if samples.is_file():
        sdir.point(point).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(samples, sdir.point(point) / samples.name)
    sdir.save(point, stage, {**data, "point": point, "same_as": twin, "wall_s": 0.0})


def _headline(stage: str, d: dict) -> str:
    """The key numbers of a finished stage, for the log."""
    try:
        if stage == "train":
            return (f": validation RMSE E {1000 * d['validation_energy_rmse']:.2f} meV/atom, "
                    f"F {d['validation_force_rmse']:.4f} eV/Å (best epoch {d['best_epoch']})")
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


# ----------------------------------------------------------------------- CLI


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m nnp.study",
        description="The descriptor-length study: train series A and B potentials, measure errors and "
                    "properties in LAMMPS, write DIR/report.md with tables and plots.",
    )
    p.add_argument("--data", help="labelled structures (any format nnp.train reads); not needed with --report-only")
    p.add_argument("--out", required=True, help="study directory (results, checkpoints, report)")
    p.add_argument("--quick", action="store_true", help="scaled-down settings: the whole pipeline in minutes")
    p.add_argument("--config", help="YAML file of StudyConfig settings (train: a mapping of TrainConfig settings)")
    p.add_argument("--points", help="comma-separated presets to run now (default: all of the study)")
    p.add_argument("--epochs", type=int, help="training epochs (sets train.epochs)")
    p.add_argument("--seed", type=int, help="seed of the split, weights and velocities")
    p.add_argument("--crystal-ps", type=float, help="crystal NPT production length in ps (default 1000)")
    p.add_argument("--quench-rate", type=float, help="melt-quench cooling rate in K/ps (default 70)")
    p.add_argument("--checkpoint-minutes", type=float, default=10.0,
                   help="wall time between MD checkpoints (default 10)")
    p.add_argument("--progress-seconds", type=float, default=60.0,
                   help="wall time between progress lines of a running stage (default 60)")
    p.add_argument("--retry-failed", action="store_true", help="run failed stages again")
    p.add_argument("--update", action="store_true",
                   help="settings changed: keep the stored results they do not affect, move the others to "
                        "DIR/superseded/ and run those stages again")
    p.add_argument("--restart", action="store_true", help="discard the stored results of DIR and start again")
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty DIR that is not a study directory")
    p.add_argument("--report-only", action="store_true", help="only rewrite the report from stored results")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> StudyConfig:
    config = StudyConfig.quick() if args.quick else StudyConfig()
    if args.config:
        config = config.updated_from_yaml(args.config)
    cli: dict[str, Any] = {}
    if args.seed is not None:
        cli["seed"] = args.seed
    if args.crystal_ps is not None:
        cli["crystal_ps"] = args.crystal_ps
    if args.quench_rate is not None:
        cli["quench_rate"] = args.quench_rate
    if args.epochs is not None:
        cli["train"] = {**config.train, "epochs": args.epochs}
    config = config.updated(cli, "command line")
    config.check()
    return config


def select_points(config: StudyConfig, spec: str | None) -> list[str]:
    if not spec:
        return config.points
    chosen = [s.strip() for s in spec.split(",") if s.strip()]
    bad = [p for p in chosen if p not in config.points]
    if bad or not chosen:
        raise StudyError(f"--points: {', '.join(bad) or '(none)'} not in this study's points "
                         f"{', '.join(config.points)}")
    return [p for p in config.points if p in chosen]


def load_structures(path: Path, max_structures: int):
    from nnp.data import read_structures

    structures = read_structures(path)
    n = len(structures)
    if max_structures and max_structures < n:
        # Evenly spaced, so every kind of frame in the file stays represented.
        idx = np.unique(np.round(np.linspace(0, n - 1, max_structures)).astype(int))
        structures = [structures[i] for i in idx]
    return structures


def _element(structures) -> tuple[str, float]:
    from ase.data import atomic_masses, atomic_numbers

    symbols = sorted({s for a in structures for s in a.get_chemical_symbols()})
    if len(symbols) != 1:
        raise StudyError(f"the study's properties are for a one-element diamond crystal; the data has "
                         f"{', '.join(symbols)}")
    return symbols[0], float(atomic_masses[atomic_numbers[symbols[0]]])


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return _run(args)
    except (StudyError, ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: finished stages and MD checkpoints are kept; rerun the same command to resume",
              file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    from nnp.study import report as study_report

    t0 = time.perf_counter()
    sdir = StudyDir(args.out)
    if args.report_only:
        stored = read_json(sdir.config_file) if sdir.root.is_dir() else None
        if stored is None:
            raise StudyError(f"{sdir.root} is not a study directory (no {StudyDir.CONFIG})")
        config = StudyConfig.from_dict(stored["identity"]["study"], str(sdir.config_file))
        files = study_report.write_outputs(sdir, config, stored)
        print(f"wrote {', '.join(files)} in {sdir.root}")
        return 0
    if not args.data:
        raise StudyError("--data is required (except with --report-only)")
    if args.checkpoint_minutes <= 0 or args.progress_seconds < 0:
        raise StudyError("--checkpoint-minutes must be > 0 and --progress-seconds >= 0")
    config = build_config(args)
    points = select_points(config, args.points)
    data_path = Path(args.data)
    # Check the directory before reading the data, as far as possible.
    if sdir.root.exists() and not sdir.root.is_dir():
        raise StudyError(f"{sdir.root} exists and is not a directory")
    structures = load_structures(data_path, config.max_structures)
    element, mass = _element(structures)
    ident = identity(config, file_sha256(data_path), len(structures))
    extra = {"data": str(data_path.resolve()),
             "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    prepare_directory(sdir, ident, extra, args.restart, args.force, args.update)
    stored = read_json(sdir.config_file)

    import torch

    torch.set_num_threads(1)
    print(f"study in {sdir.root}: {len(points)} of {len(config.points)} points ({', '.join(points)}), "
          f"{len(structures)} structures of {element} from {data_path}", flush=True)
    print(f"protocol: crystal {8 * config.crystal_cells**3} atoms, {config.crystal_ps:g} ps NPT at "
          f"{config.crystal_temperature:g} K; melt-quench {8 * config.melt_cells**3} atoms, "
          f"{config.liquid_temperature:g} -> {config.quench_end_temperature:g} K at {config.quench_rate:g} K/ps",
          flush=True)
    ctx = Context(config, sdir, structures, element, mass, checkpoint_seconds=60 * args.checkpoint_minutes,
                  log=lambda line: print(line, flush=True), progress_seconds=args.progress_seconds)

    def outputs() -> None:
        files = study_report.write_outputs(sdir, config, stored)
        ctx.log(f"    wrote {', '.join(files)}")

    run_study(ctx, points, args.retry_failed, outputs)
    outputs()
    print(f"done in {fmt_time(time.perf_counter() - t0)}; report: {sdir.root / 'report.md'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
