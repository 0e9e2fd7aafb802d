"""One fixture, three layers: the torch model (fed by the tests-only torch
descriptor reference), the C++ core (nnp._core through NNPCalculator) and
LAMMPS (`pair_style nnp`) give the same energies, forces and stress."""

from __future__ import annotations

import numpy as np
import pytest
import reference_descriptors as reference
from ase import Atoms
from conftest import mixed_sic, rattled_si

from nnp import NNPCalculator
from nnp.io import potential_file as pf
from nnp.model.network import NNPModel

RTOL = 1e-10


def lammps_cell_structure(seed: int, symbols=None) -> Atoms:
    """A rattled, sheared cell whose vectors are already in LAMMPS's
    lower-triangular form (a ∥ x, b in the xy plane), so no rotation is needed."""
    atoms = rattled_si((2, 2, 2), 0.12, seed)
    L = atoms.cell.lengths()[0]
    atoms.set_cell([[L, 0, 0], [0.21 * L, 0.97 * L, 0], [-0.13 * L, 0.17 * L, 1.04 * L]], scale_atoms=True)
    if symbols is not None:
        atoms.set_chemical_symbols(symbols(len(atoms)))
    return atoms


def lammps_results(potential, atoms: Atoms, elements: list[str], newton: str = "on") -> dict:
    import nnp.lammps

    lmp = nnp.lammps.lammps(cmdargs=["-log", "none", "-screen", "none"])
    try:
        (ax, _, _), (bx, by, _), (cx, cy, cz) = atoms.cell.array.tolist()
        types = np.array([elements.index(s) + 1 for s in atoms.get_chemical_symbols()], dtype=np.int32)
        lmp.commands_string(
            f"""
            units metal
            atom_style atomic
            atom_modify map array
            newton {newton}
            boundary p p p
            region box prism 0 {ax!r} 0 {by!r} 0 {cz!r} {bx!r} {cx!r} {cy!r}
            create_box {len(elements)} box
            """
        )
        n = len(atoms)
        lmp.create_atoms(n, list(range(1, n + 1)), types.tolist(), atoms.positions.ravel().tolist())
        lmp.commands_string(
            "\n".join(f"mass {t + 1} 28.0855" for t in range(len(elements)))
            + f"\npair_style nnp\npair_coeff * * {potential} {' '.join(elements)}\n"
            "compute pe all pe/atom\nthermo_style custom step pe pxx pyy pzz pxy pxz pyz\nrun 0"
        )
        nlocal = lmp.extract_global("nlocal")
        order = np.argsort(lmp.numpy.extract_atom("id")[:nlocal])
        forces = np.array(lmp.numpy.extract_atom("f")[:nlocal])[order]
        nktv2p = lmp.extract_global("nktv2p")
        p = np.array([lmp.get_thermo(k) for k in ("pxx", "pyy", "pzz", "pyz", "pxz", "pxy")])
        return {
            "energy": lmp.get_thermo("pe"),
            "forces": forces,
            "stress": -p / nktv2p,  # ASE sign and Voigt order, eV/Å³ (no velocities: pure virial)
        }
    finally:
        lmp.close()


def torch_results(potential, atoms: Atoms) -> dict:
    model = NNPModel.from_potential_data(pf.read(potential))
    (r,) = model.predict([atoms], featurize=lambda a: reference.featurize(model.descriptors, a))
    s = r["stress"]
    return {
        "energy": r["energy"],
        "forces": r["forces"],
        "stress": np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]]),
    }


def core_results(potential, atoms: Atoms) -> dict:
    atoms = atoms.copy()
    atoms.calc = NNPCalculator(potential)
    return {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces(), "stress": atoms.get_stress()}


def assert_agree(a: dict, b: dict, label: str) -> dict:
    """Relative differences (normalised by the largest value of each quantity)."""
    diffs = {}
    for key in ("energy", "forces", "stress"):
        x, y = np.asarray(a[key]), np.asarray(b[key])
        scale = np.abs(y).max()
        assert scale > 0, key
        diffs[key] = np.abs(x - y).max() / scale
        assert diffs[key] < RTOL, f"{label}: {key} differs by {diffs[key]:.2e} (relative)"
    return diffs


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("which", ["network", "network + quadratic term"])
def test_three_layers_agree_single_element(si_potential, si_quadratic_potential, seed, which):
    potential = si_potential if which == "network" else si_quadratic_potential
    atoms = lammps_cell_structure(seed)
    core = core_results(potential, atoms)
    assert_agree(torch_results(potential, atoms), core, "torch vs core")
    assert_agree(lammps_results(potential, atoms, ["Si"]), core, "LAMMPS vs core")
    assert_agree(lammps_results(potential, atoms, ["Si"], newton="off"), core, "LAMMPS newton off vs core")


def test_three_layers_agree_two_elements(sic_potential):
    rng = np.random.default_rng(5)
    atoms = lammps_cell_structure(2, symbols=lambda n: rng.choice(["Si", "C"], n).tolist())
    core = core_results(sic_potential, atoms)
    assert_agree(torch_results(sic_potential, atoms), core, "torch vs core")
    # Types in a different order than the file's elements: the map must follow.
    assert_agree(lammps_results(sic_potential, atoms, ["C", "Si"]), core, "LAMMPS vs core")


def test_torch_and_core_agree_on_open_and_small_cells(sic_potential):
    cluster = mixed_sic(9)[:20]
    cluster.pbc = False
    for atoms in (cluster, rattled_si((1, 1, 1), 0.2, 3)):  # open; cell smaller than 2 r_c
        atoms.calc = NNPCalculator(sic_potential)
        e, f = atoms.get_potential_energy(), atoms.get_forces()
        ref = torch_results(sic_potential, atoms)
        assert abs(ref["energy"] - e) < RTOL * abs(e)
        np.testing.assert_allclose(ref["forces"], f, atol=RTOL * np.abs(f).max())
