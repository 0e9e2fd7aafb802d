"""`python -m nnp.dft aimd`: ab-initio MD with the real Quantum Espresso.

The main test runs a genuinely tiny calculation (2-atom Si cell, 12 Ry,
one k-point, a few MD steps) with pw.x, continues it after a simulated kill,
and trains on the frames with `python -m nnp.train`. pw.x is a requirement of
the test suite (CI installs it): when it is missing the tests fail and say how
to install it, they do not skip.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase.build import bulk

from nnp import dft
from nnp.io import potential_file as pf

TINY = ["--ecutwfc", "12", "--kpts", "1", "1", "1", "--timestep", "2", "--frame-interval", "2"]


def require_qe() -> None:
    missing = []
    if shutil.which("pw.x") is None:
        missing.append("pw.x (package quantum-espresso)")
    pseudo = dft.DEFAULT_PSEUDO_DIR / dft.DEFAULT_PSEUDOPOTENTIALS["Si"]
    if not pseudo.is_file():
        missing.append(f"{pseudo} (package quantum-espresso-data)")
    if missing:
        pytest.fail(
            "Quantum Espresso is needed by these tests and is missing: " + "; ".join(missing)
            + ". Install it with: apt-get update && apt-get install -y quantum-espresso quantum-espresso-data",
            pytrace=False,
        )


def test_quantum_espresso_is_installed():
    require_qe()


def tiny_cell(path: Path) -> Path:
    """The 2-atom primitive Si cell, slightly displaced (non-zero forces at step 0)."""
    atoms = bulk("Si", "diamond", a=5.469)
    atoms.positions[1] += [0.05, -0.03, 0.02]
    ase.io.write(path, atoms)
    return path


@pytest.mark.slow
def test_tiny_aimd_with_pw_x_continue_and_train(tmp_path, capsys):
    require_qe()
    out = tmp_path / "frames.xyz"
    args = ["aimd", "--protocol", "melt-quench", "--structure", str(tiny_cell(tmp_path / "si2.xyz")),
            "-o", str(out), *TINY]

    t0 = time.perf_counter()
    assert dft.main(args + ["--steps", "3"]) == 0, capsys.readouterr().err
    wall = time.perf_counter() - t0
    frames = ase.io.read(out, ":")
    assert [f.info["step"] for f in frames] == [0, 1, 2, 3]
    for f in frames:
        e = f.get_potential_energy()
        forces, stress = f.get_forces(), f.get_stress()
        assert math.isfinite(e) and -120 < e / len(f) < -80  # eV/atom, Si with this pseudopotential
        assert forces.shape == (2, 3) and np.all(np.isfinite(forces))
        assert np.abs(forces.sum(axis=0)).max() < 1e-3  # no net force
        assert stress.shape == (6,) and np.all(np.isfinite(stress))
        assert f.get_momenta().shape == (2, 3)
        assert f.info["protocol"] == "melt-quench" and f.info["dft_ecutwfc_Ry"] == 12
    # 70 K/ps from 2000 K: the target after 6 fs
    assert frames[-1].info["target_temperature_K"] == pytest.approx(2000 - 70 * 0.006)
    assert np.abs(frames[0].get_forces()).max() > 0.01  # the displaced atom feels a force
    assert not np.allclose(frames[0].positions, frames[-1].positions)  # the atoms moved

    # Refuses to overwrite; continuing with other DFT settings is refused too.
    assert dft.main(args + ["--steps", "4"]) == 1
    assert "exists" in capsys.readouterr().err
    bad = [a if a != "12" else "14" for a in args]
    assert dft.main(bad + ["--steps", "4", "--continue"]) == 1
    assert "dft_ecutwfc_Ry" in capsys.readouterr().err

    # A run killed while writing leaves half a frame: --continue drops it and
    # goes on from the last complete frame.
    with open(out, "a") as fh:
        fh.write("2\nLattice=\"1 0 0 0 1 0 0 0 1\" Properties=species:S:1:pos:R:3\nSi 0 0 0\n")
    assert dft.main(args + ["--steps", "5", "--continue"]) == 0, capsys.readouterr().err
    frames = ase.io.read(out, ":")
    assert [f.info["step"] for f in frames] == [0, 1, 2, 3, 4, 5]
    print(f"tiny pw.x AIMD (2 atoms, 12 Ry, 4 frames): {wall:.1f} s")

    # The frames are training data.
    pot = tmp_path / "Si.nnp"
    pytest.importorskip("torch")
    r = subprocess.run(
        [sys.executable, "-m", "nnp.train", "--data", str(out), "--output", str(pot), "--epochs", "1"],
        capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert r.returncode == 0, r.stderr
    assert pf.read(pot).elements == ("Si",)


def test_clear_errors_without_pw_x_or_pseudopotential(tmp_path, capsys):
    args = ["aimd", "--protocol", "crystal", "-o", str(tmp_path / "x.xyz"), "--steps", "1"]
    assert dft.main(args + ["--command", str(tmp_path / "no" / "pw.x")]) == 1
    err = capsys.readouterr().err
    assert "not found" in err and "apt-get install quantum-espresso" in err
    assert dft.main(args + ["--command", "mpirun-that-does-not-exist -np 2 pw.x"]) == 1
    assert "mpirun-that-does-not-exist" in capsys.readouterr().err

    if shutil.which("pw.x"):  # the pseudopotential check comes after the program check
        assert dft.main(args + ["--pseudo-dir", str(tmp_path)]) == 1
        err = capsys.readouterr().err
        assert "Si.pbe-rrkj.UPF not found" in err and "quantum-espresso-data" in err
    assert not (tmp_path / "x.xyz").exists()


def test_pw_x_failure_is_reported(tmp_path, capsys):
    """A pw.x that stops with an error: its own message, where to look, no frames."""
    require_qe()
    bad = tmp_path / "pseudo"
    bad.mkdir()
    (bad / "Si.pbe-rrkj.UPF").write_text("not a pseudopotential\n")
    out = tmp_path / "x.xyz"
    args = ["aimd", "--protocol", "crystal", "--structure", str(tiny_cell(tmp_path / "si2.xyz")), "-o", str(out),
            "--pseudo-dir", str(bad), *TINY, "--steps", "1"]
    assert dft.main(args) == 1
    err = capsys.readouterr().err
    assert "pw.x failed at MD step 0" in err and "pw.x says:" in err and "espresso.pwo" in err
    assert "No frame was written" in err and not out.exists()


def test_cli_refusals(tmp_path, capsys):
    out = tmp_path / "x.xyz"
    base = ["aimd", "-o", str(out), "--command", sys.executable]  # never reached: refused earlier
    assert dft.main(base + ["--protocol", "crystal", "--continue"]) == 1
    assert "nothing to continue" in capsys.readouterr().err
    assert dft.main(base + ["--protocol", "crystal", "--timestep", "3"]) == 1  # 20 fs is not 3 fs × n
    assert "whole number of timesteps" in capsys.readouterr().err
    assert dft.main(base + ["--protocol", "crystal", "--quench-rate", "10"]) == 1
    assert "melt-quench" in capsys.readouterr().err
    assert dft.main(base + ["--protocol", "liquid", "--pseudopotential", "Si"]) == 1
    assert "ELEMENT=FILE" in capsys.readouterr().err


def test_protocols_and_defaults():
    mq = dft.PROTOCOLS["melt-quench"]
    assert mq.temperature(0) == 2000
    assert mq.temperature(10_000) == pytest.approx(2000 - 700)  # 10 ps at 70 K/ps
    assert mq.temperature(1e6) == 300
    assert mq.ramp_fs() == pytest.approx(1700 / 70 * 1000)
    assert dft.PROTOCOLS["crystal"].temperature(5e5) == 500
    assert dft.PROTOCOLS["liquid"].temperature(0) == 2000
    md, qe = dft.settings_from_args(dft.parse_args(["aimd", "--protocol", "melt-quench", "-o", "x"]))
    assert md.frame_interval_fs == 20 and md.frame_every == 10
    assert md.steps * md.timestep_fs >= mq.ramp_fs()
    assert qe.pseudopotentials == {"Si": "Si.pbe-rrkj.UPF"}


def test_complete_frames_length(tmp_path):
    path = tmp_path / "f.xyz"
    atoms = bulk("Si", "diamond", a=5.43)
    ase.io.write(path, [atoms, atoms], format="extxyz")
    size = path.stat().st_size
    assert dft.complete_frames_length(path) == (2, size)
    with open(path, "a") as fh:
        fh.write("2\ncomment\nSi 0 0 0")
    assert dft.complete_frames_length(path) == (2, size)
