"""Element-weighted symmetry functions (W2, W4, W5; wACSF, Gastegger et al.,
J. Chem. Phys. 148, 241709 (2018)) and format version 4.

The core evaluates a weighted function as a fixed combination of
element-resolved ones; the reference (reference_descriptors.py) sums every
neighbour (pair) with its weight(s) directly. Values and Jacobians for one,
two and three elements, both angular sums and both cutoff functions; forces
and virial against finite differences; the core against LAMMPS; the file
round trip; and a one-element set with weight 1 equal to plain G2/G4/G5.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from ase import Atoms
from conftest import mixed_sic, random_potential, rattled_si
from test_agreement import assert_agree, core_results, lammps_cell_structure, lammps_results, torch_results
from test_kernel_reference import RTOL, descriptor_errors, reference_energy_forces

from nnp import NNPCalculator, _core
from nnp.descriptors import G2, G4, G5, W2, W4, W5, DescriptorSet, preset, preset_names, resolve, weighted_preset_names
from nnp.io import potential_file as pf

ELEMENTS = {1: ("Si",), 2: ("Si", "C"), 3: ("Si", "C", "Ge")}
# Not atomic numbers: any per-element number (here electronegativity-like, one negative).
CUSTOM = (("Si", 1.9), ("C", 2.55), ("Ge", -0.7))


def weighted_functions(weights=()) -> tuple:
    """Every weighted kind and kernel path: R_s > 0, two cutoffs, integer and
    non-integer ζ, ζ above the factorisation limit, both λ."""
    rc, rc2 = 5.0, 4.2
    return (
        W2(0.05, 0.0, rc, weights),
        W2(0.3, 1.2, rc2, weights),
        W4(0.01, 1.0, 1, 0.0, rc, weights),
        W4(0.02, 4.0, -1, 0.0, rc, weights),
        W4(0.02, 2.5, -1, 0.6, rc2, weights),
        W5(0.01, 2.0, -1, 0.0, rc, weights),  # factorised
        W5(0.015, 8.0, 1, 0.5, rc, weights),
        W5(0.02, 1.5, 1, 0.0, rc2, weights),  # triple loop
        W5(0.01, 16.0, -1, 0.0, rc, weights),
    )


def weighted_set(n_elements: int, cutoff_function="cos", angular_sum="half", weights=(), plain=False) -> DescriptorSet:
    elements = ELEMENTS[n_elements]
    weights = tuple(w for w in weights if w[0] in elements)
    funcs = weighted_functions(weights)
    if plain:  # plain functions beside the weighted ones (some equal to their terms)
        funcs += (G2(elements[0], 0.05, 0.0, 5.0), G4((elements[0], elements[-1]), 0.01, 1.0, 1, 0.0, 5.0))
    return DescriptorSet(elements, {e: funcs for e in elements}, cutoff_function, angular_sum)


def structure(n_elements: int, seed: int = 0) -> Atoms:
    atoms = rattled_si((1, 1, 2), 0.15, seed)
    rng = np.random.default_rng(seed)
    atoms.set_chemical_symbols(rng.choice(ELEMENTS[n_elements], len(atoms)).tolist())
    return atoms


@pytest.mark.parametrize("n_elements", [1, 2, 3])
@pytest.mark.parametrize("cutoff_function", ("cos", "tanh3"))  # n2p2 cutoffs: tests/test_n2p2_examples.py
@pytest.mark.parametrize("angular_sum", _core.ANGULAR_SUMS)
def test_values_and_jacobians_match_brute_force(n_elements, cutoff_function, angular_sum):
    for weights, plain in (((), False), (CUSTOM, True)):
        ds = weighted_set(n_elements, cutoff_function, angular_sum, weights, plain)
        g_err, j_err = descriptor_errors(ds, structure(n_elements, seed=n_elements))
        assert g_err < RTOL, f"descriptors differ by {g_err:.2e} of their scale ({weights or 'Z'})"
        assert j_err < RTOL, f"Jacobians differ by {j_err:.2e} of their scale ({weights or 'Z'})"


def test_default_weights_are_atomic_numbers():
    ds = weighted_set(2)
    assert all(f.weights == (("Si", 14.0), ("C", 6.0)) for f in ds.functions["C"])


def test_one_element_weight_one_is_the_plain_function():
    atoms = rattled_si((2, 2, 2), 0.1, 4)
    one = (("Si", 1.0),)
    weighted = [W2(0.05, 0.7, 5.0, one), W4(0.01, 2.0, -1, 0.0, 5.0, one), W5(0.02, 3.0, 1, 0.0, 4.0, one),
                W5(0.02, 2.5, 1, 0.0, 4.0, one)]
    plain = [G2("Si", 0.05, 0.7, 5.0), G4(("Si", "Si"), 0.01, 2.0, -1, 0.0, 5.0), G5(("Si", "Si"), 0.02, 3.0, 1, 0.0, 4.0),
             G5(("Si", "Si"), 0.02, 2.5, 1, 0.0, 4.0)]
    for angular_sum in _core.ANGULAR_SUMS:
        a = DescriptorSet(("Si",), {"Si": tuple(weighted)}, "cos", angular_sum).featurize(atoms)["Si"]
        b = DescriptorSet(("Si",), {"Si": tuple(plain)}, "cos", angular_sum).featurize(atoms)["Si"]
        np.testing.assert_array_equal(a.G, b.G)
        np.testing.assert_array_equal(a.dG_dr, b.dG_dr)


@pytest.mark.parametrize("angular_sum", _core.ANGULAR_SUMS)
def test_forces_and_virial_match_finite_differences(tmp_path, angular_sum):
    ds = weighted_set(2, "tanh3", angular_sum, CUSTOM, plain=True)
    atoms = structure(2, seed=7)
    path = pf.write(random_potential(ds, [atoms], seed=2), tmp_path / "w.nnp")
    atoms.calc = NNPCalculator(path)
    forces, stress = atoms.get_forces(), atoms.get_stress(voigt=False)
    h = 1e-5
    for a, c in [(0, 0), (3, 1), (9, 2)]:
        energies = []
        for sign in (1, -1):
            moved = atoms.copy()
            moved.positions[a, c] += sign * h
            moved.calc = NNPCalculator(path)
            energies.append(moved.get_potential_energy())
        assert abs(-(energies[0] - energies[1]) / (2 * h) - forces[a, c]) < 1e-6 * max(1.0, np.abs(forces).max())
    # stress = (1/V) ∂E/∂ε (symmetric strain)
    for i, j in [(0, 0), (1, 2)]:
        energies = []
        for sign in (1, -1):
            eps = np.zeros((3, 3))
            eps[i, j] = eps[j, i] = sign * h / (2 if i != j else 1)
            strained = atoms.copy()
            strained.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
            strained.calc = NNPCalculator(path)
            energies.append(strained.get_potential_energy())
        fd = (energies[0] - energies[1]) / (2 * h) / atoms.get_volume()
        assert abs(fd - stress[i, j]) < 1e-6 * max(1e-2, np.abs(stress).max())


def test_energies_and_forces_match_brute_force(tmp_path):
    ds = weighted_set(3, "cos", "full", CUSTOM, plain=True)
    atoms = structure(3, seed=11)
    pot = random_potential(ds, [atoms], seed=5)
    atoms.calc = NNPCalculator(pf.write(pot, tmp_path / "w3.nnp"))
    ref_energy, _, ref_forces = reference_energy_forces(pot, atoms)
    assert abs(atoms.get_potential_energy() - ref_energy) < RTOL * abs(ref_energy)
    assert np.abs(atoms.get_forces() - ref_forces).max() < RTOL * np.abs(ref_forces).max()


@pytest.fixture(scope="module")
def weighted_sic_potential(tmp_path_factory):
    ds = weighted_set(2, weights=CUSTOM, plain=True)
    pot = random_potential(ds, [mixed_sic(s) for s in range(3)], seed=6)
    return pf.write(pot, tmp_path_factory.mktemp("pot") / "SiC_weighted.nnp")


def test_core_torch_and_lammps_agree(weighted_sic_potential):
    rng = np.random.default_rng(8)
    atoms = lammps_cell_structure(3, symbols=lambda n: rng.choice(["Si", "C"], n).tolist())
    core = core_results(weighted_sic_potential, atoms)
    assert_agree(torch_results(weighted_sic_potential, atoms), core, "torch vs core")
    assert_agree(lammps_results(weighted_sic_potential, atoms, ["C", "Si"]), core, "LAMMPS vs core")
    assert_agree(lammps_results(weighted_sic_potential, atoms, ["Si", "C"], newton="off"), core, "LAMMPS newton off")


def test_version_4_round_trip(weighted_sic_potential):
    text = weighted_sic_potential.read_text()
    assert text.startswith("nnp-potential 4\n")
    assert "\nelement_weights Si 1.8999999999999999 C 2.5499999999999998\n" in text
    assert "\nW2 0.050000000000000003 0 5\n" in text and "\nW4 " in text and "\nW5 " in text
    spec = _core.parse_potential(text, "mem")
    assert spec.format_version == 4 == spec.lowest_format_version() <= _core.FORMAT_VERSION  # 6: GP sections
    assert _core.format_potential(spec) == text
    again = pf.loads(text)
    assert pf.dumps(again) == text
    assert again.descriptors == pf.read(weighted_sic_potential).descriptors
    # With a quadratic term and a repulsive core the file stays version 4.
    pot = pf.read(weighted_sic_potential)
    pot.repulsion = [pf.Repulsion("Si", "C", 0.8, 1.9)]
    M = pot.descriptors.size("Si")
    pot.models["Si"].quadratic = pf.QuadraticTerm(np.zeros(M), np.eye(M))
    assert pf.dumps(pot).startswith("nnp-potential 4\n")
    assert pf.dumps(pf.loads(pf.dumps(pot))) == pf.dumps(pot)


def _broken(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize("edit, message", [
    (lambda t: _broken(t, "nnp-potential 4", "nnp-potential 3"), "'element_weights' needs format version 4"),
    (lambda t: _broken(t, "element_weights Si 1.8999999999999999 C 2.5499999999999998\n", ""),
     "'W2' needs an 'element_weights' line"),
    (lambda t: _broken(t, "element_weights Si 1.8999999999999999 C", "element_weights Si 1.9 Si"),
     "element 'Si' has two weights"),
    (lambda t: _broken(t, "element_weights Si 1.8999999999999999 C 2.5499999999999998",
                       "element_weights Si 1.9"), "a symbol and a weight for each of the 2 elements"),
    (lambda t: _broken(t, "element_weights Si 1.8999999999999999", "element_weights Si nan"),
     "the weight of Si must be finite"),
    (lambda t: _broken(t, "element_weights Si 1.8999999999999999 C 2.5499999999999998", "element_weights Si 0 C 0"),
     "element weights must not all be 0"),
    (lambda t: _broken(t, "\nW2 0.050000000000000003 0 5\n", "\nW2 Si 0.05 0 5\n"), "expected 'W2 eta rs rc'"),
])
def test_bad_version_4_files_name_the_line(weighted_sic_potential, edit, message):
    with pytest.raises(pf.PotentialFileError, match=message):
        pf.loads(edit(weighted_sic_potential.read_text()), "mem")


def test_version_4_needs_weighted_functions(si_potential):
    text = si_potential.read_text().replace("nnp-potential 1", "nnp-potential 4", 1)
    with pytest.raises(pf.PotentialFileError, match="version-4 file without weighted symmetry functions must be "
                                                    "written as version 1"):
        pf.loads(text, "mem")


def test_one_set_of_weights_per_potential():
    with pytest.raises(ValueError, match="share one set of element weights"):
        DescriptorSet(("Si", "C"), {"Si": (W2(0.1),), "C": (W2(0.2, weights=CUSTOM[:2]),)})
    with pytest.raises(ValueError, match="no element weight for"):
        DescriptorSet(("Si", "C"), {"Si": (W2(0.1, weights=(("Si", 1.0),)),), "C": (W2(0.2),)})


def test_weighted_presets_do_not_grow_with_elements():
    assert {"W16", "W64", "W64-wide"} <= set(weighted_preset_names())
    assert not set(weighted_preset_names()) & set(preset_names())  # the study's names stay as they are
    assert resolve("W64", ("H", "O")) == preset("W64", ("H", "O"))  # what nnp.train calls
    for n in (1, 2, 5):
        elements = ("H", "C", "N", "O", "S")[:n]
        ds = preset("W64", elements)
        assert all(ds.size(e) == 64 for e in elements)
        resolved = preset("A64", elements)
        assert resolved.size(elements[0]) == 16 * n + 48 * n * (n + 1) // 2
    assert all(isinstance(f, (W2, W5)) for f in preset("W40-wide", ("H", "O")).functions["O"])
    assert dataclasses.replace(preset("W16", ("H", "O")).functions["H"][-1]).weights == (("H", 1.0), ("O", 8.0))
