"""Scoring a potential file through the C++ core (nnp.analysis.report.predict_potential,
python -m nnp.evaluate) against the torch model and NNPCalculator."""

from __future__ import annotations

import json
import subprocess
import sys

import ase.io
import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator
from conftest import random_potential, test_descriptor

from nnp import NNPCalculator
from nnp.io import potential_file as pf
from nnp.data import read_structures
from nnp.evaluate import evaluate, main
from nnp.analysis.metrics import metrics, predict_model, predict_potential


@pytest.fixture(scope="module")
def setup(tmp_path_factory, si_structures):
    """A random potential file and labelled structures (the potential's own
    labels plus noise, so that every error is non-zero): two config types,
    the open cluster without stress, one periodic cell without stress."""
    pot = random_potential(test_descriptor(), si_structures, seed=5)
    root = tmp_path_factory.mktemp("evaluate")
    path = root / "Si.nnp"
    pf.write(pot, path)
    calc = NNPCalculator(path)
    rng = np.random.default_rng(11)
    frames = []
    for k, atoms in enumerate(list(si_structures) + [si_structures[0].copy()]):
        a = atoms.copy()
        a.calc = calc
        e, f = a.get_potential_energy(), a.get_forces()
        s = a.get_stress() if a.pbc.all() and k != 3 else None
        a.calc = SinglePointCalculator(
            a, energy=e + rng.normal(0, 0.05), forces=f + rng.normal(0, 0.1, f.shape),
            stress=None if s is None else s + rng.normal(0, 1e-3, 6),
        )
        a.info["config_type"] = "bulk" if a.pbc.all() else "cluster"
        frames.append(a)
    data = root / "data.xyz"
    ase.io.write(data, frames, format="extxyz")
    return pot, path, read_structures(data), data  # the frames as written (8 decimals)


def test_core_agrees_with_torch_model(setup):
    from nnp.data import FeaturizedDataset
    from nnp.model.network import NNPModel

    pot, path, frames, _ = setup
    core = predict_potential(path, frames)
    data = FeaturizedDataset.from_structures(frames, pot.descriptors)
    model = NNPModel.from_potential_data(pot)
    torch_p = predict_model(model, data, np.arange(len(frames)), batch_size=3)
    assert core.config_types == torch_p.config_types == ["bulk", "bulk", "cluster", "bulk"]
    np.testing.assert_array_equal(core.n_atoms, torch_p.n_atoms)
    for name in ("energy_ref", "forces_ref", "stress_ref"):
        np.testing.assert_array_equal(getattr(core, name), getattr(torch_p, name), err_msg=name)
    np.testing.assert_allclose(core.energy_pred, torch_p.energy_pred, rtol=0, atol=1e-10)
    np.testing.assert_allclose(core.forces_pred, torch_p.forces_pred, rtol=0, atol=1e-10)
    np.testing.assert_allclose(core.stress_pred, torch_p.stress_pred, rtol=0, atol=1e-12)  # NaN for the cluster
    assert np.isnan(core.stress_pred[2]).all() and np.isnan(core.stress_ref[[2, 3]]).all()
    assert np.isfinite(core.stress_ref[[0, 1]]).all()
    # Reordered and in batches of one: the same numbers.
    sub = predict_model(model, data, [3, 0], batch_size=1)
    np.testing.assert_allclose(sub.forces_pred, torch_p.subset([3, 0]).forces_pred, atol=1e-12)
    assert sub.config_types == ["bulk", "bulk"]


