"""Committees: several potential files evaluated together, and their deviation.

* NNPCalculator with several files: each member's energy and forces equal a
  single-file NNPCalculator's, and the deviations equal DeePMD-kit's model_devi
  conventions computed here in numpy from those single-member results.
* Members with identical descriptors share one descriptor pass; a member with
  other descriptors still gives its own numbers.
* pair_style nnp with `pair_coeff * * A.nnp B.nnp C.nnp Si`: `compute pair nnp`
  (entries 3-9), `compute nnp/atom` and the `deviation FILE every N` file equal
  the calculator's; serial = `mpirun -np 2` (newton on and off); the Debian
  LAMMPS (29 Sep 2021) too.
* Bad input ends in one clear error.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from conftest import random_potential, rattled_si, si_cluster, test_descriptor, triclinic_si
from test_lammps_debian import debian_plugin  # noqa: F401 (a fixture)
from test_lammps_errors import RANKS, assert_one_error, run_lmp
import test_lammps_plugin as plugin_tests
from test_lammps_plugin import VENV_BIN, _subprocess_env, diamond, new_lammps, write_data

import test_lammps_debian as deb
from nnp import NNPCalculator
from nnp.calculator import DEVIATION_KEYS
from nnp.io import potential_file as pf

K = 3
# c_ID[3..9] of `compute ID all pair nnp`, in this order.
PAIR_VECTOR = {key: 3 + k for k, key in enumerate(DEVIATION_KEYS)}


@pytest.fixture(scope="module")
def members(tmp_path_factory) -> list[Path]:
    """Three random Si potentials with identical descriptors (as --ensemble writes)."""
    structures = [rattled_si((2, 2, 2), 0.1, 0), triclinic_si(1), si_cluster(2)]
    folder = tmp_path_factory.mktemp("committee")
    paths = []
    for k in range(K):
        path = folder / f"Si.{k}.nnp"
        pf.write(random_potential(test_descriptor(), structures, seed=20 + k), path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def other_descriptor(tmp_path_factory) -> Path:
    """A Si potential with other symmetry functions (a shorter cutoff)."""
    structures = [rattled_si((2, 2, 2), 0.1, 0), triclinic_si(1)]
    path = tmp_path_factory.mktemp("other") / "Si.other.nnp"
    pf.write(random_potential(test_descriptor(rc=3.9), structures, seed=7), path)
    return path


def model_devi(energies, forces, virials, n_atoms) -> dict:
    """DeePMD-kit's model_devi numbers (population std over members) from
    members' total energies (K,), forces (K, N, 3) and virials (K, 3, 3)."""
    eps = np.sqrt(np.mean(np.sum((forces - forces.mean(axis=0)) ** 2, axis=-1), axis=0))
    s_v = np.std(np.asarray(virials).reshape(len(virials), 9) / n_atoms, axis=0)
    return {
        "force_deviation": eps,
        "max_devi_f": eps.max(), "min_devi_f": eps.min(), "avg_devi_f": eps.mean(),
        "devi_e": np.std(np.asarray(energies) / n_atoms),
        "max_devi_v": s_v.max(), "min_devi_v": s_v.min(), "avg_devi_v": np.linalg.norm(s_v) / 3,
    }


def single_member_results(paths, atoms: Atoms) -> dict:
    energies, forces, virials, atom_energies = [], [], [], []
    for path in paths:
        a = atoms.copy()
        a.calc = NNPCalculator(path)
        energies.append(a.get_potential_energy())
        forces.append(a.get_forces())
        atom_energies.append(a.get_potential_energies())
        # W = −σV (ASE stress is −W/V), as the full 3 x 3 tensor.
        virials.append(-a.get_stress(voigt=False) * a.get_volume())
    return {"energies": np.array(energies), "forces": np.array(forces), "virials": np.array(virials),
            "atom_energies": np.array(atom_energies)}


# ----------------------------------------------------------------------------
# NNPCalculator


