"""The optional ZBL repulsive core (docs/potential-format.md, `repulsion zbl`):
its value, forces/virial as derivatives, smoothness at the switch ends, the
file format (version 2) and agreement of the torch model, the C++ core and
LAMMPS (newton on and off) on structures with close pairs."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.data import chemical_symbols
from conftest import mixed_sic, random_potential, rattled_si, test_descriptor
from test_agreement import assert_agree, core_results, lammps_results, torch_results
from test_lammps_plugin import MPI_SCRIPT, VENV_BIN, _subprocess_env, lammps_input, ortho_box, run, write_data

from nnp import NNPCalculator, _core
from nnp.io import potential_file as pf

R_INNER, R_OUTER = 1.0, 2.2  # Å; the test descriptor's cutoff is 4.2 (3.5 for some functions)


def zbl_by_hand(z1: int, z2: int, r: float) -> float:
    a = 0.8854 * 0.529177 / (z1**0.23 + z2**0.23)
    x = r / a
    phi = (0.18175 * math.exp(-3.19980 * x) + 0.50986 * math.exp(-0.94229 * x)
           + 0.28022 * math.exp(-0.40290 * x) + 0.02817 * math.exp(-0.20162 * x))
    return 14.399645 * z1 * z2 / r * phi


def switch_by_hand(r: float, r_inner: float, r_outer: float) -> float:
    if r <= r_inner:
        return 1.0
    if r >= r_outer:
        return 0.0
    x = (r - r_inner) / (r_outer - r_inner)
    return 1.0 - (10 * x**3 - 15 * x**4 + 6 * x**5)


def close_pair_si(seed: int = 0) -> Atoms:
    """Rattled diamond with a few atoms moved close to a neighbour: pairs
    below r_inner and inside the switching region."""
    atoms = rattled_si((2, 2, 2), 0.05, seed)
    pos = atoms.positions
    rng = np.random.default_rng(seed)
    for k, target in zip(range(3), (0.85, 1.4, 1.9)):  # distances to the nearest neighbour
        i = 8 * k + 1
        d = atoms.get_distances(i, np.arange(len(atoms)), mic=True, vector=True)
        r = np.linalg.norm(d, axis=1)
        r[i] = np.inf
        j = int(np.argmin(r))
        # Move i along the bond so that |r_ij| = target (plus a small random tilt).
        u = -d[j] / r[j]
        pos[i] = pos[i] + (r[j] - target) * (-u) + 0.01 * rng.normal(size=3)
    atoms.positions = pos
    return atoms


@pytest.fixture(scope="module")
def si_repulsive(tmp_path_factory, si_structures):
    base = random_potential(test_descriptor(), si_structures)
    pot = dataclasses.replace(base, repulsion=[pf.Repulsion("Si", "Si", R_INNER, R_OUTER)])
    d = tmp_path_factory.mktemp("rep")
    pf.write(base, d / "plain.nnp")
    pf.write(pot, d / "rep.nnp")
    return d / "plain.nnp", d / "rep.nnp"


@pytest.fixture(scope="module")
def sic_repulsive(tmp_path_factory):
    desc = test_descriptor(elements=("Si", "C"))
    base = random_potential(desc, [mixed_sic(s) for s in range(3)], seed=3)
    pot = dataclasses.replace(base, repulsion=[pf.Repulsion("C", "Si", 0.9, 2.0), pf.Repulsion("Si", "Si", 1.1, 2.3)])
    path = tmp_path_factory.mktemp("rep") / "sic_rep.nnp"
    pf.write(pot, path)
    return path


def test_atomic_numbers_match_ase():
    # The core's periodic table (ZBL needs Z) is the only one nnp has.
    for z, sym in enumerate(chemical_symbols[1:119], 1):
        assert _core.atomic_number(sym) == z
    assert _core.atomic_number("X") == 0


@pytest.mark.parametrize("z1, z2, r", [(14, 14, 0.3), (14, 14, 1.5), (6, 14, 0.8), (1, 92, 2.5)])
def test_zbl_value_and_derivative(z1, z2, r):
    e, de = _core.zbl_energy(z1, z2, r)
    assert e == pytest.approx(zbl_by_hand(z1, z2, r), rel=1e-14)
    h = 1e-5 * r
    numeric = (zbl_by_hand(z1, z2, r + h) - zbl_by_hand(z1, z2, r - h)) / (2 * h)
    assert de == pytest.approx(numeric, rel=1e-8)


def dimer(r: float, symbols=("Si", "Si")) -> Atoms:
    return Atoms(symbols, positions=[[0, 0, 0], [r * 0.6, r * 0.8, 0.0]], pbc=False)


def test_dimer_energy_is_network_plus_switched_zbl(si_repulsive):
    plain, rep = (NNPCalculator(p) for p in si_repulsive)
    for r in (0.5, R_INNER, 1.3, 1.9, R_OUTER, 3.0):
        a = dimer(r)
        e_plain = plain.get_potential_energy(a)
        energies_plain = plain.get_property("energies", a).copy()
        e_rep = rep.get_potential_energy(a)
        expected = zbl_by_hand(14, 14, r) * switch_by_hand(r, R_INNER, R_OUTER)
        assert e_rep - e_plain == pytest.approx(expected, rel=1e-12, abs=1e-12)
        # Half of the pair to each atom.
        np.testing.assert_allclose(rep.get_property("energies", a) - energies_plain, [expected / 2] * 2,
                                   rtol=1e-12, atol=1e-12)
    assert zbl_by_hand(14, 14, 0.5) > 100  # a real wall: hundreds of eV at 0.5 Å


def test_switch_is_continuous_at_both_ends(si_repulsive):
    """E, dE/dr and (by finite differences of the force) d²E/dr² of the core
    are continuous at r_inner and r_outer."""
    plain, rep = (NNPCalculator(p) for p in si_repulsive)

    def core_part(r):
        a = dimer(r)
        e = rep.get_potential_energy(a) - plain.get_potential_energy(a)
        f = rep.get_forces(a)[1] - plain.get_forces(a)[1]
        return e, float(f @ np.array([0.6, 0.8, 0.0]))  # −dE/dr

    for r0 in (R_INNER, R_OUTER):
        eps = 1e-7
        (e_lo, f_lo), (e_hi, f_hi) = core_part(r0 - eps), core_part(r0 + eps)
        scale = zbl_by_hand(14, 14, r0) + 1.0
        assert abs(e_hi - e_lo) < 1e-5 * scale
        assert abs(f_hi - f_lo) < 1e-4 * scale
        # Second derivative from one-sided differences of the force.
        h = 1e-4
        k_lo = (core_part(r0 - eps)[1] - core_part(r0 - h)[1]) / (h - eps)
        k_hi = (core_part(r0 + h)[1] - core_part(r0 + eps)[1]) / (h - eps)
        assert abs(k_hi - k_lo) < 1e-2 * scale
    assert core_part(R_OUTER + 1e-9)[0] == 0.0


def test_forces_and_virial_are_derivatives(si_repulsive):
    _, rep = si_repulsive
    atoms = close_pair_si(1)
    atoms.calc = NNPCalculator(rep)
    dist = atoms.get_all_distances(mic=True)[np.triu_indices(len(atoms), 1)]
    assert ((dist < R_INNER).sum() >= 1) and (((dist > R_INNER) & (dist < R_OUTER)).sum() >= 2)
    e0 = atoms.get_potential_energy()
    f = atoms.get_forces()
    h = 1e-5
    for i in (1, 9, 17, 0, 5):  # the moved atoms and two others
        for c in range(3):
            p = atoms.copy()
            p.calc = NNPCalculator(rep)
            p.positions[i, c] += h
            ep = p.get_potential_energy()
            p.positions[i, c] -= 2 * h
            em = p.get_potential_energy()
            assert -(ep - em) / (2 * h) == pytest.approx(f[i, c], abs=1e-5 * max(1.0, abs(f[i, c])))
    # Stress: σ = (1/V) ∂E/∂ε (symmetric strain).
    stress = atoms.get_stress(voigt=False)
    V = atoms.get_volume()
    for a, b in ((0, 0), (1, 1), (2, 2), (0, 1), (1, 2), (0, 2)):
        de = []
        for sgn in (1, -1):
            eps = np.eye(3)
            eps[a, b] += sgn * h / (1 if a == b else 2)
            eps[b, a] += 0 if a == b else sgn * h / 2
            p = atoms.copy()
            p.set_cell(atoms.cell.array @ eps, scale_atoms=True)
            p.calc = NNPCalculator(rep)
            de.append(p.get_potential_energy())
        num = (de[0] - de[1]) / (2 * h) / V
        assert num == pytest.approx(stress[a, b], abs=1e-6 * max(1.0, np.abs(stress).max()))
    assert e0 > NNPCalculator(si_repulsive[0]).get_potential_energy(atoms) + 10  # the core is on


def assert_close_abs(a: dict, b: dict, label: str, tol: float = 1e-10) -> None:
    """Absolute agreement as well: relative tests normalise by the large core forces."""
    for key in ("energy", "forces", "stress"):
        diff = np.abs(np.asarray(a[key]) - np.asarray(b[key])).max()
        assert diff < tol, f"{label}: {key} differs by {diff:.2e}"


@pytest.mark.parametrize("seed", [0, 1])
def test_three_layers_agree_with_close_pairs(si_repulsive, seed):
    _, rep = si_repulsive
    atoms = close_pair_si(seed)
    # The LAMMPS helper needs the lower-triangular cell of a cubic box: it is.
    assert np.allclose(atoms.cell.array, np.diag(np.diag(atoms.cell.array)))
    core = core_results(rep, atoms)
    plain = core_results(si_repulsive[0], atoms)
    assert abs(core["energy"] - plain["energy"]) > 10  # the pairs are inside the core
    for label, result in (
        ("torch vs core", torch_results(rep, atoms)),
        ("LAMMPS vs core", lammps_results(rep, atoms, ["Si"])),
        ("LAMMPS newton off vs core", lammps_results(rep, atoms, ["Si"], newton="off")),
    ):
        assert_agree(result, core, label)
        assert_close_abs(result, core, label)


@pytest.mark.mpi
@pytest.mark.parametrize("newton", ["on", "off"])
def test_lammps_mpi_and_per_atom_with_close_pairs(tmp_path, si_repulsive, newton):
    """Two MPI ranks = serial = the core, per-atom energies included (the
    close pairs straddle the subdomain boundary or not, depending on seed)."""
    mpirun = VENV_BIN / "mpirun"
    if not mpirun.exists():
        pytest.skip(f"no mpirun in {VENV_BIN}")
    _, rep = si_repulsive
    atoms = close_pair_si(0)
    atoms.wrap()
    data = write_data(tmp_path / "close.data", atoms.positions, ortho_box(atoms.cell[0, 0]))
    text = lammps_input(data, newton=newton, potential=rep)
    (tmp_path / "in.lmp").write_text(text)
    script = tmp_path / "run_mpi.py"
    script.write_text(MPI_SCRIPT.format(tests_dir=str(Path(__file__).resolve().parent)))
    out = subprocess.run(
        [str(mpirun), "-np", "2", sys.executable, str(script), str(tmp_path / "in.lmp"), str(tmp_path / "out.npz")],
        env=_subprocess_env(), capture_output=True, text=True, timeout=180,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    parallel = dict(np.load(tmp_path / "out.npz"))
    assert int(parallel["nprocs"]) == 2
    serial = run(text)
    calc = NNPCalculator(rep)
    atoms.calc = calc
    core_energies = calc.get_property("energies", atoms)
    core_forces = atoms.get_forces()
    for result in (serial, parallel):
        assert float(result["energy"]) == pytest.approx(atoms.get_potential_energy(), abs=1e-10)
        np.testing.assert_allclose(result["forces"], core_forces, rtol=0, atol=1e-10)
        np.testing.assert_allclose(result["pe_atom"], core_energies, rtol=0, atol=1e-10)
        assert float(result["sum_pe_atom"]) == pytest.approx(float(result["energy"]), abs=1e-9)
        # Per-atom virials sum to the global virial (stress/atom sum = −P·V).
        np.testing.assert_allclose(result["sum_stress_atom"], -result["pressure"] * result["volume"],
                                   rtol=1e-9, atol=1e-6)


def test_three_layers_agree_two_elements(sic_repulsive):
    atoms = close_pair_si(2)
    rng = np.random.default_rng(4)
    atoms.set_chemical_symbols(rng.choice(["Si", "C"], len(atoms)).tolist())
    core = core_results(sic_repulsive, atoms)
    assert_agree(torch_results(sic_repulsive, atoms), core, "torch vs core")
    assert_agree(lammps_results(sic_repulsive, atoms, ["C", "Si"]), core, "LAMMPS vs core")
    assert_agree(lammps_results(sic_repulsive, atoms, ["Si", "C"], newton="off"), core, "LAMMPS newton off vs core")


def test_round_trip_and_versions(si_repulsive, sic_repulsive):
    plain, rep = si_repulsive
    assert plain.read_text().startswith("nnp-potential 1\n")
    assert "repulsion" not in plain.read_text()
    text = rep.read_text()
    assert text.startswith("nnp-potential 2\n")
    data = pf.read(rep)
    assert data.repulsion == [pf.Repulsion("Si", "Si", R_INNER, R_OUTER)]
    assert pf.dumps(data) == text  # bit for bit
    sic = pf.read(sic_repulsive)
    assert pf.dumps(sic) == sic_repulsive.read_text()
    assert _core.Potential(str(sic_repulsive)).repulsion == [("C", "Si", 0.9, 2.0), ("Si", "Si", 1.1, 2.3)]
    assert _core.Potential(str(plain)).repulsion == []
    # The torch model carries the core through.
    from nnp.model.network import NNPModel

    assert pf.dumps(NNPModel.from_potential_data(sic).to_potential_data(sic.comments)) == pf.dumps(sic)


def _both_reject(text: str, tmp_path, match: str, line: int):
    path = tmp_path / "bad.nnp"
    path.write_text(text)
    with pytest.raises(pf.PotentialFileError, match=match) as py_err:
        pf.read(path)
    assert f"{path}:{line}:" in str(py_err.value)
    with pytest.raises(ValueError, match=match) as cpp_err:
        _core.Potential(str(path))
    assert f"{path}:{line}:" in str(cpp_err.value)


def _replace_line(text: str, old_start: str, new: str) -> tuple[str, int]:
    lines = text.split("\n")
    k = next(i for i, l in enumerate(lines) if l.startswith(old_start))
    lines[k] = new
    return "\n".join(lines), k + 1


@pytest.mark.parametrize(
    "line, match",
    [
        ("repulsion zbl Si Si 2.2 1.0", "need 0 < r_inner < r_outer"),
        ("repulsion zbl Si Si 1.5 1.5", "need 0 < r_inner < r_outer"),
        ("repulsion zbl Si Si 0 1.5", "need 0 < r_inner < r_outer"),
        ("repulsion zbl Si Ge 1.0 2.0", "element 'Ge' is not in the elements line"),
        ("repulsion zbl Si Si 1.0 4.5", "r_outer 4.5 exceeds the cutoff 4.2"),
        ("repulsion zbl Si Si 1.0 nan", "r_outer must be finite"),
        ("repulsion zbl Si 1.0 2.0", "expected 'repulsion zbl element element r_inner r_outer'"),
        ("repulsion lj Si Si 1.0 2.0", "expected 'repulsion zbl element element r_inner r_outer'"),
    ],
)
def test_file_errors(si_repulsive, tmp_path, line, match):
    text, k = _replace_line(si_repulsive[1].read_text(), "repulsion", line)
    _both_reject(text, tmp_path, match, k)


def test_file_errors_version_and_duplicates(si_repulsive, tmp_path):
    plain, rep = (p.read_text() for p in si_repulsive)
    # A core in a version-1 file.
    text, k = _replace_line(plain, "end", "repulsion zbl Si Si 1.0 2.0\nend")
    _both_reject(text, tmp_path, "needs format version 2", k)
    # Version 2 without a core: it must be written as version 1.
    _both_reject(plain.replace("nnp-potential 1", "nnp-potential 2", 1), tmp_path, "must be written as version 1", 1)
    # The same pair twice.
    text, k = _replace_line(rep, "end", "repulsion zbl Si Si 0.5 1.0\nend")
    _both_reject(text, tmp_path, "second 'repulsion' line for Si Si", k)
    _both_reject(plain.replace("nnp-potential 1", "nnp-potential 3", 1), tmp_path,
                 "without 'quadratic' sections must be written as version 1", 1)
    _both_reject(rep.replace("nnp-potential 2", "nnp-potential 3", 1), tmp_path,
                 "without 'quadratic' sections must be written as version 2", 1)
    _both_reject(plain.replace("nnp-potential 1", "nnp-potential 4", 1), tmp_path,
                 "without weighted symmetry functions must be written as version 1", 1)
    _both_reject(plain.replace("nnp-potential 1", "nnp-potential 7", 1), tmp_path,
                 "without 'gp_variance' sections must be written as version 1", 1)
    # A version beyond any this reader knows (not the next one: that will exist one day).
    _both_reject(plain.replace("nnp-potential 1", "nnp-potential 999", 1), tmp_path, "unsupported format version", 1)


def test_element_that_is_not_a_chemical_symbol(tmp_path, si_structures):
    desc = test_descriptor()
    pot = random_potential(desc, si_structures)
    text = pf.dumps(pot).replace(" Si", " Qx")  # every symbol: elements line, sections, functions
    text = text.replace("nnp-potential 1", "nnp-potential 2", 1).replace("\nend\n", "\nrepulsion zbl Qx Qx 1 2\nend\n")
    k = text.split("\n").index("repulsion zbl Qx Qx 1 2") + 1
    _both_reject(text, tmp_path, "'Qx' is not a chemical symbol", k)


def test_potential_data_checks(si_structures):
    pot = random_potential(test_descriptor(), si_structures)
    for bad, match in [
        ([pf.Repulsion("Si", "Si", 1.0, 5.0)], "exceeds the cutoff"),
        ([pf.Repulsion("Si", "Si", 2.0, 1.0)], "need 0 < r_inner < r_outer"),
        ([pf.Repulsion("Si", "C", 1.0, 2.0)], "not in the elements line"),
        ([pf.Repulsion("Si", "Si", 1.0, 2.0), pf.Repulsion("Si", "Si", 0.5, 2.0)], "second repulsion"),
    ]:
        with pytest.raises(ValueError, match=match):
            pf.dumps(dataclasses.replace(pot, repulsion=bad))


def test_the_core_is_skipped_only_for_batches_beyond_it(si_repulsive):
    """A batch knows its shortest pair distance; a model skips its core for
    batches where no pair is inside it (every training batch), and only
    there: a close-pair structure keeps its core in a batch with others."""
    from nnp.data import FeaturizedDataset
    from nnp.model.network import NNPModel

    plain, rep = (NNPModel.from_potential_data(pf.read(p)) for p in si_repulsive)
    close, crystal = close_pair_si(0), rattled_si((2, 2, 2), 0.05, 3)
    crystal.set_cell(crystal.cell * 1.1, scale_atoms=True)  # every pair beyond this test core's 2.2 Å
    data = FeaturizedDataset.from_structures([close, crystal], rep.descriptors)
    cutoff = rep.descriptors.cutoff
    for idx, atoms in ((0, close), (1, crystal)):
        d = atoms.get_all_distances(mic=True)
        shortest = d[(d > 0) & (d < cutoff)].min()
        assert float(data.collate([idx]).shortest_pair) == pytest.approx(shortest, rel=1e-12)
    assert float(data.collate([1]).shortest_pair) > R_OUTER > float(data.collate([0]).shortest_pair)
    def energies(model, idx):
        return model(data.collate(idx), forces=True)["energy"].detach().numpy()

    both, no_core = energies(rep, [0, 1]), energies(plain, [0, 1])
    np.testing.assert_allclose(both, [energies(rep, [0])[0], energies(rep, [1])[0]], rtol=1e-13)
    assert abs(both[0] - no_core[0]) > 10  # the core acts in the mixed batch
    assert energies(rep, [1])[0] == no_core[1]  # and is skipped, exactly, without a close pair