def test_metrics_match_an_independent_calculation(setup):
    """The evaluated errors are those of NNPCalculator's numbers, computed
    here by hand."""
    _, path, frames, data = setup
    m = evaluate(path, [data])["sets"]["data"]
    calc = NNPCalculator(path)
    de, df, ds = [], [], []
    for atoms in frames:
        ref = atoms.calc.results
        b = atoms.copy()
        b.calc = calc
        de.append((b.get_potential_energy() - ref["energy"]) / len(b) * 1000)
        df.append((b.get_forces() - ref["forces"]).ravel())
        if "stress" in ref:
            ds.append((b.get_stress() - ref["stress"]) * 160.21766208)
    de, df, ds = np.array(de), np.concatenate(df), np.concatenate(ds)
    o = m["overall"]
    assert o["n_structures"] == 4 and o["n_atoms"] == sum(len(a) for a in frames) and o["n_stress_structures"] == 2
    np.testing.assert_allclose(
        [o["energy_mae_meV_atom"], o["energy_rmse_meV_atom"], o["energy_max_meV_atom"]],
        [np.abs(de).mean(), np.sqrt((de**2).mean()), np.abs(de).max()], rtol=1e-9)
    np.testing.assert_allclose(
        [o["force_mae_eV_A"], o["force_rmse_eV_A"], o["force_max_eV_A"]],
        [np.abs(df).mean(), np.sqrt((df**2).mean()), np.abs(df).max()], rtol=1e-9)
    np.testing.assert_allclose([o["stress_mae_GPa"], o["stress_rmse_GPa"]],
                               [np.abs(ds).mean(), np.sqrt((ds**2).mean())], rtol=1e-9)
    assert m["config_types"]["cluster"]["n_structures"] == 1
    assert m["config_types"]["cluster"]["stress_mae_GPa"] is None


