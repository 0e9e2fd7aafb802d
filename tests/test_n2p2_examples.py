"""Every published n2p2 potential (n2p2's examples/potentials, in
../shared/data/n2p2-examples) converts and predicts what n2p2 predicts.

reference.json holds n2p2's own energies and forces (nnp-predict, v2.3.0) for
48 structures; each converted potential must reproduce them to 1e-8 eV/atom
and 1e-7 eV/Å through NNPCalculator and through LAMMPS `pair_style nnp`.
The potentials cover n2p2's cutoff types 2 (tanhu) and 6 (poly2) and the
symmetry-function types 2, 3, 9 (Behler) and 20, 22 (compact polynomials).
The cutoff types and compact functions that no published potential uses are
pinned here against the independent reference (tests/reference_descriptors.py)
and by finite differences.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from conftest import mixed_sic, random_potential, rattled_si, shared_data
from test_agreement import lammps_results
from test_convert import lammps_frame
from test_kernel_reference import descriptor_errors, reference_energy_forces

from nnp import NNPCalculator, _core, convert
from nnp.descriptors import C2, C4, C5, CW2, CW4, CW5, G2, G4, G5, DescriptorSet
from nnp.io import potential_file as pf

E_TOL = 1e-8  # eV/atom
F_TOL = 1e-7  # eV/Å
NAMES = ["H2O_RPBE-D3", "H2O_RPBE", "H2O_BLYP-D3", "H2O_BLYP", "Cu2S_PBE", "Anisole_SCAN", "DMABN_SCAN",
         "Ethylbenzene_SCAN"]
# The lowest format version that expresses each converted file: n2p2's poly2
# cutoff and the compact functions need version 5.
VERSIONS = {**{n: 1 for n in NAMES[:4]}, **{n: 5 for n in NAMES[4:]}}


@pytest.fixture(scope="module")
def examples():
    root = shared_data("n2p2-examples")
    reference = json.loads((root / "reference.json").read_text())
    return root, {p["name"]: p for p in reference["potentials"]}


def structures(entry) -> list[Atoms]:
    """reference.json's structures (Å); a molecule has no cell and no periodicity."""
    out = []
    for s in entry["structures"]:
        cell = np.zeros((3, 3)) if s["cell_A"] is None else s["cell_A"]
        atoms = Atoms(s["symbols"], positions=s["positions_A"], cell=cell, pbc=s["pbc"])
        atoms.info["energy"] = s["energy_eV"]
        atoms.arrays["n2p2_forces"] = np.array(s["forces_eV_per_A"])
        out.append(atoms)
    return out


_CONVERTED: dict[str, object] = {}


def converted(examples, name: str, tmp_path_factory):
    """The converted file (once per potential), with the exact units of the README."""
    if name not in _CONVERTED:
        root, reference = examples
        entry = reference[name]
        units = convert.UnitFactors(cflength=entry["cflength"], cfenergy=entry["cfenergy"])
        path = tmp_path_factory.mktemp("n2p2") / f"{name}.nnp"
        pf.write(convert.convert_n2p2(root / "potentials" / name, units), path)
        _CONVERTED[name] = path
    return _CONVERTED[name]


def errors(results, frames) -> tuple[float, float]:
    de = max(abs(e - a.info["energy"]) / len(a) for (e, _), a in zip(results, frames))
    df = max(np.abs(f - a.arrays["n2p2_forces"]).max() for (_, f), a in zip(results, frames))
    return de, df


@pytest.mark.parametrize("name", NAMES)
def test_calculator_reproduces_n2p2(examples, name, tmp_path_factory):
    path = converted(examples, name, tmp_path_factory)
    assert pf.read(path).format_version == VERSIONS[name]
    frames = structures(examples[1][name])
    results = []
    for atoms in frames:
        atoms = atoms.copy()
        atoms.calc = NNPCalculator(path)
        results.append((atoms.get_potential_energy(), atoms.get_forces()))
    de, df = errors(results, frames)
    print(f"{name}: NNPCalculator vs n2p2: max |dE| {de:.2e} eV/atom, max |dF| {df:.2e} eV/Å")
    assert de < E_TOL and df < F_TOL


