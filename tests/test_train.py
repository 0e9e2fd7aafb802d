"""Reading and checking training data (nnp.data), settings (TrainConfig) and
the training command line (python -m nnp.train), on tiny synthetic data."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.lj import LennardJones
from ase.calculators.singlepoint import SinglePointCalculator

from nnp.io import potential_file
from nnp.data import FeaturizedDataset, read_structures, split
from nnp.model.network import NNPModel
from nnp import descriptors as descriptors_mod
from nnp.descriptors import preset
from nnp.train import TrainConfig, featurize, isolated_structures, main, train

torch.set_num_threads(1)  # tiny tensors: one thread is fastest

# --------------------------------------------------------------- fixtures


def labelled_si(n: int, seed: int = 0) -> list:
    """`n` rattled, strained 8-atom diamond Si cells labelled by a smooth
    Lennard-Jones calculator (consistent energies, forces and stress)."""
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n):
        a = bulk("Si", "diamond", a=5.43 * (1 + rng.uniform(-0.03, 0.03)), cubic=True)
        a.rattle(0.12, seed=int(rng.integers(1 << 30)))
        a.calc = LennardJones(sigma=2.1, epsilon=0.4, rc=5.0, smooth=True)
        e, f, s = a.get_potential_energy(), a.get_forces(), a.get_stress()
        a.calc = SinglePointCalculator(a, energy=e, forces=f, stress=s)
        a.info["config_type"] = "rattled" if k % 2 else "strained"
        frames.append(a)
    return frames


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "si.xyz"
    ase.io.write(path, labelled_si(8), format="extxyz")
    return path


@pytest.fixture(scope="module")
def small_config(tmp_path_factory) -> Path:
    """A small network and few epochs, so a CLI run takes a few seconds."""
    path = tmp_path_factory.mktemp("cfg") / "small.yaml"
    path.write_text(
        "descriptor: A16\nhidden_layers: 1\nhidden_nodes: 8\nepochs: 15\nbatch_size: 2\n"
        "learning_rate: 5.0e-3\nvalidation_fraction: 0.25\nlog_every: 1\nthreads: 1\n"
    )
    return path


GOOD_FRAME = """2
Lattice="5 0 0 0 5 0 0 0 5" Properties=species:S:1:pos:R:3:forces:R:3 energy=-1.0 stress="0.1 0 0 0 0.1 0 0 0 0.1" config_type=x pbc="T T T"
Si 0 0 0 0.1 0 0
Si 1.2 1.2 1.2 -0.1 0 0
"""


# ------------------------------------------------------------ data reading


def test_read_structures_keeps_labels(data_file):
    frames = read_structures(data_file, ["Si"])
    want = ase.io.read(data_file, ":")
    assert len(frames) == 8
    for a, b in zip(frames, want):
        assert a.get_potential_energy() == b.get_potential_energy()
        np.testing.assert_array_equal(a.get_forces(), b.get_forces())
        np.testing.assert_array_equal(a.get_stress(), b.get_stress())
        assert a.info["config_type"] == b.info["config_type"]


BROKEN = {
    "nan_energy": (lambda s: s.replace("energy=-1.0", "energy=nan"), "energy is nan"),
    "no_energy": (lambda s: s.replace("energy=-1.0 ", ""), "no energy"),
    "no_forces": (
        lambda s: s.replace(":forces:R:3", "").replace(" 0.1 0 0\n", "\n").replace(" -0.1 0 0\n", "\n"),
        "no forces",
    ),
    "inf_force": (lambda s: s.replace("-0.1 0 0", "inf 0 0"), "forces contain NaN or inf"),
    "nan_position": (lambda s: s.replace("1.2 1.2 1.2", "1.2 nan 1.2"), "positions contain NaN"),
    "nan_stress": (lambda s: s.replace('stress="0.1', 'stress="nan'), "stress contains NaN"),
    "wrong_count": (lambda s: s.replace("2\n", "3\n", 1), "cannot be read"),
    "duplicate": (lambda s: s.replace("1.2 1.2 1.2", "0.03 0.02 0.0"), "duplicated atoms"),
    "duplicate_image": (lambda s: s.replace("1.2 1.2 1.2", "4.97 0.0 0.0"), "duplicated atoms"),
    "element": (lambda s: s.replace("Si 1.2", "Ge 1.2"), "Ge not in the element list"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_bad_frame_is_named(tmp_path, case):
    """The second frame (frame 1) is broken: the message names file and frame."""
    edit, message = BROKEN[case]
    path = tmp_path / f"{case}.xyz"
    path.write_text(GOOD_FRAME + edit(GOOD_FRAME))
    assert len(read_structures(_good(tmp_path), ["Si"])) == 1
    with pytest.raises(ValueError) as err:
        read_structures(path, ["Si"])
    text = str(err.value)
    assert str(path) in text and "frame 1" in text and message in text, text


def _good(tmp_path: Path) -> Path:
    path = tmp_path / "good.xyz"
    path.write_text(GOOD_FRAME)
    return path


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.xyz"
    empty.write_text("")
    with pytest.raises(ValueError, match=re.escape(str(empty)) + ".*empty"):
        read_structures(empty)
    blank = tmp_path / "blank.xyz"
    blank.write_text("\n\n")
    with pytest.raises(ValueError, match=re.escape(str(blank))):
        read_structures(blank)
    with pytest.raises(FileNotFoundError, match="nope.xyz"):
        read_structures(tmp_path / "nope.xyz")


def test_split_is_deterministic_and_disjoint():
    a_train, a_val = split(214, 0.1, seed=7)
    b_train, b_val = split(214, 0.1, seed=7)
    np.testing.assert_array_equal(a_train, b_train)
    np.testing.assert_array_equal(a_val, b_val)
    assert len(a_val) == 21 and len(a_train) == 193
    assert sorted(np.concatenate([a_train, a_val]).tolist()) == list(range(214))
    assert not np.array_equal(split(214, 0.1, seed=8)[1], a_val)
    assert len(split(5, 0.0, 0)[1]) == 0
    assert len(split(3, 0.1, 0)[1]) == 1  # a positive fraction holds out at least one
    with pytest.raises(ValueError):
        split(10, 1.0, 0)


def test_dataset_carries_labels(data_file):
    frames = read_structures(data_file)
    ds = preset("A16")
    data = FeaturizedDataset.from_structures(frames[:3], ds)
    assert len(data) == 3 and data.n_total_atoms == 24
    assert data.config_types == ["strained", "rattled", "strained"]
    np.testing.assert_array_equal(data.energy.numpy(), [a.get_potential_energy() for a in frames[:3]])
    s = frames[2].get_stress(voigt=False)
    np.testing.assert_array_equal(data.stress[2].numpy(), s)
    batch = data.collate([2, 0])
    np.testing.assert_array_equal(batch.forces[:8].numpy(), frames[2].get_forces())


# ------------------------------------------------------------------ config


def test_config_from_yaml_and_errors(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("hidden_nodes: 12\nlearning_rate: 1e-3\nactivation: silu\n")
    cfg = TrainConfig.from_yaml(good)
    assert (cfg.hidden_nodes, cfg.learning_rate, cfg.activation) == (12, 1e-3, "silu")
    assert cfg.epochs == TrainConfig().epochs
    bad = tmp_path / "bad.yaml"
    bad.write_text("hidden_nodes: 12\nlerning_rate: 0.1\n")
    with pytest.raises(ValueError, match=r"bad\.yaml.*unknown setting.*lerning_rate"):
        TrainConfig.from_yaml(bad)
    wrong_type = tmp_path / "type.yaml"
    wrong_type.write_text("epochs: many\n")
    with pytest.raises(ValueError, match="epochs must be a int"):
        TrainConfig.from_yaml(wrong_type)
    bad_value = tmp_path / "value.yaml"
    bad_value.write_text("activation: relu\n")
    with pytest.raises(ValueError, match="activation"):
        TrainConfig.from_yaml(bad_value).check()
    with pytest.raises(ValueError, match="descriptor preset"):
        TrainConfig(descriptor="X99").check()


def test_cli_bad_yaml_key_is_a_clear_error(tmp_path, data_file, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("epochs: 1\nhiden_layers: 3\n")
    assert main(["--data", str(data_file), "--output", str(tmp_path / "x.nnp"), "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "hiden_layers" in err and str(cfg) in err
    assert not (tmp_path / "x.nnp").exists()


# --------------------------------------------------------------------- CLI


def test_cli_refuses_to_overwrite_before_any_work(tmp_path, capsys):
    out = tmp_path / "Si.nnp"
    out.write_text("precious")
    # The data file does not even exist: the refusal must come first.
    assert main(["--data", str(tmp_path / "missing.xyz"), "--output", str(out)]) == 1
    assert "exists" in capsys.readouterr().err
    assert out.read_text() == "precious"


def test_cli_epochs_zero_writes_untrained_model(tmp_path, data_file, capsys):
    out = tmp_path / "Si.nnp"
    network_only = tmp_path / "network.yaml"
    network_only.write_text("quadratic_weight: 0.0\n")
    assert main(["--data", str(data_file), "--output", str(out), "--epochs", "0", "--descriptor", "A16",
                 "--config", str(network_only)]) == 0
    pot = potential_file.read(out)
    assert pot.descriptors.size("Si") == 16
    frames = read_structures(data_file)
    # Reference energy: mean energy per atom (one element) of the structures
    # the written model trains on: with refit (the default) all of them.
    e0 = np.mean([f.get_potential_energy() / len(f) for f in frames])
    assert e0 != pytest.approx(np.mean([frames[i].get_potential_energy() / len(frames[i])
                                        for i in split(len(frames), 0.1, 0)[0]]), rel=1e-12)
    assert pot.models["Si"].reference_energy == pytest.approx(e0, rel=1e-12)
    assert [layer.weights.shape for layer in pot.models["Si"].layers] == [(30, 16), (30, 30), (1, 30)]
    text = out.read_text()
    digest = hashlib.sha256(data_file.read_bytes()).hexdigest()
    assert f"# data sha256: {digest}" in text and str(data_file) in text
    stdout = capsys.readouterr().out
    assert "validation RMSE" in stdout and "wall time" in stdout
    # --force overwrites; without it the second run is refused.
    assert main(["--data", str(data_file), "--output", str(out), "--epochs", "0", "--descriptor", "A16"]) == 1
    assert main(["--data", str(data_file), "--output", str(out), "--epochs", "0", "--descriptor", "A28", "--force"]) == 0
    pot = potential_file.read(out)
    assert pot.descriptors.size("Si") == 28
    # By default the model written is the blend with the quadratic term.
    assert pot.models["Si"].quadratic is not None and out.read_text().startswith("nnp-potential 3\n")


def _written_errors(stdout: str) -> list[float]:
    """The written model's training energy RMSE (meV/atom) at each epoch
    line: 'all data E' when its holdout twin trains alongside, else the
    first 'train E' or 'train/val E' number."""
    errors = []
    for line in re.findall(r"^(?:\[all data\] )?epoch\s+\d+/\d+.*$", stdout, re.M):
        found = re.search(r"all data E\s+(\S+) meV/atom", line) or re.search(r"train(?:/val)? E\s+([\d.]+)", line)
        errors.append(float(found.group(1)))
    return errors


def test_cli_tiny_training_learns_and_writes_readable_file(tmp_path, data_file, small_config, capsys):
    out = tmp_path / "Si.nnp"
    assert main(["--data", str(data_file), "--output", str(out), "--config", str(small_config)]) == 0
    stdout = capsys.readouterr().out
    errors = _written_errors(stdout)
    assert len(errors) == 15
    assert "\r" not in stdout and "%|" not in stdout  # not a terminal: plain lines, no bar
    assert "[holdout] epoch" not in stdout  # the refit's two trainings: one line per epoch
    assert errors[-1] < 0.5 * errors[0], errors
    assert re.search(r"validation RMSE: E\s+\S+ meV/atom\s+F \S+ eV/Å", stdout)
    # The file is readable and is exactly the model it reports on.
    pot = potential_file.read(out)
    model = NNPModel.from_potential_data(pot)
    frames = read_structures(data_file)
    pred = model.predict(frames[:2])
    assert np.isfinite(pred[0]["energy"]) and pred[1]["forces"].shape == (8, 3)
    assert "config: " in out.read_text()


def test_cli_same_seed_same_file(tmp_path, data_file, small_config):
    args = ["--data", str(data_file), "--config", str(small_config), "--epochs", "4"]
    paths = [tmp_path / "a.nnp", tmp_path / "b.nnp", tmp_path / "c.nnp"]
    assert main(args + ["--output", str(paths[0]), "--seed", "3"]) == 0
    assert main(args + ["--output", str(paths[1]), "--seed", "3"]) == 0
    assert main(args + ["--output", str(paths[2]), "--seed", "4"]) == 0

    def without_date(p):  # the date comment is the only line allowed to differ
        return [line for line in p.read_text().splitlines() if not line.startswith("# date:")]

    assert without_date(paths[0]) == without_date(paths[1])
    assert without_date(paths[0]) != without_date(paths[2])


def test_python_dash_m_entry_point(tmp_path, data_file):
    out = tmp_path / "m.nnp"
    run = subprocess.run(
        [sys.executable, "-m", "nnp.train", "--data", str(data_file), "--output", str(out), "--epochs", "0",
         "--descriptor", "B16"],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert potential_file.read(out).descriptors.size("Si") == 16


def test_cli_usage_error(data_file, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--data", str(data_file)])
    assert exit_.value.code == 2 and "--output" in capsys.readouterr().err


def test_model_written_is_model_trained(tmp_path, data_file):
    """train() result and the file it becomes predict the same, bit for bit."""
    frames = read_structures(data_file)
    ds = preset("A16")
    data = FeaturizedDataset.from_structures(frames, ds)
    cfg = TrainConfig(descriptor="A16", hidden_layers=1, hidden_nodes=6, epochs=2, threads=1)
    result = train(data, ds, cfg, log=lambda line: None)
    path = potential_file.write(result.model.to_potential_data(), tmp_path / "t.nnp")
    again = NNPModel.from_potential_data(potential_file.read(path))
    batch = data.collate(range(len(data)))
    a, b = result.model(batch, stress=True), again(batch, stress=True)
    for key in ("energy", "forces", "stress"):
        assert torch.equal(a[key], b[key]), key
    assert result.validation is not None and np.isfinite(result.validation.force_rmse)


# ---------------------------------------------------------- isolated atoms


def test_isolated_atom_settings_are_checked(tmp_path, data_file, capsys):
    TrainConfig(isolated_atom_energies={"Si": -0.881}).check()
    with pytest.raises(ValueError, match="'Xx' is not an element"):
        TrainConfig(isolated_atom_energies={"Xx": -1.0}).check()
    with pytest.raises(ValueError, match="energy of Si must be a finite"):
        TrainConfig(isolated_atom_energies={"Si": float("nan")}).check()
    cfg = tmp_path / "iso.yaml"
    cfg.write_text("isolated_atom_energies:\n  Si: -0.5\n")
    assert TrainConfig.from_yaml(cfg).isolated_atom_energies == {"Si": -0.5}
    out = tmp_path / "x.nnp"
    for bad, message in (("Si", "expected ELEMENT=ENERGY_EV"), ("Si=low", "expected ELEMENT=ENERGY_EV"),
                         ("C=-1.2", "C does not occur in the data")):
        assert main(["--data", str(data_file), "--output", str(out), "--epochs", "0",
                     "--isolated-atom-energy", bad]) == 1
        assert message in capsys.readouterr().err
        assert not out.exists()
    # The summary shows the model's isolated-atom energy, and says when nothing pins it.
    for extra, hint in (([], True), (["--isolated-atom-energy", "Si=-0.9"], False)):
        assert main(["--data", str(data_file), "--output", str(out), "--epochs", "0", "--force", *extra]) == 0
        stdout = capsys.readouterr().out
        assert re.search(r"isolated atoms in the model: Si -?\d+\.\d+ eV", stdout)
        assert ("no isolated atom was trained on" in stdout) == hint


def test_isolated_atoms_always_train_and_leave_the_split_alone(data_file):
    """The anchor is trained on, never validated; the condensed structures
    split, scale and reference exactly as without it; and the model learns
    the isolated atom's energy."""
    frames = read_structures(data_file)
    desc = descriptors_mod.preset("A16", ("Si",))
    e_iso = float(np.mean([a.get_potential_energy() / len(a) for a in frames])) + 2.0  # 2 eV above the crystal
    # The network alone: the blend's e0 and quadratic term are fitted to the
    # anchor too (checked at the end).
    base = TrainConfig(descriptor="A16", hidden_layers=1, hidden_nodes=8, epochs=200, batch_size=4,
                       validation_fraction=0.25, lbfgs_fraction=0.5, log_every=1000, quadratic_weight=0.0)
    anchored = base.updated({"isolated_atom_energies": {"Si": e_iso}})
    plain_data = FeaturizedDataset.from_structures(frames, desc)
    data = featurize(frames, desc, anchored)  # as python -m nnp.train does: float32 derivatives
    assert data.blocks["Si"].dG_dr.dtype == torch.float32
    assert list(isolated_structures(data)) == [len(frames)] and len(isolated_structures(plain_data)) == 0
    log = []
    plain = train(plain_data, desc, base.updated({"epochs": 0}), log=log.append)
    res = train(data, desc, anchored, log=log.append)
    assert list(res.validation_indices) == list(plain.validation_indices)
    assert len(frames) in res.train_indices and len(res.train_indices) == len(plain.train_indices) + 1
    untrained = train(data, desc, anchored.updated({"epochs": 0}), log=log.append)
    sd0, sd1 = plain.model.state_dict(), untrained.model.state_dict()
    for k in sd0:  # scaling and reference energies from the condensed structures only
        torch.testing.assert_close(sd1[k], sd0[k], rtol=0, atol=0)
    lone = ase.Atoms("Si", positions=[[0, 0, 0]], pbc=False)
    before = untrained.model.predict([lone])[0]["energy"]
    after = res.model.predict([lone])[0]["energy"]
    assert abs(after - e_iso) < 0.1 * abs(before - e_iso), (before, after, e_iso)
    blend = train(data, desc, anchored.updated({"quadratic_weight": 0.5}), log=log.append)
    assert blend.model.quadratic_elements == ("Si",)
    assert abs(blend.model.predict([lone])[0]["energy"] - e_iso) < 0.1 * abs(before - e_iso)


