"""Material properties of a potential, computed in LAMMPS.

Any pair style works: a `Pair` is the LAMMPS commands that define it, so the
same calculators run `pair_style nnp` in the study and `pair_style sw` in the
tests (whose Stillinger-Weber values are known).

* 0 K: `relax_lattice` (diamond cell, `fix box/relax` + conjugate gradients)
  and `elastic_constants` (C11, C12, C44 by central differences of the stress
  under ±strain, with ionic relaxation at each strain; C44 also unrelaxed).
* Finite temperature: `run_md` runs a sequence of NPT `MDStage`s (constant
  or ramped temperature, e.g. melt -> liquid -> quench -> amorphous) from a
  diamond crystal, sampling volume, temperature, pressure, energy and g(r) in
  the stages marked `sample`; it can checkpoint and resume (LAMMPS restart
  file plus the samples so far).
* Analysis: `bulk_modulus_from_volumes` (B = k_B T ⟨V⟩/⟨δV²⟩ with a
  block-average error bar), `block_error`, `first_shell_coordination`.

Units: LAMMPS metal (Å, eV, ps, bar) inside; results in Å, GPa, K, g/cm³.
Sign convention: LAMMPS reports the pressure tensor P_ij = -σ_ij (positive
in compression), so C_ij = -∂P_i/∂ε_j.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from nnp import lammps as nnp_lammps
from nnp.constants import AMU_IN_G, ATM_IN_BAR, BAR_IN_GPA, BOLTZMANN_EV, EV_PER_A3_IN_GPA
from nnp.io.atomic import atomic_write_text

# amu, the default of `Pair` and `density`. Not ase.data's 28.085 (IUPAC 2016),
# which the study passes: the benchmarks and tests that use the default keep
# their numbers.
SILICON_MASS = 28.0855
# Minimiser iterations per call: a sound potential converges a diamond cell in
# tens; the cap bounds the time a broken one (e.g. a barely trained model) takes.
MAX_ITERATIONS = 1000


class LammpsError(RuntimeError):
    """LAMMPS stopped with an error (bad input, or a potential that failed in MD)."""


# ------------------------------------------------------------------ set-up


@dataclass(frozen=True)
class Pair:
    """The interaction as LAMMPS commands, for a one-element system."""

    commands: tuple[str, ...]  # e.g. ("pair_style sw", "pair_coeff * * Si.sw Si")
    element: str = "Si"
    mass: float = SILICON_MASS  # amu
    # pair_style nnp counts atoms outside the descriptor range seen in training
    # (compute pair nnp); other styles have no such count.
    counts_extrapolation: bool = False

    @classmethod
    def nnp(cls, potential: str | os.PathLike, element: str = "Si", mass: float = SILICON_MASS) -> "Pair":
        path = Path(potential)
        if not path.is_file():
            raise FileNotFoundError(f"potential file {path} does not exist")
        if '"' in str(path.resolve()):
            raise ValueError(f"potential path {path} contains a double quote, which LAMMPS cannot read")
        # extrapolation ignore: the study records the count itself (compute pair
        # nnp) instead of warnings on a screen that is switched off.
        return cls(
            ("pair_style nnp extrapolation ignore", f'pair_coeff * * "{path.resolve()}" {element}'),
            element, mass, counts_extrapolation=True,
        )


class _Lammps:
    """A LAMMPS instance whose errors become `LammpsError` (closed on exit)."""

    def __init__(self) -> None:
        self.lmp = nnp_lammps.lammps(cmdargs=["-screen", "none", "-log", "none", "-nocite"])

    def __enter__(self) -> "_Lammps":
        return self

    def __exit__(self, *exc) -> None:
        self.lmp.close()

    def __call__(self, text: str) -> None:
        for line in text.strip().splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                self.lmp.command(line)
            except Exception as err:  # the lammps module raises plain Exception
                raise LammpsError(f"LAMMPS: {str(err).strip()} (command: {line})") from None

    def thermo(self, name: str) -> float:
        return float(self.lmp.get_thermo(name))

    @property
    def natoms(self) -> int:
        return int(self.lmp.get_natoms())

    @property
    def step(self) -> int:
        return int(self.lmp.extract_global("ntimestep"))


def _check_positive(**values: float) -> None:
    for name, v in values.items():
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive number, got {v!r}")


def _diamond(lmp: _Lammps, pair: Pair, a: float, cells: int, triclinic: bool = False) -> None:
    """cells³ cubic 8-atom diamond cells of lattice constant a, with the pair set up."""
    region = f"prism 0 {cells} 0 {cells} 0 {cells} 0 0 0" if triclinic else f"block 0 {cells} 0 {cells} 0 {cells}"
    lmp(
        f"""
        units metal
        atom_style atomic
        boundary p p p
        lattice diamond {a!r}
        region box {region}
        create_box 1 box
        create_atoms 1 box
        mass 1 {pair.mass!r}
        """
    )
    _pair(lmp, pair)


def _pair(lmp: _Lammps, pair: Pair) -> None:
    lmp("\n".join(pair.commands))
    lmp("thermo_modify norm no")


# ---------------------------------------------------------------- 0 K


@dataclass
class Lattice:
    a: float  # Å
    energy: float  # eV/atom
    pressure: float  # GPa, residual after relaxation


def relax_lattice(pair: Pair, a_guess: float = 5.43, cells: int = 1, ftol: float = 1e-10) -> Lattice:
    """Equilibrium lattice constant of diamond at zero pressure and 0 K."""
    _check_positive(a_guess=a_guess, ftol=ftol)
    if cells < 1:
        raise ValueError(f"cells must be >= 1, got {cells}")
    with _Lammps() as lmp:
        _diamond(lmp, pair, a_guess, cells)
        lmp("thermo_style custom step pe press lx")
        # box/relax moves the box as extra degrees of freedom; rerunning the
        # minimiser restarts it from the new box, as the fix's documentation advises.
        lmp("fix relax all box/relax iso 0.0 vmax 0.001")
        lmp("min_style cg")
        for _ in range(3):
            lmp(f"minimize 0.0 {ftol!r} {MAX_ITERATIONS} {10 * MAX_ITERATIONS}")
        lmp("unfix relax")
        lmp("run 0")
        lx, pe, press, n = lmp.thermo("lx"), lmp.thermo("pe"), lmp.thermo("press"), lmp.natoms
    a = lx / cells
    if not (math.isfinite(a) and 0.5 * a_guess < a < 2 * a_guess):
        raise LammpsError(f"lattice relaxation failed: a = {a} Å from a start of {a_guess} Å")
    return Lattice(a, pe / n, press * BAR_IN_GPA)


@dataclass
class Elastic:
    c11: float  # GPa
    c12: float
    c44: float  # with ionic relaxation
    c44_unrelaxed: float  # homogeneous strain, atoms not relaxed
    bulk_modulus: float  # (C11 + 2 C12)/3
    strain: float

    def as_dict(self) -> dict:
        return asdict(self)


def _pressure_tensor(lmp: _Lammps) -> dict[str, float]:
    lmp("run 0")
    return {k: lmp.thermo(k) for k in ("pxx", "pyy", "pzz", "pyz", "pxz", "pxy")}


def elastic_constants(pair: Pair, a: float, cells: int = 1, strain: float = 0.005, ftol: float = 1e-10) -> Elastic:
    """Cubic elastic constants of diamond at lattice constant `a` (use the 0 K
    one from `relax_lattice`) by central differences of the stress:
    C11 = ∂σxx/∂εxx, C12 = ∂σyy/∂εxx (averaged with ∂σzz/∂εxx),
    C44 = ∂σxy/∂γxy for engineering shear γ (tilt xy = γ·ly)."""
    _check_positive(a=a, strain=strain, ftol=ftol)
    if strain >= 0.1:
        raise ValueError(f"strain {strain} is not small (use e.g. 0.005)")
    if cells < 1:
        raise ValueError(f"cells must be >= 1, got {cells}")
    length = a * cells

    with _Lammps() as lmp:

        def stress(deform: str, relax: bool) -> dict[str, float]:
            lmp("clear")
            _diamond(lmp, pair, a, cells, triclinic=True)
            lmp("thermo_style custom step pe press pxx pyy pzz pyz pxz pxy")
            lmp(deform)
            if relax:
                lmp("min_style cg")
                lmp(f"minimize 0.0 {ftol!r} {MAX_ITERATIONS} {10 * MAX_ITERATIONS}")
            return _pressure_tensor(lmp)

        def derivative(name: str, plus: dict, minus: dict, h: float) -> float:
            # σ = -P; bar -> GPa
            return -(plus[name] - minus[name]) / (2 * h) * BAR_IN_GPA

        xp = stress(f"change_box all x scale {1 + strain!r} remap", True)
        xm = stress(f"change_box all x scale {1 - strain!r} remap", True)
        c11 = derivative("pxx", xp, xm, strain)
        c12 = 0.5 * (derivative("pyy", xp, xm, strain) + derivative("pzz", xp, xm, strain))
        tilt = strain * length
        shear = {}
        for relax in (True, False):
            sp = stress(f"change_box all xy final {tilt!r} remap units box", relax)
            sm = stress(f"change_box all xy final {-tilt!r} remap units box", relax)
            shear[relax] = derivative("pxy", sp, sm, strain)
    values = dict(c11=c11, c12=c12, c44=shear[True], c44_unrelaxed=shear[False])
    bad = [k for k, v in values.items() if not math.isfinite(v)]
    if bad:
        raise LammpsError(f"elastic constants are not finite: {', '.join(bad)}")
    return Elastic(c11, c12, shear[True], shear[False], (c11 + 2 * c12) / 3, strain)


# ------------------------------------------------------------- statistics


def block_error(x: Sequence[float], blocks: int = 10) -> float:
    """Standard error of the mean of a correlated series from `blocks`
    contiguous block averages (NaN with fewer than 2 blocks or samples)."""
    x = np.asarray(x, dtype=float)
    if blocks < 2 or len(x) < blocks:
        return math.nan
    means = np.array([b.mean() for b in np.array_split(x, blocks)])
    return float(means.std(ddof=1) / math.sqrt(blocks))


def bulk_modulus_from_volumes(volumes: Sequence[float], temperature: float, blocks: int = 10) -> tuple[float, float]:
    """B = k_B T ⟨V⟩ / ⟨δV²⟩ (GPa) from an NPT volume series (Å³) at
    `temperature` (K), and its standard error.

    The error comes from block averages of the fluctuation δV_t² = (V_t − ⟨V⟩)²
    (⟨V⟩ of the whole series, so slow fluctuations longer than a block still
    count), propagated as σ_B = B σ_⟨δV²⟩ / ⟨δV²⟩. It is meaningful only when a
    block is much longer than the volume's correlation time (the barostat
    period); the error of ⟨V⟩ itself is negligible beside it.
    """
    v = np.asarray(volumes, dtype=float)
    _check_positive(temperature=temperature)
    if v.ndim != 1 or len(v) < 2:
        raise ValueError(f"need a series of at least 2 volumes, got {v.shape}")
    if not np.all(np.isfinite(v)) or np.any(v <= 0):
        raise ValueError("volumes must be finite and positive")
    dv2 = (v - v.mean()) ** 2
    var = dv2.mean()
    if var <= 0:
        raise ValueError("the volume does not fluctuate: not an NPT series")
    b = BOLTZMANN_EV * temperature * v.mean() / var * EV_PER_A3_IN_GPA
    return float(b), float(b * block_error(dv2, blocks) / var)


def first_shell_coordination(r: np.ndarray, g: np.ndarray, coord: np.ndarray) -> tuple[float, float]:
    """(r_min, coordination number): the running coordination at the first
    minimum of g(r); NaN when there is none.

    On g smoothed over 5 bins (noise of short runs makes false extrema): the
    first peak is the highest point between r_on, where g first exceeds 1, and
    1.3 r_on; the minimum is the leftmost lowest point between that peak and
    1.6 times its distance (diamond's second shell lies at 1.63 times the first;
    a crystal's g is zero over a range).
    """
    r, g, coord = (np.asarray(x, dtype=float) for x in (r, g, coord))
    if not len(g) or not np.all(np.isfinite(g)):
        return math.nan, math.nan
    gs = np.convolve(np.pad(g, 2, mode="edge"), np.ones(5) / 5, mode="valid")
    above = np.flatnonzero(gs > 1.0)
    if not len(above) or r[above[0]] <= 0:
        return math.nan, math.nan
    r_on = r[above[0]]
    window = np.flatnonzero((r >= r_on) & (r <= 1.3 * r_on))
    peak = int(window[np.argmax(gs[window])])
    inside = np.flatnonzero((r >= r[peak]) & (r <= 1.6 * r[peak]))
    if len(inside) < 2:
        return math.nan, math.nan
    i = int(inside[np.argmin(gs[inside])])
    return float(r[i]), float(coord[i])


# --------------------------------------------------------------------- MD


@dataclass(frozen=True)
class MDStage:
    """One stretch of MD: temperature ramps linearly t_start -> t_stop. NPT at
    the settings' pressure, or, with `density`, NVT at that density: the box
    is scaled isotropically to it when the stage starts."""

    name: str
    steps: int
    t_start: float  # K
    t_stop: float  # K
    sample: bool = False  # record thermo every sample_every steps and g(r) every rdf_every
    density: float | None = None  # g/cm³; None: NPT


@dataclass(frozen=True)
class MDSettings:
    timestep: float = 0.001  # ps
    pressure: float = 1.0  # atm
    t_damp: float = 0.1  # ps, thermostat
    p_damp: float = 1.0  # ps, barostat
    sample_every: int = 10  # steps
    rdf_every: int = 100  # steps
    rdf_bins: int = 200
    rdf_cutoff: float = 6.0  # Å
    seed: int = 4928459  # initial velocities
    checkpoint_seconds: float = 600.0  # wall time between checkpoints (with a checkpoint directory)

    def check(self) -> None:
        _check_positive(timestep=self.timestep, t_damp=self.t_damp, p_damp=self.p_damp,
                        rdf_cutoff=self.rdf_cutoff, checkpoint_seconds=self.checkpoint_seconds)
        if not math.isfinite(self.pressure):
            raise ValueError(f"pressure must be finite, got {self.pressure}")
        for name in ("sample_every", "rdf_every", "rdf_bins", "seed"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class StageSamples:
    """What a sampled stage recorded; g(r) and the running coordination are
    averages over the RDF samples."""

    volume: list[float] = field(default_factory=list)  # Å³
    temperature: list[float] = field(default_factory=list)  # K
    pressure: list[float] = field(default_factory=list)  # bar
    energy: list[float] = field(default_factory=list)  # eV/atom
    extrapolating: list[float] = field(default_factory=list)  # atoms outside the training range (nnp)
    rdf_sum: list[float] = field(default_factory=list)
    coord_sum: list[float] = field(default_factory=list)
    rdf_samples: int = 0

    def rdf(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not self.rdf_samples:
            return np.full(len(r), math.nan), np.full(len(r), math.nan)
        return np.asarray(self.rdf_sum) / self.rdf_samples, np.asarray(self.coord_sum) / self.rdf_samples


@dataclass
class MDResult:
    natoms: int
    r: np.ndarray  # RDF bin centres, Å
    stages: dict[str, StageSamples]
    seconds: float  # wall time of this call (not counting earlier, checkpointed parts)
    steps_run: int  # steps run in this call


class _Checkpoint:
    """`state.restart` (LAMMPS) + `samples.json` (stage index, step, samples),
    each written to a temporary name and renamed; a pair whose steps disagree
    (killed between the two renames) is ignored."""

    def __init__(self, directory: Path, key: dict):
        self.dir = directory
        self.key = key  # what the checkpoint belongs to (pair, stages, settings)
        self.restart = directory / "state.restart"
        self.samples = directory / "samples.json"

    def load(self) -> dict | None:
        if not (self.restart.is_file() and self.samples.is_file()):
            return None
        try:
            state = json.loads(self.samples.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return state if state.get("key") == self.key else None

    def save(self, lmp: _Lammps, stage: int, samples: dict[str, StageSamples]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / "state.restart.tmp"
        lmp(f'write_restart "{tmp}"')
        state = dict(key=self.key, stage=stage, step=lmp.step, samples={k: asdict(v) for k, v in samples.items()})
        atomic_write_text(self.samples, json.dumps(state))
        os.replace(tmp, self.restart)


# stage name, steps of the stage done, its steps in all, steps run by this call, seconds this call spent on them
ProgressFn = Callable[[str, int, int, int, float], None]


def run_md(
    pair: Pair,
    a: float,
    cells: int,
    stages: Sequence[MDStage],
    settings: MDSettings = MDSettings(),
    checkpoint: str | os.PathLike | None = None,
    progress: ProgressFn | None = None,
    progress_seconds: float = 60.0,
    initial_temperature: float | None = None,
) -> MDResult:
    """NPT MD of a cells³ diamond crystal of lattice constant `a` through
    `stages` in order. Velocities are drawn at `initial_temperature` (default:
    the first stage's t_start; twice the target brings a harmonic crystal to
    it at once, as equipartition halves the kinetic energy).

    With `checkpoint` (a directory), the state is saved every
    `settings.checkpoint_seconds` of wall time and a later call with the same
    arguments resumes from it; the caller removes the directory when done.
    `progress` is called at most every `progress_seconds` and at stage ends.
    """
    settings.check()
    _check_md_arguments(a, cells, stages, initial_temperature)
    key = json.loads(json.dumps(dict(pair=asdict(pair), a=a, cells=cells, stages=[asdict(s) for s in stages],
                                     settings=asdict(settings), initial_temperature=initial_temperature)))
    ckpt = _Checkpoint(Path(checkpoint), key) if checkpoint is not None else None
    state = ckpt.load() if ckpt else None

    t0 = time.perf_counter()
    with _Lammps() as lmp:
        first, samples = _initial_state(lmp, pair, a, cells, stages, settings, ckpt, state, initial_temperature)
        md = _MDLoop(lmp, pair, stages, settings, samples, ckpt, progress, progress_seconds)
        for k in range(first, len(stages)):
            md.run_stage(k, first)
        r = md.r if md.r is not None else _rdf_table(lmp)[:, 0].copy()
    return MDResult(md.natoms, r, samples, time.perf_counter() - t0, md.steps_run)


def _check_md_arguments(a: float, cells: int, stages: Sequence[MDStage], initial_temperature: float | None) -> None:
    _check_positive(a=a)
    if cells < 1:
        raise ValueError(f"cells must be >= 1, got {cells}")
    if not stages:
        raise ValueError("no MD stages given")
    for s in stages:
        if s.steps < 0 or not (s.t_start > 0 and s.t_stop > 0):
            raise ValueError(f"stage {s.name}: need steps >= 0 and positive temperatures")
        if s.density is not None and not (math.isfinite(s.density) and s.density > 0):
            raise ValueError(f"stage {s.name}: density must be a positive number of g/cm³, got {s.density}")
    if initial_temperature is not None:
        _check_positive(initial_temperature=initial_temperature)
    if len({s.name for s in stages}) != len(stages):
        raise ValueError("stage names must be unique")


def _initial_state(lmp: _Lammps, pair: Pair, a: float, cells: int, stages: Sequence[MDStage],
                   settings: MDSettings, ckpt: _Checkpoint | None, state: dict | None,
                   initial_temperature: float | None) -> tuple[int, dict[str, StageSamples]]:
    """The system resumed from the checkpoint `state`, or a new crystal with
    velocities; returns the stage to start from and the samples so far."""
    if state is not None:
        lmp(f'read_restart "{ckpt.restart}"')
        _pair(lmp, pair)
        if lmp.step != state["step"]:
            state = None  # restart and samples from different moments: start again
            lmp("clear")
    if state is None:
        _diamond(lmp, pair, a, cells)
        lmp("reset_timestep 0")
        t_init = stages[0].t_start if initial_temperature is None else initial_temperature
        lmp(f"velocity all create {t_init!r} {settings.seed} mom yes rot yes dist gaussian")
        return 0, {s.name: StageSamples() for s in stages if s.sample}
    return state["stage"], {k: StageSamples(**v) for k, v in state["samples"].items()}


class _MDLoop:
    """The stages of one `run_md` call on a LAMMPS instance holding the
    system: fixes, runs in chunks, samples, checkpoints, progress reports."""

    def __init__(self, lmp: _Lammps, pair: Pair, stages: Sequence[MDStage], settings: MDSettings,
                 samples: dict[str, StageSamples], ckpt: _Checkpoint | None, progress: ProgressFn | None,
                 progress_seconds: float) -> None:
        self.lmp, self.pair, self.stages, self.settings = lmp, pair, stages, settings
        self.samples, self.ckpt = samples, ckpt
        self.progress, self.progress_seconds = progress, progress_seconds
        self.bar = settings.pressure * ATM_IN_BAR
        self.bounds = np.concatenate([[0], np.cumsum([s.steps for s in stages])])  # absolute step of each stage start
        self.r: np.ndarray | None = None  # RDF bin centres, from the first g(r) sample
        self.steps_run = 0
        self.natoms = lmp.natoms
        lmp(f"timestep {settings.timestep!r}")
        lmp(f"compute rdf all rdf {settings.rdf_bins} cutoff {settings.rdf_cutoff!r}")
        # Ghost atoms must reach the RDF cutoff (plus the neighbour skin).
        lmp(f"comm_modify cutoff {settings.rdf_cutoff + 2.5!r}")
        lmp("thermo_style custom step temp press vol pe")
        if pair.counts_extrapolation:
            lmp("compute extrap all pair nnp")
        self.last_save = self.last_report = time.perf_counter()

    def _fix(self, stage: MDStage, begin: int) -> None:
        lmp, settings = self.lmp, self.settings
        if stage.density is None:
            lmp(f"fix md all npt temp {stage.t_start!r} {stage.t_stop!r} {settings.t_damp!r} "
                f"iso {self.bar!r} {self.bar!r} {settings.p_damp!r}")
        else:
            if lmp.step == begin:  # not when resumed inside the stage: the box is already there
                scale = (lmp.thermo("vol") / (density(self.natoms, 1.0, self.pair.mass) / stage.density)) ** (1 / 3)
                lmp(f"change_box all x scale {1 / scale!r} y scale {1 / scale!r} z scale {1 / scale!r} remap")
            lmp(f"fix md all nvt temp {stage.t_start!r} {stage.t_stop!r} {settings.t_damp!r}")

    def run_stage(self, k: int, first: int) -> None:
        """Stage k from where the system is (its start, or a checkpoint inside it)."""
        lmp, settings, stage = self.lmp, self.settings, self.stages[k]
        begin, end = int(self.bounds[k]), int(self.bounds[k + 1])
        if k > first:
            lmp("unfix md")  # the next stage's fix may be of another style
        self._fix(stage, begin)
        need_setup = True
        stage_t0 = time.perf_counter()
        stage_first = lmp.step  # later than begin when resumed from a checkpoint
        while lmp.step < end:
            step = lmp.step
            if stage.sample:
                n = settings.sample_every - (step - begin) % settings.sample_every
            else:
                n = 1000
            n = min(n, end - step)
            # start/stop: the ramp of fix npt spans the whole stage however it is chunked.
            lmp(f"run {n} start {begin} stop {end} pre {'yes' if need_setup else 'no'} post no")
            need_setup = False
            self.steps_run += n
            step = lmp.step
            if stage.sample and (step - begin) % settings.sample_every == 0:
                self._sample(stage, step, (step - begin) % settings.rdf_every == 0 or step == end)
            now = time.perf_counter()
            if self.ckpt and now - self.last_save > settings.checkpoint_seconds and step < end:
                self.ckpt.save(lmp, k, self.samples)
                # write_restart re-initialises LAMMPS: the next run needs its setup.
                need_setup = True
                self.last_save = now
            if self.progress and (now - self.last_report > self.progress_seconds or step == end):
                self.progress(stage.name, step - begin, end - begin, step - stage_first, now - stage_t0)
                self.last_report = now
        if self.progress and stage.steps == 0:
            self.progress(stage.name, 0, 0, 0, 0.0)

    def _sample(self, stage: MDStage, step: int, rdf: bool) -> None:
        lmp, smp = self.lmp, self.samples[stage.name]
        smp.volume.append(lmp.thermo("vol"))
        smp.temperature.append(lmp.thermo("temp"))
        smp.pressure.append(lmp.thermo("press"))
        smp.energy.append(lmp.thermo("pe") / self.natoms)
        if self.pair.counts_extrapolation:
            smp.extrapolating.append(_extrapolating(lmp))
        if not math.isfinite(smp.volume[-1]) or not math.isfinite(smp.energy[-1]):
            raise LammpsError(f"stage {stage.name}: non-finite volume or energy at step {step}")
        if rdf:
            table = _rdf_table(lmp)
            if self.r is None:
                self.r = table[:, 0].copy()
            smp.rdf_sum = list(np.asarray(smp.rdf_sum or np.zeros(len(table))) + table[:, 1])
            smp.coord_sum = list(np.asarray(smp.coord_sum or np.zeros(len(table))) + table[:, 2])
            smp.rdf_samples += 1


def _extrapolating(lmp: _Lammps) -> float:
    """Atoms extrapolating in the last step (compute pair nnp, element 1;
    get_thermo does not evaluate compute references)."""
    import lammps as lammps_module

    vec = lmp.lmp.numpy.extract_compute("extrap", lammps_module.LMP_STYLE_GLOBAL, lammps_module.LMP_TYPE_VECTOR)
    return float(vec[0])


def _rdf_table(lmp: _Lammps) -> np.ndarray:
    """(bins, 3): r, g(r), running coordination number of `compute rdf`."""
    import lammps as lammps_module

    table = lmp.lmp.numpy.extract_compute("rdf", lammps_module.LMP_STYLE_GLOBAL, lammps_module.LMP_TYPE_ARRAY)
    return np.array(table, dtype=float, copy=True)


def density(natoms: int, volume: float, mass: float = SILICON_MASS) -> float:
    """g/cm³ of natoms atoms of `mass` amu in `volume` Å³."""
    return natoms * mass * AMU_IN_G / (volume * 1e-24)
