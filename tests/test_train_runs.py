"""Training runs: the loss with stress, L-BFGS, early stopping, checkpoints and
--resume after SIGINT/SIGKILL, committees (--ensemble), --device, --report."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
import yaml
from ase import Atoms

from nnp.calculator import NNPCalculator
from nnp.committee import mean_potential
from nnp.io import potential_file
from nnp.io.atomic import file_sha256
from nnp.data import FeaturizedDataset, read_structures, split
from nnp.descriptors import preset
from nnp.model.network import NNPModel
import nnp.train as nnp_train
from nnp.train import (CORE_MARGIN, TrainConfig, build_model, checkpoint_paths, checkpoints, evaluate, main,
                       shortest_distance, train)
from nnp.train.loss import Objective, errors
from test_train import labelled_si

torch.set_num_threads(1)

SMALL = dict(descriptor="A16", hidden_layers=1, hidden_nodes=8, batch_size=2, learning_rate=5e-3,
             validation_fraction=0.25, log_every=1, threads=1, checkpoint_every=0.0, refit=False)


@pytest.fixture(scope="module")
def frames():
    return labelled_si(8)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory, frames) -> Path:
    path = tmp_path_factory.mktemp("data") / "si.xyz"
    ase.io.write(path, frames, format="extxyz")
    return path


@pytest.fixture(scope="module")
def dataset(frames):
    ds = preset("A16")
    return ds, FeaturizedDataset.from_structures(frames, ds)


def write_config(path: Path, **values) -> Path:
    path.write_text(yaml.safe_dump({**SMALL, **values}))
    return path


def without_date(p: Path) -> list[str]:
    return [line for line in p.read_text().splitlines() if not line.startswith("# date:")]


# ---------------------------------------------------------------- the loss


def test_loss_has_the_documented_form(dataset):
    """The full-set loss equals the formula of the module docstring computed
    by hand from the model's energies, forces and virials."""
    ds, data = dataset
    cfg = TrainConfig(**SMALL, energy_weight=0.7, force_weight=0.03, stress_weight=0.2)
    idx, _ = split(len(data), cfg.validation_fraction, cfg.seed)
    model = build_model(data, ds, cfg, idx)
    batch = data.collate(idx)
    out = model(batch, forces=True, stress=True)
    n = batch.n_atoms.to(torch.float64)
    out = {k: v.detach() for k, v in out.items()}
    e_term = (((out["energy"] - batch.energy) / n) ** 2).mean()
    f_term = ((out["forces"] - batch.forces) ** 2).mean()
    w_ref = -batch.stress * batch.volume.view(-1, 1, 1)
    dw = (out["virial"] - w_ref) / n.view(-1, 1, 1)
    voigt = torch.stack([dw[:, 0, 0], dw[:, 1, 1], dw[:, 2, 2], dw[:, 1, 2], dw[:, 0, 2], dw[:, 0, 1]], 1)
    s_term = (voigt**2).mean()
    assert float(s_term) > 0
    want = 0.7 * e_term + 0.03 * f_term + 0.2 * s_term
    objective = Objective(data, idx, cfg, torch.device("cpu"))
    got = objective.loss(errors(model, batch, True, create_graph=False))
    assert float(got.detach()) == pytest.approx(float(want), rel=1e-12)
    # Chunked full-batch evaluation gives the same loss (and a gradient).
    model.zero_grad()
    assert objective.full_batch(model, chunk=2) == pytest.approx(float(want), rel=1e-12)
    assert all(p.grad is not None for p in model.parameters())


def test_stress_term_trains_the_stress(dataset):
    ds, data = dataset
    base = dict(SMALL, validation_fraction=0.0, energy_weight=0.0, force_weight=0.0, stress_weight=1.0)
    untrained = train(data, ds, TrainConfig(**dict(base, epochs=0)), log=lambda line: None)
    trained = train(data, ds, TrainConfig(**dict(base, epochs=30)), log=lambda line: None)
    assert trained.train.stress_rmse < 0.5 * untrained.train.stress_rmse
    m = trained.train
    assert m.stress_mae <= m.stress_rmse and m.energy_mae <= m.energy_rmse and m.force_mae <= m.force_rmse


def test_lbfgs_phase_follows_adam_and_lowers_the_loss(dataset):
    ds, data = dataset
    cfg = TrainConfig(**dict(SMALL, epochs=12, lbfgs_fraction=0.5))
    result = train(data, ds, cfg, log=lambda line: None)
    phases = [h["optimizer"] for h in result.history]
    assert phases == ["adam"] * 6 + ["lbfgs"] * 6
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[6] < losses[0]