# ---------------------------------------------------------- learning curve


def test_learning_curve_is_the_written_model(tmp_path, data_file):
    """The train and validation errors that the log prints and the history
    (the learning curve) holds are those of the model as written, quadratic
    term included: at the chosen epoch they equal an evaluation of the
    written file on the same structures. The optimiser's own number (the
    network alone, during the epoch) is kept apart."""
    from nnp.train import evaluate

    frames = read_structures(data_file)
    ds = preset("A16")
    data = FeaturizedDataset.from_structures(frames, ds)
    cfg = TrainConfig(descriptor="A16", hidden_layers=1, hidden_nodes=6, epochs=6, lbfgs_fraction=0.5, threads=1,
                      validation_fraction=0.25, log_every=1, quadratic_weight=0.5)
    lines = []
    result = train(data, ds, cfg, log=lines.append)
    path = potential_file.write(result.model.to_potential_data(), tmp_path / "t.nnp")
    written = NNPModel.from_potential_data(potential_file.read(path))
    on_train = evaluate(written, data, result.train_indices, cfg)
    on_val = evaluate(written, data, result.validation_indices, cfg)
    entry = result.history[result.best_epoch - 1]
    assert entry["epoch"] == result.best_epoch
    for name, m in (("model_train", on_train), ("val", on_val)):
        assert entry[f"{name}_energy_rmse"] == pytest.approx(m.energy_rmse, rel=1e-9), name
        assert entry[f"{name}_force_rmse"] == pytest.approx(m.force_rmse, rel=1e-9), name
    assert entry["train_energy_rmse"] != pytest.approx(on_train.energy_rmse, rel=1e-3)  # the network alone
    line = next(l for l in lines if l.startswith(f"epoch {result.best_epoch}/6 "))
    assert (f"train/val E {1000 * on_train.energy_rmse:6.2f}/{1000 * on_val.energy_rmse:.2f} meV/atom, "
            f"F {on_train.force_rmse:.4f}/{on_val.force_rmse:.4f} eV/Å") in line
    adam, lbfgs = [l for l in lines if l.startswith("epoch 1/")], [l for l in lines if l.startswith("epoch 6/")]
    assert "lr 5.0e-03" in adam[0] and "Adam" in adam[0] and "lr" not in lbfgs[0] and "LBFGS" in lbfgs[0]


