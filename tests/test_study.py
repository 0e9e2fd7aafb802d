"""The descriptor-length study (python -m nnp.study): settings, the study
directory's rules (resume, refuse mixing, never clobber foreign files), and
the whole --quick pipeline on the bundled Si data."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from nnp import study
from nnp.study import report as study_report
from nnp.study.config import StudyConfig
from nnp.study.plots import plot_elastic

REPO = Path(__file__).resolve().parents[1]
SI_DATA = REPO / "examples" / "si" / "data" / "train.xyz"


# ------------------------------------------------------------------ settings


def test_default_config_is_the_papers_protocol():
    from nnp.train import TrainConfig

    c = StudyConfig()
    c.check()
    assert c.points == ["A16", "A28", "A40", "A52", "A64", "B16", "B28", "B40", "B52", "B64"]
    assert (c.crystal_ps, c.timestep_fs, c.crystal_temperature, c.pressure_atm) == (1000.0, 1.0, 300.0, 1.0)
    assert (c.liquid_temperature, c.quench_end_temperature, c.quench_rate) == (2000.0, 300.0, 70.0)
    assert c.quench_ps == pytest.approx(1700 / 70)
    assert c.train == {}
    t = c.train_config("B40")
    assert (t.descriptor, t.seed, t.hidden_layers, t.hidden_nodes) == ("B40", 0, 2, 30)
    assert t.epochs == TrainConfig().epochs  # the training defaults
    assert StudyConfig(seed=3).train_config("A16").seed == 3
    with pytest.raises(ValueError, match="refit is not a study setting"):
        StudyConfig(train={"refit": True}).train_config("A16")
    StudyConfig.quick().check()
    assert StudyConfig.quick().crystal_cells == 2


@pytest.mark.parametrize(
    "values, message",
    [
        ({"series": ["C"]}, "series"),
        ({"lengths": [20]}, "lengths"),
        ({"quench_rate": 0}, "quench_rate"),
        ({"quench_end_temperature": 2500.0}, "below liquid_temperature"),
        ({"train": {"descriptor": "A16"}}, "set by the study"),
        ({"train": {"epochs": "many"}}, "epochs must be a int"),
        ({"train": {"nonsense": 1}}, "unknown setting"),
        ({"crystal_ps": 0.001}, "too short"),
        ({"blocks": 1}, "blocks"),
        ({"elastic_strain": 0.2}, "elastic_strain"),
    ],
)
def test_bad_settings_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        StudyConfig().updated(values).check()


def test_settings_from_yaml(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("lengths: [16, 64]\nseries: B\ncrystal_ps: 50\ntrain:\n  epochs: 7\n")
    c = StudyConfig().updated_from_yaml(path)
    assert c.points == ["B16", "B64"] and c.crystal_ps == 50.0 and c.train_config("B16").epochs == 7
    path.write_text("lenghts: [16]\n")
    with pytest.raises(ValueError, match="unknown setting.*lenghts"):
        StudyConfig().updated_from_yaml(path)


def test_points_selection_and_twins():
    c = StudyConfig()
    assert study.select_points(c, "B64, A16") == ["A16", "B64"]
    with pytest.raises(study.StudyError, match="C16"):
        study.select_points(c, "A16,C16")
    ctx = study.Context(c, study.StudyDir("unused"), [], "Si", 28.0855)
    # A64 and B64 both hold all 16 radial and 48 angular functions.
    assert study.twin_of(ctx, "B64") == "A64"
    assert study.twin_of(ctx, "A64") is None
    assert all(study.twin_of(ctx, p) is None for p in c.points if p != "B64")


# ----------------------------------------------------------- the directory


def _ident(**changes):
    return study.identity(StudyConfig().updated(changes), "0" * 64, 10)


def test_directory_rules(tmp_path):
    root = tmp_path / "run"
    sdir = study.StudyDir(root)
    study.prepare_directory(sdir, _ident(), {}, restart=False, force=False)
    assert json.loads(sdir.config_file.read_text())["identity"] == _ident()
    (root / "notes.txt").write_text("mine")
    sdir.save("A16", "zero_k", {"status": "done", "a": 5.4})
    # Same settings: resumes.
    study.prepare_directory(sdir, _ident(), {}, restart=False, force=False)
    assert sdir.result("A16", "zero_k")["a"] == 5.4
    # Other settings: refused, naming what differs; the results are untouched.
    with pytest.raises(study.StudyError, match=r"(?s)study\.crystal_ps: stored 1000\.0, now 10\.0.*--restart"):
        study.prepare_directory(sdir, _ident(crystal_ps=10.0), {}, restart=False, force=True)
    assert sdir.result("A16", "zero_k") is not None
    # --restart discards the study's results only.
    study.prepare_directory(sdir, _ident(crystal_ps=10.0), {}, restart=True, force=False)
    assert sdir.result("A16", "zero_k") is None
    assert (root / "notes.txt").read_text() == "mine"
    assert json.loads(sdir.config_file.read_text())["identity"]["study"]["crystal_ps"] == 10.0


def test_every_setting_belongs_to_its_stages():
    """A new StudyConfig field must say which stages it changes, or --update
    would keep results computed without it."""
    from nnp.study.config import POINT_SELECTION, STAGE_SETTINGS

    classified = set(POINT_SELECTION).union(*STAGE_SETTINGS.values())
    assert {f for f in StudyConfig().as_dict()} == classified
    assert set(STAGE_SETTINGS) == set(study.STAGES)


def _fake_results(sdir, points=("A16", "B16")):
    for p in points:
        for stage in study.STAGES:
            sdir.save(p, stage, {"status": "done", "stage": stage})
        sdir.potential(p).write_text("potential of " + p)
        (sdir.point(p) / "melt_samples.npz").write_bytes(b"melt")
        (sdir.point(p) / "crystal_samples.npz").write_bytes(b"crystal")
        sdir.checkpoint(p, "crystal").mkdir()
        sdir.parity(p).mkdir()


@pytest.mark.parametrize(
    "change, stale",
    [
        ({"crystal_ps": 10.0}, ["crystal"]),
        ({"liquid_density": 0.0}, ["melt"]),
        ({"blocks": 4}, ["melt", "crystal"]),
        ({"elastic_strain": 0.01}, ["zero_k"]),
        ({"lengths": [16]}, []),
        ({"train": {"epochs": 3}}, list(study.STAGES)),
    ],
)
def test_update_reruns_only_the_stages_a_change_affects(tmp_path, change, stale):
    root = tmp_path / "run"
    sdir = study.StudyDir(root)
    study.prepare_directory(sdir, _ident(), {}, restart=False, force=False)
    _fake_results(sdir)
    new = _ident(**change)
    assert study.stale_stages(_ident(), new) == stale
    with pytest.raises(study.StudyError, match="--update"):
        study.prepare_directory(sdir, new, {}, restart=False, force=False)
    lines = []
    study.prepare_directory(sdir, new, {}, restart=False, force=False, update=True, log=lines.append)
    assert json.loads(sdir.config_file.read_text())["identity"] == new
    assert f"rerunning {', '.join(stale) or 'nothing'}" in lines[0]
    moved = sorted((root / "superseded").glob("*/points")) if stale else []
    assert len(moved) == (1 if stale else 0)
    for p in ("A16", "B16"):
        for stage in study.STAGES:
            kept = sdir.result(p, stage) is not None
            assert kept == (stage not in stale)
            if stage in stale:  # moved, not deleted
                assert (moved[0] / p / f"{stage}.json").is_file()
        assert sdir.potential(p).is_file() == ("train" not in stale)
        assert sdir.parity(p).is_dir() == ("validation" not in stale)
        assert (sdir.point(p) / "crystal_samples.npz").is_file() == ("crystal" not in stale)
        assert sdir.checkpoint(p, "crystal").is_dir() == ("crystal" not in stale)
        assert (sdir.point(p) / "melt_samples.npz").is_file() == ("melt" not in stale)
    if "train" in stale:
        assert (moved[0] / "A16" / "potential.nnp").read_text() == "potential of A16"
    # Updated: the same settings now resume without a word.
    study.prepare_directory(sdir, new, {}, restart=False, force=False)


def test_boiled_phase_is_flagged_and_left_out_of_the_rdf_plots(tmp_path):
    from nnp.study import report as study_report

    sdir = study.StudyDir(tmp_path)
    r = np.linspace(0.05, 5.95, 60)
    phase = {"density": 2.3, "density_err": 0.01, "pressure_gpa": 0.1, "pressure_gpa_err": 0.05,
             "coordination": 4.1, "rdf_r": list(r), "rdf_g": list(np.ones_like(r))}
    sdir.save("A16", "melt", {"status": "done", "liquid": {**phase, "density": 0.04, "boiled": True},
                              "amorphous": {**phase, "boiled": False}})
    config = StudyConfig()
    rows = study_report.collect(sdir, config)
    a16 = rows[0]
    assert a16["liquid_boiled"] == 1 and a16["amorphous_boiled"] == 0
    assert set(a16["rdf"]) == {"amorphous"}
    text = study_report.markdown(rows, config, {"identity": study.identity(config, "0" * 64, 10)}, ())
    assert "| A16 | 0.040 ± 0.010 *boiled* |" in text
    assert "NVT at 2.57 g/cm³" in text


def test_a_stage_another_process_finished_is_not_run_again(tmp_path, monkeypatch):
    """Two processes may share DIR: a stage found done when its turn comes is skipped."""
    sdir = study.StudyDir(tmp_path)
    config = StudyConfig().updated({"series": ["A"], "lengths": [16, 28]})
    for p in config.points:
        sdir.save(p, "train", {"status": "done"})
    ran = []

    def zero_k(ctx, point):
        ran.append(point)
        sdir.save("A28", "zero_k", {"status": "done", "a": 5.47})  # the other process, meanwhile
        return {"a": 5.46}

    monkeypatch.setitem(study.RUNNERS, "zero_k", zero_k)
    lines = []
    ctx = study.Context(config, sdir, [], "Si", 28.0855, log=lines.append)
    todo = [t for t in study.pending(ctx, config.points, False) if t[0] == "zero_k"]
    monkeypatch.setattr(study.runner, "pending", lambda *a: todo)
    study.run_study(ctx, config.points)
    assert ran == ["A16"]
    assert sdir.result("A28", "zero_k")["a"] == 5.47
    assert any("A28 0 K lattice and elastic constants: done meanwhile by another process" in x for x in lines)


def test_foreign_directory_needs_force(tmp_path):
    (tmp_path / "data.txt").write_text("x")
    sdir = study.StudyDir(tmp_path)
    with pytest.raises(study.StudyError, match="not a study directory.*--force"):
        study.prepare_directory(sdir, _ident(), {}, restart=False, force=False)
    study.prepare_directory(sdir, _ident(), {}, restart=False, force=True)
    assert (tmp_path / "data.txt").read_text() == "x"
    afile = tmp_path / "file"
    afile.write_text("")
    with pytest.raises(study.StudyError, match="not a directory"):
        study.prepare_directory(study.StudyDir(afile), _ident(), {}, restart=False, force=True)


def test_cli_errors(tmp_path, capsys):
    assert study.main(["--out", str(tmp_path / "x")]) == 1
    assert "--data is required" in capsys.readouterr().err
    assert study.main(["--data", str(tmp_path / "none.xyz"), "--out", str(tmp_path / "x")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert study.main(["--data", str(SI_DATA), "--out", str(tmp_path / "x"), "--points", "Z9"]) == 1
    assert "Z9" in capsys.readouterr().err
    assert study.main(["--out", str(tmp_path / "y"), "--report-only"]) == 1
    assert "not a study directory" in capsys.readouterr().err


# ------------------------------------------------------- the quick study


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _f(x: str) -> float:
    return float(x) if x != "" else math.nan


@pytest.fixture(scope="module")
def quick_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "quick"
    code = study.main(["--data", str(SI_DATA), "--out", str(out), "--quick", "--progress-seconds", "1000"])
    assert code == 0
    return out


@pytest.mark.slow
def test_quick_study_outputs(quick_study):
    out = quick_study
    config = StudyConfig.quick()
    points = config.points
    for name in ("report.md", "errors.csv", "properties.csv", "study.json", "errors_vs_length.png",
                 "bulk_modulus_vs_length.png", "elastic_vs_length.png"):
        assert (out / name).is_file(), name
    stored = json.loads((out / "study.json").read_text())
    assert stored["identity"]["study"] == json.loads(json.dumps(config.as_dict()))

    # Every point trained, validated and measured at 0 K (these cannot fail for physical reasons).
    for p in points:
        for stage in ("train", "validation", "zero_k"):
            r = json.loads((out / "points" / p / f"{stage}.json").read_text())
            assert r["status"] == "done", (p, stage, r.get("error"))
        assert (out / "points" / p / "potential.nnp").is_file()
        assert (out / "points" / p / "validation" / "parity_energy.png").is_file()

    # errors.csv: the validation metrics of each point's validation.json, finite and positive.
    errors = {row["point"]: row for row in _csv(out / "errors.csv")}
    assert list(errors) == points
    for p, row in errors.items():
        m = json.loads((out / "points" / p / "validation.json").read_text())["metrics"]["validation"]["overall"]
        assert _f(row["val_energy_mae"]) == pytest.approx(m["energy_mae_meV_atom"], rel=1e-8)
        assert _f(row["val_force_rmse"]) == pytest.approx(m["force_rmse_eV_A"], rel=1e-8)
        for key in ("val_energy_mae", "val_energy_rmse", "val_force_mae", "val_force_rmse"):
            assert 0 < _f(row[key]) < 1e4, (p, key)
        assert _f(row["val_energy_mae"]) <= _f(row["val_energy_rmse"])
        assert int(row["n_functions"]) == int(p[1:])
    # The validation structures are the same for every point (one split).
    val_idx = {p: tuple(json.loads((out / "points" / p / "train.json").read_text())["validation_indices"])
               for p in points}
    assert len(set(val_idx.values())) == 1

    props = {row["point"]: row for row in _csv(out / "properties.csv")}
    for p, row in props.items():
        a0 = _f(row["a0"])
        assert 5.0 < a0 < 6.2, (p, a0)  # a barely trained model, but diamond Si-like
        assert math.isfinite(_f(row["c11"])) and math.isfinite(_f(row["b0"]))
        assert _f(row["b0"]) == pytest.approx((_f(row["c11"]) + 2 * _f(row["c12"])) / 3, rel=1e-6)
    # B64 is A64 (the same descriptor): reused, identical.
    assert props["B64"] == {**props["A64"], "point": "B64", "series": "B"}
    assert json.loads((out / "points" / "B64" / "crystal.json").read_text()).get("same_as") == "A64"

    # MD stages: a barely trained potential may blow up; a stage is then recorded as
    # failed with the error, and the report lists it. Most must run through.
    report = (out / "report.md").read_text()
    done = {"melt": [], "crystal": []}
    for p in points:
        for stage in done:
            r = json.loads((out / "points" / p / f"{stage}.json").read_text())
            if r["status"] == "done":
                done[stage].append(p)
            else:
                assert r["status"] == "failed" and r["error"]
                assert re.search(rf"\| {p} \| {stage} \| .*{re.escape(r['error'][:40])}", report)
    assert len(done["crystal"]) >= 6 and len(done["melt"]) >= 6, done
    for p in done["crystal"]:
        row = props[p]
        a, b, err = _f(row["a_npt"]), _f(row["b_npt"]), _f(row["b_npt_err"])
        assert 5.0 < a < 6.5 and b > 0 and err >= 0, (p, a, b, err)
        assert 100 < _f(row["crystal_temperature"]) < 2000
        r = json.loads((out / "points" / p / "crystal.json").read_text())
        assert r["natoms"] == 8 * config.crystal_cells**3
        assert r["samples"] == config.steps(config.crystal_ps) // config.sample_every
        samples = np.load(out / "points" / p / "crystal_samples.npz")
        assert len(samples["production_volume"]) == r["samples"]
        assert a == pytest.approx(np.mean((samples["production_volume"] / config.crystal_cells**3) ** (1 / 3)))
    for p in done["melt"]:
        for kind in ("liquid", "amorphous"):
            rho = _f(props[p][f"{kind}_density"])
            assert 0.5 < rho < 5.0, (p, kind, rho)
            assert _f(props[p][f"{kind}_boiled"]) == 0
        # The liquid is NVT at the configured density; the amorphous solid NPT.
        assert _f(props[p]["liquid_density"]) == pytest.approx(config.liquid_density, rel=1e-9)
        assert _f(props[p]["liquid_density_err"]) == pytest.approx(0, abs=1e-9)
        assert math.isfinite(_f(props[p]["liquid_pressure"]))

    # RDF files: one column per finished point, g >= 0, r increasing up to the cutoff.
    for kind, stage in (("crystal", "crystal"), ("liquid", "melt"), ("amorphous", "melt")):
        rows = _csv(out / f"rdf_{kind}.csv")
        assert list(rows[0])[1:] == done[stage]
        r = np.array([_f(x["r_A"]) for x in rows])
        assert np.all(np.diff(r) > 0) and r[-1] < config.rdf_cutoff
        assert len(rows) == config.rdf_bins
        g = np.array([[_f(x[p]) for p in done[stage]] for x in rows])
        assert np.all(np.isfinite(g)) and np.all(g >= 0) and g.max() > 1
        assert (out / f"rdf_{kind}.png").is_file()

    # report.md: a row per point in every table, with the numbers of the CSV files,
    # and the DFT-PBE references of docs/science.md.
    for p in points:
        e = errors[p]
        assert f"| {p} | {e['n_functions']} | {_f(e['val_energy_mae']):.2f} | {_f(e['val_energy_rmse']):.2f} |" in report
        assert f"| {p} | {_f(props[p]['a0']):.4f} | {_f(props[p]['c11']):.1f} |" in report
    for ref in ("| *DFT-PBE* | 5.469 | 153 | 56.5 | — | — | 88.7 |", "*experiment*", "98–99"):
        assert ref in report


@pytest.mark.slow
def test_quick_study_resumes_and_refuses_other_settings(quick_study, capsys):
    out = quick_study
    args = ["--data", str(SI_DATA), "--out", str(out), "--quick", "--progress-seconds", "1000"]
    stage_files = sorted((out / "points").glob("*/*.json"))
    stamps = {f: f.stat().st_mtime_ns for f in stage_files}
    capsys.readouterr()
    # Everything done: nothing is recomputed.
    assert study.main(args) == 0
    assert "every stage of the selected points is done" in capsys.readouterr().out
    assert {f: f.stat().st_mtime_ns for f in stage_files} == stamps
    # A lost stage is recomputed alone, with the same result (same seed, same potential).
    lost = out / "points" / "B40" / "zero_k.json"
    before = json.loads(lost.read_text())
    lost.unlink()
    assert study.main(args) == 0
    printed = capsys.readouterr().out
    assert "[1/1] B40 0 K lattice" in printed
    after = json.loads(lost.read_text())
    for key in ("a", "c11", "c12", "c44"):
        assert after[key] == pytest.approx(before[key], rel=1e-9)
    # Other settings are refused before any work.
    assert study.main([*args, "--epochs", "3"]) == 1
    err = capsys.readouterr().err
    assert "train.epochs: stored 15, now 3" in err and "--restart" in err
    # The report can be rewritten from the stored results alone.
    (out / "report.md").unlink()
    assert study.main(["--out", str(out), "--report-only"]) == 0
    assert (out / "report.md").is_file()


def test_quick_run_says_it_is_quick(tmp_path):
    """A scaled-down run's report and plots carry a banner with its quench
    rate; the paper's protocol has none; fixed quantities get no ± 0."""
    assert study_report.scaled_down(StudyConfig()) == [] and study_report.banner(StudyConfig()) == ""
    quick = StudyConfig.quick()
    reasons = "; ".join(study_report.scaled_down(quick))
    assert "11,333 K/ps" in reasons and "0.2 ps crystal NPT" in reasons
    text = study_report.markdown([], quick, {}, [])
    first = text.split("\n## ")[0]
    assert "QUICK RUN" in first and "11,333 K/ps" in first
    assert "QUICK RUN" not in study_report.markdown([], StudyConfig(), {}, [])
    assert study_report._pm(2.57, 0.0, 3) == "2.570" and study_report._pm(2.5, 0.01, 3) == "2.500 ± 0.010"
    rows = [{"series": s, "length": n, "a0": 5.43 + 0.001 * n, "c11": 150.0, "c12": 60.0, "c44": 70.0}
            for s in "AB" for n in (16, 28, 40)]
    for banner in ("", study_report.plot_banner(quick)):
        path = tmp_path / f"elastic{len(banner)}.png"
        assert plot_elastic(rows, path, banner) and path.read_bytes()[:4] == b"\x89PNG"


