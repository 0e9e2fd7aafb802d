"""What a structure file holds, and every frame with a problem
(``python -m nnp.data summary FILE``)."""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from ase import units
from ase.io.formats import filetype
from ase.neighborlist import neighbor_list

from nnp.data.formats import FORMATS, check_path, detect_format, iter_frames, normalise_format
from nnp.data.frames import DEFAULT_CONFIG_TYPE, Unreadable, frame_problems, results

SUMMARY_DISTANCE_CUTOFF = 3.0  # Å; the minimum distance is searched below this


@dataclass
class FileSummary:
    """What a structure file holds, and every frame with a problem.

    Label statistics are over the frames where the label is present and
    finite; `problems` lists (frame, message) for every bad frame.
    """

    path: str
    format: str
    n_structures: int = 0  # frames that could be parsed
    n_atoms: int = 0
    atoms_per_structure: tuple[int, int] | None = None
    elements: Counter = field(default_factory=Counter)  # element -> atoms
    config_types: Counter = field(default_factory=Counter)  # config type -> structures
    n_periodic: int = 0
    energy_per_atom: tuple[float, float] | None = None  # eV/atom
    max_force: tuple[float, int, int] | None = None  # (|F| eV/Å, frame, atom)
    n_stress: int = 0
    max_stress: tuple[float, int] | None = None  # (max |σ component| GPa, frame)
    min_distance: tuple[float, int] | None = None  # (Å, frame); None: none below SUMMARY_DISTANCE_CUTOFF
    problems: list[tuple[int, str]] = field(default_factory=list)
    stopped_at: int | None = None  # frame where reading had to stop (a format ASE reads)

    @property
    def ok(self) -> bool:
        return not self.problems and self.n_structures > 0


def summarize(path: str | os.PathLike, format: str | None = None, elements: Sequence[str] | None = None) -> FileSummary:
    """Counts, label ranges and problems of every frame of `path` (never
    raises for a bad frame; raises for a missing or empty file)."""
    path = check_path(path)
    fmt = normalise_format(format) if format is not None else detect_format(path)
    summary = FileSummary(path, fmt or _ase_filetype(path))
    e_lo, e_hi = math.inf, -math.inf
    n_lo, n_hi = math.inf, -math.inf
    frame = -1
    for frame, atoms in enumerate(iter_frames(path, fmt)):
        if isinstance(atoms, Unreadable):
            summary.problems.append((atoms.frame, f"cannot be read: {atoms.message}"))
            if fmt not in FORMATS:
                summary.stopped_at = atoms.frame
            continue
        for msg in frame_problems(atoms, elements):
            summary.problems.append((frame, msg))
        n = len(atoms)
        summary.n_structures += 1
        summary.n_atoms += n
        n_lo, n_hi = min(n_lo, n), max(n_hi, n)
        summary.elements.update(atoms.get_chemical_symbols())
        summary.config_types[str(atoms.info.get("config_type", DEFAULT_CONFIG_TYPE))] += 1
        summary.n_periodic += bool(atoms.pbc.all())
        r = results(atoms)
        if n and r.get("energy") is not None and np.size(r["energy"]) == 1 and np.isfinite(r["energy"]):
            e = float(r["energy"]) / n
            e_lo, e_hi = min(e_lo, e), max(e_hi, e)
        f = r.get("forces")
        if f is not None and np.shape(f) == (n, 3) and n and np.all(np.isfinite(f)):
            norms = np.linalg.norm(np.asarray(f, dtype=float), axis=1)
            k = int(np.argmax(norms))
            if summary.max_force is None or norms[k] > summary.max_force[0]:
                summary.max_force = (float(norms[k]), frame, k)
        st = r.get("stress")
        if st is not None and np.shape(st) in ((6,), (3, 3)):
            summary.n_stress += 1
            if np.all(np.isfinite(st)):
                smax = float(np.max(np.abs(st))) / units.GPa
                if summary.max_stress is None or smax > summary.max_stress[0]:
                    summary.max_stress = (smax, frame)
        if n > 1 and np.all(np.isfinite(atoms.positions)) and np.all(np.isfinite(atoms.cell.array)):
            try:
                d = neighbor_list("d", atoms, SUMMARY_DISTANCE_CUTOFF)
            except Exception:  # a degenerate cell, already a problem of the frame
                d = np.empty(0)
            if len(d) and (summary.min_distance is None or d.min() < summary.min_distance[0]):
                summary.min_distance = (float(d.min()), frame)
    if summary.n_structures:
        summary.atoms_per_structure = (int(n_lo), int(n_hi))
    if e_lo <= e_hi:
        summary.energy_per_atom = (e_lo, e_hi)
    if summary.n_structures == 0 and not summary.problems:
        summary.problems.append((0, "no structures found"))
    summary.problems.sort(key=lambda p: p[0])
    return summary


def _ase_filetype(path: str) -> str:
    try:
        return str(filetype(path, guess=True))
    except Exception:
        return "unknown"


def format_summary(s: FileSummary) -> str:
    """The summary as printed by ``python -m nnp.data summary``."""
    lines = [f"{s.path} ({s.format})"]

    def row(name: str, value: str) -> None:
        lines.append(f"  {name:<17s}{value}")

    span = f", {s.atoms_per_structure[0]} .. {s.atoms_per_structure[1]} per structure" if s.atoms_per_structure else ""
    row("structures", f"{s.n_structures} ({s.n_atoms} atoms{span})")
    row("elements", ", ".join(f"{e} ({n})" for e, n in sorted(s.elements.items())) or "-")
    row("config types", ", ".join(f"{c} ({n})" for c, n in sorted(s.config_types.items())) or "-")
    row("periodic", f"{s.n_periodic} of {s.n_structures} structures")
    row("energy", f"{s.energy_per_atom[0]:.6g} .. {s.energy_per_atom[1]:.6g} eV/atom" if s.energy_per_atom else "-")
    if s.max_force:
        row("max |F|", f"{s.max_force[0]:.4g} eV/Å (frame {s.max_force[1]}, atom {s.max_force[2]})")
    else:
        row("max |F|", "-")
    stress = f"{s.n_stress} of {s.n_structures} structures"
    if s.max_stress:
        stress += f" (max |σ_ij| {s.max_stress[0]:.4g} GPa, frame {s.max_stress[1]})"
    row("stress", stress)
    if s.min_distance:
        row("min distance", f"{s.min_distance[0]:.4g} Å (frame {s.min_distance[1]})")
    else:
        row("min distance", f"none below {SUMMARY_DISTANCE_CUTOFF} Å")
    if not s.problems:
        row("problems", "none")
    else:
        frames = sorted({f for f, _ in s.problems})
        row("problems", f"{len(s.problems)} in {len(frames)} frame(s)")
        for f, msg in s.problems:
            lines.append(f"{s.path}: frame {f}: {msg}")
        if s.stopped_at is not None:
            lines.append(f"{s.path}: reading stopped at frame {s.stopped_at}; later frames were not checked")
    return "\n".join(lines)

