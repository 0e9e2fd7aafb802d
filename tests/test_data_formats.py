"""Structure formats beyond extxyz, n2p2 and mlearn (nnp.data): DeePMD-kit
systems (deepmd/raw, deepmd/npy; the virial sign), VASP vasprun.xml and
OUTCAR, Quantum Espresso pw.x output (a real tiny pw.x run), and the refusal
of CP2K output. The VASP files are written here in the layout VASP prints
(trimmed to what a reader looks at), with known numbers."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from conftest import shared_data
from nnp import dft
from nnp.data import (
    data_sha256,
    detect_format,
    labels,
    main,
    read_structures,
    summarize,
    write_deepmd_npy,
    write_structures,
)

WATER_FRAMES = ":7"  # of the shared water set: enough for three sets of 3


def frames_arrays(frames: list[Atoms]) -> dict[str, np.ndarray]:
    """DeePMD's per-frame rows of `frames` (same atoms in each)."""
    return {
        "coord": np.array([a.positions.reshape(-1) for a in frames]),
        "box": np.array([a.cell.array.reshape(-1) for a in frames]),
        "energy": np.array([a.get_potential_energy() for a in frames]),
        "force": np.array([a.get_forces().reshape(-1) for a in frames]),
    }


def write_raw_system(directory: Path, frames: list[Atoms], type_map: list[str], virials=None) -> Path:
    """A deepmd/raw system built with numpy (17 digits: exact)."""
    directory.mkdir(parents=True)
    types = [type_map.index(e) for e in frames[0].get_chemical_symbols()]
    (directory / "type.raw").write_text("\n".join(map(str, types)) + "\n")
    (directory / "type_map.raw").write_text("\n".join(type_map) + "\n")
    arrays = frames_arrays(frames)
    if virials is not None:
        arrays["virial"] = np.asarray(virials).reshape(len(frames), 9)
    for key, array in arrays.items():
        np.savetxt(directory / f"{key}.raw", array.reshape(len(frames), -1), fmt="%.17g")
    return directory