# ------------------------------------------------- two regressors (--models)


def test_models_setting_and_run_names(tmp_path, capsys):
    c = StudyConfig().updated({"lengths": [16, 64], "models": "nn,gp"})  # YAML may give "nn,gp" too
    c.check()
    assert c.models == ("nn", "gp")
    assert c.runs == ["A16", "A16-gp", "A64", "A64-gp", "B16", "B16-gp", "B64", "B64-gp"]
    assert [study.split_run(r) for r in ("A16", "B64-gp")] == [("A16", "nn"), ("B64", "gp")]
    assert c.train_config("A16", "gp").model == "gp" and c.train_config("A16").model == "nn"
    # The network's runs keep the point's name: a study of the network alone is laid out as before.
    assert StudyConfig().runs == StudyConfig().points
    ctx = study.Context(c, study.StudyDir("unused"), [], "Si", 28.0855)
    assert study.twin_of(ctx, "B64-gp") == "A64-gp" and study.twin_of(ctx, "B64") == "A64"
    assert study.twin_of(ctx, "A64-gp") is None
    for bad, message in (({"models": ["nn", "svm"]}, "models must be a non-empty list of nn, gp"),
                         ({"models": ["gp", "gp"]}, "must not repeat"),
                         ({"train": {"model": "gp"}}, "model is set by the study")):
        with pytest.raises(ValueError, match=message):
            StudyConfig().updated(bad).check()
    assert study.parse_models(" gp ") == ["gp"]
    # Bad --models values: one line on stderr, before anything is read or written.
    for spec, message in (("nn,svm", "'svm' is not a model"), ("", "'' is not a model"),
                          ("nn,nn", "a model is named twice")):
        out = tmp_path / "never"
        assert study.main(["--data", str(SI_DATA), "--out", str(out), "--quick", "--models", spec]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"error: --models {spec!r}: {message}; give one or more")
        assert not out.exists()


