"""When the holdout twin (the forked child that measures the validation
errors) fails: the parent notices within seconds, stops with one line that
says how to resume, and a written model that had finished is written all the
same (nnp.train.refit)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import ase.io
import pytest
import torch
import yaml

import nnp.train as nnp_train
from nnp.io import potential_file
from nnp.train import checkpoint_paths, checkpoints, main
from test_train import labelled_si

torch.set_num_threads(1)

SMALL = dict(descriptor="A16", hidden_layers=1, hidden_nodes=8, batch_size=2, learning_rate=5e-3,
             validation_fraction=0.25, log_every=1, threads=1, checkpoint_every=0.0, refit=True)
# Epochs the written model would train for if nothing stopped it: minutes.
LONG = 100_000
# Seconds within which the parent must react (it checks after every epoch,
# each a few milliseconds here; generous for a loaded machine).
REACTION = 30.0


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "si.xyz"
    ase.io.write(path, labelled_si(8), format="extxyz")
    return path


@pytest.fixture
def twin_alongside(monkeypatch):
    monkeypatch.setattr(nnp_train.refit, "twin_in_parallel", lambda config: True)


def write_config(path: Path, **values) -> Path:
    path.write_text(yaml.safe_dump({**SMALL, **values}))
    return path


def run(tmp_path: Path, data_file: Path, config: Path, *extra: str) -> tuple[int, float]:
    start = time.perf_counter()
    code = main(["--data", str(data_file), "--output", str(tmp_path / "Si.nnp"), "--config", str(config), *extra])
    return code, time.perf_counter() - start


def the_one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def raises(*args):
    raise RuntimeError("torch.linalg.solve: The solver failed because the input matrix is singular.")


def exits(*args):
    os._exit(3)


def is_killed(*args):
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.parametrize("twin, expected", [
    (raises, "the holdout run failed: RuntimeError: torch.linalg.solve: The solver failed because the input "
             "matrix is singular."),
    (exits, "the holdout run ended without a result (exit code 3)"),
    (is_killed, "the holdout run was killed by SIGKILL"),
], ids=["raises", "exits", "SIGKILL"])
def test_a_failed_twin_stops_the_run_within_seconds(tmp_path, data_file, twin_alongside, monkeypatch, capsys, twin,
                                                      expected):
    monkeypatch.setattr(nnp_train.refit, "train_holdout", twin)
    config = write_config(tmp_path / "cfg.yaml", epochs=LONG, checkpoint_every=1e9)
    code, seconds = run(tmp_path, data_file, config)
    line = the_one_error_line(capsys.readouterr().err)
    assert code == 1 and seconds < REACTION
    assert line.startswith(f"error: {expected}") and "--resume" in line and "refit: false" in line
    out = tmp_path / "Si.nnp"
    assert not out.exists()
    # The parent's last epoch is checkpointed (checkpoint_every alone would
    # have saved nothing yet), so --resume loses nothing.
    ckpt = checkpoint_paths(out)[0]
    state = torch.load(ckpt, weights_only=True)
    assert state["format"] == checkpoints.FORMAT and 1 <= state["epoch"] < LONG and str(ckpt) in line


def test_resuming_after_a_failed_twin_ends_as_an_uninterrupted_run(tmp_path, data_file, twin_alongside, monkeypatch,
                                                                   capsys):
    whole_dir, dir_ = tmp_path / "whole", tmp_path / "stopped"
    whole_dir.mkdir(), dir_.mkdir()
    config = write_config(tmp_path / "cfg.yaml", epochs=40, lbfgs_fraction=0.25, checkpoint_every=1e9)
    assert run(whole_dir, data_file, config)[0] == 0

    def fails_once(*args):
        raise FloatingPointError("training diverged at epoch 3 (loss nan); lower learning_rate")

    real_twin = nnp_train.refit.train_holdout
    monkeypatch.setattr(nnp_train.refit, "train_holdout", fails_once)
    assert run(dir_, data_file, config)[0] == 1
    assert "diverged at epoch 3" in the_one_error_line(capsys.readouterr().err)
    stopped_at = torch.load(checkpoint_paths(dir_ / "Si.nnp")[0], weights_only=True)["epoch"]
    monkeypatch.setattr(nnp_train.refit, "train_holdout", real_twin)
    assert run(dir_, data_file, config, "--resume")[0] == 0
    stdout = capsys.readouterr().out
    assert f"resuming from {checkpoint_paths(dir_ / 'Si.nnp')[0]} after epoch {stopped_at}" in stdout
    strip = lambda p: [x for x in p.read_text().splitlines() if not x.startswith("# date:")]  # noqa: E731
    assert strip(dir_ / "Si.nnp") == strip(whole_dir / "Si.nnp")


@pytest.mark.parametrize("how", ["raises", "SIGKILL"])
def test_a_finished_model_is_written_when_the_twin_fails_after_it(tmp_path, data_file, twin_alongside, monkeypatch,
                                                                  capsys, how):
    """The twin fails only once the written model has finished (it waits for
    a file that the parent's training leaves when done)."""
    done = tmp_path / "final-done"
    real_train = nnp_train.refit.train

    def train_then_mark(*args, **kwargs):
        result = real_train(*args, **kwargs)
        done.touch()
        return result

    def fails_later(*args):
        deadline = time.monotonic() + 120
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        (raises if how == "raises" else is_killed)()

    monkeypatch.setattr(nnp_train.refit, "train", train_then_mark)
    monkeypatch.setattr(nnp_train.refit, "train_holdout", fails_later)
    config = write_config(tmp_path / "cfg.yaml", epochs=6, lbfgs_fraction=0.5)
    report_dir = tmp_path / "report"
    code, _ = run(tmp_path, data_file, config, "--report", str(report_dir))
    captured = capsys.readouterr()
    line = the_one_error_line(captured.err)
    assert code == 0 and line.startswith("warning: the holdout run ") and "validation errors are not measured" in line
    out = tmp_path / "Si.nnp"
    text = out.read_text()
    assert "the holdout twin failed: validation errors not measured" in text and "validation RMSE" not in text
    assert not any(p.exists() for p in checkpoint_paths(out))
    potential_file.read(out)  # a complete potential
    assert "validation: not measured (the holdout twin failed)" in captured.out
    assert "validation: not measured" in (report_dir / "report.md").read_text()


def test_a_failing_holdout_run_is_a_clear_error(tmp_path, data_file, monkeypatch, capsys):
    # Moved from test_train_runs.py, with a parent that trains long enough
    # (LONG epochs, not 4) to be still training when the twin fails: a
    # written model that finishes first is written (the test above).
    config = write_config(tmp_path / "cfg.yaml", epochs=LONG, refit=True)
    out = tmp_path / "Si.nnp"
    args = ["--data", str(data_file), "--output", str(out), "--config", str(config)]
    monkeypatch.setattr(nnp_train.refit, "twin_in_parallel", lambda config: True)

    def diverges(*args):
        raise FloatingPointError("training diverged at epoch 3 (loss nan); lower learning_rate")

    monkeypatch.setattr(nnp_train.refit, "train_holdout", diverges)
    assert main(args) == 1
    assert "diverged at epoch 3" in capsys.readouterr().err and not out.exists()

    def dies(*args):
        os._exit(3)

    monkeypatch.setattr(nnp_train.refit, "train_holdout", dies)
    assert main(args + ["--force"]) == 1
    assert "holdout run ended without a result (exit code 3)" in capsys.readouterr().err and not out.exists()
