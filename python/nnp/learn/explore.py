"""Exploration: LAMMPS MD with the committee (`pair_style nnp committee first
deviation FILE every N`), a frame dumped on every deviation step.

Each run writes, in its own directory, `in.lmp`, `start.data`, `traj.dump`,
`model_devi.out`, `log.lammps` and, last and atomically, `frames.xyz` (every
frame with its deviations in `info`) and `done.json`; a run with `done.json`
is not run again after a kill. A run that LAMMPS stops (atoms lost, a
non-finite energy) keeps the frames dumped before; it is counted as failed.

With `uncertainty: gp` the MD runs the one GP file (`pair_style nnp`) and
the dump carries each atom's GP std (`compute nnp/atom gp`, eV) at full
precision; a frame's `max_gp_std` is its largest, `gp_std` the per-atom array.
"""

from __future__ import annotations

import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import ase.io
import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.data import atomic_masses, atomic_numbers

from nnp.io.atomic import atomic_write_text
from nnp.learn.config import RunSpec

DEVI_COLUMNS = ("step", "max_devi_v", "min_devi_v", "avg_devi_v", "max_devi_f", "min_devi_f", "avg_devi_f",
                "devi_e")
RANDOM_MIN_DISTANCE = 2.0  # Å between atoms of a random (liquid, amorphous) start


# ----------------------------------------------------------------------------
# Starting structures


def diamond(run: RunSpec) -> Atoms:
    return bulk(run.element, "diamond", a=run.lattice, cubic=True).repeat(run.repeat)


def random_packing(run: RunSpec, rng: np.random.Generator) -> Atoms:
    """The crystal's atoms at random positions in its cell, no two closer
    than RANDOM_MIN_DISTANCE (periodic): a start for liquid and amorphous runs."""
    atoms = diamond(run)
    cell = atoms.cell.array
    positions: list[np.ndarray] = []
    for _ in range(len(atoms)):
        for _attempt in range(10000):
            trial = rng.random(3) @ cell
            if all(_mic_distance(trial, p, cell) >= RANDOM_MIN_DISTANCE for p in positions):
                positions.append(trial)
                break
        else:
            raise ValueError(f"{run.structure}: cannot place {len(atoms)} atoms {RANDOM_MIN_DISTANCE} Å apart "
                             "in the cell; use a lower density (larger lattice)")
    atoms.positions = np.array(positions)
    return atoms


def _mic_distance(a: np.ndarray, b: np.ndarray, cell: np.ndarray) -> float:
    frac = np.linalg.solve(cell.T, a - b)
    frac -= np.round(frac)
    return float(np.linalg.norm(frac @ cell))


def start_structure(run: RunSpec, rng: np.random.Generator) -> Atoms:
    """The starting structure of a run (orthorhombic cells, as LAMMPS boxes)."""
    if run.structure in ("liquid", "amorphous"):
        return random_packing(run, rng)
    atoms = diamond(run)
    if run.structure == "vacancy":
        del atoms[0]
    elif run.structure == "surface":
        atoms.center(vacuum=run.vacuum / 2, axis=2)  # a (001) slab, periodic in x and y
    return atoms