@pytest.mark.parametrize("drive", ["first", "mean"])
def test_calculator_equals_single_members(members, drive):
    atoms = triclinic_si(5)
    single = single_member_results(members, atoms)
    atoms.calc = NNPCalculator(members, committee=drive)
    energy, forces, stress = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
    r = atoms.calc.results
    np.testing.assert_allclose(r["member_energies"], single["energies"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(r["member_forces"], single["forces"], rtol=0, atol=1e-10)
    pick = (lambda a: a[0]) if drive == "first" else (lambda a: a.mean(axis=0))
    assert energy == pytest.approx(pick(single["energies"]), abs=1e-10)
    np.testing.assert_allclose(forces, pick(single["forces"]), rtol=0, atol=1e-10)
    np.testing.assert_allclose(stress, -pick(single["virials"]).ravel()[[0, 4, 8, 5, 2, 1]] / atoms.get_volume(),
                               rtol=0, atol=1e-10)
    expected = model_devi(single["energies"], single["forces"], single["virials"], len(atoms))
    for key, value in expected.items():
        np.testing.assert_allclose(r[key], value, rtol=0, atol=1e-10, err_msg=key)
    sigma = np.std(single["atom_energies"], axis=0)
    np.testing.assert_allclose(r["energy_deviation"], sigma, rtol=0, atol=1e-10)
    assert r["max_devi_f"] > 0.01  # distinct members: a test that can fail


def test_shared_and_separate_descriptor_passes(members, other_descriptor):
    shared = NNPCalculator(members)
    assert shared.committee.descriptor_passes(0, K) == 1
    assert shared.committee.descriptor_passes(0, 1) == 1
    paths = [members[0], other_descriptor, members[1]]
    mixed = NNPCalculator(paths)
    assert mixed.committee.descriptor_passes(0, 3) == 2
    atoms = rattled_si((2, 2, 2), 0.1, 3)
    single = single_member_results(paths, atoms)
    atoms.calc = mixed
    atoms.get_forces()
    np.testing.assert_allclose(mixed.results["member_forces"], single["forces"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(mixed.results["member_energies"], single["energies"], rtol=0, atol=1e-10)


def test_calculator_bad_committees(members, sic_potential, tmp_path):
    with pytest.raises(ValueError, match="same elements in the same order.*Si C.*Si"):
        NNPCalculator([members[0], sic_potential])
    with pytest.raises(ValueError, match="listed twice"):
        NNPCalculator([members[0], members[1], members[0]])
    with pytest.raises(FileNotFoundError, match="nowhere.nnp"):
        NNPCalculator([members[0], tmp_path / "nowhere.nnp"])
    with pytest.raises(ValueError, match="'median' is not a valid Drive"):
        NNPCalculator(members, committee="median")


def test_single_file_results_unchanged(members):
    """One file: no committee keys, the plain evaluation."""
    atoms = rattled_si((2, 2, 2), 0.1, 4)
    atoms.calc = NNPCalculator(members[0])
    atoms.get_forces()
    assert atoms.calc.committee is None
    assert "force_deviation" not in atoms.calc.results


# ----------------------------------------------------------------------------
# LAMMPS


@pytest.fixture(scope="module")
def si64(tmp_path_factory) -> tuple[Path, Atoms]:
    """A skewed, rattled 64-atom cell: LAMMPS data file and the same Atoms."""
    pos, length = diamond(2, 0.0, seed=2)
    lx, ly, lz, xy, xz, yz = length, 1.02 * length, 0.98 * length, 1.1, -0.7, 0.6
    h = np.array([[lx, 0, 0], [xy, ly, 0], [xz, yz, lz]])
    cart = (pos / length) @ h + np.random.default_rng(4).normal(0.0, 0.12, pos.shape)
    data = write_data(tmp_path_factory.mktemp("si64") / "si64.data", cart, (lx, ly, lz, xy, xz, yz))
    return data, Atoms("Si64", positions=cart, cell=h, pbc=True)


def committee_input(data: Path, files, *, keywords: str = "", newton: str = "on", run: str = "run 0",
                    before_run: str = "") -> str:
    names = " ".join(f'"{f}"' for f in files)
    thermo = " ".join(f"c_dev[{k}]" for k in range(1, 10))
    return f"""\
units metal
atom_style atomic
atom_modify map array
boundary p p p
newton {newton}
read_data "{data}"
pair_style nnp {keywords}
pair_coeff * * {names} Si
compute dev all pair nnp
compute dva all nnp/atom
thermo_style custom step pe {thermo}
{before_run}
{run}
"""


def collect(lmp) -> dict:
    """Thermo vector, forces and per-atom deviations by atom ID (collective)."""
    n = lmp.get_natoms()
    thermo = lmp.last_thermo()
    return {
        "pe": float(thermo["PotEng"]),
        "vector": np.array([thermo[f"c_dev[{k}]"] for k in range(1, 10)], float),
        "forces": np.array(lmp.gather_atoms("f", 1, 3), float).reshape(n, 3),
        "peratom": np.array(lmp.gather("c_dva", 1, 2), float).reshape(n, 2),
        "positions": np.array(lmp.gather_atoms("x", 1, 3), float).reshape(n, 3),
        "nprocs": lmp.extract_setting("world_size"),
    }


def run_lammps(text: str) -> dict:
    lmp = new_lammps()
    try:
        lmp.commands_string(text)
        return collect(lmp)
    finally:
        lmp.close()


def assert_matches_calculator(result: dict, atoms: Atoms, calc: NNPCalculator):
    atoms = atoms.copy()
    atoms.calc = calc
    assert result["pe"] == pytest.approx(atoms.get_potential_energy(), abs=1e-10)
    np.testing.assert_allclose(result["forces"], atoms.get_forces(), rtol=0, atol=1e-10)
    r = calc.results
    for key, index in PAIR_VECTOR.items():
        assert result["vector"][index - 1] == pytest.approx(r[key], abs=1e-10), key
    np.testing.assert_allclose(result["peratom"][:, 0], r["force_deviation"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(result["peratom"][:, 1], r["energy_deviation"], rtol=0, atol=1e-10)


@pytest.mark.parametrize("drive,newton", [("first", "on"), ("mean", "off")])
def test_lammps_equals_calculator(members, si64, drive, newton):
    data, atoms = si64
    result = run_lammps(committee_input(data, members, keywords=f"committee {drive}", newton=newton))
    assert_matches_calculator(result, atoms, NNPCalculator(members, committee=drive))
    assert result["vector"][0] >= 0  # today's entries are still there


def test_lammps_single_file_reports_no_deviation(members, si64):
    data, _ = si64
    text = committee_input(data, members[:1]).replace("compute dva all nnp/atom\n", "")
    lmp = new_lammps()
    try:
        lmp.commands_string(text)
        thermo = lmp.last_thermo()
    finally:
        lmp.close()
    assert [thermo[f"c_dev[{k}]"] for k in range(3, 10)] == [0.0] * 7


def read_model_devi(path: Path) -> tuple[list[str], np.ndarray]:
    lines = path.read_text().splitlines()
    return lines[0].lstrip("#").split(), np.array([[float(v) for v in line.split()] for line in lines[1:]])


def test_model_devi_file_during_md(members, si64, tmp_path):
    """`deviation FILE every 3` over 7 steps of NVE: lines at 0, 3, 6; the last
    one equals the calculator's deviations at LAMMPS's final positions."""
    data, atoms = si64
    devi = tmp_path / "model_devi.out"
    text = committee_input(
        data, members, keywords=f'deviation "{devi}" every 3', run="run 6",
        before_run="velocity all create 600 5 loop geom\nfix nve all nve\ntimestep 0.0005\nthermo 2",
    )
    result = run_lammps(text)
    header, rows = read_model_devi(devi)
    assert header == ["step", "max_devi_v", "min_devi_v", "avg_devi_v", "max_devi_f", "min_devi_f",
                      "avg_devi_f", "devi_e"]
    assert rows[:, 0].tolist() == [0, 3, 6]
    moved = atoms.copy()
    moved.positions = result["positions"]
    moved.calc = NNPCalculator(members)
    moved.get_forces()
    r = moved.calc.results
    expected = [r[k] for k in ("max_devi_v", "min_devi_v", "avg_devi_v", "max_devi_f", "min_devi_f",
                               "avg_devi_f", "devi_e")]
    np.testing.assert_allclose(rows[-1, 1:], expected, rtol=1e-9, atol=0)
    assert not np.allclose(rows[0, 1:], rows[-1, 1:])  # the atoms moved


# test_lammps_plugin's driver, collecting this module's results.
MPI_SCRIPT = plugin_tests.MPI_SCRIPT.replace("test_lammps_plugin", "test_committee_deviation")


@pytest.mark.mpi
@pytest.mark.parametrize("newton", ["on", "off"])
def test_mpi_two_ranks_match_serial(members, si64, tmp_path, newton):
    mpirun = VENV_BIN / "mpirun"
    if not mpirun.exists():
        pytest.skip(f"no mpirun in {VENV_BIN}")
    data, _ = si64
    devi = tmp_path / "devi_mpi.out"
    text = committee_input(data, members, keywords=f'deviation "{devi}"', newton=newton,
                           before_run="velocity all create 600 5 loop geom\nfix nve all nve", run="run 3")
    (tmp_path / "in.lmp").write_text(text)
    script = tmp_path / "run_mpi.py"
    script.write_text(MPI_SCRIPT.format(tests_dir=str(Path(__file__).resolve().parent)))
    out = subprocess.run(
        [str(mpirun), "-np", "2", sys.executable, str(script), str(tmp_path / "in.lmp"), str(tmp_path / "out.npz")],
        env=_subprocess_env(), capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    parallel = dict(np.load(tmp_path / "out.npz"))
    assert int(parallel["nprocs"]) == 2
    _, mpi_rows = read_model_devi(devi)
    serial = run_lammps(text.replace(str(devi), str(tmp_path / "devi_serial.out")))
    assert serial["nprocs"] == 1
    _, serial_rows = read_model_devi(tmp_path / "devi_serial.out")
    for key in ("vector", "forces", "peratom", "positions"):
        np.testing.assert_allclose(parallel[key], serial[key], rtol=0, atol=1e-10, err_msg=key)
    np.testing.assert_allclose(mpi_rows, serial_rows, rtol=1e-9, atol=0)
    assert len(serial_rows) == 4


# ----------------------------------------------------------------------------
# Bad input: one clear LAMMPS error


def _error_input(data: Path, files, keywords: str = "", elements: str = "Si", extra: str = "") -> str:
    names = " ".join(f'"{f}"' for f in files)
    return f"""\
units metal
atom_style atomic
read_data "{data}"
pair_style nnp {keywords}
pair_coeff * * {names} {elements}
{extra}
run 0
"""


@pytest.mark.parametrize("nprocs", RANKS)
@pytest.mark.parametrize("case", ["deviation_alone", "elements_differ", "listed_twice", "unknown_element",
                                  "compute_alone", "bad_committee", "every_zero"])
def test_bad_input(members, sic_potential, si64, tmp_path, nprocs, case):
    data, _ = si64
    inputs = {
        "deviation_alone": (_error_input(data, members[:1], "deviation devi.out"),
                            [r"'deviation devi.out' needs a committee"]),
        "elements_differ": (_error_input(data, [members[0], sic_potential]),
                            [r"same elements in the same order", "SiC_random.nnp has Si C"]),
        "listed_twice": (_error_input(data, [members[0], members[1], members[0]]),
                         [r"Si.0.nnp is listed twice in pair_coeff"]),
        "unknown_element": (_error_input(data, members[:2], elements="C"),
                            [r"element 'C' \(atom type 1\) is not in potential file", "Si.0.nnp"]),
        "compute_alone": (_error_input(data, members[:1], extra="compute d all nnp/atom\ndump 1 all custom 1 d.dump c_d[1]"),
                          [r"Compute nnp/atom needs a committee"]),
        "bad_committee": (_error_input(data, members, "committee median"),
                          [r"'committee' must be followed by 'first'.*'mean'.*got 'median'"]),
        "every_zero": (_error_input(data, members, "deviation d.out every 0"),
                       [r"'deviation FILE every N' needs N >= 1, got 0"]),
    }
    text, patterns = inputs[case]
    status, out = run_lmp(tmp_path, text, nprocs)
    assert_one_error(status, out, *patterns)


def test_identical_member_files_warn(members, si64, tmp_path):
    """A copy of a member is a distinct file, so only a warning."""
    data, _ = si64
    copy = tmp_path / "copy.nnp"
    copy.write_text(members[0].read_text())
    status, out = run_lmp(tmp_path, _error_input(data, [members[0], copy]), 1)
    assert status == 0, out[-3000:]
    assert "are identical" in out


# ----------------------------------------------------------------------------
# Debian's LAMMPS (29 Sep 2021): the pair style registered through LAMMPS's
# `python` command (no PLUGIN package there) brings compute nnp/atom along.


@pytest.mark.parametrize("nprocs", [1, pytest.param(2, marks=pytest.mark.mpi)])
def test_debian_lammps_committee(debian_plugin, members, si64, tmp_path, nprocs):
    data, atoms = si64
    register = deb._input(data, debian_plugin, "on").split("units metal")[0]
    text = register + committee_input(data, members, keywords='deviation devi.out') + "\n"
    text = text.replace("{run}", "")
    text = text.replace("run 0", "thermo_modify format float %.17g\n"
                        "dump d all custom 1 forces.dump id fx fy fz c_dva[1] c_dva[2]\n"
                        "dump_modify d format float %.17g sort id\nrun 0")
    energy, rows, stdout = deb._run_lmp(tmp_path, text, nprocs)
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["Step", "PotEng"])
    vector = np.array([float(v) for v in lines[header + 1].split()[2:]])
    result = {"pe": energy, "vector": vector, "forces": rows[:, 0:3], "peratom": rows[:, 3:5]}
    assert_matches_calculator(result, atoms, NNPCalculator(members))
    _, devi = read_model_devi(tmp_path / "devi.out")
    assert devi[:, 0].tolist() == [0]