def lammps_structure(atoms: Atoms, cutoff: float) -> tuple[Atoms, np.ndarray]:
    """The structure in LAMMPS's frame (rotation q: F = F' qᵀ), atoms wrapped
    into the cell; a molecule goes into a periodic box wide enough that no
    atom sees another's image (extent + cutoff + 1 Å), which equals no
    periodicity."""
    if not atoms.pbc.any():
        boxed = atoms.copy()
        extent = np.ptp(atoms.positions, axis=0)
        boxed.set_cell(np.diag(extent + cutoff + 1.0))
        boxed.positions -= atoms.positions.min(axis=0) - 0.5
        boxed.pbc = True
        return boxed, np.eye(3)
    return lammps_frame(atoms)


@pytest.mark.parametrize("name", NAMES)
def test_lammps_reproduces_n2p2(examples, name, tmp_path_factory):
    path = converted(examples, name, tmp_path_factory)
    entry = examples[1][name]
    elements = list(pf.read(path).elements)
    cutoff = pf.read(path).descriptors.cutoff
    frames = structures(entry)
    results = []
    for atoms in frames:
        moved, q = lammps_structure(atoms, cutoff)
        r = lammps_results(path, moved, elements)
        results.append((r["energy"], np.asarray(r["forces"]) @ q.T))
    de, df = errors(results, frames)
    print(f"{name}: LAMMPS vs n2p2: max |dE| {de:.2e} eV/atom, max |dF| {df:.2e} eV/Å")
    assert de < E_TOL and df < F_TOL


# ----------------------------------------------------------------------------
# Cutoff types and compact functions against the reference implementation


def compact_set(cutoff_function: str = "cos", alpha: float = 0.0, angular_sum: str = "half") -> DescriptorSet:
    """Si and C, every compact kind and core beside G2/G4/G5 (which use the cutoff)."""
    el = ("Si", "C")
    funcs = (
        G2("Si", 0.05, 0.0, 4.6), G2("C", 0.3, 1.2, 4.0),
        G4(("Si", "C"), 0.02, 2.0, -1, 0.0, 4.6), G5(("Si", "Si"), 0.01, 4.0, 1, 0.0, 4.6),
        G5(("Si", "C"), 0.02, 2.5, 1, 0.3, 4.0),
        C2("Si", -4.6, 4.6, "p2"), C2("C", 0.8, 4.2, "p3a"), C2("Si", 2.0, 4.6, "e"), C2("C", -4.0, 4.0, "p4"),
        C4(("Si", "C"), -4.6, 4.6, -90.0, 90.0, "p2a"), C4(("Si", "Si"), 0.5, 4.6, 60.0, 180.0, "p1"),
        C5(("Si", "Si"), -4.6, 4.6, 90.0, 270.0, "p2"), C5(("C", "Si"), 1.0, 4.4, 30.0, 150.0, "p4a"),
        C5(("C", "C"), -4.2, 4.2, 0.0, 120.0, "e"),
        CW2(-4.6, 4.6, "p2a"), CW4(-4.4, 4.4, 45.0, 135.0, "p3"), CW5(0.0, 4.6, -120.0, 120.0, "p2"),
    )
    return DescriptorSet(el, {e: funcs for e in el}, cutoff_function, angular_sum, alpha)


CUTOFF_CASES = [(c, 0.0) for c in _core.CUTOFF_FUNCTIONS] + [("cos", 0.3), ("exp", 0.2), ("poly2", 0.5),
                                                              ("poly4", 0.1)]


@pytest.mark.parametrize("angular_sum", _core.ANGULAR_SUMS)
@pytest.mark.parametrize("cutoff_function, alpha", CUTOFF_CASES)
def test_descriptors_match_reference(cutoff_function, alpha, angular_sum):
    g_err, j_err = descriptor_errors(compact_set(cutoff_function, alpha, angular_sum), mixed_sic(3))
    # poly3/poly4 sum terms of size up to 10^2-10^3 that cancel: a few 1e-12 of rounding
    assert g_err < 1e-11, f"descriptors differ by {g_err:.2e} of their scale"
    assert j_err < 1e-11, f"Jacobians differ by {j_err:.2e} of their scale"