def rattled_crystals(n: int, repeat, stdev: float, strain: float, element: str, lattice: float,
                     seed: int) -> list[Atoms]:
    """n diamond cells with a random strain (each component up to ±strain)
    and Gaussian displacements: the seed frames labelled first."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        atoms = bulk(element, "diamond", a=lattice, cubic=True).repeat(tuple(repeat))
        eps = rng.uniform(-strain, strain, (3, 3))
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + 0.5 * (eps + eps.T)), scale_atoms=True)
        atoms.positions += rng.normal(0.0, stdev, atoms.positions.shape)
        out.append(atoms)
    return out


# ----------------------------------------------------------------------------
# One LAMMPS run


def lammps_input(run: RunSpec, members: Sequence[Path], elements: Sequence[str], temperature: float,
                 pressure: float, seed: int, uncertainty: str = "committee") -> str:
    t_end = run.t_end if run.t_end else temperature
    damp = 100 * run.timestep_fs / 1000  # ps: 100 timesteps
    if run.ensemble == "npt":
        fix = f"fix md all npt temp {temperature:g} {t_end:g} {damp:g} iso {pressure:g} {pressure:g} {10 * damp:g}"
    else:
        fix = f"fix md all nvt temp {temperature:g} {t_end:g} {damp:g}"
    masses = "\n".join(f"mass {i + 1} {atomic_masses[atomic_numbers[e]]:.4f}" for i, e in enumerate(elements))
    files = " ".join(f'"{Path(m).resolve()}"' for m in members)
    if uncertainty == "gp":
        pair = "pair_style nnp"
        # %.17g: the dumped positions and stds are the MD's own, to the last bit.
        dump = (f"compute gpstd all nnp/atom gp\ndump traj all custom {run.every} traj.dump id type x y z c_gpstd\n"
                "dump_modify traj sort id format float %.17g")
    else:
        pair = f"pair_style nnp committee first deviation model_devi.out every {run.every}"
        dump = f"dump traj all custom {run.every} traj.dump id type x y z\ndump_modify traj sort id"
    return f"""units metal
atom_style atomic
boundary p p p
read_data start.data
{masses}
{pair}
pair_coeff * * {files} {' '.join(elements)}
neighbor 1.0 bin
velocity all create {temperature:g} {seed} mom yes rot no dist gaussian
timestep {run.timestep_fs / 1000:g}
{fix}
thermo {run.every}
thermo_modify lost error norm yes
{dump}
run {run.steps}
"""


@dataclass
class RunResult:
    name: str
    frames: list[Atoms]
    error: str  # "" if LAMMPS finished the run


def run_md(run: RunSpec, name: str, temperature: float, pressure: float, members: Sequence[Path],
           elements: Sequence[str], directory: Path, seed: int, uncertainty: str = "committee") -> RunResult:
    """One LAMMPS run in `directory` (made); its frames with deviations."""
    import nnp.lammps  # LAMMPS is optional: imported only here

    directory.mkdir(parents=True, exist_ok=True)
    atoms = start_structure(run, np.random.default_rng(seed))
    ase.io.write(directory / "start.data", atoms, format="lammps-data", specorder=list(elements), masses=False)
    script = lammps_input(run, members, elements, temperature, pressure, seed % 900000 + 1, uncertainty)
    (directory / "in.lmp").write_text(script)
    error = ""
    lmp = nnp.lammps.lammps(cmdargs=["-log", str(directory / "log.lammps"), "-screen", "none", "-nocite"])
    cwd = Path.cwd()
    try:
        os.chdir(directory)  # the script names its files relative to the run directory
        lmp.commands_string(script)
    except Exception as err:  # LAMMPS errors: lost atoms, non-finite energies
        error = " ".join(str(err).split()) or type(err).__name__
    finally:
        os.chdir(cwd)
        lmp.close()
    frames = read_gp_frames(directory, elements) if uncertainty == "gp" else read_frames(directory, elements)
    for frame in frames:
        frame.info.update(learn_run=name, target_temperature_K=temperature, pressure_bar=pressure)
    return RunResult(name, frames, error)


def read_model_devi(path: Path) -> dict[int, dict[str, float]]:
    """Rows of a model_devi file by step."""
    rows = {}
    if not path.exists():
        return rows
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        values = line.split()
        if len(values) != len(DEVI_COLUMNS):
            continue  # a line cut short by a crash
        rows[int(values[0])] = {k: float(v) for k, v in zip(DEVI_COLUMNS[1:], values[1:])}
    return rows


def read_dump(path: Path, elements: Sequence[str], extra: int = 0) -> list[tuple[int, Atoms]]:
    """(step, structure) of every complete frame of a `custom id type x y z`
    dump of an orthogonal box; `extra` more per-atom columns go to the
    structure's array "dump_extra" (n_atoms, extra)."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    out, i = [], 0
    while i + 9 <= len(lines) and lines[i].startswith("ITEM: TIMESTEP"):
        step, n = int(lines[i + 1]), int(lines[i + 3])
        if not lines[i + 4].startswith("ITEM: BOX BOUNDS") or "xy" in lines[i + 4]:
            raise ValueError(f"{path}: expected an orthogonal box")
        bounds = np.array([[float(x) for x in lines[i + 5 + k].split()[:2]] for k in range(3)])
        body = lines[i + 9:i + 9 + n]
        if len(body) < n:
            break  # cut short
        table = np.array([[float(x) for x in row.split()] for row in body]).reshape(n, 5 + extra)
        symbols = [elements[int(t) - 1] for t in table[:, 1]]
        atoms = Atoms(symbols, positions=table[:, 2:5] - bounds[:, 0], cell=np.diag(bounds[:, 1] - bounds[:, 0]),
                      pbc=True)
        if extra:
            atoms.arrays["dump_extra"] = table[:, 5:]
        out.append((step, atoms))
        i += 9 + n
    return out