def test_command_line(setup, tmp_path, capsys):
    _, path, frames, data = setup
    out = tmp_path / "rep"
    assert main(["--potential", str(path), "--data", str(data), "--report", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"{data}: 4 structures" in text and "cluster" in text and "bulk" in text
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["sets"]["data"] == json.loads(json.dumps(metrics(predict_potential(path, frames))))
    all_row = next(line for line in text.splitlines() if line.startswith("all "))
    assert f"{saved['sets']['data']['overall']['energy_mae_meV_atom']:.2f}" in all_row
    # The report directory is refused before any work, and kept.
    before = sorted(p.name for p in out.iterdir())
    assert main(["--potential", str(path), "--data", str(data), "--report", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err and sorted(p.name for p in out.iterdir()) == before


def _error(capsys, *argv) -> str:
    assert main(list(argv)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err


def test_clear_errors(setup, tmp_path, capsys):
    _, path, frames, data = setup
    err = _error(capsys, "--potential", str(tmp_path / "none.nnp"), "--data", str(data))
    assert "none.nnp does not exist" in err
    broken = tmp_path / "broken.nnp"
    broken.write_text(path.read_text()[:400])
    err = _error(capsys, "--potential", str(broken), "--data", str(data))
    assert str(broken) in err and "Traceback" not in err
    err = _error(capsys, "--potential", str(path), "--data", str(tmp_path / "none.xyz"))
    assert "none.xyz does not exist" in err
    bad = tmp_path / "bad.xyz"
    nan = frames[2].copy()
    nan.calc = SinglePointCalculator(nan, energy=float("nan"), forces=frames[2].get_forces())
    ase.io.write(bad, [frames[0], nan], format="extxyz")
    err = _error(capsys, "--potential", str(path), "--data", str(bad))
    assert f"{bad}: frame 1: energy is nan" in err
    ge = [a.copy() for a in frames]
    for k in (1, 3):
        ge[k].calc = frames[k].calc
        ge[k].symbols[0] = "Ge"
    ge[0].calc, ge[2].calc = frames[0].calc, frames[2].calc
    ge_path = tmp_path / "ge.xyz"
    ase.io.write(ge_path, ge, format="extxyz")
    err = _error(capsys, "--potential", str(path), "--data", str(ge_path))
    assert "no model for element(s) Ge (frames 1, 3); it knows Si" in err


def test_module_runs_without_torch(setup):
    _, path, _, data = setup
    code = ("import sys, runpy; sys.argv = ['nnp.evaluate'] + sys.argv[1:];\n"
            "try:\n runpy.run_module('nnp.evaluate', run_name='__main__')\n"
            "except SystemExit as e:\n assert 'torch' not in sys.modules, 'torch imported'; raise")
    run = subprocess.run([sys.executable, "-c", code, "--potential", str(path), "--data", str(data)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "all " in run.stdout


def test_detail_files(setup, tmp_path, capsys):
    """--detail PREFIX: every prediction beside its reference, with a header
    naming columns and units (DeePMD-kit's dp test --detail-file)."""
    _, path, frames, data = setup
    prefix = tmp_path / "new" / "dir" / "Si"  # the directory is made
    assert main(["--potential", str(path), "--data", str(data), "--detail", str(prefix), "-o", str(tmp_path / "r")]) == 0
    assert "per-structure and per-atom predictions" in capsys.readouterr().out
    p = predict_potential(path, frames)
    cols = {}
    for suffix in ("e.out", "e_peratom.out", "f.out", "s.out", "v.out", "v_peratom.out"):
        file = tmp_path / "new" / "dir" / f"Si.{suffix}"
        header = file.read_text().splitlines()[0]
        assert header.startswith("# structure") and ("(eV" in header or "(GPa)" in header), (suffix, header)
        cols[suffix] = np.loadtxt(file, ndmin=2)
    n = p.n_atoms
    np.testing.assert_allclose(cols["e.out"][:, 2:], np.c_[p.energy_ref, p.energy_pred], rtol=1e-9)
    np.testing.assert_allclose(cols["e_peratom.out"][:, 2:], np.c_[p.energy_ref / n, p.energy_pred / n], rtol=1e-9)
    np.testing.assert_allclose(cols["f.out"][:, 2:], np.c_[p.forces_ref, p.forces_pred], rtol=1e-9, atol=1e-12)
    assert cols["f.out"].shape[0] == n.sum()
    periodic = [k for k, a in enumerate(frames) if a.pbc.all()]
    assert cols["s.out"][:, 0].tolist() == periodic and cols["v.out"][:, 0].tolist() == periodic
    volume = np.array([frames[k].get_volume() for k in periodic])
    w_pred = -p.stress_pred[periodic] * volume[:, None, None]
    np.testing.assert_allclose(cols["v.out"][:, 10:], w_pred.reshape(-1, 9), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cols["v_peratom.out"][:, 11:], w_pred.reshape(-1, 9) / n[periodic][:, None],
                               rtol=1e-9, atol=1e-12)
    # Existing detail files are refused before any work, without --force.
    assert main(["--potential", str(path), "--data", str(data), "--detail", str(prefix)]) == 2
    assert "use --force" in capsys.readouterr().err
    assert main(["--potential", str(path), "--data", str(data), "--detail", str(prefix), "--force"]) == 0


def test_detail_files_inside_the_report_directory(setup, tmp_path, capsys):
    """-o DIR --detail DIR/Si (as the README shows it): the report's own
    check of DIR does not trip over this run's detail files."""
    _, path, _, data = setup
    out = tmp_path / "report"
    assert main(["-p", str(path), "--data", str(data), "-o", str(out), "--detail", str(out / "Si")]) == 0, \
        capsys.readouterr().err
    assert (out / "report.md").is_file() and (out / "Si.e.out").is_file()


def test_energy_per_structure_virial_per_atom_and_max_column(setup, tmp_path):
    _, path, frames, data = setup
    p = predict_potential(path, frames)
    o = metrics(p)["overall"]
    de = p.energy_pred - p.energy_ref
    np.testing.assert_allclose([o["energy_mae_eV"], o["energy_rmse_eV"], o["energy_max_eV"]],
                               [np.abs(de).mean(), np.sqrt((de**2).mean()), np.abs(de).max()], rtol=1e-9)
    ok = [k for k, a in enumerate(frames) if a.pbc.all() and np.isfinite(p.stress_ref[k]).all()]
    dw = np.stack([-(p.stress_pred[k] - p.stress_ref[k]) * frames[k].get_volume() / len(frames[k]) for k in ok])
    dw = dw[:, [0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]] * 1000.0
    np.testing.assert_allclose([o["virial_mae_meV_atom"], o["virial_rmse_meV_atom"], o["virial_max_meV_atom"]],
                               [np.abs(dw).mean(), np.sqrt((dw**2).mean()), np.abs(dw).max()], rtol=1e-9)
    result = evaluate(path, [data], report_dir=tmp_path / "rep")
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| E max |" in md and "| F max |" in md and "| σ max |" in md and "E MAE (eV)" in md and "W/N MAE" in md
    all_row = next(line for line in md.splitlines() if line.startswith("| data | **all** | 4"))
    assert f"{result['sets']['data']['overall']['force_max_eV_A']:.4f}" in all_row
