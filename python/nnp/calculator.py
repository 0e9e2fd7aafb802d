"""ASE calculator backed by the C++ core (the same code LAMMPS runs)."""

from __future__ import annotations

import errno
import os

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from nnp import _core


class PotentialNotFoundError(FileNotFoundError, ValueError):
    """A missing potential file: a FileNotFoundError with the path, and a
    ValueError as the core's errors on bad files are."""


class NNPCalculator(Calculator):
    """Energy, forces, stress (and per-atom energies/stresses) of a potential file.

    >>> atoms.calc = NNPCalculator("Si.nnp")

    ``results["extrapolating_atoms"]`` counts atoms whose descriptor left the
    range seen in training (the model is extrapolating there).
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress", "stresses"]

    def __init__(self, potential: str | os.PathLike, **kwargs):
        super().__init__(**kwargs)
        self.potential_path = os.fspath(potential)
        # The core's own error for a missing file is a bare CoreError; say what and where.
        if not os.path.exists(self.potential_path):
            raise PotentialNotFoundError(errno.ENOENT, "potential file does not exist", self.potential_path)
        if os.path.isdir(self.potential_path):
            raise IsADirectoryError(errno.EISDIR, "a directory, not a potential file", self.potential_path)
        self.potential = _core.Potential(self.potential_path)
        self._index = {e: i for i, e in enumerate(self.potential.elements)}

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
        out = self.potential.evaluate(
            np.ascontiguousarray(atoms.positions, dtype=np.float64),
            self._element_indices(atoms),
            np.ascontiguousarray(atoms.cell.array, dtype=np.float64),
            [bool(p) for p in atoms.pbc],
            want_stresses,
        )
        self.results["energy"] = self.results["free_energy"] = out["energy"]
        self.results["energies"] = out["atom_energies"]
        self.results["forces"] = out["forces"]
        self.results["extrapolating_atoms"] = out["extrapolating_atoms"]
        if atoms.cell.rank == 3 and all(atoms.pbc):
            volume = atoms.get_volume()
            # ASE stress: σ = −W/V (tension positive), Voigt xx yy zz yz xz xy.
            sigma = -out["virial"] / volume
            self.results["stress"] = _voigt(sigma)
            if want_stresses:
                self.results["stresses"] = np.array([_voigt(-w / volume) for w in out["atom_virials"]])
        elif "stress" in properties or want_stresses:
            raise ValueError("stress needs a periodic cell in all three directions")


def _voigt(m: np.ndarray) -> np.ndarray:
    return np.array([m[0, 0], m[1, 1], m[2, 2], m[1, 2], m[0, 2], m[0, 1]])