def _ident_models(models, **train):
    c = StudyConfig().updated({"models": models, "train": train})
    return study.identity(c, "0" * 64, 10)


def test_directory_of_one_model_is_not_silently_reused_for_two(tmp_path):
    root = tmp_path / "run"
    sdir = study.StudyDir(root)
    nn = _ident_models(["nn"])
    study.prepare_directory(sdir, nn, {}, restart=False, force=False)
    _fake_results(sdir, ("A16",))
    both = _ident_models(["nn", "gp"])
    with pytest.raises(study.StudyError, match=r"(?s)study\.models: stored \['nn'\], now \['nn', 'gp'\].*"
                                               r"--update.*adds the runs of the GP and keeps every stored result"):
        study.prepare_directory(sdir, both, {}, restart=False, force=False)
    lines = []
    study.prepare_directory(sdir, both, {}, restart=False, force=False, update=True, log=lines.append)
    assert "rerunning nothing" in lines[0] and not (root / "superseded").exists()
    assert all(sdir.result("A16", s) is not None for s in study.STAGES)
    # A GP setting changes the GP's runs only: the network's are kept.
    _fake_results(sdir, ("A16-gp",))
    sparse = _ident_models(["nn", "gp"], gp_sparse=50)
    assert study.stale_stages(both, sparse, "nn") == [] and study.stale_stages(both, sparse, "gp") == list(study.STAGES)
    study.prepare_directory(sdir, sparse, {}, restart=False, force=False, update=True, log=lines.append)
    assert all(sdir.result("A16", s) is not None for s in study.STAGES)
    assert all(sdir.result("A16-gp", s) is None for s in study.STAGES)
    moved = next((root / "superseded").glob("*/points"))
    assert sorted(p.name for p in moved.iterdir()) == ["A16-gp"] and (moved / "A16-gp" / "potential.nnp").is_file()