def test_lbfgs_reuses_the_evaluation_where_its_line_search_ended(dataset, monkeypatch):
    """Each L-BFGS epoch starts at the point its previous line search
    evaluated last: that loss and gradient come from memory, and the model is
    bit for bit the one of re-evaluating it."""
    ds, data = dataset
    cfg = TrainConfig(**dict(SMALL, epochs=10, lbfgs_fraction=1.0))
    evaluations = []
    full_batch = Objective.full_batch

    def counted(self, model, chunk=32):
        evaluations[-1] += 1
        return full_batch(self, model, chunk)

    monkeypatch.setattr(Objective, "full_batch", counted)
    evaluations.append(0)
    cached = train(data, ds, cfg, log=lambda line: None)

    class Forgetful(nnp_train.phases.LbfgsClosure):
        def __call__(self):
            self._last = None
            return super().__call__()

    monkeypatch.setattr(nnp_train.phases, "LbfgsClosure", Forgetful)
    evaluations.append(0)
    plain = train(data, ds, cfg, log=lambda line: None)
    assert evaluations[0] <= evaluations[1] - (cfg.epochs - 1), evaluations
    for key, value in plain.model.state_dict().items():
        assert torch.equal(cached.model.state_dict()[key], value), key
    assert [h["train_loss"] for h in cached.history] == [h["train_loss"] for h in plain.history]


def test_weight_decay_is_an_l2_penalty_in_the_lbfgs_phase_too(dataset):
    """Adam's weight_decay adds wd·w to the gradient; L-BFGS minimises the
    loss plus 0.5·wd·|w|², the same penalty, and ends with smaller weights."""
    ds, data = dataset
    cfg = TrainConfig(**dict(SMALL, epochs=4, lbfgs_fraction=1.0, weight_decay=1e-3))
    idx = np.arange(len(data))
    model = build_model(data, ds, cfg, idx)
    params = [p for p in model.parameters() if p.requires_grad]
    objective = Objective(data, idx, cfg, torch.device("cpu"))
    loss = nnp_train.phases.LbfgsClosure(objective, model, params)()
    grads = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    plain = objective.full_batch(model)
    norm2 = sum(float((p.detach() ** 2).sum()) for p in params)
    assert loss == pytest.approx(plain + 0.5e-3 * norm2, rel=1e-12)
    for p, g in zip(params, grads):
        torch.testing.assert_close(g, p.grad + 1e-3 * p.detach(), rtol=1e-10, atol=1e-14)

    def weight_norm(decay):
        result = train(data, ds, TrainConfig(**dict(SMALL, epochs=6, lbfgs_fraction=1.0, weight_decay=decay)),
                       log=lambda line: None)
        return sum(float((p.detach() ** 2).sum()) for p in result.model.parameters() if p.requires_grad)

    assert weight_norm(0.1) < weight_norm(0.0)


def test_checkpoints_are_written_at_most_every_checkpoint_every_seconds(dataset, tmp_path, monkeypatch):
    ds, data = dataset
    saved = []
    save = checkpoints.save
    monkeypatch.setattr(checkpoints, "save", lambda path, **state: (saved.append(state["epoch"]), save(path, **state)))
    train(data, ds, TrainConfig(**dict(SMALL, epochs=6)), log=lambda line: None, checkpoint=tmp_path / "a.ckpt")
    assert saved == [1, 2, 3, 4, 5, 6]
    saved.clear()
    train(data, ds, TrainConfig(**dict(SMALL, epochs=6, checkpoint_every=3600.0)), log=lambda line: None,
          checkpoint=tmp_path / "b.ckpt")
    assert saved == [6]  # the last epoch is always saved
    with pytest.raises(ValueError, match="checkpoint_every"):
        TrainConfig(checkpoint_every=-1.0).check()


def test_patience_stops_a_phase_early(dataset):
    ds, data = dataset
    # A far too large learning rate: the validation loss never beats epoch 1.
    cfg = TrainConfig(**dict(SMALL, epochs=20, lbfgs_fraction=0.5, learning_rate=3.0, lr_schedule="plateau", patience=3))
    lines = []
    result = train(data, ds, cfg, log=lines.append)
    assert len(result.history) < 20
    assert any("adam stops here" in line for line in lines)


