"""Ab-initio MD with Quantum Espresso through ASE: the protocols, the pw.x
settings, the run and its resumable extended-XYZ output (the command line
is nnp.dft.cli; the overview in nnp.dft).
"""

from __future__ import annotations

import io
import math
import numbers
import os
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import ase.io
import numpy as np
from ase import units
from ase.build import bulk
from ase.calculators.espresso import Espresso, EspressoProfile
from ase.calculators.singlepoint import SinglePointCalculator
from ase.md.langevin import Langevin

from nnp.cli import check_output_parent
from nnp.progress import Bar, fmt_time, write_line

DEFAULT_PSEUDO_DIR = Path("/usr/share/espresso/pseudo")
DEFAULT_PSEUDOPOTENTIALS = {"Si": "Si.pbe-rrkj.UPF"}
INSTALL_HINT = "on Debian/Ubuntu: apt-get install quantum-espresso quantum-espresso-data"
# PBE lattice constant of diamond Si (docs/science.md); the default cell.
SI_LATTICE_PBE = 5.469


class DFTError(RuntimeError):
    """A missing program or file, or a failed DFT calculation; the message says
    what to do."""


# ----------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class Protocol:
    """Thermostat target: t_start, then a linear ramp at `rate` K/ps to t_end
    (rate 0: constant t_start)."""

    name: str
    t_start: float  # K
    t_end: float  # K
    rate: float = 0.0  # K/ps, > 0 for a ramp

    def temperature(self, time_fs: float) -> float:
        if self.rate == 0.0 or self.t_start == self.t_end:
            return self.t_start
        sign = 1.0 if self.t_end > self.t_start else -1.0
        t = self.t_start + sign * self.rate * time_fs / 1000.0
        return min(t, self.t_end) if sign > 0 else max(t, self.t_end)

    def ramp_fs(self) -> float:
        """Length of the ramp (0 for a constant temperature)."""
        if self.rate == 0.0:
            return 0.0
        return abs(self.t_end - self.t_start) / self.rate * 1000.0

    def check(self) -> None:
        if not (self.t_start > 0 and self.t_end > 0):
            raise ValueError(f"{self.name}: temperatures must be > 0 K")
        if self.rate < 0 or not math.isfinite(self.rate):
            raise ValueError(f"{self.name}: the quench rate must be >= 0 K/ps")
        if self.t_start != self.t_end and self.rate == 0:
            raise ValueError(f"{self.name}: a temperature ramp needs a rate > 0 K/ps")


# The study's protocols.
PROTOCOLS = {
    "crystal": Protocol("crystal", 500.0, 500.0),
    "liquid": Protocol("liquid", 2000.0, 2000.0),
    "melt-quench": Protocol("melt-quench", 2000.0, 300.0, 70.0),
}
# Default run length of the constant-temperature protocols (the melt-quench
# default is its whole ramp).
DEFAULT_STEPS = 2500


