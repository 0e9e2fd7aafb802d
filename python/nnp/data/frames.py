"""One labelled frame: its checks, its labels, the isolated-atom frame, and
the train/validation split of a list of frames.

Every reader (`nnp.data.formats`, `nnp.data.n2p2`, `nnp.data.mlearn`)
yields Atoms with their labels as ASE calculator results, or `Unreadable`
for a frame it cannot parse; the checks here say what is wrong with a frame
that could be parsed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io.formats import string2index
from ase.neighborlist import neighbor_list

MIN_DISTANCE = 0.1  # Å; closer atoms are treated as duplicates
DEFAULT_CONFIG_TYPE = "default"
ISOLATED_ATOM_TYPE = "isolated_atom"


@dataclass
class Unreadable:
    """A frame that could not be parsed (in place of its Atoms)."""

    frame: int
    message: str


def select(n: int, index: str) -> list[int]:
    """Positions range(n) picked by an ASE index string ("0", "-1", "2:8:2")."""
    sel = string2index(index) if isinstance(index, str) else index
    if isinstance(sel, slice):
        return list(range(n))[sel]
    k = int(sel)
    if not -n <= k < n:
        raise ValueError(f"index {index} is out of range for a file of {n} frames")
    return [k % n]


def results(atoms: Atoms) -> dict:
    """The labels of a frame as its calculator holds them (empty without one)."""
    return getattr(atoms.calc, "results", None) or {}


def check_frame(atoms: Atoms, path: str, frame: int, elements: Sequence[str] | None) -> None:
    """Raise a ValueError naming the file and the frame for its first problem."""
    problems = frame_problems(atoms, elements)
    if problems:
        raise ValueError(f"{path}: frame {frame}: {problems[0]}")


def frame_problems(atoms: Atoms, elements: Sequence[str] | None = None) -> list[str]:
    """Everything wrong with a frame as training data (empty if nothing):
    missing or non-finite energy/forces/stress, arrays of the wrong length,
    non-finite positions or cell, unknown elements, duplicated atoms."""
    n = len(atoms)
    if n == 0:
        return ["has no atoms"]
    problems: list[str] = []
    geometry_ok = True
    if not np.all(np.isfinite(atoms.positions)):
        problems.append("positions contain NaN or inf")
        geometry_ok = False
    if not np.all(np.isfinite(atoms.cell.array)):
        problems.append("the cell contains NaN or inf")
        geometry_ok = False
    if elements is not None:
        bad = sorted(set(atoms.get_chemical_symbols()) - set(elements))
        if bad:
            problems.append(f"element(s) {', '.join(bad)} not in the element list {list(elements)}")
    problems += _label_problems(results(atoms), n)
    if geometry_ok and (n > 1 or atoms.pbc.any()):
        problems += _distance_problems(atoms)
    return problems


def _label_problems(labels_: dict, n: int) -> list[str]:
    problems: list[str] = []
    energy = labels_.get("energy")
    if energy is None:
        problems.append("no energy (every training frame needs a total energy)")
    else:
        energy = np.asarray(energy, dtype=float)
        if energy.size != 1:
            problems.append(f"energy must be one number, found shape {energy.shape}")
        elif not np.isfinite(energy).all():
            problems.append(f"energy is {float(energy)}")
    forces = labels_.get("forces")
    if forces is None:
        problems.append("no forces (every training frame needs forces)")
    else:
        forces = np.asarray(forces, dtype=float)
        if forces.shape != (n, 3):
            problems.append(f"forces have shape {forces.shape}, expected ({n}, 3) for {n} atoms")
        elif not np.all(np.isfinite(forces)):
            problems.append("forces contain NaN or inf")
    stress = labels_.get("stress")
    if stress is not None:
        stress = np.asarray(stress, dtype=float)
        if stress.shape not in ((6,), (3, 3)):
            problems.append(f"stress has shape {stress.shape}, expected (6,) or (3, 3)")
        elif not np.all(np.isfinite(stress)):
            problems.append("stress contains NaN or inf")
    return problems


def _distance_problems(atoms: Atoms) -> list[str]:
    try:
        i, j, d = neighbor_list("ijd", atoms, MIN_DISTANCE)
    except Exception as err:
        return [f"cannot build a neighbour list (degenerate cell?): {err}"]
    if not len(i):
        return []
    k = int(np.argmin(d))
    return [f"atoms {i[k]} and {j[k]} are {d[k]:.3g} Å apart (< {MIN_DISTANCE} Å: duplicated atoms?)"]


def labels(atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray | None]:
    """(energy, forces (n, 3), stress (3, 3) or None) of a checked frame;
    NaN energy/forces for an unlabelled structure."""
    found = results(atoms)
    energy = float(found["energy"]) if "energy" in found else math.nan
    forces = np.asarray(found["forces"], dtype=float) if "forces" in found else np.full((len(atoms), 3), math.nan)
    stress = found.get("stress")
    if stress is not None:
        stress = np.asarray(stress, dtype=float)
        if stress.shape == (6,):
            xx, yy, zz, yz, xz, xy = stress
            stress = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    return energy, forces, stress


def isolated_atom(element: str, energy: float) -> Atoms:
    """One atom alone (no periodic images): energy `energy` eV, no force, no stress."""
    atoms = Atoms(element, positions=[[0.0, 0.0, 0.0]], pbc=False)
    atoms.calc = SinglePointCalculator(atoms, energy=float(energy), forces=np.zeros((1, 3)))
    atoms.info["config_type"] = ISOLATED_ATOM_TYPE
    return atoms


def split(n: int, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic random split of range(n): (train indices, validation
    indices), both sorted. At least one structure trains; a positive fraction
    holds out at least one structure when n >= 2."""
    if n < 1:
        raise ValueError("cannot split an empty data set")
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    n_val = int(round(n * validation_fraction))
    if validation_fraction > 0 and n >= 2:
        n_val = max(n_val, 1)
    n_val = min(n_val, n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])
