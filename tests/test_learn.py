"""`nnp learn`: the active-learning loop.

* `--quick` end to end with the real pw.x and LAMMPS, killed between
  labelling two frames and continued: no frame is labelled twice or lost,
  two iterations finish, the report and `status` are written.
* Frames that blew up (non-finite, deviation above trust_hi, atoms inside a
  repulsive core) are counted and never labelled, through the loop's own
  explore → select → label stages.
* Selection is diverse: farthest point in descriptor space, not the first N.
* Bad settings end in one clear error.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase.build import bulk
from conftest import random_potential, test_descriptor
from test_dft import require_qe

from nnp.io import potential_file as pf
from nnp.learn import cli, config as config_mod, explore, label, loop, select


class Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so nothing on the way catches it."""


def _crystal(seed: int, stdev: float = 0.02) -> "ase.Atoms":
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.rattle(stdev, seed=seed)
    return atoms


def _random(seed: int) -> "ase.Atoms":
    run = config_mod.RunSpec(structure="liquid")
    return explore.start_structure(run, np.random.default_rng(seed))


@pytest.fixture(scope="module")
def potential(tmp_path_factory) -> Path:
    structures = [_crystal(0, 0.1), _random(1), explore.start_structure(config_mod.RunSpec("vacancy"), None)]
    pot = random_potential(test_descriptor(), structures, seed=3)
    pot.repulsion = [pf.Repulsion("Si", "Si", 1.6, 2.0)]
    path = tmp_path_factory.mktemp("learn") / "model.0.nnp"
    pf.write(pot, path)
    return path


# ----------------------------------------------------------------------------
# Selection


def test_farthest_point_on_a_line():
    x = np.array([[0.0], [0.1], [0.2], [5.0], [10.0], [9.9]])
    assert select.farthest_point(x, 3, 0) == [0, 4, 3]
    # Far from frames already labelled: 10 is close to the reference, so 5 comes before it.
    assert select.farthest_point(x, 2, 0, reference=np.array([[9.8]])) == [0, 3]
    assert select.farthest_point(x, 10, 2) == [2, 4, 3, 0, 1, 5]  # all of them, never one twice
    assert select.farthest_point(x[:0], 3, 0) == []


def test_selection_picks_diverse_frames(potential):
    """Eight near-copies of one crystal frame (the largest deviation among
    them) and two other structures: three picks are one of each kind, where
    the first three candidates would all be the crystal."""
    frames = [_crystal(0, 0.02) for _ in range(8)]
    for k, a in enumerate(frames):
        a.positions += np.random.default_rng(k).normal(0, 0.003, a.positions.shape)
    frames += [_random(5), explore.start_structure(config_mod.RunSpec("vacancy"), None)]
    kinds = ["crystal"] * 8 + ["liquid", "vacancy"]
    for k, a in enumerate(frames):
        a.info["max_devi_f"] = 0.5 if k == 3 else 0.2
    chosen = select.select(frames, 3, pf.read(potential))
    assert chosen[0] == 3  # the largest deviation first
    assert sorted(kinds[c] for c in chosen) == ["crystal", "liquid", "vacancy"]
    assert len(set(chosen)) == 3


# ----------------------------------------------------------------------------
# Blown-up frames


def _frame(devi: float, atoms=None, step=0):
    atoms = (atoms if atoms is not None else _crystal(step)).copy()
    atoms.info.update(max_devi_f=devi, md_step=step, learn_run="crystal-300K")
    return atoms


def test_classify():
    radii = {("Si", "Si"): 1.6}
    close = _crystal(0)
    close.positions[1] = close.positions[0] + [1.5, 0.0, 0.0]
    nan_pos = _crystal(1)
    nan_pos.positions[2, 0] = math.nan
    cases = [(_frame(0.05), "accurate", ""), (_frame(0.2), "candidate", ""), (_frame(0.9), "failed", "above_hi"),
             (_frame(0.6), "failed", "above_hi"), (_frame(math.nan), "failed", "nan"),
             (_frame(0.2, nan_pos), "failed", "nan"), (_frame(0.2, close), "failed", "core")]
    for atoms, kind, reason in cases:
        v = select.classify(atoms, 0.1, 0.6, radii)
        assert (v.kind, v.reason) == (kind, reason), atoms.info
    assert select.core_radii(pf.PotentialData(None, {}, [], [pf.Repulsion("Si", "C", 1.1, 1.5)])) == \
        {("Si", "C"): 1.1, ("C", "Si"): 1.1}