@dataclass(frozen=True)
class QESettings:
    """One pw.x single point (Rydberg units as in pw.x input)."""

    command: str = "pw.x"  # e.g. "mpirun -np 4 pw.x"
    pseudo_dir: str = str(DEFAULT_PSEUDO_DIR)
    pseudopotentials: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_PSEUDOPOTENTIALS))
    ecutwfc: float = 30.0  # Ry
    ecutrho: float | None = None  # Ry; None: pw.x's default 4 × ecutwfc
    kpts: tuple[int, int, int] | None = (1, 1, 1)  # None: Γ-point tricks (K_POINTS gamma)
    smearing: str = "mv"  # Marzari–Vanderbilt: liquid Si is a metal
    degauss: float = 0.02  # Ry
    conv_thr: float = 1e-8  # Ry, SCF convergence per cell

    def check(self, symbols: Sequence[str]) -> None:
        """Refuse missing programs and files before any MD starts."""
        try:
            argv = shlex.split(self.command)
        except ValueError as err:
            raise DFTError(f"cannot parse --command {self.command!r}: {err}") from None
        if not argv:
            raise DFTError("--command is empty")
        # The launcher (pw.x itself, or e.g. mpirun) and pw.x wherever it appears.
        programs = [argv[0]] + [t for t in argv[1:] if Path(t).name.startswith("pw.")]
        for exe in dict.fromkeys(programs):
            if shutil.which(exe) is None:
                raise DFTError(
                    f"'{exe}' not found on PATH: Quantum Espresso is not installed ({INSTALL_HINT}), "
                    "or pass --command with the path of pw.x"
                )
        pseudo_dir = Path(self.pseudo_dir)
        for e in sorted(set(symbols)):
            if e not in self.pseudopotentials:
                raise DFTError(
                    f"no pseudopotential for element {e}: pass --pseudopotential {e}=FILE (a UPF file in {pseudo_dir})"
                )
            path = pseudo_dir / self.pseudopotentials[e]
            if not path.is_file():
                raise DFTError(
                    f"pseudopotential {path} not found: install the Quantum Espresso data "
                    f"({INSTALL_HINT}) or pass --pseudo-dir / --pseudopotential {e}=FILE"
                )
        if not self.ecutwfc > 0 or (self.ecutrho is not None and not self.ecutrho >= 4 * self.ecutwfc):
            raise DFTError("need ecutwfc > 0 and ecutrho >= 4 ecutwfc (norm-conserving) in Ry")
        if self.kpts is not None and (len(self.kpts) != 3 or min(self.kpts) < 1):
            raise DFTError(f"k-points must be three positive integers, got {self.kpts}")

    def calculator(self, directory: Path):
        system = {
            "ecutwfc": self.ecutwfc,
            "occupations": "smearing",
            "smearing": self.smearing,
            "degauss": self.degauss,
        }
        if self.ecutrho is not None:
            system["ecutrho"] = self.ecutrho
        input_data = {
            # Forces and stress in every single point; nothing but the output
            # on disk (each MD step is a fresh pw.x run).
            "control": {"calculation": "scf", "tprnfor": True, "tstress": True, "disk_io": "none",
                        "outdir": "./tmp"},
            "system": system,
            "electrons": {"conv_thr": self.conv_thr},
        }
        return Espresso(
            # Absolute: pw.x runs inside `directory`.
            profile=EspressoProfile(command=self.command, pseudo_dir=str(Path(self.pseudo_dir).resolve())),
            directory=str(directory),
            pseudopotentials=dict(self.pseudopotentials),
            kpts=self.kpts,
            input_data=input_data,
        )

    def signature(self) -> dict[str, object]:
        """What must not change within one data file (recorded per frame)."""
        return {
            "dft_code": "quantum-espresso pw.x",
            "dft_ecutwfc_Ry": self.ecutwfc,
            "dft_ecutrho_Ry": self.ecutrho if self.ecutrho is not None else 4 * self.ecutwfc,
            # Written as single tokens: extxyz would read "1 1 1" back as an array.
            "dft_kpts": "gamma" if self.kpts is None else "x".join(map(str, self.kpts)),
            "dft_smearing": f"{self.smearing}:{self.degauss:g}",
            "dft_pseudopotentials": " ".join(f"{e}:{p}" for e, p in sorted(self.pseudopotentials.items())),
        }


@dataclass(frozen=True)
class MDSettings:
    protocol: Protocol
    steps: int  # total MD steps of the trajectory (a continued run counts from its start)
    timestep_fs: float = 2.0
    frame_interval_fs: float = 20.0
    friction_per_fs: float = 0.01  # Langevin friction (1/fs)
    seed: int = 0

    @property
    def frame_every(self) -> int:
        return int(round(self.frame_interval_fs / self.timestep_fs))

    def check(self) -> None:
        self.protocol.check()
        if not self.timestep_fs > 0:
            raise ValueError("the timestep must be > 0 fs")
        k = self.frame_interval_fs / self.timestep_fs
        if not (k >= 1 and abs(k - round(k)) < 1e-9):
            raise ValueError(
                f"the frame interval ({self.frame_interval_fs:g} fs) must be a whole number of "
                f"timesteps ({self.timestep_fs:g} fs)"
            )
        if self.steps < 0:
            raise ValueError("steps must be >= 0")
        if not self.friction_per_fs > 0:
            raise ValueError("the Langevin friction must be > 0 (1/fs)")

    def signature(self) -> dict[str, object]:
        p = self.protocol
        return {
            "protocol": p.name,
            "protocol_T_start_K": p.t_start,
            "protocol_T_end_K": p.t_end,
            "protocol_rate_K_per_ps": p.rate,
            "md_timestep_fs": self.timestep_fs,
            "md_frame_interval_fs": self.frame_interval_fs,
        }


# ----------------------------------------------------------------------------
# The frame file: append, flush, and find the last complete frame