@pytest.mark.parametrize("cutoff_function, alpha", [("poly2", 0.0), ("cos", 0.3), ("exp", 0.2)])
def test_forces_match_reference_and_finite_differences(tmp_path, cutoff_function, alpha):
    ds = compact_set(cutoff_function, alpha)
    atoms = mixed_sic(4)
    pot = random_potential(ds, [atoms], seed=3)
    path = pf.write(pot, tmp_path / "c.nnp")
    assert pf.read(path).format_version == 5
    atoms.calc = NNPCalculator(path)
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    e_ref, _, f_ref = reference_energy_forces(pot, atoms)
    assert abs(energy - e_ref) < 1e-10 * len(atoms)
    assert np.abs(forces - f_ref).max() < 1e-9
    h = 1e-5
    for a, c in [(0, 0), (5, 1), (11, 2)]:
        e = []
        for sign in (1, -1):
            moved = atoms.copy()
            moved.positions[a, c] += sign * h
            moved.calc = NNPCalculator(path)
            e.append(moved.get_potential_energy())
        assert abs(-(e[0] - e[1]) / (2 * h) - forces[a, c]) < 1e-6 * max(1.0, np.abs(forces).max())


def test_compact_functions_in_lammps(tmp_path):
    ds = compact_set("poly2", 0.25, "full")
    atoms = rattled_si((2, 2, 2), 0.12, 7)
    rng = np.random.default_rng(1)
    atoms.set_chemical_symbols(rng.choice(["Si", "C"], len(atoms)).tolist())
    path = pf.write(random_potential(ds, [atoms], seed=4), tmp_path / "c.nnp")
    atoms.calc = NNPCalculator(path)
    r = lammps_results(path, atoms, ["Si", "C"])
    assert abs(r["energy"] - atoms.get_potential_energy()) < 1e-10 * len(atoms)
    assert np.abs(np.asarray(r["forces"]) - atoms.get_forces()).max() < 1e-10


def test_bad_parameters_and_versions_are_refused(tmp_path):
    with pytest.raises(ValueError, match="rl < rc"):
        C2("Si", 4.0, 3.0).check()
    with pytest.raises(ValueError, match="centred on 0 or 180"):
        C5(("Si", "Si"), 0.0, 4.0, -30.0, 90.0).check()
    with pytest.raises(ValueError, match="core must be one of"):
        C2("Si", 0.0, 4.0, "p5").check()
    ds = compact_set()
    pot = random_potential(ds, [mixed_sic(3)], seed=1)
    text = pf.dumps(pot)
    assert text.startswith("nnp-potential 5\n")
    bad = {
        "needs format version 5": text.replace("nnp-potential 5", "nnp-potential 4", 1),
        "core function": text.replace(" p3a\n", " p3b\n", 1),
        "no inner radius": text.replace("cutoff_function cos", "cutoff_function tanh3 alpha 0.5", 1),
        "0 <= alpha < 1": text.replace("cutoff_function cos", "cutoff_function cos alpha 1", 1),
        "unknown cutoff function": text.replace("cutoff_function cos", "cutoff_function poly5", 1),
    }
    for message, t in bad.items():
        with pytest.raises(pf.PotentialFileError, match=message):
            pf.loads(t)
    plain = DescriptorSet(("Si",), {"Si": (G2("Si", 0.1, 0.0, 4.0),)}, "poly2", "half")
    v5 = pf.dumps(random_potential(plain, [rattled_si()], seed=0))
    assert v5.startswith("nnp-potential 5\n") and "cutoff_function poly2\n" in v5
    with pytest.raises(pf.PotentialFileError, match="must be written as version 1"):
        pf.loads(v5.replace("cutoff_function poly2", "cutoff_function cos", 1))
