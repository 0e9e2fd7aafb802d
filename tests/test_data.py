"""Structure files (nnp.data): the n2p2 input.data and mlearn JSON readers and
writers, format detection, and `python -m nnp.data summary`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

from nnp.data import detect_format, labels, main, read_structures, summarize, write_structures

HERE = Path(__file__).parent
SI_TRAIN = HERE.parent / "examples" / "si" / "data" / "train.xyz"
MLEARN_FIXTURE = HERE / "data" / "mlearn-si.json"
FIXTURE_FRAMES = (0, 65, 159)  # of train.xyz; see tests/data/make_mlearn_fixture.py
# outputs.virial_stress of the first entry of mlearn's data/Si/training.json
# (materialsvirtuallab/mlearn), as published: kBar, VASP order xx yy zz xy yz xz.
PUBLISHED_VIRIAL_FRAME0 = [-6.58094686, -9.63365488, -2.75897261, 9.08682588, -1.60618898, -5.41948494]


def labelled(seed: int = 0) -> list[Atoms]:
    """A periodic triclinic cell with stress, a cluster without, two config types."""
    rng = np.random.default_rng(seed)
    a = bulk("Si", "diamond", a=5.43).repeat((2, 1, 1))
    a.rattle(0.05, seed=seed)
    a.calc = SinglePointCalculator(
        a, energy=-43.21 + rng.normal(), forces=rng.normal(size=(len(a), 3)), stress=rng.normal(size=6) * 0.01
    )
    a.info["config_type"] = "bulk"
    c = Atoms("Si3", positions=[[0, 0, 0], [2.3, 0.1, 0], [1.1, 2.0, 0.3]])
    c.calc = SinglePointCalculator(c, energy=-10.5, forces=rng.normal(size=(3, 3)))
    c.info["config_type"] = "cluster"
    return [a, c]


def assert_same(got: Atoms, want: Atoms, stress_rtol: float = 0.0) -> None:
    assert got.get_chemical_symbols() == want.get_chemical_symbols()
    np.testing.assert_array_equal(got.positions, want.positions)
    np.testing.assert_array_equal(got.pbc, want.pbc)
    if want.pbc.any():
        np.testing.assert_array_equal(got.cell.array, want.cell.array)
    e1, f1, s1 = labels(got)
    e2, f2, s2 = labels(want)
    assert e1 == e2
    np.testing.assert_array_equal(f1, f2)
    if s2 is None:
        assert s1 is None
    else:
        np.testing.assert_allclose(s1, s2, rtol=stress_rtol, atol=1e-18)
    assert got.info.get("config_type") == want.info.get("config_type")


# ---------------------------------------------------------------- mlearn JSON


def test_mlearn_fixture_reads_as_train_xyz():
    """The fixture (frames of train.xyz converted back to mlearn's format)
    reads as the same frames; detected by content."""
    assert detect_format(MLEARN_FIXTURE) == "mlearn-json"
    got = read_structures(MLEARN_FIXTURE, ["Si"])
    assert len(got) == 3
    for atoms, k in zip(got, FIXTURE_FRAMES):
        want = ase.io.read(SI_TRAIN, index=k)
        assert_same(atoms, want, stress_rtol=1e-14)
        assert atoms.info["description"] == want.info["description"]


def test_mlearn_stress_convention_matches_published_numbers():
    """mlearn's virial_stress is kBar, order xx yy zz xy yz xz, compression
    positive: the fixture's frame 0 (made from train.xyz by our writer) holds
    the published numbers, and reading them gives train.xyz's ASE stress."""
    doc = json.loads(MLEARN_FIXTURE.read_text())[0]
    np.testing.assert_allclose(doc["outputs"]["virial_stress"], PUBLISHED_VIRIAL_FRAME0, rtol=1e-12)
    want = ase.io.read(SI_TRAIN, index=0).get_stress()  # ASE: xx yy zz yz xz xy, eV/Å³
    vs = PUBLISHED_VIRIAL_FRAME0
    gpa = 1 / 160.21766208
    by_hand = -np.array([vs[0], vs[1], vs[2], vs[4], vs[5], vs[3]]) * 0.1 * gpa
    np.testing.assert_allclose(want, by_hand, rtol=1e-9)
    assert want[0] > 0  # VASP -6.58 kB (tension) is positive in ASE


def test_mlearn_round_trip(tmp_path):
    frames = labelled()
    frames[0].info["description"] = "a cell"
    path = tmp_path / "data.json"
    write_structures(path, frames, "mlearn-json")
    got = read_structures(path)
    assert len(got) == 2
    assert_same(got[0], frames[0], stress_rtol=1e-14)
    assert_same(got[1], frames[1])
    assert got[0].info["description"] == "a cell"
    with pytest.raises(FileExistsError, match="exists"):
        write_structures(path, frames, "mlearn-json")
    write_structures(path, frames[:1], "mlearn", overwrite=True)
    assert len(read_structures(path, format="mlearn-json")) == 1


def test_mlearn_fractional_coordinates_only(tmp_path):
    doc = {
        "structure": {"lattice": {"matrix": [[4, 0, 0], [0, 5, 0], [1, 0, 6]]},
                      "sites": [{"species": [{"element": "Si", "occu": 1}], "abc": [0.5, 0.5, 0.5]},
                                {"species": [{"element": "Si", "occu": 1.0}], "abc": [0, 0, 0]}]},
        "outputs": {"energy": -9.0, "forces": [[0.1, 0, 0], [-0.1, 0, 0]], "virial_stress": None},
        "num_atoms": 2, "group": "g",
    }
    path = tmp_path / "a.json"
    path.write_text(json.dumps([doc]))
    (atoms,) = read_structures(path)
    np.testing.assert_allclose(atoms.positions[0], [2.5, 2.5, 3.0])
    assert labels(atoms)[2] is None and atoms.info["config_type"] == "g"


MLEARN_BAD = {
    "disordered": (lambda d: d["structure"]["sites"][0]["species"].append({"element": "Ge", "occu": 0.5}),
                   "disordered site"),
    "num_atoms": (lambda d: d.update(num_atoms=5), "num_atoms is 5 but the structure has 2 sites"),
    "ragged_forces": (lambda d: d["outputs"].update(forces=[[0, 0, 0], [0, 0]]), "not a rectangular array"),
    "no_outputs": (lambda d: d.pop("outputs"), "no 'outputs'"),
    "virial_length": (lambda d: d["outputs"].update(virial_stress=[1, 2, 3]), "virial_stress has shape (3,)"),
}


def _mlearn_doc(energy=-9.0):
    return {
        "structure": {"lattice": {"matrix": [[5, 0, 0], [0, 5, 0], [0, 0, 5]]},
                      "sites": [{"species": [{"element": "Si", "occu": 1}], "xyz": [0, 0, 0]},
                                {"species": [{"element": "Si", "occu": 1}], "xyz": [1.2, 1.2, 1.2]}]},
        "outputs": {"energy": energy, "forces": [[0.1, 0, 0], [-0.1, 0, 0]],
                    "virial_stress": [1, 2, 3, 4, 5, 6]},
        "num_atoms": 2, "group": "g",
    }


@pytest.mark.parametrize("case", sorted(MLEARN_BAD))
def test_mlearn_bad_entry_is_named(tmp_path, case):
    edit, message = MLEARN_BAD[case]
    bad = _mlearn_doc()
    edit(bad)
    path = tmp_path / f"{case}.json"
    path.write_text(json.dumps([_mlearn_doc(), bad, _mlearn_doc()]))
    with pytest.raises(ValueError) as err:
        read_structures(path)
    text = str(err.value)
    assert str(path) in text and "frame 1" in text and message in text, text


# ------------------------------------------------------------ n2p2 input.data

N2P2 = """\
begin
comment config_type=liquid snapshot 7
lattice 5.0 0.0 0.0
lattice 0.0 5.5 0.0
lattice 0.1 0.0 6.0
atom 0.0 0.1 0.2 Si 0.0 0.0 0.5 -0.25 0.125
atom 1.5 1.6 1.7 Si 0.0 0.0 -0.5 0.25 -0.125
energy -10.75
charge 0.0
end

begin
atom 0.0 0.0 0.0 O -0.5 0.0 1.0 2.0 3.0
atom 0.96 0.0 0.0 H 0.25 0.0 -1.0 -2.0 -3.0
energy -3.5
charge 0.0
end
"""


def test_n2p2_reader_fields(tmp_path):
    """Columns: atom x y z element charge energy fx fy fz."""
    path = tmp_path / "input.data"
    path.write_text(N2P2)
    assert detect_format(path) == "n2p2"
    a, b = read_structures(path)
    np.testing.assert_array_equal(a.cell.array, [[5, 0, 0], [0, 5.5, 0], [0.1, 0, 6]])
    assert a.pbc.all() and not b.pbc.any()
    np.testing.assert_array_equal(a.positions, [[0, 0.1, 0.2], [1.5, 1.6, 1.7]])
    np.testing.assert_array_equal(a.get_forces(), [[0.5, -0.25, 0.125], [-0.5, 0.25, -0.125]])
    assert a.get_potential_energy() == -10.75
    assert a.info["config_type"] == "liquid" and a.info["comment"] == "config_type=liquid snapshot 7"
    assert b.get_chemical_symbols() == ["O", "H"]
    np.testing.assert_array_equal(b.get_initial_charges(), [-0.5, 0.25])
    np.testing.assert_array_equal(b.get_forces(), [[1, 2, 3], [-1, -2, -3]])
    assert "config_type" not in b.info
    assert len(read_structures(path, index="-1")) == 1
    assert read_structures(path, index="1:")[0].get_chemical_symbols() == ["O", "H"]


def test_n2p2_round_trip(tmp_path):
    frames = labelled(3)
    path = tmp_path / "input.data"
    write_structures(path, frames, "n2p2")
    got = read_structures(path, format="n2p2")
    assert len(got) == 2
    frames[0].calc.results.pop("stress")  # input.data holds no stress
    for g, w in zip(got, frames):
        assert_same(g, w)


N2P2_BAD = {
    "short_atom_line": (lambda s: s.replace("atom 0.0 0.0 0.0 O -0.5 0.0 1.0 2.0 3.0", "atom 0.0 0.0 0.0 O -0.5 1.0 2.0 3.0"),
                        "an atom line needs 9 fields"),
    "bad_number": (lambda s: s.replace("energy -3.5", "energy -3.5x"), "cannot read the numbers"),
    "unknown_keyword": (lambda s: s.replace("energy -3.5", "enrgy -3.5"), "unknown keyword 'enrgy'"),
    "element": (lambda s: s.replace(" H 0.25", " Xx 0.25"), "unknown element 'Xx'"),
    "two_lattice_lines": (lambda s: s.replace("begin\natom 0.0", "begin\nlattice 1 0 0\nlattice 0 1 0\natom 0.0"),
                          "3 lattice lines or none, found 2"),
    "no_end": (lambda s: s[: s.rindex("end")], "no 'end'"),
    "stray_line": (lambda s: s.replace("\nbegin\natom 0.0", "\nenergy 1\nbegin\natom 0.0"), "outside a begin ... end block"),
}


@pytest.mark.parametrize("case", sorted(N2P2_BAD))
def test_n2p2_bad_frame_is_named(tmp_path, case):
    """The second frame is broken: named with the file, frame and line."""
    edit, message = N2P2_BAD[case]
    path = tmp_path / "input.data"
    path.write_text(edit(N2P2))
    with pytest.raises(ValueError) as err:
        read_structures(path)
    text = str(err.value)
    assert str(path) in text and "frame 1" in text and message in text, text


def test_explicit_format_and_ase_fallback(tmp_path):
    frames = labelled()
    xyz = tmp_path / "a.xyz"
    ase.io.write(xyz, frames, format="extxyz")
    assert detect_format(xyz) is None
    assert len(read_structures(xyz)) == 2
    data = tmp_path / "frames.txt"  # no telling extension: found by content
    write_structures(data, frames, "n2p2")
    assert len(read_structures(data)) == 2
    with pytest.raises(ValueError, match="frame 0: cannot be read"):
        read_structures(xyz, format="n2p2")
    with pytest.raises(ValueError, match="unknown format"):
        write_structures(tmp_path / "x", frames, "xyz")


# ------------------------------------------------------------------- summary

GOOD = """2
Lattice="5 0 0 0 5 0 0 0 5" Properties=species:S:1:pos:R:3:forces:R:3 energy=-1.0 config_type=x pbc="T T T"
Si 0 0 0 0.1 0 0
Si 1.2 1.2 1.2 -0.1 0 0
"""
NO_FORCES = """2
Lattice="5 0 0 0 5 0 0 0 5" Properties=species:S:1:pos:R:3 energy=-1.0 config_type=y pbc="T T T"
Si 0 0 0
Si 1.2 1.2 1.2
"""


def _summary_file(tmp_path: Path) -> Path:
    frames = [
        GOOD,
        NO_FORCES,
        GOOD.replace("energy=-1.0", "energy=nan"),
        GOOD.replace("1.2 1.2 1.2", "0.03 0.02 0.0"),
        GOOD.replace("Si 1.2", "Ge 1.2"),
        GOOD.replace("-0.1 0 0", "inf 0 0"),
        GOOD,
    ]
    path = tmp_path / "mixed.xyz"
    path.write_text("".join(frames))
    return path


def test_summary_lists_every_problem_frame(tmp_path, capsys):
    path = _summary_file(tmp_path)
    s = summarize(path, elements=["Si"])
    assert s.n_structures == 7 and s.n_atoms == 14
    want = {1: "no forces", 2: "energy is nan", 3: "duplicated atoms", 4: "Ge not in the element list",
            5: "forces contain NaN or inf"}
    assert [f for f, _ in s.problems] == sorted(want)
    for (frame, msg) in s.problems:
        assert want[frame] in msg
    assert s.config_types == {"x": 6, "y": 1}
    assert s.elements == {"Si": 13, "Ge": 1}
    assert s.energy_per_atom == (-0.5, -0.5)
    assert s.min_distance[0] == pytest.approx(np.sqrt(0.03**2 + 0.02**2)) and s.min_distance[1] == 3
    assert main(["summary", str(path), "--elements", "Si"]) == 1
    out = capsys.readouterr().out
    for frame, text in want.items():
        assert f"{path}: frame {frame}: " in out and text in out
    assert "5 in 5 frame(s)" in out
    # Without --elements the Ge frame is fine; the others are still flagged.
    assert [f for f, _ in summarize(path).problems] == [1, 2, 3, 5]


def test_summary_reads_on_past_bad_entries(tmp_path, capsys):
    """In an mlearn file a mismatched entry does not stop the summary."""
    short = _mlearn_doc()
    short["outputs"]["forces"] = [[0.1, 0, 0]]  # 1 row for 2 atoms
    broken = _mlearn_doc()
    broken["num_atoms"] = 3
    path = tmp_path / "m.json"
    path.write_text(json.dumps([_mlearn_doc(), short, broken, _mlearn_doc(float("nan"))]))
    s = summarize(path)
    assert s.format == "mlearn-json" and s.n_structures == 3 and s.n_stress == 3
    msgs = dict(s.problems)
    assert "forces have shape (1, 3), expected (2, 3)" in msgs[1]
    assert "cannot be read: num_atoms is 3" in msgs[2]
    assert "energy is nan" in msgs[3]
    assert main(["summary", str(path)]) == 1


def test_summary_good_file_and_command_line(tmp_path):
    path = tmp_path / "good.xyz"
    path.write_text(GOOD + GOOD.replace("config_type=x", "config_type=z"))
    s = summarize(path)
    assert s.ok and s.problems == [] and s.n_periodic == 2 and s.max_force[0] == pytest.approx(0.1)
    # The module entry point, in a fresh interpreter: exit status, and no torch needed.
    code = ("import sys, runpy; sys.argv = ['nnp.data', 'summary', sys.argv[1]];\n"
            "try:\n runpy.run_module('nnp.data', run_name='__main__')\n"
            "except SystemExit as e:\n assert 'torch' not in sys.modules; raise")
    ok = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "structures       2 (4 atoms" in ok.stdout and "problems         none" in ok.stdout
    assert "x (1), z (1)" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "nnp.data", "summary", str(_summary_file(tmp_path))],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "frame 1: no forces" in bad.stdout
    missing = subprocess.run([sys.executable, "-m", "nnp.data", "summary", str(tmp_path / "nope.xyz")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "nope.xyz does not exist" in missing.stderr


def test_summary_of_unreadable_ase_file_says_where_it_stopped(tmp_path, capsys):
    path = tmp_path / "cut.xyz"
    path.write_text(GOOD + GOOD.replace("2\n", "3\n", 1))
    s = summarize(path)
    assert s.n_structures == 1 and s.stopped_at == 1
    assert s.problems[0][0] == 1 and "cannot be read" in s.problems[0][1]
    assert main(["summary", str(path)]) == 1
    assert "reading stopped at frame 1" in capsys.readouterr().out