def complete_frames_length(path: Path) -> tuple[int, int]:
    """(number of complete extxyz frames, byte length they take) of `path`; a
    frame cut short by a killed run is not counted."""
    data = path.read_bytes()
    pos, frames = 0, 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        if end < 0:
            break
        head = data[pos:end].strip()
        if not head:  # blank line between frames (not written by us; tolerated)
            pos = end + 1
            continue
        try:
            n = int(head)
        except ValueError:
            break
        # comment line + n atom lines, each ending in a newline
        stop, ok = end + 1, True
        for _ in range(n + 1):
            nl = data.find(b"\n", stop)
            if nl < 0:
                ok = False
                break
            stop = nl + 1
        if not ok:
            break
        pos, frames = stop, frames + 1
    return frames, pos


def append_frame(path: Path, atoms) -> None:
    """Append one labelled frame and make sure it is on disk."""
    buf = io.StringIO()
    ase.io.write(buf, atoms, format="extxyz")
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(buf.getvalue())
        fh.flush()
        os.fsync(fh.fileno())


def thermal_momenta(masses: np.ndarray, temperature_k: float, rng: np.random.Generator) -> np.ndarray:
    """Maxwell–Boltzmann momenta (ASE units) without centre-of-mass motion.

    Written out because ASE renamed its helper between versions."""
    p = rng.standard_normal((len(masses), 3)) * np.sqrt(masses * units.kB * temperature_k)[:, None]
    return p - masses[:, None] * p.sum(axis=0) / masses.sum()


def labelled_frame(atoms, step: int, time_fs: float, target_k: float, signature: dict[str, object]):
    """A copy of `atoms` carrying the DFT results of its current positions."""
    calc = atoms.calc
    frame = atoms.copy()  # keeps positions, cell, pbc and momenta
    frame.info.clear()
    frame.info.update(signature)
    frame.info.update(
        step=step,
        time_fs=time_fs,
        target_temperature_K=target_k,
        temperature_K=float(atoms.get_temperature()),
    )
    results = {k: calc.results[k] for k in ("energy", "free_energy", "forces", "stress") if k in calc.results}
    frame.calc = SinglePointCalculator(frame, **results)
    return frame


# ----------------------------------------------------------------------------
# The run


def _qe_error(workdir: Path) -> str:
    """pw.x's own error message (the block between '%%%%' lines of its output), if any."""
    try:
        lines = (workdir / "espresso.pwo").read_text(errors="replace").splitlines()
    except OSError:
        return ""
    marks = [i for i, line in enumerate(lines) if line.strip().startswith("%%%%")]
    if len(marks) < 2:
        return ""
    text = " ".join(line.strip() for line in lines[marks[0] + 1 : marks[1]] if line.strip())
    return f": pw.x says: {text}"


@dataclass
class RunSummary:
    frames_written: int
    frames_total: int
    steps_done: int
    wall_s: float


def _last_frame(path: Path):
    try:
        return ase.io.read(path, index=-1, format="extxyz")
    except Exception as err:  # ASE raises many types for malformed input
        raise DFTError(f"{path}: cannot read the last frame to continue from: {err}") from None


def _resume_state(output: Path, md: MDSettings, qe: QESettings):
    """The last complete frame of `output` (cutting off a partial one) and its step."""
    n, length = complete_frames_length(output)
    if n == 0:
        raise DFTError(f"{output} has no complete frame to continue from; start again without --continue (--force)")
    if length < output.stat().st_size:
        # A frame cut short when the run was killed: drop it, keep the rest.
        print(f"{output}: dropping an incomplete last frame ({output.stat().st_size - length} bytes)",
              file=sys.stderr)
        with open(output, "r+b") as fh:
            fh.truncate(length)
    last = _last_frame(output)
    want = {**md.signature(), **qe.signature()}
    for key, value in want.items():
        have = last.info.get(key)
        numeric = isinstance(value, numbers.Real) and isinstance(have, numbers.Real)
        same = math.isclose(float(have), float(value), rel_tol=1e-12) if numeric else str(have) == str(value)
        if not same:
            raise DFTError(
                f"{output}: the run being continued has {key} = {have}, this command {value}; "
                "continue with the same settings (or write a new file)"
            )
    if "momenta" not in last.arrays:
        raise DFTError(f"{output}: the last frame has no momenta, so the trajectory cannot be continued")
    return last, int(last.info["step"]), n