def assert_same_frames(got: list[Atoms], want: list[Atoms]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.get_chemical_symbols() == w.get_chemical_symbols()
        np.testing.assert_array_equal(g.positions, w.positions)
        np.testing.assert_array_equal(g.cell.array, w.cell.array)
        np.testing.assert_array_equal(g.pbc, w.pbc)
        e1, f1, _ = labels(g)
        e2, f2, _ = labels(w)
        assert e1 == e2
        np.testing.assert_array_equal(f1, f2)


# --- DeePMD-kit -------------------------------------------------------------

def test_water_through_deepmd_npy_and_raw_is_identical(tmp_path):
    water = read_structures(shared_data("water-deepmd/train.xyz"), index=WATER_FRAMES)
    assert {a.info["config_type"] for a in water} == {"data_0"}

    (system,) = write_deepmd_npy(tmp_path / "npy", water, set_size=3)
    assert system == tmp_path / "npy" / "data_0"
    assert sorted(p.name for p in system.glob("set.*")) == ["set.000", "set.001", "set.002"]
    assert (system / "type_map.raw").read_text().split() == ["H", "O"]
    assert detect_format(tmp_path / "npy") == "deepmd"
    back = read_structures(tmp_path / "npy")
    assert_same_frames(back, water)
    assert [a.info["config_type"] for a in back] == ["data_0"] * len(water)

    write_raw_system(tmp_path / "raw", water, ["O", "H"])  # another type order: the map decides
    raw = read_structures(tmp_path / "raw", format="deepmd/raw")
    assert_same_frames(raw, water)
    assert all("config_type" not in a.info for a in raw)  # the directory itself is the system


def test_several_systems_are_one_data_set_and_index_spans_them(tmp_path):
    si = [_labelled(bulk("Si", "diamond", a=5.43) * (1, 1, 2), seed) for seed in range(3)]
    sio = [_labelled(_sio(), seed) for seed in range(2)]
    write_raw_system(tmp_path / "set" / "bulk" / "si", si, ["Si"])
    write_deepmd_npy(tmp_path / "npy", sio)
    shutil.move(tmp_path / "npy" / "default", tmp_path / "set" / "oxide")
    got = read_structures(tmp_path / "set")
    assert [a.info["config_type"] for a in got] == ["bulk/si"] * 3 + ["oxide"] * 2
    assert_same_frames(got, si + sio)
    middle = read_structures(tmp_path / "set", index="2:4")
    assert_same_frames(middle, si[2:] + sio[:1])
    assert_same_frames(read_structures(tmp_path / "set", index="-1"), sio[-1:])
    s = summarize(tmp_path / "set")
    assert s.ok and s.n_structures == 5 and s.format == "deepmd"
    assert dict(s.config_types) == {"bulk/si": 3, "oxide": 2}


def test_virial_is_minus_stress_times_volume(tmp_path):
    """DeePMD's virial is W = -dE/dε (eV); ASE's stress is σ = (1/V) dE/dε
    (tension positive). W is taken here from finite differences of the EMT
    energy under strain, so the test fixes the sign without using the formula
    it checks: a compressed cell has W > 0 and σ < 0."""
    atoms = bulk("Cu", "fcc", a=3.5, cubic=True)  # EMT's Cu prefers a ≈ 3.59 Å: compressed
    atoms.rattle(0.05, seed=3)
    atoms.cell[2] += [0.1, -0.05, 0.0]  # triclinic, so off-diagonal terms are tested
    atoms.calc = EMT()
    h = 1e-5

    def energy(eps: np.ndarray) -> float:
        strained = atoms.copy()
        strained.calc = EMT()
        strained.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
        return strained.get_potential_energy()

    W = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            e = np.zeros((3, 3))
            e[a, b] = e[b, a] = h / 2 if a != b else h
            # dE/dε_ab of a symmetric strain (both ab and ba moved by h/2 off the diagonal).
            W[a, b] = -(energy(e) - energy(-e)) / (2 * h)
    frame = _labelled_by(atoms, SinglePointCalculator(atoms, energy=atoms.get_potential_energy(),
                                                       forces=atoms.get_forces()))
    assert np.trace(W) > 0 and np.trace(atoms.get_stress(voigt=False)) < 0  # compressed
    write_raw_system(tmp_path / "cu", [frame], ["Cu"], virials=[W])
    (got,) = read_structures(tmp_path / "cu")
    np.testing.assert_allclose(got.get_stress(), atoms.get_stress(), atol=1e-8)

    # The writer uses the same convention: its virial.npy is -σ V.
    (system,) = write_deepmd_npy(tmp_path / "npy", [got])
    np.testing.assert_allclose(np.load(system / "set.000" / "virial.npy").reshape(3, 3), W, rtol=1e-6, atol=1e-9)
    (again,) = read_structures(tmp_path / "npy")
    np.testing.assert_allclose(again.get_stress(), got.get_stress(), rtol=1e-12, atol=1e-15)


def test_nopbc_system_and_writer_groups(tmp_path):
    cluster = Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    cluster = _labelled(cluster, 0)
    cluster.info["config_type"] = "molecule"
    crystals = [_labelled(bulk("Si", "diamond", a=5.43), s) for s in range(2)]
    for a in crystals:
        a.info["config_type"] = "bulk"
    other = _labelled(_sio(), 5)
    other.info["config_type"] = "bulk"  # a second composition under the same config type
    written = write_deepmd_npy(tmp_path / "d", [cluster, *crystals, other])
    assert sorted(p.relative_to(tmp_path / "d").as_posix() for p in written) == ["bulk/O2Si2", "bulk/Si2", "molecule"]
    assert (tmp_path / "d" / "molecule" / "nopbc").exists()
    assert not (tmp_path / "d" / "molecule" / "set.000" / "box.npy").exists()
    got = {a.info["config_type"]: a for a in read_structures(tmp_path / "d")}
    assert set(got) == {"bulk/O2Si2", "bulk/Si2", "molecule"}
    assert not got["molecule"].pbc.any()
    assert_same_frames([got["molecule"]], [cluster])
    np.testing.assert_allclose(got["bulk/O2Si2"].get_stress(), other.get_stress(), rtol=1e-12)

    with pytest.raises(FileExistsError):
        write_deepmd_npy(tmp_path / "d", [cluster])
    slab = crystals[0].copy()
    slab.pbc = [True, True, False]
    with pytest.raises(ValueError, match="periodic along some axes"):
        write_deepmd_npy(tmp_path / "slab", [slab])
    write_structures(tmp_path / "w", crystals, format="deepmd/npy")
    assert_same_frames(read_structures(tmp_path / "w", format="deepmd/npy"), crystals)
    assert len(data_sha256(tmp_path / "w")) == 64


def test_forced_layout(tmp_path):
    frames = [_labelled(bulk("Si", "diamond", a=5.43), s) for s in range(2)]
    (system,) = write_deepmd_npy(tmp_path / "d", frames)
    raw_only = [frames[1]]  # a raw copy that differs, beside the sets (as raw_to_set.sh leaves it)
    for key, array in frames_arrays(raw_only).items():
        np.savetxt(system / f"{key}.raw", array, fmt="%.17g")
    assert len(read_structures(tmp_path / "d")) == 2  # npy preferred
    assert_same_frames(read_structures(tmp_path / "d", format="deepmd/raw"), raw_only)
    raw = write_raw_system(tmp_path / "raw", frames, ["Si"])
    assert_same_frames(read_structures(raw), frames)
    with pytest.raises(ValueError, match=r"no set\.\* directories"):
        read_structures(raw, format="deepmd/npy")


@pytest.mark.parametrize("case, message, bad_frames", [
    ("short_line", r"system \., line 2: coord.raw: 8 numbers in a frame, expected 9", [1]),
    ("text_in_line", r"force.raw: could not convert", [0]),
    ("line_counts", r"energy.raw has 2 frames \(lines\), coord.raw 3", [0, 1, 2]),
    ("no_type_map", r"no type_map.raw", [0, 1, 2]),
    ("bad_type", r"indices outside 0..0", [0, 1, 2]),
    ("not_element", r"not elements", [0, 1, 2]),
    ("no_box", r"no box", [0, 1, 2]),
    ("nan_energy", r"energy is nan", [2]),
    ("no_force_file", r"no forces", [0, 1, 2]),
])
def test_deepmd_raw_bad_frames_are_named(tmp_path, capsys, case, message, bad_frames):
    frames = [_labelled(Atoms("Si3", positions=[[0, 0, 0], [2.3, 0, 0], [0, 2.3, 0]], cell=[6, 6, 6], pbc=True), s)
              for s in range(3)]
    d = write_raw_system(tmp_path / "sys", frames, ["Si"])
    edit = {
        "short_line": lambda: _edit_line(d / "coord.raw", 1, lambda t: " ".join(t.split()[:-1])),
        "text_in_line": lambda: _edit_line(d / "force.raw", 0, lambda t: t.replace(t.split()[0], "x", 1)),
        "line_counts": lambda: _edit_line(d / "energy.raw", 2, lambda t: ""),
        "no_type_map": lambda: (d / "type_map.raw").unlink(),
        "bad_type": lambda: (d / "type.raw").write_text("0 0 1\n"),
        "not_element": lambda: (d / "type_map.raw").write_text("Xx\n"),
        "no_box": lambda: (d / "box.raw").unlink(),
        "nan_energy": lambda: _edit_line(d / "energy.raw", 2, lambda t: "nan"),
        "no_force_file": lambda: (d / "force.raw").unlink(),
    }
    edit[case]()
    with pytest.raises(ValueError, match=message):
        read_structures(d)
    s = summarize(d)
    assert sorted({f for f, _ in s.problems}) == bad_frames
    assert main(["summary", str(d)]) == 1
    assert f"{d}: frame {bad_frames[0]}: " in capsys.readouterr().out


def test_deepmd_npy_bad_set_spoils_only_its_frames(tmp_path):
    frames = [_labelled(bulk("Si", "diamond", a=5.43), s) for s in range(4)]
    (system,) = write_deepmd_npy(tmp_path / "d", frames, set_size=2)
    np.save(system / "set.001" / "energy.npy", np.zeros(3))
    s = summarize(tmp_path / "d")
    assert s.n_structures == 2 and sorted({f for f, _ in s.problems}) == [2, 3]
    assert "set.001/energy.npy" in s.problems[0][1]
    assert len(read_structures(tmp_path / "d", index=":2")) == 2
    with pytest.raises(ValueError, match="frame 2: cannot be read: system default, set.001 row 0"):
        read_structures(tmp_path / "d")


def test_directory_without_systems_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no type.raw"):
        read_structures(tmp_path / "empty")


# --- VASP, Quantum Espresso, CP2K ------------------------------------------

CELL = np.array([[4.0, 0.0, 0.0], [0.3, 4.5, 0.0], [0.0, 0.2, 5.0]])
FRACTIONAL = np.array([[0.0, 0.0, 0.0], [0.26, 0.24, 0.27]])
FORCES = np.array([[0.1, -0.2, 0.3], [-0.1, 0.2, -0.3]])
STRESS_KB = [10.0, 20.0, 30.0, 1.0, 2.0, 3.0]  # VASP order XX YY ZZ XY YZ ZX, pressure positive
# Two ionic steps: (free energy TOTEN, energy(sigma->0)) in eV
ENERGIES = [(-10.80, -10.795), (-10.70, -10.69)]


def ase_stress_of_vasp_kb(kb) -> np.ndarray:
    """ASE's stress (tension positive, Voigt xx yy zz yz xz xy) of VASP's kB line."""
    xx, yy, zz, xy, yz, zx = kb
    return -np.array([xx, yy, zz, yz, zx, xy]) * 0.1 * units.GPa


def test_vasprun_xml(tmp_path):
    path = tmp_path / "run1.xml"  # a name ASE would not guess: the content says vasprun
    path.write_text(vasprun_text())
    assert detect_format(path) == "vasp-xml"
    frames = read_structures(path)
    assert len(frames) == 2
    for k, a in enumerate(frames):
        assert a.get_chemical_symbols() == ["Si", "O"]
        np.testing.assert_allclose(a.cell.array, CELL * (1 + 0.01 * k))
        # ASE's energy is VASP's energy(sigma->0); the force-consistent free energy is kept beside it.
        assert a.get_potential_energy() == pytest.approx(ENERGIES[k][1], abs=1e-9)
        assert a.calc.results["free_energy"] == pytest.approx(ENERGIES[k][0], abs=1e-9)
        np.testing.assert_allclose(a.get_forces(), FORCES)
        np.testing.assert_allclose(a.get_stress(), ase_stress_of_vasp_kb(STRESS_KB), rtol=1e-12)
    assert a.get_stress()[0] < 0  # VASP's +10 kB (pressure) is compression: negative in ASE
    assert main(["summary", str(path)]) == 0


def test_outcar(tmp_path, capsys):
    path = tmp_path / "OUTCAR"
    path.write_text(outcar_text())
    assert detect_format(path) == "vasp-out"
    frames = read_structures(path)
    assert len(frames) == 2
    for k, a in enumerate(frames):
        assert a.get_potential_energy() == pytest.approx(ENERGIES[k][1], abs=1e-9)
        assert a.calc.results["free_energy"] == pytest.approx(ENERGIES[k][0], abs=1e-9)
        np.testing.assert_allclose(a.get_forces(), FORCES)
        np.testing.assert_allclose(a.get_stress(), ase_stress_of_vasp_kb(STRESS_KB), rtol=1e-6)
    assert main(["summary", str(path)]) == 0
    assert "vasp-out" in capsys.readouterr().out


def test_quantum_espresso_pw_x_output(tmp_path):
    """A real pw.x SCF (2-atom Si, 12 Ry, Γ only; under a second), compressed,
    so pw.x prints a positive pressure P, which ASE turns into negative
    stress: σ_xx + σ_yy + σ_zz = -3P."""
    pseudo = dft.DEFAULT_PSEUDO_DIR / dft.DEFAULT_PSEUDOPOTENTIALS["Si"]
    if shutil.which("pw.x") is None or not pseudo.is_file():
        pytest.fail("Quantum Espresso is needed (pw.x and its pseudopotentials): "
                    "apt-get install -y quantum-espresso quantum-espresso-data", pytrace=False)
    atoms = bulk("Si", "diamond", a=5.30)
    atoms.positions[1] += [0.05, -0.03, 0.02]
    ase.io.write(tmp_path / "pw.in", atoms, format="espresso-in", kpts=(1, 1, 1),
                 pseudopotentials={"Si": pseudo.name},
                 input_data={"control": {"calculation": "scf", "tprnfor": True, "tstress": True,
                                         "disk_io": "none", "pseudo_dir": str(pseudo.parent)},
                             "system": {"ecutwfc": 12}})
    out = tmp_path / "si.out"  # ".out" alone does not say pw.x: the header does
    with open(out, "w") as f:
        subprocess.run(["pw.x", "-in", "pw.in"], cwd=tmp_path, stdout=f, check=True, timeout=120,
                       env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert detect_format(out) == "espresso-out"
    (got,) = read_structures(out)
    text = out.read_text()
    total = float(next(line for line in text.splitlines() if line.startswith("!")).split()[-2])
    # ASE's espresso reader converts with CODATA 2006 (its Ry differs from ase.units' by 8e-8).
    assert got.get_potential_energy() == pytest.approx(total * units.create_units("2006")["Ry"], abs=1e-9)
    pressure_kbar = float(text.split("P=")[1].split()[0])
    assert pressure_kbar > 100  # compressed
    np.testing.assert_allclose(got.get_stress()[:3].sum(), -3 * pressure_kbar * 0.1 * units.GPa, rtol=1e-3)
    np.testing.assert_allclose(got.get_forces().sum(axis=0), 0.0, atol=1e-3)
    assert np.abs(got.get_forces()).max() > 0.01
    assert summarize(out).ok


def test_cp2k_output_is_refused_with_a_way_out(tmp_path, capsys):
    path = tmp_path / "water.out"
    path.write_text(" DBCSR| CPU Multiplication driver                                          XSMM\n"
                    " CP2K| version string:                                          CP2K version 9.1\n"
                    " CP2K| source code revision number:                                  git:d8d7100\n")
    assert detect_format(path) == "cp2k-output"
    with pytest.raises(ValueError, match="CP2K output: ASE reads no energies or forces"):
        read_structures(path)
    with pytest.raises(ValueError, match="dpdata"):
        read_structures(tmp_path / "water.out", format="cp2k")
    assert main(["summary", str(path)]) == 2
    assert "deepmd/npy" in capsys.readouterr().err


# --- helpers ----------------------------------------------------------------

def _sio() -> Atoms:
    return Atoms("Si2O2", scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5], [0.25, 0.25, 0.2], [0.7, 0.75, 0.8]],
                 cell=[[5.0, 0, 0], [0.5, 5.2, 0], [0, 0.3, 5.5]], pbc=True)