def test_blown_up_frames_are_never_labelled(potential, tmp_path, monkeypatch):
    """The loop's explore, select and label stages with MD replaced by fixed
    frames and pw.x by a recorder: every candidate is labelled (the quota is
    larger), no failed frame is."""
    close = _crystal(7)
    close.positions[1] = close.positions[0] + [1.4, 0.2, 0.0]
    frames = [_frame(0.05, step=0), _frame(0.2, step=1), _frame(0.3, _random(2), step=2), _frame(2.0, step=3),
              _frame(math.nan, step=4), _frame(0.25, close, step=5), _frame(0.15, _random(4), step=6)]
    good_steps = {1, 2, 6}
    monkeypatch.setattr(explore, "explore", lambda *a, **k: [explore.RunResult("crystal-300K", frames, "")])
    monkeypatch.setattr(loop, "members_of", lambda directory, i, k: [potential, potential])
    config = config_mod.LearnConfig(initial_rattled=2, frames=10, trust_lo=0.1, trust_hi=1.0)
    state = loop.State(version=1, stage="explore", iteration=0, stop_reason="", seed={},
                       iterations=[{"iteration": 0, "trust_lo": 0.1, "trust_hi": 1.0}])
    loop.stage_explore(tmp_path, config, state, print)
    it = state.current()
    assert (it["explored"], it["accurate"], it["candidate"], it["failed"]) == (7, 1, 3, 3)
    assert (it["nan"], it["above_hi"], it["core"]) == (1, 1, 1)
    loop.stage_select(tmp_path, config, state, print)
    seen = []

    def fake_dft(atoms, qe, workdir):
        seen.append(atoms.copy())
        return {"energy": -5.0 * len(atoms), "forces": np.zeros((len(atoms), 3)), "stress": np.zeros(6)}

    monkeypatch.setattr(loop.train_mod, "committee_errors", lambda members, new, key: {"frames": len(new)})
    loop.stage_label(tmp_path, config, state, print, fake_dft)
    labelled = ase.io.read(tmp_path / "data.xyz", ":")
    assert sorted(a.info["md_step"] for a in labelled) == sorted(good_steps)
    assert len(seen) == 3 and state["iterations"][0]["labelled"] == 3 and state["stage"] == "train"


# ----------------------------------------------------------------------------
# Settings


def test_config_errors(tmp_path):
    cases = {
        "trust: {lo: 0.5, hi: 0.2}\ninitial: {rattled: 2}": "trust.hi must be above trust.lo",
        "initial: {rattled: 2}\nexploration: {runs: [{structure: glass}]}": "structure must be one of",
        "initial: {rattled: 2}\ntrain: {committee: 1}": "committee must be >= 2",
        "initial: {rattled: 2}\nselection: {frames: 3, method: first}": "unknown key(s) in selection: method",
        "explore: {}": "unknown section(s) explore",
        "train: {committee: 2}": "initial: give labelled data",
        "initial: {rattled: 2}\ntrain: {settings: {epochs: 5}}": "epochs is set by nnp learn",
    }
    for k, (text, message) in enumerate(cases.items()):
        path = tmp_path / f"c{k}.yaml"
        path.write_text(text)
        with pytest.raises(ValueError, match=None) as err:
            config_mod.read(path)
        assert message in str(err.value), (text, str(err.value))
    good = tmp_path / "good.yaml"
    good.write_text("initial: {rattled: 3, random: 2}\ntrust: {lo: auto, hi: auto}\ndft: {kpts: gamma, ecutwfc: 15}\n"
                    "exploration: {runs: [{structure: amorphous, temperatures: 2000, t_end: 300, steps: 100}]}\n")
    c = config_mod.read(good)
    assert c.trust_lo == "auto" and c.dft.kpts is None and c.runs[0].names() == [("amorphous-2000K-300K", 2000.0, 0.0)]
    # The stored config reads back as the same settings.
    again = tmp_path / "again.yaml"
    again.write_text(config_mod.yaml_text(c))
    assert config_mod.read(again) == c


def test_cli_refuses_bad_use(tmp_path, capsys):
    assert cli.main(["--quick"]) == 1
    assert "-o DIR" in capsys.readouterr().err
    assert cli.main(["--continue", str(tmp_path)]) == 1
    assert "config.yaml does not exist" in capsys.readouterr().err
    assert cli.main(["status", str(tmp_path)]) == 1
    assert "not an nnp learn run directory" in capsys.readouterr().err
    assert cli.main(["--quick", "-o", str(tmp_path / "x"), "--iterations", "3"]) == 1
    assert "--iterations is for --continue" in capsys.readouterr().err