def test_directory_from_before_models_resumes(tmp_path):
    """A study.json written before `models` (and before the GP settings)
    reads as a study of the network alone: it resumes as it did."""
    sdir = study.StudyDir(tmp_path)
    old = _ident_models(["nn"])
    del old["study"]["models"]
    old["train"] = {k: v for k, v in old["train"].items() if not k.startswith("gp_")}
    # It also held the run's resources, which the identity leaves out now.
    old["train"].update(model="nn", memory_budget=0.0, chunk_size=32, checkpoint_every=10.0)
    study.write_json(sdir.config_file, {"identity": old})
    study.prepare_directory(sdir, _ident_models(["nn"]), {}, restart=False, force=False)  # no error
    with pytest.raises(study.StudyError, match="study.models"):
        study.prepare_directory(sdir, _ident_models(["nn", "gp"]), {}, restart=False, force=False)


def test_error_plot_has_a_line_per_series_and_model(tmp_path, monkeypatch):
    from nnp.study import plots

    figures = []
    monkeypatch.setattr(plots, "save_png", lambda fig, path: figures.append(fig))
    rows = [{"series": s, "length": n, "model": m, "val_energy_rmse": 1.0 + n / 10 + (m == "gp"),
             "val_energy_mae": 0.5 + n / 10, "val_force_rmse": 0.1 + n / 1000, "val_force_mae": 0.05 + n / 1000}
            for s in "AB" for n in (16, 28, 40) for m in ("nn", "gp")]
    assert plots.plot_errors(rows, tmp_path / "e.png", "")
    axes = figures[0].axes
    assert [a.get_ylabel() for a in axes] == [
        "validation energy RMSE (meV/atom)", "validation force RMSE (eV/Å)",
        "validation energy MAE (meV/atom)", "validation force MAE (eV/Å)"]
    for ax in axes:
        assert ax.get_xlabel() == "descriptor length (functions)"
        labels = [line.get_label() for line in ax.get_lines()]
        assert labels == ["series A, network", "series A, GP", "series B, network", "series B, GP"]
        assert [t.get_text() for t in ax.get_legend().get_texts()] == labels
    gp_a = axes[0].get_lines()[1]
    assert list(gp_a.get_xdata()) == [16, 28, 40]
    assert list(gp_a.get_ydata()) == pytest.approx([3.6, 4.8, 6.0])
    # One model: the figure of before, two panels with RMSE and MAE lines.
    figures.clear()
    assert plots.plot_errors([r for r in rows if r["model"] == "nn"], tmp_path / "n.png", "")
    assert len(figures[0].axes) == 2
    assert [line.get_label() for line in figures[0].axes[0].get_lines()] == [
        "series A RMSE", "series A MAE", "series B RMSE", "series B MAE"]


