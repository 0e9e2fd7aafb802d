"""ASE calculator backed by the C++ core (the same code LAMMPS runs)."""

from __future__ import annotations

import errno
import os
from enum import Enum
from typing import Sequence

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from nnp import _core


class PotentialNotFoundError(FileNotFoundError, ValueError):
    """A missing potential file: a FileNotFoundError with the path, and a
    ValueError as the core's errors on bad files are."""


class Drive(str, Enum):
    """Which prediction of a committee drives the dynamics (LAMMPS: ``pair_style nnp committee first|mean``)."""

    FIRST = "first"  # the first file's
    MEAN = "mean"  # the members' mean


# Per-step committee deviations (nnp/committee.h; docs/lammps.md, "Committees and deviation").
DEVIATION_KEYS = ("max_devi_f", "min_devi_f", "avg_devi_f", "devi_e", "max_devi_v", "min_devi_v", "avg_devi_v")


class NNPCalculator(Calculator):
    """Energy, forces, stress (and per-atom energies/stresses) of a potential file.

    >>> atoms.calc = NNPCalculator("Si.nnp")

    Several files make a committee (e.g. the members of ``python -m nnp.train
    --ensemble K``): ``NNPCalculator(["Si.0.nnp", "Si.1.nnp", "Si.2.nnp"])``.
    The first file's predictions are the results (``committee="mean"``: the
    members' mean), and ``results`` also holds ``member_energies`` (K,),
    ``member_forces`` (K, N, 3), per atom ``force_deviation`` ε_i =
    sqrt(⟨|F_i − ⟨F_i⟩|²⟩) and ``energy_deviation`` σ_i of the atomic
    energies, and the per-step numbers of LAMMPS's model_devi file
    (``DEVIATION_KEYS``). Members with identical descriptors share one
    descriptor pass.

    ``results["extrapolating_atoms"]`` counts atoms whose descriptor left the
    range seen in training, widened on both sides by ``extrapolation_margin``
    times each function's range (default ``_core.DEFAULT_EXTRAPOLATION_MARGIN``;
    0 is the bare range; LAMMPS: ``pair_style nnp extrapolation_margin M``).

    A sparse-GP potential (``nnp train --model gp``) also gives the posterior
    standard deviation of each atomic energy, ``results["gp_energy_std"]``
    (eV; docs/gp.md, "Predictive variance"): with ``gp_std=True`` on every
    calculation, or on request (``calc.get_property("gp_energy_std", atoms)``).
    One file only (a committee has its own deviation), whose elements all
    have a GP with a ``gp_variance`` section; else ValueError saying why.
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress", "stresses", "gp_energy_std"]

    def __init__(self, potential: str | os.PathLike | Sequence[str | os.PathLike],
                 extrapolation_margin: float | None = None, committee: Drive | str = Drive.FIRST,
                 gp_std: bool = False, **kwargs):
        super().__init__(**kwargs)
        paths = [potential] if isinstance(potential, (str, os.PathLike)) else list(potential)
        if not paths:
            raise ValueError("NNPCalculator needs at least one potential file")
        self.potential_paths = tuple(os.fspath(p) for p in paths)
        self.potential_path = self.potential_paths[0]
        duplicates = sorted({p for p in self.potential_paths if self.potential_paths.count(p) > 1})
        if duplicates:
            raise ValueError(f"potential file(s) {', '.join(duplicates)} listed twice: a committee member "
                             "counted twice biases its deviation")
        self.drive = Drive(committee)
        members = [_load(path, extrapolation_margin) for path in self.potential_paths]
        self.potential = members[0]
        # One member: the plain evaluation (the same numbers as before committees existed).
        self.committee = _core.Committee(members, list(self.potential_paths)) if len(members) > 1 else None
        self._index = {e: i for i, e in enumerate(self.potential.elements)}
        self.gp_std = bool(gp_std)
        if self.gp_std:
            self._check_gp_std()

    def _check_gp_std(self) -> None:
        if self.committee is not None:
            raise ValueError("gp_energy_std is the posterior spread of one GP potential: give one file (a committee "
                             "has its own deviation, results['energy_deviation'])")
        bad = self.potential.gp_variance_error
        if bad:
            raise ValueError(f"{self.potential_path}: {bad}")

    def _element_indices(self, atoms) -> np.ndarray:
        symbols = atoms.get_chemical_symbols()
        unknown = sorted(set(symbols) - set(self._index))
        if unknown:
            raise ValueError(
                f"{self.potential_path} has no model for element(s) {', '.join(unknown)} "
                f"(it knows {', '.join(self.potential.elements)})"
            )
        return np.array([self._index[s] for s in symbols], dtype=np.int32)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        want_stresses = "stresses" in properties
        arguments = (
            np.ascontiguousarray(atoms.positions, dtype=np.float64),
            self._element_indices(atoms),
            np.ascontiguousarray(atoms.cell.array, dtype=np.float64),
            [bool(p) for p in atoms.pbc],
            want_stresses,
        )
        if self.committee is None:
            out = self.potential.evaluate(*arguments)
        else:
            out = self._committee_results(self.committee.evaluate(*arguments), want_stresses)
        self.results["energy"] = self.results["free_energy"] = out["energy"]
        self.results["energies"] = out["atom_energies"]
        self.results["forces"] = out["forces"]
        self.results["extrapolating_atoms"] = out["extrapolating_atoms"]
        if self.gp_std or "gp_energy_std" in properties:
            self._check_gp_std()
            self.results["gp_energy_std"] = np.sqrt(self.potential.gp_variances(*arguments[:4]))
        if atoms.cell.rank == 3 and all(atoms.pbc):
            volume = atoms.get_volume()
            # ASE stress: σ = −W/V (tension positive), Voigt xx yy zz yz xz xy.
            sigma = -out["virial"] / volume
            self.results["stress"] = _voigt(sigma)
            if want_stresses:
                self.results["stresses"] = np.array([_voigt(-w / volume) for w in out["atom_virials"]])
        elif "stress" in properties or want_stresses:
            raise ValueError("stress needs a periodic cell in all three directions")


    def _committee_results(self, out: dict, want_stresses: bool) -> dict:
        """Stores the members' predictions and deviations in self.results and
        returns the driving prediction in the keys of Potential.evaluate."""
        self.results["member_energies"] = out["energies"]
        self.results["member_forces"] = out["forces"]
        self.results["force_deviation"] = out["force_deviation"]
        self.results["energy_deviation"] = out["energy_deviation"]
        for key in DEVIATION_KEYS:
            self.results[key] = out[key]
        pick = (lambda a: a[0]) if self.drive is Drive.FIRST else (lambda a: a.mean(axis=0))
        driving = {
            "energy": float(pick(out["energies"])),
            "atom_energies": pick(out["atom_energies"]),
            "forces": pick(out["forces"]),
            "virial": pick(out["virials"]),
            # As pair nnp: with the mean, an atom counts where any member extrapolates.
            "extrapolating_atoms": int(out["extrapolating"][0].sum() if self.drive is Drive.FIRST
                                       else out["extrapolating"].any(axis=0).sum()),
        }
        if want_stresses:
            driving["atom_virials"] = pick(out["atom_virials"])
        return driving


def _load(path: str, extrapolation_margin: float | None):
    # The core's own error for a missing file is a bare CoreError; say what and where.
    if not os.path.exists(path):
        raise PotentialNotFoundError(errno.ENOENT, "potential file does not exist", path)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "a directory, not a potential file", path)
    potential = _core.Potential(path)
    if extrapolation_margin is not None:
        potential.extrapolation_margin = extrapolation_margin
    return potential


def _voigt(m: np.ndarray) -> np.ndarray:
    return np.array([m[0, 0], m[1, 1], m[2, 2], m[1, 2], m[0, 2], m[0, 1]])
