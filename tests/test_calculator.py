"""The C++ core through nnp.NNPCalculator: forces are −dE/dr, stress is the
strain derivative, energies are invariant; per-atom quantities add up."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from conftest import mixed_sic, rattled_si, si_cluster, triclinic_si

from nnp import NNPCalculator


def structures():
    return {
        "cubic": rattled_si((2, 2, 2), 0.1, 11),
        "small-cell": rattled_si((1, 1, 1), 0.15, 12),  # cell (5.43 Å) smaller than 2 r_c
        "triclinic": triclinic_si(13),
        "cluster": si_cluster(14),
    }


def numeric_forces(atoms, h=1e-5):
    f = np.zeros((len(atoms), 3))
    for k in range(len(atoms)):
        for c in range(3):
            e = []
            for s in (h, -h):
                a = atoms.copy()
                a.calc = atoms.calc
                a.positions[k, c] += s
                e.append(a.get_potential_energy())
            f[k, c] = -(e[0] - e[1]) / (2 * h)
    return f


def numeric_stress(atoms, h=1e-6):
    """σ_ab = (1/V) ∂E/∂ε_ab (symmetric strain, atoms follow the cell)."""
    sigma = np.zeros((3, 3))
    cell0 = atoms.cell.array.copy()
    for a in range(3):
        for b in range(3):
            e = []
            for s in (h, -h):
                eps = np.eye(3)
                eps[a, b] += s / 2
                eps[b, a] += s / 2
                strained = atoms.copy()
                strained.calc = atoms.calc
                strained.set_cell(cell0 @ eps, scale_atoms=True)
                e.append(strained.get_potential_energy())
            sigma[a, b] = (e[0] - e[1]) / (2 * h) / atoms.get_volume()
    return np.array([sigma[0, 0], sigma[1, 1], sigma[2, 2], sigma[1, 2], sigma[0, 2], sigma[0, 1]])


@pytest.mark.parametrize("name", ["cubic", "small-cell", "triclinic", "cluster"])
def test_forces_are_minus_energy_gradient(si_potential, name):
    atoms = structures()[name]
    atoms.calc = NNPCalculator(si_potential)
    forces = atoms.get_forces()
    num = numeric_forces(atoms)
    assert np.abs(forces).max() > 0.1
    np.testing.assert_allclose(forces, num, atol=1e-7 * np.abs(forces).max() + 1e-9)
    if atoms.pbc.all():
        np.testing.assert_allclose(forces.sum(axis=0), 0, atol=1e-10)


@pytest.mark.parametrize("name", ["cubic", "small-cell", "triclinic"])
def test_stress_is_strain_derivative(si_potential, name):
    atoms = structures()[name]
    atoms.calc = NNPCalculator(si_potential)
    stress = atoms.get_stress()
    assert np.abs(stress).max() > 1e-3
    np.testing.assert_allclose(stress, numeric_stress(atoms), atol=1e-7 * np.abs(stress).max())


def test_per_atom_quantities_add_up(si_potential):
    atoms = triclinic_si(15)
    atoms.calc = NNPCalculator(si_potential)
    e = atoms.get_potential_energy()
    assert np.isclose(atoms.get_potential_energies().sum(), e, rtol=1e-13)
    stresses = atoms.get_stresses()
    np.testing.assert_allclose(stresses.sum(axis=0), atoms.get_stress(), rtol=1e-12, atol=1e-14)


def test_invariances(sic_potential):
    atoms = mixed_sic(16)
    atoms.calc = NNPCalculator(sic_potential)
    e0, f0, s0 = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()

    moved = atoms.copy()
    moved.translate([1.1, -0.4, 7.3])
    moved.calc = atoms.calc
    assert np.isclose(moved.get_potential_energy(), e0, rtol=1e-13)
    np.testing.assert_allclose(moved.get_forces(), f0, atol=1e-11)

    rot = atoms.copy()
    rot.rotate(63, (0.3, -1, 2), rotate_cell=True)
    rot.calc = atoms.calc
    R = rot.cell.array.T @ np.linalg.inv(atoms.cell.array.T)
    assert np.isclose(rot.get_potential_energy(), e0, rtol=1e-12)
    np.testing.assert_allclose(rot.get_forces(), f0 @ R.T, atol=1e-10)
    np.testing.assert_allclose(rot.get_stress(voigt=False), R @ atoms.get_stress(voigt=False) @ R.T, atol=1e-11)

    perm = np.random.default_rng(1).permutation(len(atoms))
    shuffled = atoms[perm]
    shuffled.calc = atoms.calc
    assert np.isclose(shuffled.get_potential_energy(), e0, rtol=1e-13)
    np.testing.assert_allclose(shuffled.get_forces(), f0[perm], atol=1e-11)


def test_binary_forces(sic_potential):
    atoms = mixed_sic(17)[:10]
    atoms.calc = NNPCalculator(sic_potential)
    np.testing.assert_allclose(atoms.get_forces(), numeric_forces(atoms), atol=1e-7)


def test_isolated_atom_and_errors(si_potential):
    calc = NNPCalculator(si_potential)
    lone = Atoms("Si", positions=[[0, 0, 0]])
    lone.calc = calc
    assert np.isfinite(lone.get_potential_energy())
    np.testing.assert_array_equal(lone.get_forces(), 0.0)
    wrong = Atoms("SiC", positions=[[0, 0, 0], [2, 0, 0]])
    wrong.calc = calc
    with pytest.raises(ValueError, match="no model for element.*C"):
        wrong.get_potential_energy()
    with pytest.raises(ValueError, match="does not exist|cannot open"):
        NNPCalculator("/nonexistent/Si.nnp")


def test_extrapolation_count(si_potential):
    atoms = rattled_si((2, 2, 2), 0.1, 0)  # one of the fixture's scaling structures
    atoms.calc = NNPCalculator(si_potential)
    atoms.get_potential_energy()
    assert atoms.calc.results["extrapolating_atoms"] == 0
    squeezed = atoms.copy()
    squeezed.set_cell(atoms.cell * 0.8, scale_atoms=True)
    squeezed.calc = NNPCalculator(si_potential)
    squeezed.get_potential_energy()
    assert squeezed.calc.results["extrapolating_atoms"] == len(atoms)