# ------------------------------------------------------ what a person reads


def _report(epoch, phase="LBFGS", e=10.0, val=True, improved=False):
    from nnp.train.console import EpochReport
    from nnp.train.loss import Metrics

    m = Metrics(loss=1.0, energy_rmse=e / 1000, force_rmse=0.1)
    return EpochReport(epoch, 6, phase, 5e-3 if phase == "Adam" else None, m, m if val else None, improved, 3.0)


def test_epoch_lines_carry_units_and_no_lbfgs_step_size():
    adam, lbfgs = _report(1, "Adam").line(), _report(6).line()
    assert "lr 5.0e-03" in adam and "lr" not in lbfgs
    for line in (adam, lbfgs):
        # Every number but the epoch count and the step size has its unit.
        rest = re.sub(r"epoch \d+/\d+|lr \d\.\de-\d\d", "", line)
        rest = re.sub(r"\d+\.\d+/(\d+\.\d+)", r"\1", rest)  # train/val pairs: one unit
        for number in re.finditer(r"\d+(?:\.\d+)?", rest):
            after = rest[number.end():]
            assert re.match(r"(?: meV/atom| eV/Å|s\b|m\d\ds|h\d\dm)", after), (line, number.group())


def test_refit_display_is_one_line_per_epoch():
    """The written model and its holdout twin (another process, whose lines
    come in any order) print one line per logged epoch, in epoch order; the
    twin's copies of the written model's lines are not printed twice."""
    from nnp.train.console import TWIN, WRITTEN, RefitDisplay

    lines = []
    display = RefitDisplay(log=lines.append)
    written, twin = display.side(WRITTEN), display.side(TWIN)
    written.log("repulsive core Si-Si")
    twin.log("repulsive core Si-Si")
    twin.log("quadratic term fitted in 3s")
    for epoch in (1, 2, 3):  # the twin runs ahead
        twin.update(epoch, 6, "val", 1.0)
        twin.logged(_report(epoch, e=epoch, improved=True))
    assert not any(l.startswith("epoch") for l in lines)  # waiting for the written model
    for epoch in (1, 2):
        written.update(epoch, 6, "train", 2.0)
        written.logged(_report(epoch, e=10 + epoch, val=False))
    twin.close()  # the twin finished (at epoch 3): the written model's next lines print alone
    written.update(3, 6, "train", 1.0)
    written.logged(_report(3, e=13, val=False))
    display.close()
    assert lines[:2] == ["repulsive core Si-Si", "[holdout] quadratic term fitted in 3s"]
    epochs = [l for l in lines if l.startswith("epoch")]
    assert len(epochs) == 3 and all(f"epoch {k}/6" in l for k, l in zip((1, 2, 3), epochs))
    for k, line in zip((1, 2, 3), epochs):
        assert f"train/val E {k:6.2f}/{k:.2f} meV/atom" in line
        assert f"all data E {10 + k:6.2f} meV/atom" in line and line.endswith("*")