@pytest.mark.slow
def test_quick_study_with_both_models(tmp_path):
    """--models nn,gp: every point with the network and the GP, on one
    split; both in every table and in the error plot."""
    cfg = tmp_path / "small.yaml"
    # Two points and 100 sparse points keep it to ~30 s of compute.
    cfg.write_text("lengths: [16]\ntrain:\n  epochs: 15\n  gp_sparse: 100\n")
    out = tmp_path / "both"
    args = ["--data", str(SI_DATA), "--out", str(out), "--quick", "--config", str(cfg), "--progress-seconds", "1000"]
    assert study.main([*args, "--models", "nn,gp"]) == 0
    runs = ["A16", "A16-gp", "B16", "B16-gp"]
    assert sorted(p.name for p in (out / "points").iterdir()) == runs
    trained = {r: json.loads((out / "points" / r / "train.json").read_text()) for r in runs}
    assert all(t["status"] == "done" for t in trained.values())
    assert {tuple(t["validation_indices"]) for t in trained.values()} != set()
    assert len({tuple(t["validation_indices"]) for t in trained.values()}) == 1  # one split for both
    assert trained["A16-gp"]["model"] == "gp" and trained["A16-gp"]["n_sparse"] == {"Si": 100}
    gp_file = (out / "points" / "A16-gp" / "potential.nnp").read_text()
    nn_file = (out / "points" / "A16" / "potential.nnp").read_text()
    assert "sparse GP" in gp_file and "sparse GP" not in nn_file

    errors = {(row["point"], row["model"]): row for row in _csv(out / "errors.csv")}
    assert list(errors) == [("A16", "nn"), ("A16", "gp"), ("B16", "nn"), ("B16", "gp")]
    for (p, m), row in errors.items():
        v = json.loads((out / "points" / study.run_name(p, m) / "validation.json").read_text())
        overall = v["metrics"]["validation"]["overall"]
        assert _f(row["val_energy_mae"]) == pytest.approx(overall["energy_mae_meV_atom"], rel=1e-8)
        assert _f(row["val_force_rmse"]) == pytest.approx(overall["force_rmse_eV_A"], rel=1e-8)
    # The GP's validation errors, measured through the written file, are those its fit reported.
    assert _f(errors[("A16", "gp")]["val_energy_rmse"]) == pytest.approx(
        1000 * trained["A16-gp"]["validation_energy_rmse"], rel=1e-9)
    props = {(row["point"], row["model"]): row for row in _csv(out / "properties.csv")}
    for key, row in props.items():
        assert 5.0 < _f(row["a0"]) < 6.2, key
        assert _f(row["train_wall_s"]) > 0, key
        crystal = json.loads((out / "points" / study.run_name(*key) / "crystal.json").read_text())
        if crystal["status"] == "done":
            assert _f(row["crystal_us"]) == pytest.approx(1e6 * crystal["seconds_per_atom_step"], rel=1e-8)

    report = (out / "report.md").read_text()
    assert "| point | model | functions | E MAE |" in report and "## Cost" in report
    for (p, m), row in errors.items():
        name = {"nn": "network", "gp": "GP"}[m]
        assert f"| {p} | {name} | 16 | {_f(row['val_energy_mae']):.2f} |" in report
        assert f"| {p} | {name} | {_f(props[(p, m)]['a0']):.4f} |" in report
    assert "A sparse GP on every point" in report and "100 sparse points per element" in report
    png = out / "errors_vs_length.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and "![errors vs length](errors_vs_length.png)" in report

    # Resumes as it is; the network alone in the same directory is refused, naming models.
    assert study.main([*args, "--models", "nn,gp"]) == 0
    assert study.main(args) == 1