def _check_output(output: Path, resume: bool, overwrite: bool) -> None:
    """Refuse an output that --continue/--force do not allow, before any work."""
    if resume and overwrite:
        raise ValueError("--continue and --force exclude each other")
    if output.is_dir():
        raise ValueError(f"{output} is a directory")
    if resume:
        if not output.exists():
            raise FileNotFoundError(f"{output} does not exist: nothing to continue (drop --continue)")
    elif output.exists() and not overwrite:
        raise FileExistsError(f"{output} exists; refusing to overwrite it (use --force, or --continue to extend it)")
    check_output_parent(output)


def _start_state(atoms, output: Path, md: MDSettings, qe: QESettings, resume: bool, log):
    """(structure, MD step, frames already in `output`) to start from: the last
    frame of `output` when continuing, else a copy of `atoms` at step 0."""
    if resume:
        atoms, step, frames_before = _resume_state(output, md, qe)
        atoms.calc = None
        log(f"continuing {output} from step {step} ({frames_before} frames)")
        return atoms, step, frames_before
    return atoms.copy(), 0, 0


def run_aimd(
    atoms,
    output: Path,
    md: MDSettings,
    qe: QESettings,
    *,
    workdir: Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    log=write_line,
) -> RunSummary:
    """Langevin MD with pw.x forces, appending a labelled frame every
    `md.frame_interval_fs` (step 0 included) to `output`."""
    md.check()
    output = Path(output)
    _check_output(output, resume, overwrite)
    t0 = time.perf_counter()
    atoms, step, frames_before = _start_state(atoms, output, md, qe, resume, log)
    qe.check(atoms.get_chemical_symbols())
    if not all(atoms.pbc) or atoms.cell.rank != 3:
        raise ValueError("the structure must be periodic in three directions (a cell for pw.x)")

    workdir = Path(workdir) if workdir is not None else output.with_name(output.name + ".qe")
    workdir.mkdir(parents=True, exist_ok=True)
    atoms.calc = qe.calculator(workdir)
    rng = np.random.default_rng(md.seed + step)  # a continued run gets fresh noise
    if not resume:
        atoms.set_momenta(thermal_momenta(atoms.get_masses(), md.protocol.temperature(0.0), rng))
        if overwrite and output.exists():
            output.unlink()
    # fixcm=False: plain Langevin dynamics samples NVT; the centre of mass
    # diffuses, which for a periodic cell is only a translation (ASE's fixcm
    # is deprecated, and a FixCom constraint is not understood by its pw.x
    # input writer).
    dyn = Langevin(
        atoms,
        timestep=md.timestep_fs * units.fs,
        temperature_K=md.protocol.temperature(step * md.timestep_fs),
        friction=md.friction_per_fs / units.fs,
        fixcm=False,
        rng=rng,
    )
    signature = {**md.signature(), **qe.signature()}

    def dft(call: Callable[[], object]):
        try:
            return call()
        except Exception as err:  # pw.x crashed, did not converge, or its output was unreadable
            kept = (f"The frames written so far are in {output}; rerun with --continue to go on from the last one."
                    if output.exists() else "No frame was written.")
            raise DFTError(
                f"pw.x failed at MD step {step} ({type(err).__name__}: {err}){_qe_error(workdir)}; see "
                f"{workdir / 'espresso.pwo'} and {workdir / 'espresso.err'}. {kept}"
            ) from None

    written = 0

    def record() -> None:
        nonlocal written
        dft(atoms.get_potential_energy)  # the single point of the current positions (cached if done)
        time_fs = step * md.timestep_fs
        frame = labelled_frame(atoms, step, time_fs, md.protocol.temperature(time_fs), signature)
        append_frame(output, frame)
        written += 1
        log(f"step {step:6d}  t {time_fs / 1000:8.3f} ps  T {frame.info['temperature_K']:7.1f} K "
            f"(target {frame.info['target_temperature_K']:6.1f})  E {frame.get_potential_energy():.6f} eV  "
            f"[frames written {frames_before + written}, {fmt_time(time.perf_counter() - t0)}]")

    bar = Bar(md.steps, "AIMD", "steps", initial=step)  # on a terminal; the frame lines go above it
    try:
        if not resume:
            record()
        while step < md.steps:
            dyn.set_temperature(temperature_K=md.protocol.temperature(step * md.timestep_fs))
            dft(dyn.step)
            step += 1
            if step % md.frame_every == 0:
                record()
            bar.update(step, f"frames written {frames_before + written}")
    finally:
        bar.close()
    return RunSummary(written, frames_before + written, step, time.perf_counter() - t0)


# ----------------------------------------------------------------------------
# Command line