def test_refit_display_prints_a_side_alone_past_an_epoch_it_skipped():
    """A resumed side may not log the other's epoch: once it is past it, the
    other's line prints alone instead of waiting for ever."""
    from nnp.train.console import TWIN, WRITTEN, RefitDisplay

    lines = []
    display = RefitDisplay(log=lines.append)
    written, twin = display.side(WRITTEN), display.side(TWIN)
    twin.update(2, 6, "val", 1.0)
    twin.logged(_report(2, e=2))
    written.update(3, 6, "train", 1.0)  # resumed after epoch 2: never logs it
    assert lines == [] or "all data" not in lines[-1]
    assert any(l.startswith("epoch 2/6") and "all data" not in l for l in lines)
    display.close()


def test_epoch_clock_leaves_out_a_phase_first_epoch():
    from nnp.train.console import LBFGS_PER_ADAM_EPOCH, EpochClock

    clock = EpochClock(n_adam=2, epochs=10)
    clock.epoch_done(1, 5.0)
    clock.epoch_done(2, 5.0)
    assert clock.remaining(2, 0) == pytest.approx(8 * 0.35 * 5.0)  # L-BFGS paced from Adam before it is timed
    clock.epoch_done(3, 9.0)  # the first L-BFGS epoch collates the training set
    assert clock.remaining(3, 0) == pytest.approx(7 * 0.35 * 5.0)  # still paced from Adam
    clock.epoch_done(4, 1.0)
    assert clock.remaining(4, 0) == pytest.approx(6 * 1.0)
    # Streamed derivatives: an L-BFGS evaluation runs the kernels over the
    # whole set, as an Adam epoch does, so its epochs are paced nearly 1:1.
    streamed = EpochClock(n_adam=2, epochs=10, streamed=True)
    streamed.epoch_done(1, 5.0)
    streamed.epoch_done(2, 5.0)
    assert streamed.remaining(2, 0) == pytest.approx(8 * LBFGS_PER_ADAM_EPOCH[True] * 5.0)
    assert LBFGS_PER_ADAM_EPOCH[True] > 2 * LBFGS_PER_ADAM_EPOCH[False]