# ----------------------------------------------------------------------------
# --quick with the real pw.x, killed and continued


@pytest.mark.slow
def test_quick_with_pw_x_killed_between_two_labels_and_continued(tmp_path, monkeypatch, capsys):
    require_qe()
    directory = tmp_path / "run"
    config = config_mod.quick_config()
    loop.start(directory, config)
    real = label.single_point
    labels_in_iteration_0 = 0

    def killed_before_second_label_of_iteration_0(atoms, qe, workdir):
        nonlocal labels_in_iteration_0
        if "iter.000" in str(workdir):
            if labels_in_iteration_0 == 1:
                raise Killed()
            labels_in_iteration_0 += 1
        return real(atoms, qe, workdir)

    with pytest.raises(Killed):
        loop.run(directory, config, print, compute=killed_before_second_label_of_iteration_0)
    state = loop.State.load(directory)
    assert (state["iteration"], state["stage"]) == (0, "label")
    data = directory / "data.xyz"
    labelled_before = ase.io.read(data, ":")
    before = [a.info["learn_id"] for a in labelled_before]
    assert len(before) == config.initial_rattled + config.initial_random + 1 and before[-1].startswith("i000-")

    # Continue from the command line, recording every pw.x run.
    computed = []

    def recording(atoms, qe, workdir):
        computed.append(atoms.positions.copy())
        return real(atoms, qe, workdir)

    monkeypatch.setattr(label, "single_point", recording)
    assert cli.main(["--continue", str(directory)]) == 0, capsys.readouterr().err
    frames = ase.io.read(data, ":")
    learn_ids = [a.info["learn_id"] for a in frames]
    assert learn_ids[: len(before)] == before  # nothing lost or rewritten
    assert len(learn_ids) == len(set(learn_ids))  # nothing labelled twice
    state = loop.State.load(directory)
    assert state["stage"] == "done" and state["stop_reason"] == "max_iterations"
    its = state["iterations"]
    assert len(its) == 2
    assert its[0]["labelled"] == config.frames and its[1]["labelled"] + its[1]["dft_failed"] == its[1]["selected"]
    # The resumed run's pw.x runs: the rest of iteration 0 and iteration 1, none of a frame labelled before.
    assert len(computed) == (config.frames - 1) + its[1]["labelled"] + its[1]["dft_failed"]
    assert not any(np.allclose(p, a.positions) for p in computed for a in labelled_before)
    for it in its:
        assert it["explored"] == it["accurate"] + it["candidate"] + it["failed"] > 0
        assert math.isfinite(it["validation"]["force_rmse_eV_per_A"])
    hi = {it["iteration"]: it["trust_hi"] for it in its}
    for a in frames:
        assert np.all(np.isfinite(a.get_forces())) and math.isfinite(a.get_potential_energy())
        if "learn_iteration" in a.info:
            assert a.info["max_devi_f"] < hi[a.info["learn_iteration"]]
            assert a.info["dft_ecutwfc_Ry"] == 12
    assert (directory / "report.png").stat().st_size > 10000
    report = (directory / "report.md").read_text()
    assert "finished: max_iterations" in report and report.count("\n| 1 |") == 1
    capsys.readouterr()
    assert cli.main(["status", str(directory)]) == 0
    assert "finished: max_iterations" in capsys.readouterr().out
    json.loads((directory / "state.json").read_text())


def test_trust_window_from_validation_frames():
    auto = config_mod.LearnConfig(initial_rattled=2, trust_lo="auto", trust_hi="auto", trust_hi_factor=4.0)
    assert loop._trust(auto, {"max_devi_f": [0.05, 0.08, 0.03]}) == (0.08, pytest.approx(0.32))
    fixed_hi = config_mod.LearnConfig(initial_rattled=2, trust_lo="auto", trust_hi=0.07)
    with pytest.raises(ValueError, match="hi 0.07 is not above lo 0.08"):
        loop._trust(fixed_hi, {"max_devi_f": [0.05, 0.08]})
    with pytest.raises(ValueError, match="no validation frame"):
        loop._trust(auto, {"max_devi_f": []})
    assert loop._trust(config_mod.LearnConfig(initial_rattled=2), {"max_devi_f": []}) == (0.15, 0.6)


