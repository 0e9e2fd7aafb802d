"""Extrapolation is visible: atoms whose descriptors leave the training range
[min, max] of the potential file are counted, identically by
nnp.NNPCalculator (results["extrapolating_atoms"]) and by pair_style nnp
(`compute pair nnp`, `extract_pair("extrapolating_atoms")`), and reported
according to the pair_style keywords:

    extrapolation warn [every N]   (default, N = 1000) rank 0 warns, rate-limited
    extrapolation error N          stop when more than N atoms extrapolate
    extrapolation ignore           count only
"""

from __future__ import annotations

import re

import pytest
from ase import Atoms
from test_lammps_errors import RANKS, assert_one_error, error_lines, run_lmp, si_input, thermo_rows
from test_lammps_plugin import A_SI, TINY, diamond, ortho_box, write_data

import nnp.lammps as nnp_lammps
from nnp import NNPCalculator

THERMO = "compute p all pair nnp\nthermo_style custom step pe c_p[1] c_p[2]\nthermo_modify norm no\nthermo 1"


def calculator_count(positions, length) -> int:
    atoms = Atoms("Si" * len(positions), positions=positions, cell=[length] * 3, pbc=True)
    atoms.calc = NNPCalculator(TINY)
    atoms.get_potential_energy()
    return int(atoms.calc.results["extrapolating_atoms"])


@pytest.fixture(scope="module")
def structures(tmp_path_factory):
    """64 diamond Si atoms: as trained (no extrapolation), with atom 5 pushed
    1.5 A off its site (it and some neighbours extrapolate), and compressed by
    6 % (every atom extrapolates)."""
    workdir = tmp_path_factory.mktemp("extrapolation")
    pos, length = diamond(2, 0.03, seed=41)
    pushed = pos.copy()
    pushed[4] += [1.5, 0.0, 0.0]
    out = {}
    for name, p, L in (("inside", pos, length), ("pushed", pushed, length),
                       ("compressed", pos * 0.94, length * 0.94)):
        out[name] = (write_data(workdir / f"{name}.data", p, ortho_box(L)), calculator_count(p, L))
    return out


def test_calculator_counts(structures):
    assert structures["inside"][1] == 0
    assert 0 < structures["pushed"][1] < 64
    assert structures["compressed"][1] == 64


def lammps_counts(data, style="nnp"):
    """(c_p[1], c_p[2], extract_pair("extrapolating_atoms")) after `run 0`."""
    lmp = nnp_lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    try:
        lmp.commands_string(si_input(data, style=style, after=THERMO))
        thermo = lmp.last_thermo()
        return thermo["c_p[1]"], thermo["c_p[2]"], lmp.extract_pair("extrapolating_atoms")
    finally:
        lmp.close()


@pytest.mark.parametrize("name", ["inside", "pushed", "compressed"])
def test_lammps_count_matches_calculator(structures, name):
    data, n = structures[name]
    assert lammps_counts(data) == (n, n, n)  # c_p[2] is cumulative: tested below


def test_ignore_still_counts(structures):
    data, n = structures["pushed"]
    assert lammps_counts(data, style="nnp extrapolation ignore") == (n, n, n)


@pytest.mark.parametrize("nprocs", RANKS)
def test_count_summed_over_ranks_and_warned_once(tmp_path, structures, nprocs):
    data, n = structures["pushed"]
    status, out = run_lmp(tmp_path, si_input(data, before="processors 2 1 1" if nprocs == 2 else "",
                                             after=THERMO, run="run 3"), nprocs)
    assert status == 0, out[-3000:]
    rows = [row.split() for row in thermo_rows(out)]
    assert [int(float(r[2])) for r in rows] == [n] * 4
    assert [int(float(r[3])) for r in rows] == [n, 2 * n, 3 * n, 4 * n]
    warnings = [line for line in out.splitlines() if line.startswith("WARNING: Pair style nnp")]
    assert len(warnings) == 1, out[-3000:]  # rate-limited: once in the first 1000 steps
    assert re.search(rf"{n} atom\(s\) extrapolating at step 0 \(e\.g\. atom \d+\)", warnings[0])
    assert "training range of" in warnings[0] and "tiny.nnp" in warnings[0]
    assert "next warning in 1000 steps" in warnings[0]


@pytest.mark.parametrize("nprocs", RANKS)
def test_warning_rate(tmp_path, structures, nprocs):
    data, n = structures["compressed"]
    procs = "processors 2 1 1" if nprocs == 2 else ""
    for style, expected in (("nnp extrapolation warn every 5", 3), ("nnp", 1), ("nnp extrapolation ignore", 0)):
        status, out = run_lmp(tmp_path, si_input(data, style=style, before=procs, run="run 10"), nprocs)
        assert status == 0, out[-3000:]
        steps = re.findall(r"^WARNING: Pair style nnp: 64 atom\(s\) extrapolating at step (\d+)", out, re.M)
        assert len(steps) == expected, (style, out[-3000:])
        assert steps == ["0", "5", "10"][:expected]


@pytest.mark.parametrize("nprocs", RANKS)
def test_error_after_n(tmp_path, structures, nprocs):
    data, n = structures["pushed"]
    procs = "processors 2 1 1" if nprocs == 2 else ""
    status, out = run_lmp(tmp_path, si_input(data, style="nnp extrapolation error 0", before=procs), nprocs)
    assert_one_error(status, out, rf"{n} atoms extrapolating at step 0, more than the 0 allowed by "
                                  r"'extrapolation error 0' \(e\.g\. atom \d+\)", "tiny.nnp")
    status, out = run_lmp(tmp_path, si_input(data, style=f"nnp extrapolation error {n}", before=procs), nprocs)
    assert status == 0 and not error_lines(out), out[-3000:]
    assert "WARNING: Pair style nnp" not in out
    # No extrapolation, no error.
    status, out = run_lmp(tmp_path, si_input(structures["inside"][0], style="nnp extrapolation error 0",
                                             before=procs), nprocs)
    assert status == 0 and not error_lines(out), out[-3000:]


def test_calculator_count_follows_the_structure():
    pos, length = diamond(1, 0.03, seed=5)
    atoms = Atoms("Si8", positions=pos, cell=[length] * 3, pbc=True)
    atoms.calc = NNPCalculator(TINY)
    atoms.get_potential_energy()
    assert atoms.calc.results["extrapolating_atoms"] == 0
    atoms.set_cell([A_SI * 0.9] * 3, scale_atoms=True)
    atoms.get_potential_energy()
    assert atoms.calc.results["extrapolating_atoms"] == 8
    assert "extrapolating_atoms" in NNPCalculator.__doc__