def test_resume_of_a_finished_run_skips_it(tmp_path, data_file, small_config, capsys):
    """--resume after the output is written (a committee's finished member,
    or a rerun of the same command): skipped, not refused, not retrained."""
    out = tmp_path / "Si.nnp"
    args = ["--data", str(data_file), "--output", str(out), "--config", str(small_config), "--epochs", "2"]
    assert main(args) == 0
    before = out.read_text()
    capsys.readouterr()
    assert main(args + ["--resume"]) == 0
    assert f"{out} is finished; skipping it" in capsys.readouterr().out and out.read_text() == before
    assert main(args) == 1 and "--force" in capsys.readouterr().err  # without --resume: refused


def test_bars_on_a_terminal_only(tmp_path, data_file, small_config):
    """Under a pseudo-terminal a bar is drawn (and cleared), the epoch lines
    are the same one per epoch; piped, the same run prints no bar."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    args = [sys.executable, "-m", "nnp", "train", "--data", str(data_file), "--config", str(small_config),
            "--epochs", "4"]
    main_fd, child_fd = pty.openpty()
    fcntl.ioctl(child_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    proc = subprocess.Popen(args + ["-o", str(tmp_path / "tty.nnp")], stdout=child_fd, stderr=subprocess.PIPE)
    os.close(child_fd)
    chunks = []
    while True:
        try:
            chunk = os.read(main_fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    _, err = proc.communicate(timeout=300)  # closes its stderr
    os.close(main_fd)
    assert proc.returncode == 0, err
    shown = b"".join(chunks).decode("utf-8", "replace")
    assert "%|" in shown and "epochs" in shown  # the bar
    epoch_lines = [l for l in shown.replace("\r\n", "\n").split("\n") if re.match(r"\r?epoch \d/4 ", l.split("\r")[-1])]
    assert len(epoch_lines) == 4, shown
    piped = subprocess.run(args + ["-o", str(tmp_path / "pipe.nnp")], capture_output=True, text=True, timeout=300)
    assert piped.returncode == 0 and "%|" not in piped.stdout and "\r" not in piped.stdout
    assert len(re.findall(r"^epoch \d/4 ", piped.stdout, re.M)) == 4


def test_auto_epochs_cap_the_work_of_large_sets(tmp_path, data_file, capsys):
    from nnp.train.phases import EPOCH_ATOM_BUDGET, auto_epochs, phase_lengths, with_epochs

    assert TrainConfig().epochs == TrainConfig.from_dict({"epochs": "auto"}).epochs == -1
    assert [auto_epochs(n) for n in (64, 13_233, 15_000, 61_440, 10**6)] == [1600, 1600, 1600, 391, 100]
    assert all(auto_epochs(n) * n <= EPOCH_ATOM_BUDGET * 1.001 for n in (20_000, 61_440, 200_000))
    assert with_epochs(TrainConfig(epochs=7), 10**6).epochs == 7  # a number set is kept
    with pytest.raises(ValueError, match="no phases until"):
        phase_lengths(TrainConfig())
    with pytest.raises(ValueError, match="no atoms"):
        auto_epochs(0)
    with pytest.raises(ValueError, match="epochs must be >= 0"):
        TrainConfig(epochs=-2).check()
    with pytest.raises(SystemExit):
        main(["--data", str(data_file), "--output", str(tmp_path / "x.nnp"), "--epochs", "lots"])
    assert "whole number of epochs or auto" in capsys.readouterr().err
    # The library resolves auto from the data it is given: 64 atoms, 1600.
    frames = read_structures(data_file)
    data = featurize(frames, preset("A16"), TrainConfig(descriptor="A16"))
    assert with_epochs(TrainConfig(), int(data.n_atoms.sum())).epochs == 1600


def test_cli_resolves_auto_epochs_once_for_the_written_model_and_its_twin(tmp_path, data_file, monkeypatch, capsys):
    from nnp.train import phases

    monkeypatch.setattr(phases, "EPOCH_ATOM_BUDGET", 64 * 6)  # the 64 atoms of data_file: 6 epochs
    monkeypatch.setattr(phases, "MIN_AUTO_EPOCHS", 1)
    cfg = tmp_path / "auto.yaml"
    cfg.write_text("descriptor: A16\nhidden_layers: 1\nhidden_nodes: 4\nepochs: auto\nvalidation_fraction: 0.25\n"
                   "log_every: 1\n")
    out = tmp_path / "auto.nnp"
    assert main(["--data", str(data_file), "--output", str(out), "--config", str(cfg)]) == 0
    stdout = capsys.readouterr().out
    assert "epochs auto -> 6: at most 1600" in stdout and "for 64 atoms" in stdout
    assert re.search(r"^epoch 6/6 LBFGS .*all data E", stdout, re.M)  # the twin's and the written model's epoch 6
    assert '"epochs": 6' in out.read_text()