def _labelled(atoms: Atoms, seed: int) -> Atoms:
    """`atoms` rattled, with random energy, forces and (periodic) stress."""
    rng = np.random.default_rng(seed)
    atoms = atoms.copy()
    atoms.rattle(0.02, seed=seed)
    stress = rng.normal(size=6) * 0.01 if atoms.pbc.all() else None
    calc = SinglePointCalculator(atoms, energy=-5.0 * len(atoms) + rng.normal(),
                                 forces=rng.normal(size=(len(atoms), 3)), stress=stress)
    return _labelled_by(atoms, calc)


def _labelled_by(atoms: Atoms, calc) -> Atoms:
    atoms = atoms.copy()
    calc.atoms = atoms
    atoms.calc = calc
    return atoms


def _edit_line(path: Path, k: int, change) -> None:
    lines = path.read_text().splitlines()
    lines[k] = change(lines[k])
    path.write_text("\n".join(t for t in lines if t) + "\n")


def _rows(name: str, rows) -> str:
    body = "".join(f"   <v>{' '.join(f'{x:16.8f}' for x in r)} </v>\n" for r in rows)
    return f'  <varray name="{name}" >\n{body}  </varray>\n'


def _energy_block(free: float, sigma0: float) -> str:
    return (f'   <energy>\n    <i name="e_fr_energy">{free:16.8f} </i>\n'
            f'    <i name="e_wo_entrp">{sigma0 + 0.001:16.8f} </i>\n'
            f'    <i name="e_0_energy">{sigma0:16.8f} </i>\n   </energy>\n')


