"""LAMMPS conventions of pair style ``nnp``: NULL types, pair_style hybrid and
hybrid/overlay, $LAMMPS_POTENTIALS, and the warning for a ZBL core counted twice.

Reference values come from ``NNPCalculator`` on the type-1 subsystem (the
atoms nnp handles) and from LAMMPS's own ``lj/cut`` run alone.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

import nnp.lammps as nnp_lammps
from nnp import NNPCalculator
from test_lammps_plugin import (
    LAMMPS_ARGS,
    MPI_SCRIPT,
    TINY,
    VENV_BIN,
    _subprocess_env,
    diamond,
    ortho_box,
    run,
    write_data,
)

LJ = "lj/cut 4.0"


def _two_type_system(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray, float]:
    """64 displaced diamond sites, every third one of type 2 (not nnp's)."""
    pos, length = diamond(2, 0.1, seed=11)
    types = np.where(np.arange(len(pos)) % 3 == 0, 2, 1)
    data = write_data(tmp_path / "two.data", pos, ortho_box(length), types=types, ntypes=2)
    return data, pos, types, length


def _input(data: Path, pair: str, extra: str = "") -> str:
    """Step-0 evaluation with the collect() computes of test_lammps_plugin."""
    return textwrap.dedent(
        f"""\
        units metal
        atom_style atomic
        atom_modify map array
        boundary p p p
        read_data "{data}"
        """
    ) + textwrap.dedent(pair) + textwrap.dedent(
        """\
        compute peatom all pe/atom
        compute satom all stress/atom NULL virial
        compute sumpe all reduce sum c_peatom
        compute ssum all reduce sum c_satom[1] c_satom[2] c_satom[3] &
                                    c_satom[4] c_satom[5] c_satom[6]
        compute vir all pressure NULL virial
        thermo_style custom step pe vol c_sumpe c_vir[1] c_vir[2] c_vir[3] c_vir[4] c_vir[5] &
                            c_vir[6] c_ssum[1] c_ssum[2] c_ssum[3] c_ssum[4] c_ssum[5] c_ssum[6]
        thermo_modify norm no
        """
    ) + extra + "\nrun 0\n"


def _subsystem(pos, types, length) -> tuple[float, np.ndarray]:
    """Energy and forces of NNPCalculator on the type-1 atoms alone."""
    atoms = Atoms("Si" * int(np.sum(types == 1)), positions=pos[types == 1],
                  cell=np.eye(3) * length, pbc=True)
    atoms.calc = NNPCalculator(TINY)
    return atoms.get_potential_energy(), atoms.get_forces()


HYBRID = f"""\
pair_style hybrid nnp {LJ}
pair_coeff * * nnp "{TINY}" Si NULL
pair_coeff 1 2 lj/cut 0.0 2.0
pair_coeff 2 2 lj/cut 0.0 2.0
"""


def test_hybrid_nnp_only_among_type_1(tmp_path):
    """lj/cut (switched off: epsilon 0) on every pair with a type-2 atom: the
    forces are nnp's among the type-1 atoms alone, type-2 atoms feel none."""
    data, pos, types, length = _two_type_system(tmp_path)
    r = run(_input(data, HYBRID))
    energy, forces = _subsystem(pos, types, length)
    assert r["energy"] == pytest.approx(energy, rel=0, abs=1e-10)
    np.testing.assert_allclose(r["forces"][types == 1], forces, rtol=0, atol=1e-10)
    assert np.all(r["forces"][types == 2] == 0.0)
    assert np.all(r["pe_atom"][types == 2] == 0.0)


def test_hybrid_overlay_adds_lj(tmp_path):
    """hybrid/overlay: nnp on type 1 plus lj/cut on every pair equals the
    calculator's type-1 subsystem plus LAMMPS's lj/cut alone."""
    data, pos, types, length = _two_type_system(tmp_path)
    overlay = f"""\
    pair_style hybrid/overlay nnp {LJ}
    pair_coeff * * nnp "{TINY}" Si NULL
    pair_coeff * * lj/cut 0.01 2.0
    """
    lj_only = f"""\
    pair_style {LJ}
    pair_coeff * * 0.01 2.0
    """
    both = run(_input(data, overlay))
    lj = run(_input(data, lj_only))
    energy, forces = _subsystem(pos, types, length)
    assert abs(lj["energy"]) > 1e-3  # lj/cut does contribute
    assert both["energy"] == pytest.approx(energy + lj["energy"], rel=0, abs=1e-10)
    expected = lj["forces"].copy()
    expected[types == 1] += forces
    np.testing.assert_allclose(both["forces"], expected, rtol=0, atol=1e-10)


def test_null_without_hybrid_is_an_error(tmp_path):
    data, _, _, _ = _two_type_system(tmp_path)
    lmp = nnp_lammps.lammps(cmdargs=LAMMPS_ARGS)
    try:
        with pytest.raises(Exception, match="mapped to NULL"):
            lmp.commands_string(_input(data, f'pair_style nnp\npair_coeff * * "{TINY}" Si NULL\n'))
    finally:
        lmp.close()


def test_lammps_potentials_lookup(tmp_path, monkeypatch):
    """A file name not found as given is looked up in $LAMMPS_POTENTIALS."""
    data, pos, types, length = _two_type_system(tmp_path)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("LAMMPS_POTENTIALS", str(TINY.parent))
    r = run(_input(data, HYBRID.replace(f'"{TINY}"', TINY.name)))
    energy, _ = _subsystem(pos, types, length)
    assert r["energy"] == pytest.approx(energy, rel=0, abs=1e-10)


def _with_zbl_core(path: Path) -> Path:
    text = TINY.read_text().replace("nnp-potential 1", "nnp-potential 2", 1)
    body = text[: text.rindex("end")]
    path.write_text(body + "repulsion zbl Si Si 0.5 1.5\nend\n")
    return path


def _warnings(tmp_path: Path, pot: Path, pair: str) -> list[str]:
    pos, length = diamond(2, 0.1, seed=3)
    data = write_data(tmp_path / "si.data", pos, ortho_box(length))
    log = tmp_path / "log.lammps"
    lmp = nnp_lammps.lammps(cmdargs=["-log", str(log), "-screen", "none", "-nocite"])
    try:
        lmp.commands_string(_input(data, pair.format(pot=pot), extra="run 0\n"))
    finally:
        lmp.close()
    return [line for line in log.read_text().splitlines() if "counted twice" in line]


def test_double_zbl_core_warns_once(tmp_path):
    pot = _with_zbl_core(tmp_path / "core.nnp")
    overlay = 'pair_style hybrid/overlay nnp zbl 0.5 1.5\npair_coeff * * nnp "{pot}" Si\n' \
              "pair_coeff 1 1 zbl 14 14\n"
    warnings = _warnings(tmp_path, pot, overlay)
    assert len(warnings) == 1, warnings  # two runs, one warning
    assert "ZBL" in warnings[0]
    # No warning without the file's core, nor without zbl.
    assert _warnings(tmp_path, TINY, overlay) == []
    assert _warnings(tmp_path, pot, 'pair_style nnp\npair_coeff * * "{pot}" Si\n') == []


@pytest.mark.mpi
@pytest.mark.parametrize("newton", ["on", "off"])
def test_hybrid_mpi_two_ranks_match_serial(tmp_path, newton):
    mpirun = VENV_BIN / "mpirun"
    if not mpirun.exists():
        pytest.skip(f"no mpirun in {VENV_BIN}")
    data, _, _, _ = _two_type_system(tmp_path)
    text = f"newton {newton}\n" + _input(data, HYBRID.replace("0.0 2.0", "0.01 2.0"))
    (tmp_path / "in.lmp").write_text(text)
    script = tmp_path / "run_mpi.py"
    script.write_text(MPI_SCRIPT.format(tests_dir=str(Path(__file__).resolve().parent)))
    out = subprocess.run(
        [str(mpirun), "-np", "2", sys.executable, str(script), str(tmp_path / "in.lmp"),
         str(tmp_path / "out.npz")],
        env=_subprocess_env(), capture_output=True, text=True, timeout=180,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    parallel = dict(np.load(tmp_path / "out.npz"))
    assert int(parallel["nprocs"]) == 2
    serial = run(text)
    assert float(parallel["energy"]) == pytest.approx(serial["energy"], rel=0, abs=1e-10)
    np.testing.assert_allclose(parallel["forces"], serial["forces"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(parallel["pe_atom"], serial["pe_atom"], rtol=0, atol=1e-10)