def test_device_errors_are_clear():
    with pytest.raises(ValueError, match="not a torch device"):
        TrainConfig(device="gpu0").check()
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            TrainConfig(device="cuda").check()


# ----------------------------------------------------- checkpoints, resume


def _train_cmd(data_file: Path, out: Path, config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "nnp.train", "--data", str(data_file), "--output", str(out),
            "--config", str(config), *extra]


def _epoch_of(ckpt: Path) -> int:
    try:
        return int(torch.load(ckpt, weights_only=True)["epoch"])
    except Exception:  # not written yet, or being replaced
        return -1


@pytest.mark.slow
@pytest.mark.parametrize("refit", [False, True], ids=["one-model", "refit"])
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_killed_run_resumes_to_the_same_model(tmp_path, data_file, sig, refit):
    # With refit, the holdout process starts a moment after the written
    # model's training, which must not finish while the test waits for both.
    epochs = 200 if refit else 40
    config = write_config(tmp_path / "cfg.yaml", epochs=epochs, lbfgs_fraction=0.25, refit=refit)
    whole = tmp_path / "whole.nnp"
    run = subprocess.run(_train_cmd(data_file, whole, config), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert not checkpoints.path_for(whole).exists()  # removed once the potential is written

    out = tmp_path / "Si.nnp"
    ckpt = checkpoints.path_for(out)
    # SIGINT at its default disposition in the child: started from a shell's
    # background job (as `cmd &` does), the test inherits SIGINT ignored, and
    # Python then installs no KeyboardInterrupt handler.
    proc = subprocess.Popen(_train_cmd(data_file, out, config), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    watched = checkpoint_paths(out) if refit else [ckpt]  # the holdout process may start a little later
    while min(map(_epoch_of, watched)) < 5 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "training ended before it could be interrupted"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "--resume" in err
    else:
        assert proc.returncode == -signal.SIGKILL
    killed_at = _epoch_of(ckpt)
    assert 5 <= killed_at < epochs and not out.exists()
    if refit:  # the holdout process died with its parent: its checkpoint stands still
        holdout_ckpt = checkpoint_paths(out)[1]
        holdout_at = _epoch_of(holdout_ckpt)
        time.sleep(1.0)
        assert 5 <= holdout_at == _epoch_of(holdout_ckpt) < epochs

    # The checkpoint is plain data: it loads without running code.
    state = torch.load(ckpt, weights_only=True)
    assert state["format"] == checkpoints.FORMAT and len(state["history"]) == killed_at

    # A plain rerun refuses to discard the checkpoint; --resume continues.
    again = subprocess.run(_train_cmd(data_file, out, config), capture_output=True, text=True, timeout=300)
    assert again.returncode == 1 and "--resume" in again.stderr
    resumed = subprocess.run(_train_cmd(data_file, out, config, "--resume"), capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from {ckpt} after epoch {killed_at}" in resumed.stdout
    assert without_date(out) == without_date(whole)
    assert not any(p.exists() for p in checkpoint_paths(out))


def test_resume_refuses_other_settings_or_data(tmp_path, data_file, frames, capsys):
    config = write_config(tmp_path / "cfg.yaml", epochs=3)
    out = tmp_path / "Si.nnp"
    ckpt = checkpoints.path_for(out)
    ds = preset("A16")
    data = FeaturizedDataset.from_structures(read_structures(data_file), ds)
    cfg = TrainConfig.from_yaml(config)
    # A checkpoint as an interrupted CLI run leaves it (digest of the data file).
    train(data, ds, cfg, log=lambda line: None, checkpoint=ckpt, data_digest=file_sha256(data_file))
    assert ckpt.exists()
    assert main(["--data", str(data_file), "--output", str(out), "--config", str(config), "--epochs", "5",
                 "--resume"]) == 1
    assert "settings differ" in capsys.readouterr().err and "epochs: 3 -> 5" not in ""
    other = tmp_path / "other.xyz"
    ase.io.write(other, frames[::-1], format="extxyz")
    assert main(["--data", str(other), "--output", str(out), "--config", str(config), "--resume"]) == 1
    assert "training data changed" in capsys.readouterr().err
    # A checkpoint written before a setting existed resumes as if it had its default.
    state = torch.load(ckpt, weights_only=True)
    del state["config"]["split_seed"]
    torch.save(state, ckpt)
    # ...except a setting whose absence meant something else: a checkpoint from
    # before the quadratic term trained the network alone.
    del state["config"]["quadratic_weight"]
    torch.save(state, ckpt)
    assert main(["--data", str(data_file), "--output", str(out), "--config", str(config), "--resume"]) == 1
    assert "quadratic_weight: 0.0 -> 0.5" in capsys.readouterr().err
    state["config"]["quadratic_weight"] = 0.5
    torch.save(state, ckpt)
    # The same settings and data: resumes (nothing left to do) and writes the model.
    assert main(["--data", str(data_file), "--output", str(out), "--config", str(config), "--resume"]) == 0
    assert out.exists() and not ckpt.exists()
    # --resume with neither a checkpoint nor an output is an error.
    assert main(["--data", str(data_file), "--output", str(tmp_path / "new.nnp"), "--config", str(config),
                 "--resume"]) == 1
    assert "no checkpoint" in capsys.readouterr().err


def test_resume_reuses_the_descriptor_choice_and_the_quadratic_fit(tmp_path, data_file, capsys):
    """--resume of a `descriptor: auto` run takes the preset its checkpoint
    records and the quadratic term fitted before its epochs, instead of
    minutes of fitting both again (the water set: 15 minutes per resume)."""
    auto = {k: v for k, v in SMALL.items() if k != "descriptor"}
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump({**auto, "epochs": 3}))
    out = tmp_path / "Si.nnp"
    ckpt = checkpoints.path_for(out)
    ds = preset("A16")  # not what auto takes for 8 frames (C64-wide, too few labels to compare)
    cfg = TrainConfig.from_yaml(config).updated({"descriptor": "A16"})
    data = FeaturizedDataset.from_structures(read_structures(data_file), ds)
    train(data, ds, cfg, log=lambda line: None, checkpoint=ckpt, data_digest=file_sha256(data_file))
    state = torch.load(ckpt, weights_only=True)
    fitted = checkpoints.saved_quadratic(state)
    assert fitted is not None and set(fitted.terms) == {"Si"}
    # A fit that differs from what fitting again would give: the written
    # model shows which one the resumed run used.
    state["quadratic"]["terms"]["Si"]["linear"] *= 3.0
    torch.save(state, ckpt)
    assert main(["--data", str(data_file), "--output", str(out), "--config", str(config), "--resume"]) == 0
    stdout = capsys.readouterr().out
    assert "descriptor auto -> A16: as chosen for the interrupted run" in stdout
    assert "quadratic term: as fitted before the interrupted run's epochs" in stdout
    assert "quadratic term fitted in" not in stdout
    written = potential_file.read(out).models["Si"].quadratic
    np.testing.assert_array_equal(written.linear, cfg.quadratic_weight * 3.0 * fitted.terms["Si"].linear)
    np.testing.assert_array_equal(written.matrix, cfg.quadratic_weight * fitted.terms["Si"].matrix)


def test_a_corrupt_checkpoint_is_a_clear_error(tmp_path, data_file, capsys):
    config = write_config(tmp_path / "cfg.yaml", epochs=2)
    out = tmp_path / "Si.nnp"
    checkpoints.path_for(out).write_bytes(b"\x00garbage")
    assert main(["--data", str(data_file), "--output", str(out), "--config", str(config), "--resume"]) == 1
    assert "not a readable nnp checkpoint" in capsys.readouterr().err


# ------------------------------------------------------- committee, report


def test_ensemble_writes_members_and_their_disagreement(tmp_path, data_file, capsys):
    config = write_config(tmp_path / "cfg.yaml", epochs=4)
    out = tmp_path / "Si.nnp"
    assert main(["--data", str(data_file), "--output", str(out), "--config", str(config), "--ensemble", "3"]) == 0
    members = [tmp_path / f"Si.{k}.nnp" for k in range(3)]
    assert all(m.exists() for m in members) and not out.exists()
    info = json.loads((tmp_path / "Si.committee.json").read_text())
    assert info["seeds"] == [0, 1, 2] and info["members"] == [str(m) for m in members]
    for v in info["disagreement_by_config_type"].values():
        assert v["energy_std_meV_per_atom"] > 0 and v["force_std_eV_per_A"] > 0
    texts = [without_date(m) for m in members]
    assert texts[0] != texts[1] != texts[2]
    # Their mean, as one potential: what the members predict on average.
    assert info["mean"] == str(tmp_path / "Si.mean.nnp")
    for atoms in frames_of(data_file)[:3]:
        got = []
        for path in [*members, tmp_path / "Si.mean.nnp"]:
            atoms.calc = NNPCalculator(str(path))
            got.append((atoms.get_potential_energy(), atoms.get_forces().copy()))
        assert got[3][0] == pytest.approx(np.mean([g[0] for g in got[:3]]), rel=1e-13, abs=1e-12)
        np.testing.assert_allclose(got[3][1], np.mean([g[1] for g in got[:3]], axis=0), rtol=0, atol=1e-12)
    # Member 0 is the plain run with the same seed.
    single = tmp_path / "single.nnp"
    assert main(["--data", str(data_file), "--output", str(single), "--config", str(config)]) == 0
    strip = lambda lines: [x for x in lines if not x.startswith("# data")]  # noqa: E731
    assert strip(without_date(single)) == strip(texts[0])


def frames_of(path: Path) -> list:
    return read_structures(path)


@pytest.mark.parametrize("refit", [False, True], ids=["members", "refit"])
def test_ensemble_with_a_shared_split_measures_its_mean(tmp_path, data_file, refit, capsys):
    """split_seed fixed: the members share the validation split, and the
    validation errors of their mean (of the models that did not see it) are
    printed and stored; without it the splits differ and nothing is claimed."""
    config = write_config(tmp_path / "cfg.yaml", epochs=4, split_seed=7, refit=refit)
    out = tmp_path / "Si.nnp"
    assert main(["--data", str(data_file), "--output", str(out), "--config", str(config), "--ensemble", "2"]) == 0
    stdout = capsys.readouterr().out
    info = json.loads((tmp_path / "Si.committee.json").read_text())
    got = info["mean_validation"]
    assert got is not None and "validation of the mean" in stdout
    cfg = TrainConfig.from_yaml(config)
    frames = read_structures(data_file)
    ds = preset("A16")
    data = nnp_train.featurize(frames, ds, cfg)  # as the CLI does (float32 derivatives)
    _, val = split(len(frames), cfg.validation_fraction, 7)
    if not refit:  # the members themselves did not see the split: their mean is the written mean
        mean = NNPModel.from_potential_data(potential_file.read(tmp_path / "Si.mean.nnp"))
        want = evaluate(mean, data, val, cfg)
        assert got["force_mae_eV_per_A"] == pytest.approx(want.force_mae, rel=1e-9)
        assert got["energy_rmse_meV_per_atom"] == pytest.approx(1000 * want.energy_rmse, rel=1e-9)
        singles = [evaluate(NNPModel.from_potential_data(potential_file.read(tmp_path / f"Si.{k}.nnp")), data, val,
                            cfg) for k in range(2)]
        assert all(s.loss != pytest.approx(want.loss, rel=1e-9) for s in singles)
    else:
        assert "holdout models' mean" in stdout
    # Each member keeps its own seed (initial weights), only the split is shared.
    assert info["seeds"] == [0, 1] and info["split_seeds"] == [7, 7]
    shared = write_config(tmp_path / "own.yaml", epochs=2, refit=refit)
    assert main(["--data", str(data_file), "--output", str(tmp_path / "B.nnp"), "--config", str(shared),
                 "--ensemble", "2"]) == 0
    own = json.loads((tmp_path / "B.committee.json").read_text())
    assert own["mean_validation"] is None and own["split_seeds"] == [0, 1]
    assert "different validation splits" in capsys.readouterr().out


def test_ensemble_refuses_to_overwrite_an_earlier_mean(tmp_path, data_file, capsys):
    config = write_config(tmp_path / "cfg.yaml", epochs=2)
    (tmp_path / "Si.mean.nnp").write_text("mine")
    args = ["--data", str(data_file), "--output", str(tmp_path / "Si.nnp"), "--config", str(config), "--ensemble", "2"]
    assert main(args) == 1
    assert "Si.mean.nnp exists" in capsys.readouterr().err
    assert (tmp_path / "Si.mean.nnp").read_text() == "mine" and not (tmp_path / "Si.0.nnp").exists()


def test_report_directory_is_checked_before_training(tmp_path, data_file, capsys):
    config = write_config(tmp_path / "cfg.yaml", epochs=2)
    report_dir = tmp_path / "report"
    report_dir.mkdir()
    (report_dir / "mine.txt").write_text("keep me")
    out = tmp_path / "Si.nnp"
    assert main(["--data", str(data_file), "--output", str(out), "--config", str(config),
                 "--report", str(report_dir)]) == 1
    assert "not empty" in capsys.readouterr().err and not out.exists()
    assert (report_dir / "mine.txt").read_text() == "keep me"


def test_cli_writes_a_report(tmp_path, data_file):
    pytest.importorskip("nnp.analysis.report")
    config = write_config(tmp_path / "cfg.yaml", epochs=3)
    out = tmp_path / "Si.nnp"
    assert main(["--data", str(data_file), "--output", str(out), "--config", str(config),
                 "--report", str(tmp_path / "report")]) == 0
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert "validation" in json.dumps(metrics)
    assert any(p.suffix == ".png" for p in (tmp_path / "report").iterdir())
    assert os.path.getsize(out) > 0


# ------------------------------------------------------------ repulsive core


def test_core_sits_below_the_training_distances(dataset, tmp_path):
    ds, data = dataset
    cfg = TrainConfig(**dict(SMALL, epochs=1))
    result = train(data, ds, cfg, log=lambda line: None)
    (core,) = result.model.repulsion
    shortest = shortest_distance(data)
    assert core.r_outer <= shortest - CORE_MARGIN and core.r_outer > shortest - CORE_MARGIN - 0.05
    assert core.r_inner == pytest.approx(core.r_outer - 0.5)
    # Written to the file, read by the C++ core.
    path = potential_file.write(result.model.to_potential_data(), tmp_path / "core.nnp")
    assert potential_file.read(path).repulsion == [core]
    # Turned off, or placed by hand.
    assert train(data, ds, TrainConfig(**dict(SMALL, epochs=0, core_repulsion=False)),
                 log=lambda line: None).model.repulsion == []
    (manual,) = train(data, ds, TrainConfig(**dict(SMALL, epochs=0, core_outer=1.5, core_width=0.3)),
                      log=lambda line: None).model.repulsion
    assert (manual.r_inner, manual.r_outer) == pytest.approx((1.2, 1.5))
    with pytest.raises(ValueError, match="core_width"):
        train(data, ds, TrainConfig(**dict(SMALL, epochs=0, core_outer=0.4, core_width=0.5)), log=lambda line: None)


def test_core_keeps_a_collapsing_dimer_apart(dataset, tmp_path):
    """Two atoms pushed together: the trained model with its core is strongly
    repulsive at 1 Å, whatever the network does there."""
    ds, data = dataset
    result = train(data, ds, TrainConfig(**dict(SMALL, epochs=2)), log=lambda line: None)
    path = potential_file.write(result.model.to_potential_data(), tmp_path / "core.nnp")
    energies = []
    for r in (0.6, 1.0, 1.4):
        atoms = Atoms("Si2", positions=[[0, 0, 0], [r, 0, 0]], cell=[20, 20, 20], pbc=False)
        atoms.calc = NNPCalculator(path)
        energies.append(atoms.get_potential_energy())
        assert atoms.get_forces()[1, 0] > 0  # pushes the pair apart
    assert energies[0] > energies[1] > energies[2] and energies[1] - energies[2] > 10


# ------------------------------------------------------------------- refit


def _same_model(a: potential_file.PotentialData, b: potential_file.PotentialData) -> bool:
    """Bit-identical descriptors, networks, scaling and core (comments aside)."""
    strip = lambda p: potential_file.dumps(dataclasses.replace(p, comments=[]))  # noqa: E731
    return strip(a) == strip(b)


@pytest.mark.parametrize("parallel", [True, False], ids=["forked", "in-process"])
def test_refit_writes_the_all_data_model_and_reports_its_holdout_twin(tmp_path, data_file, parallel, monkeypatch,
                                                                       capsys):
    monkeypatch.setattr(nnp_train.refit, "twin_in_parallel", lambda config: parallel)
    config = write_config(tmp_path / "cfg.yaml", epochs=6, lbfgs_fraction=0.5, refit=True)
    out, rep = tmp_path / "Si.nnp", tmp_path / "report"
    assert main(["--data", str(data_file), "--output", str(out), "--config", str(config), "--report", str(rep)]) == 0
    stdout = capsys.readouterr().out
    ds = preset("A16")
    cfg = TrainConfig.from_yaml(config)
    data = nnp_train.featurize(read_structures(data_file), ds, cfg)  # as the command line does (float32 dG/dr)
    quiet = lambda line: None  # noqa: E731
    everything = train(data, ds, cfg.updated({"validation_fraction": 0.0}), log=quiet)
    holdout = train(data, ds, cfg, log=quiet)
    assert len(everything.train_indices) == len(data) == len(holdout.train_indices) + len(holdout.validation_indices)
    # The written model is the all-data run, bit for bit; the holdout twin is not.
    written = potential_file.read(out)
    assert _same_model(written, everything.model.to_potential_data())
    assert not _same_model(written, holdout.model.to_potential_data())
    # Reported: the written model's training errors and the twin's validation errors.
    sets = json.loads((rep / "metrics.json").read_text())["sets"]
    assert sets["train"]["overall"]["n_structures"] == len(data)
    assert sets["train"]["overall"]["force_mae_eV_A"] == pytest.approx(everything.train.force_mae, rel=1e-9)
    assert sets["validation"]["overall"]["n_structures"] == len(holdout.validation_indices)
    assert sets["validation"]["overall"]["force_mae_eV_A"] == pytest.approx(holdout.validation.force_mae, rel=1e-9)
    assert sets["validation"]["overall"]["energy_mae_meV_atom"] == pytest.approx(
        1000 * holdout.validation.energy_mae, rel=1e-9)
    assert "holdout model" in (rep / "report.md").read_text()
    assert f"validation RMSE: {holdout.validation}" in stdout and "of the holdout model" in stdout
    text = out.read_text()
    assert f"all {len(data)} train (refit)" in text and "of the holdout twin" in text
    assert not any(p.exists() for p in checkpoint_paths(out))


def test_refit_and_early_stopping_do_not_mix(tmp_path, data_file, capsys):
    out = tmp_path / "Si.nnp"
    config = write_config(tmp_path / "cfg.yaml", epochs=4, refit=True, patience=2)
    assert main(["--data", str(data_file), "--output", str(out), "--config", str(config)]) == 1
    assert "set refit: false" in capsys.readouterr().err and not out.exists()
    # Without a validation set there is nothing to refit: patience acts on the training loss.
    config = write_config(tmp_path / "cfg.yaml", epochs=4, refit=True, patience=2, validation_fraction=0.0)
    assert main(["--data", str(data_file), "--output", str(out), "--config", str(config)]) == 0


def test_the_twin_runs_alongside_only_with_one_thread_per_core(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert nnp_train.refit.twin_in_parallel(TrainConfig())
    assert not nnp_train.refit.twin_in_parallel(TrainConfig(threads=0))
    assert not nnp_train.refit.twin_in_parallel(TrainConfig(threads=2))
    assert not nnp_train.refit.twin_in_parallel(TrainConfig(device="cuda"))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert not nnp_train.refit.twin_in_parallel(TrainConfig())


# ------------------------------------------------------- the quadratic term


def test_the_written_model_is_the_blend_and_its_best_epoch_is_the_blends(dataset):
    """With quadratic_weight w, train() returns (1 − w)·network + w·quadratic
    model; the validation loss of every epoch in the history is the blend's,
    and the best epoch is where it is lowest; `parts` holds the two alone."""
    ds, data = dataset
    config = TrainConfig(**SMALL, epochs=6)
    result = train(data, ds, config, log=lambda line: None)
    assert result.model.quadratic_elements == ("Si",)
    losses = [h["val_loss"] for h in result.history]
    assert result.best_epoch == 1 + int(np.argmin(losses))
    assert result.validation.loss == pytest.approx(min(losses), rel=1e-9)
    network, quad = result.parts["network"], result.parts["quadratic"]
    assert network.loss != pytest.approx(result.validation.loss, rel=1e-3)
    assert quad.loss != pytest.approx(result.validation.loss, rel=1e-3)
    # The network alone is what the same training without the term gives.
    alone = train(data, ds, dataclasses.replace(config, quadratic_weight=0.0), log=lambda line: None)
    assert alone.model.quadratic_elements == () and not alone.parts
    pot = result.model.to_potential_data()
    assert pot.format_version == 3


def test_quadratic_settings_are_checked():
    for bad in (dict(quadratic_weight=-0.1), dict(quadratic_weight=1.5), dict(quadratic_ridge=-1.0),
                dict(quadratic_ridge=math.inf)):
        with pytest.raises(ValueError, match="quadratic"):
            TrainConfig(**bad).check()