def vasprun_text() -> str:
    """A vasprun.xml of two ionic steps of SiO, with the tags ASE reads."""
    head = ('<?xml version="1.0" encoding="ISO-8859-1"?>\n<modeling>\n <generator>\n'
            '  <i name="program" type="string">vasp </i>\n  <i name="version" type="string">6.3.0 </i>\n'
            ' </generator>\n <kpoints>\n' + _rows("kpointlist", [[0, 0, 0]]) + _rows("weights", [[1.0]])
            + ' </kpoints>\n <parameters>\n </parameters>\n <atominfo>\n  <atoms>2</atoms>\n'
            '  <array name="atoms" >\n   <set>\n    <rc><c>Si</c><c>   1</c></rc>\n'
            '    <rc><c>O </c><c>   2</c></rc>\n   </set>\n  </array>\n </atominfo>\n'
            ' <structure name="initialpos" >\n  <crystal>\n' + _rows("basis", CELL) + '  </crystal>\n'
            + _rows("positions", FRACTIONAL) + ' </structure>\n')
    steps = ""
    for k, (free, sigma0) in enumerate(ENERGIES):
        steps += (' <calculation>\n  <scstep>\n' + _energy_block(free, sigma0) + '  </scstep>\n'
                  '  <structure>\n   <crystal>\n' + _rows("basis", CELL * (1 + 0.01 * k)) + '   </crystal>\n'
                  + _rows("positions", FRACTIONAL) + '  </structure>\n' + _rows("forces", FORCES)
                  + _rows("stress", _kb_matrix(STRESS_KB)) + _energy_block(free, sigma0) + ' </calculation>\n')
    return head + steps + '</modeling>\n'