def read_frames(directory: Path, elements: Sequence[str]) -> list[Atoms]:
    """Dumped frames joined with their deviation line (NaN where none)."""
    devi = read_model_devi(directory / "model_devi.out")
    frames = []
    for step, atoms in read_dump(directory / "traj.dump", elements):
        row = devi.get(step, {k: math.nan for k in DEVI_COLUMNS[1:]})
        atoms.info.update(row)
        atoms.info["md_step"] = step
        frames.append(atoms)
    return frames


def read_gp_frames(directory: Path, elements: Sequence[str]) -> list[Atoms]:
    """Dumped frames with each atom's GP std (`gp_std`, eV) and its largest
    (`max_gp_std`; NaN where one is not finite)."""
    frames = []
    for step, atoms in read_dump(directory / "traj.dump", elements, extra=1):
        std = atoms.arrays.pop("dump_extra")[:, 0]
        atoms.arrays["gp_std"] = std
        atoms.info["max_gp_std"] = float(std.max()) if np.all(np.isfinite(std)) else math.nan
        atoms.info["md_step"] = step
        frames.append(atoms)
    return frames


# ----------------------------------------------------------------------------
# Every run of an iteration


def explore(runs: Sequence[RunSpec], members: Sequence[Path], elements: Sequence[str], directory: Path,
            seed: int, log, uncertainty: str = "committee") -> list[RunResult]:
    """Every run of every RunSpec, skipping runs finished before a kill."""
    key, unit = ("max_gp_std", "eV") if uncertainty == "gp" else ("max_devi_f", "eV/Å")
    results = []
    index = 0
    for spec in runs:
        for name, temperature, pressure in spec.names():
            run_dir = directory / f"{index:02d}-{name}"
            index += 1
            done = run_dir / "done.json"
            if done.exists():
                info = json.loads(done.read_text())
                frames = ase.io.read(run_dir / "frames.xyz", ":") if info["frames"] else []
                results.append(RunResult(name, frames, info["error"]))
                continue
            r = run_md(spec, name, temperature, pressure, members, elements, run_dir, seed + 1000 * index,
                       uncertainty)
            buf = io.StringIO()
            if r.frames:
                ase.io.write(buf, r.frames, format="extxyz")
            atomic_write_text(run_dir / "frames.xyz", buf.getvalue())
            atomic_write_text(done, json.dumps({"frames": len(r.frames), "error": r.error}) + "\n")
            maxf = max((f.info[key] for f in r.frames), default=math.nan)
            log(f"  {name}: {len(r.frames)} frames, largest {key} {maxf:.3f} {unit}"
                + (f"; LAMMPS stopped: {r.error[:200]}" if r.error else ""))
            results.append(r)
    return results
