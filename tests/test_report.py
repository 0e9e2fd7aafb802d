"""Error metrics, tables and report files (nnp.analysis.report), on hand-made numbers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from nnp.analysis.metrics import Predictions, format_table, metrics
from nnp.analysis.report import write_report

GPA = 160.21766208  # GPa per eV/Å³


def hand_made() -> Predictions:
    """Three structures (config types a, a, b; 2, 1 and 3 atoms) with errors
    simple enough to sum by hand.

    energy per atom: −1, +3, −4 meV/atom
    forces: a: 0.1, −0.2, 0.3 in three components (of 9); b: 0.4 (of 9)
    stress: s0 xx +0.001, yz −0.002 eV/Å³; s1 no label; s2 xy +0.003
    """
    n_atoms = np.array([2, 1, 3])
    e_ref = np.array([-10.0, -5.0, -15.0])
    e_pred = e_ref + np.array([-0.002, 0.003, -0.012])
    f_ref = np.arange(18, dtype=float).reshape(6, 3) * 0.01
    df = np.zeros((6, 3))
    df[0, 0], df[1, 1], df[2, 2], df[5, 0] = 0.1, -0.2, 0.3, 0.4
    s_ref = np.full((3, 3, 3), math.nan)
    s_ref[0] = s_ref[2] = np.diag([0.01, 0.02, 0.03])
    s_pred = np.zeros((3, 3, 3)) + np.diag([0.01, 0.02, 0.03])
    s_pred[0, 0, 0] += 0.001
    s_pred[0, 1, 2] = s_pred[0, 2, 1] = -0.002
    s_pred[2, 0, 1] = s_pred[2, 1, 0] = 0.003
    return Predictions(["a", "a", "b"], n_atoms, e_ref, e_pred, np.repeat([0, 1, 2], n_atoms),
                       f_ref, f_ref + df, s_ref, s_pred)


def test_metrics_by_hand():
    m = metrics(hand_made())
    assert json.loads(json.dumps(m, allow_nan=False)) == m
    assert m["units"] == {"energy": "meV/atom", "force": "eV/Å", "stress": "GPa"}
    want = {
        "overall": dict(
            n_structures=3, n_atoms=6, n_stress_structures=2,
            energy=(8 / 3, math.sqrt(26 / 3), 4.0),
            force=(1.0 / 18, math.sqrt(0.30 / 18), 0.4),
            stress=(0.006 / 12 * GPA, math.sqrt(14e-6 / 12) * GPA, 0.003 * GPA),
        ),
        "a": dict(
            n_structures=2, n_atoms=3, n_stress_structures=1,
            energy=(2.0, math.sqrt(5.0), 3.0),
            force=(0.6 / 9, math.sqrt(0.14 / 9), 0.3),
            stress=(0.003 / 6 * GPA, math.sqrt(5e-6 / 6) * GPA, 0.002 * GPA),
        ),
        "b": dict(
            n_structures=1, n_atoms=3, n_stress_structures=1,
            energy=(4.0, 4.0, 4.0),
            force=(0.4 / 9, math.sqrt(0.16 / 9), 0.4),
            stress=(0.003 / 6 * GPA, math.sqrt(9e-6 / 6) * GPA, 0.003 * GPA),
        ),
    }
    assert list(m["config_types"]) == ["a", "b"]
    for name, w in want.items():
        g = m["overall"] if name == "overall" else m["config_types"][name]
        for key in ("n_structures", "n_atoms", "n_stress_structures"):
            assert g[key] == w[key], (name, key)
        assert g["n_nonfinite"] == 0
        for q, unit in (("energy", "meV_atom"), ("force", "eV_A"), ("stress", "GPa")):
            got = (g[f"{q}_mae_{unit}"], g[f"{q}_rmse_{unit}"], g[f"{q}_max_{unit}"])
            np.testing.assert_allclose(got, w[q], rtol=1e-9, err_msg=f"{name} {q}")


def test_missing_references_are_left_out_and_bad_predictions_counted():
    p = hand_made()
    p.energy_ref[1] = math.nan  # structure 1 has no energy: energy errors of s0 and s2 only
    p.forces_ref[5, 1] = math.nan  # atom 5 has no force label: its 3 components leave
    m = metrics(p)["overall"]
    assert m["energy_mae_meV_atom"] == pytest.approx(2.5)
    assert m["force_mae_eV_A"] == pytest.approx(0.6 / 15)
    assert m["n_structures"] == 3 and m["n_nonfinite"] == 0
    p.energy_pred[2] = math.nan
    m = metrics(p)
    assert m["overall"]["energy_mae_meV_atom"] is None and m["overall"]["n_nonfinite"] == 1
    assert m["config_types"]["a"]["energy_mae_meV_atom"] == pytest.approx(1.0)
    assert "1 predicted values are NaN or inf" in format_table(m)
    json.dumps(m, allow_nan=False)


def test_no_stress_labels():
    p = hand_made()
    p.stress_ref[:] = math.nan
    m = metrics(p)["overall"]
    assert m["n_stress_structures"] == 0
    assert m["stress_mae_GPa"] is None and m["stress_rmse_GPa"] is None and m["stress_max_GPa"] is None


def test_format_table():
    text = format_table(metrics(hand_made()))
    lines = text.splitlines()
    row = {line.split()[0]: line.split() for line in lines[2:] if not line.startswith("-")}
    assert set(row) == {"a", "b", "all"}
    assert row["all"][1:] == ["3", "6", "2.67", "2.94", "0.0556", "0.1291", "0.080", "0.173"]
    assert row["b"][1:5] == ["1", "3", "4.00", "4.00"]
    both = format_table({"train": metrics(hand_made()), "validation": metrics(hand_made().subset([2]))})
    assert both.startswith("train\n") and "\n\nvalidation\n" in both


def test_subset_and_concatenate():
    p = hand_made()
    q = Predictions.concatenate([p.subset([2]), p.subset(np.array([True, True, False]))])
    assert q.config_types == ["b", "a", "a"]
    np.testing.assert_array_equal(q.forces_pred, np.concatenate([p.forces_pred[3:], p.forces_pred[:3]]))
    np.testing.assert_array_equal(q.atom_struct, [0, 0, 0, 1, 1, 2])
    assert metrics(q)["overall"] == pytest.approx(metrics(p)["overall"], rel=1e-12)


def test_predictions_check_shapes():
    p = hand_made()
    with pytest.raises(ValueError, match=r"forces_pred has shape \(5, 3\), expected \(6, 3\)"):
        Predictions(p.config_types, p.n_atoms, p.energy_ref, p.energy_pred, p.atom_struct,
                    p.forces_ref, p.forces_pred[:5], p.stress_ref, p.stress_pred)
    with pytest.raises(ValueError, match="atom_struct"):
        Predictions(p.config_types, p.n_atoms, p.energy_ref, p.energy_pred, p.atom_struct[::-1],
                    p.forces_ref, p.forces_pred, p.stress_ref, p.stress_pred)


def _png(path) -> tuple[int, int]:
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    h, w = imread(path).shape[:2]
    return w, h


def test_write_report_files_and_refusals(tmp_path):
    p = hand_made()
    sets = {"train": p.subset([0, 2]), "validation": p.subset([1])}
    history = [
        {"epoch": 1, "train_energy_rmse": 0.02, "train_force_rmse": 0.3, "val_energy_rmse": math.nan,
         "val_force_rmse": 0.4, "lr": 1e-3},
        {"epoch": 2, "train_energy_rmse": 0.01, "train_force_rmse": 0.2, "val_energy_rmse": 0.015,
         "val_force_rmse": 0.25, "lr": 5e-4},
    ]
    out = tmp_path / "report"
    result = write_report(out, sets, history)
    files = sorted(f.name for f in out.iterdir())
    assert files == ["learning_curve.png", "metrics.json", "parity_energy.png", "parity_forces.png",
                     "parity_stress.png", "report.md"]  # and no temporary files left behind
    saved = json.loads((out / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert saved == result
    assert saved["sets"]["train"] == json.loads(json.dumps(metrics(sets["train"])))
    assert saved["history"][0]["val_energy_rmse"] is None and saved["history"][1]["lr"] == 5e-4
    for name in ("parity_energy.png", "parity_forces.png", "parity_stress.png", "learning_curve.png"):
        w, h = _png(out / name)
        assert w > 300 and h > 200
    md = (out / "report.md").read_text()
    assert "| validation | a | 1 | 1 | 3.00 | 3.00 |" in md and "![Learning curve](learning_curve.png)" in md

    # A non-empty directory is refused and left as it was.
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    with pytest.raises(FileExistsError, match="not empty"):
        write_report(out, sets)
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before
    # With overwrite, files of the old report that the new one lacks go.
    no_stress = hand_made()
    no_stress.stress_ref[:] = math.nan
    write_report(out, {"test": no_stress}, overwrite=True)
    assert sorted(f.name for f in out.iterdir()) == ["metrics.json", "parity_energy.png", "parity_forces.png",
                                                     "report.md"]
    assert list(json.loads((out / "metrics.json").read_text())["sets"]) == ["test"]
    # A file in place of the directory; an empty existing directory is fine.
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        write_report(tmp_path / "file", sets)
    with pytest.raises(ValueError, match="no prediction sets"):
        write_report(tmp_path / "new", {})


def test_learning_curve_names_its_model_and_marks_the_switch():
    """The title says whose curve it is (with refit: the holdout twin's), and
    the Adam -> L-BFGS switch and the chosen epoch are marked."""
    from nnp.analysis.plots import MODEL_AS_WRITTEN, learning_curve_figure

    history = [dict(epoch=e, optimizer="adam" if e <= 3 else "lbfgs", model_train_energy_rmse=0.01 / e,
                    model_train_force_rmse=0.2 / e, val_energy_rmse=0.012 / e, val_force_rmse=0.22 / e,
                    val_loss=1.0 / e) for e in range(1, 9)]
    for model in (MODEL_AS_WRITTEN, "the holdout twin"):
        fig = learning_curve_figure(history, model)
        assert model in fig._suptitle.get_text()
        for ax in fig.axes:
            labels = [line.get_label() for line in ax.get_lines()]
            assert "Adam → L-BFGS (epoch 4)" in labels and "chosen epoch 8" in labels
            assert "train" in labels and "validation" in labels