def _kb_matrix(kb) -> np.ndarray:
    xx, yy, zz, xy, yz, zx = kb
    return np.array([[xx, xy, zx], [xy, yy, yz], [zx, yz, zz]])


def outcar_text() -> str:
    """An OUTCAR of the same two steps, with the lines ASE's parser looks for."""
    lines = [" vasp.6.3.0 18Jan22 (build Jan 01 2022 00:00:00) complex", ""]
    lines += [f" POTCAR:    PAW_PBE {s} 05Jan2001" for s in ("Si", "O", "Si", "O")]
    lines += ["   ions per type =               1   1", ""]
    for k, (free, sigma0) in enumerate(ENERGIES):
        cell = CELL * (1 + 0.01 * k)
        lines += [f"--------------------------------------- Iteration {k + 1:6d}(   1)  "
                  "---------------------------------------", "",
                  "  FORCE on cell =-STRESS in cart. coord.  units (eV):",
                  "  Direction    XX          YY          ZZ          XY          YZ          ZX",
                  "  in kB  " + " ".join(f"{v:11.5f}" for v in STRESS_KB), "",
                  "      direct lattice vectors                 reciprocal lattice vectors"]
        lines += [" " + " ".join(f"{v:12.9f}" for v in c) + "  " + " ".join(f"{v:12.9f}" for v in r)
                  for c, r in zip(cell, np.linalg.inv(cell).T)]
        lines += ["", " POSITION                                       TOTAL-FORCE (eV/Angst)",
                  " " + "-" * 83]
        lines += ["  " + " ".join(f"{v:12.5f}" for v in p) + "   " + " ".join(f"{v:13.6f}" for v in f)
                  for p, f in zip(FRACTIONAL @ cell, FORCES)]
        lines += [" " + "-" * 83, "", "  FREE ENERGIE OF THE ION-ELECTRON SYSTEM (eV)", "  " + "-" * 51,
                  f"  free  energy   TOTEN  =     {free:16.8f} eV", "",
                  f"  energy  without entropy=     {sigma0 + 0.001:16.8f}  energy(sigma->0) =     {sigma0:16.8f}",
                  "", ""]
    return "\n".join(lines) + "\n"