def test_example_config_reads():
    c = config_mod.read(Path(__file__).resolve().parents[1] / "examples" / "si" / "learn.yaml")
    assert (c.initial_rattled, c.initial_random, c.committee, c.trust_lo, c.trust_hi) == (10, 8, 3, 0.12, 0.6)
    assert [name for spec in c.runs for name, _, _ in spec.names()] == [
        "crystal-300K", "crystal-900K", "crystal-1500K", "liquid-2000K", "amorphous-2000K-300K"]


def test_exploration_killed_between_two_runs_skips_the_finished_one(tmp_path, monkeypatch):
    runs = (config_mod.RunSpec(temperatures=(300.0, 900.0)),)
    ran, kill = [], [True]

    def fake_md(spec, name, temperature, pressure, members, elements, directory, seed, uncertainty):
        if name == "crystal-900K" and kill[0]:
            raise Killed()
        ran.append(name)
        return explore.RunResult(name, [_frame(0.1 * (1 + len(ran)), step=10)], "")

    monkeypatch.setattr(explore, "run_md", fake_md)
    with pytest.raises(Killed):  # the 300 K run finishes, the 900 K one is killed
        explore.explore(runs, [], ["Si"], tmp_path, 0, print)
    assert ran == ["crystal-300K"] and (tmp_path / "00-crystal-300K" / "done.json").exists()
    kill[0] = False
    results = explore.explore(runs, [], ["Si"], tmp_path, 0, print)  # continued
    assert ran == ["crystal-300K", "crystal-900K"]  # 300 K not run again
    assert [r.name for r in results] == ["crystal-300K", "crystal-900K"]
    assert results[0].frames[0].info["max_devi_f"] == pytest.approx(0.2)  # read back from its frames.xyz


def test_training_killed_between_members_resumes(tmp_path, monkeypatch):
    """A member file without a checkpoint is finished and kept; one with a
    checkpoint is resumed; one never started trains from the start."""
    from nnp.learn import train as train_mod
    from nnp.train.refit import checkpoint_paths

    directory = tmp_path / "train"
    directory.mkdir()
    (directory / "model.0.nnp").write_text("finished\n")
    (directory / "model.1.nnp").write_text("an older file, being retrained\n")
    checkpoint_paths(directory / "model.1.nnp")[0].write_text("checkpoint\n")
    calls = []

    def fake_run(cmd, stdout, stderr):
        calls.append(cmd)
        out = Path(cmd[cmd.index("-o") + 1])
        out.write_text("trained\n")
        return type("Done", (), {"returncode": 0})()

    monkeypatch.setattr(train_mod.subprocess, "run", fake_run)
    members = train_mod.train_committee(tmp_path / "data.xyz", directory, 3, 5, {}, 10, "model", print)
    assert [m.name for m in members] == ["model.0.nnp", "model.1.nnp", "model.2.nnp"]
    assert [(Path(c[c.index("-o") + 1]).name, c[c.index("--seed") + 1], c[-1]) for c in calls] == [
        ("model.1.nnp", "11", "--resume"), ("model.2.nnp", "12", "--force")]
    assert (directory / "model.0.nnp").read_text() == "finished\n"


@pytest.mark.parametrize("settings, passed", [({}, ["--descriptor", "C64"]),
                                              ({"descriptor": "auto"}, ["--descriptor", "C64"]),
                                              ({"descriptor": "A16"}, [])])
def test_committee_members_take_the_first_members_descriptor_choice(tmp_path, monkeypatch, potential, settings,
                                                                    passed):
    """With `descriptor: auto`, members after the first take the preset the
    first one's run chose (its file's config line) instead of choosing again;
    a named descriptor is in the config file already."""
    from nnp.learn import train as train_mod
    from nnp.train.outputs import CONFIG_PREFIX

    directory = tmp_path / "train"
    directory.mkdir()
    pot = pf.read(potential)
    pot.comments = ["trained by a test", CONFIG_PREFIX + json.dumps({"descriptor": "C64", "seed": 10})]
    pf.write(pot, directory / "model.0.nnp")
    calls = []

    def fake_run(cmd, stdout, stderr):
        calls.append(cmd)
        Path(cmd[cmd.index("-o") + 1]).write_text("trained\n")
        return type("Done", (), {"returncode": 0})()

    monkeypatch.setattr(train_mod.subprocess, "run", fake_run)
    train_mod.train_committee(tmp_path / "data.xyz", directory, 3, 5, settings, 10, "model", print)
    assert [c[c.index("--config") + 2:] for c in calls] == [
        [*passed, "--seed", "11", "--force"], [*passed, "--seed", "12", "--force"]]
