"""descriptor: auto, the default: C64-wide unless a quadratic model fits the
data clearly better in C64, decided on training structures only."""

from __future__ import annotations

import math

import ase.io
import numpy as np
import pytest
import torch
from ase.calculators.singlepoint import SinglePointCalculator

from nnp.data import FeaturizedDataset
from nnp.descriptors import preset
from nnp.io import potential_file
from nnp.train import TrainConfig, descriptor_choice, main
from nnp.train.descriptor_choice import ACCURATE, FAST, LOSS_TOLERANCE, Candidate
from nnp.train.training_set import split_structures
from test_train import labelled_si

torch.set_num_threads(1)


def fake_score(losses: dict[str, float], seen: list | None = None):
    def score(name, fit, scored, elements, config):
        if seen is not None:
            seen.append((name, list(fit), list(scored)))
        return Candidate(name, losses[name], 0.001 * losses[name], 0.1 * losses[name])
    return score


@pytest.mark.parametrize("ratio, expected", [(0.8, FAST), (1.0, FAST), (0.99 * LOSS_TOLERANCE, FAST),
                                             (1.01 * LOSS_TOLERANCE, ACCURATE), (2.0, ACCURATE)])
def test_fast_candidate_unless_its_loss_is_beyond_the_tolerance(monkeypatch, ratio, expected):
    monkeypatch.setattr(descriptor_choice, "MIN_ROWS_PER_COEFFICIENT", 0)  # tiny data, scores faked
    monkeypatch.setattr(descriptor_choice, "score", fake_score({FAST: ratio, ACCURATE: 1.0}))
    choice = descriptor_choice.choose(labelled_si(6), ("Si",), TrainConfig())
    assert choice.name == expected
    line = choice.line()
    assert f"descriptor auto -> {expected}" in line and f"{ratio:.2f} x" in line
    assert ("within" if expected == FAST else "beyond") in line


def test_the_runs_validation_structures_take_no_part(monkeypatch):
    frames = labelled_si(20, seed=3)
    config = TrainConfig(validation_fraction=0.25, split_seed=5)
    monkeypatch.setattr(descriptor_choice, "MIN_ROWS_PER_COEFFICIENT", 0)
    seen: list = []
    monkeypatch.setattr(descriptor_choice, "score", fake_score({FAST: 1.0, ACCURATE: 1.0}, seen))
    descriptor_choice.choose(frames, ("Si",), config)
    data = FeaturizedDataset.from_structures(frames, preset("A16"))
    _, train_idx, val_idx = split_structures(data, config)
    validation = {id(frames[i]) for i in val_idx}
    assert len(seen) == 2 and len(validation) == 5
    for _, fit, scored in seen:
        used = [id(a) for a in fit + scored]
        assert not validation & set(used)
        assert len(set(used)) == len(used) == len(train_idx)
        assert fit and scored  # both candidates on the same fitted and scored structures
    assert [a is b for a, b in zip(seen[0][1] + seen[0][2], seen[1][1] + seen[1][2])] == [True] * len(train_idx)


def test_too_few_labels_take_the_fast_candidate_without_fits(monkeypatch):
    def fail(*args):
        raise AssertionError("fitted quadratic models on too few labels")
    monkeypatch.setattr(descriptor_choice, "score", fail)
    choice = descriptor_choice.choose(labelled_si(12, seed=1), ("Si",), TrainConfig())
    # 12 structures of 8 atoms: 9 fitted, 9 × 25 labels for 2,144 coefficients
    assert choice.name == FAST and choice.rows == 9 * 25
    assert "too few labels to compare descriptors on (225 energies and force components for 2144" in choice.line()


def test_real_quadratic_fits_decide_by_the_rule(monkeypatch):
    from conftest import SI_DATA
    from nnp.data import read_structures

    monkeypatch.setattr(descriptor_choice, "CHOICE_MAX_ATOMS", 3000)
    choice = descriptor_choice.choose(read_structures(SI_DATA), ("Si",), TrainConfig())
    for c, name in ((choice.fast, FAST), (choice.accurate, ACCURATE)):
        assert c.name == name and math.isfinite(c.loss) and c.loss > 0 and c.force_rmse > 0
    assert choice.name == (FAST if choice.fast.loss <= LOSS_TOLERANCE * choice.accurate.loss else ACCURATE)
    assert choice.name == FAST, choice.line()  # the bundled Si data: C64-wide (docs/descriptors.md)


def test_one_large_structure_is_a_clear_error():
    from conftest import rattled_si

    big = rattled_si((6, 6, 6))  # 1,728 atoms: labels enough, but nothing to score on
    big.calc = SinglePointCalculator(big, energy=-5.4 * len(big), forces=np.zeros((len(big), 3)))
    with pytest.raises(ValueError, match="at least two training structures.*--descriptor C64"):
        descriptor_choice.choose([big], ("Si",), TrainConfig())
    assert descriptor_choice.choose(labelled_si(1), ("Si",), TrainConfig()).name == FAST  # tiny: no fits


def test_named_descriptor_skips_the_choice(monkeypatch):
    def fail(*args):
        raise AssertionError("the choice ran for a named descriptor")
    monkeypatch.setattr(descriptor_choice, "choose", fail)
    config = TrainConfig(descriptor="a16")
    config.check()
    name, ds = descriptor_choice.resolve(config, ("Si",), labelled_si(2))
    assert name == "A16" and ds.size("Si") == 16


def test_auto_is_the_default_and_any_case(tmp_path):
    assert TrainConfig().descriptor == "auto"
    config = TrainConfig(descriptor=" AUTO ")
    config.check()
    assert config.descriptor == "auto"
    with pytest.raises(ValueError, match="or auto, the default"):
        TrainConfig(descriptor="autoo").check()


def test_command_line_writes_the_chosen_descriptor(tmp_path, capsys):
    data = tmp_path / "si.xyz"
    ase.io.write(data, labelled_si(10, seed=2), format="extxyz")
    out = tmp_path / "si.nnp"
    assert main(["--data", str(data), "-o", str(out), "--epochs", "0"]) == 0
    log = capsys.readouterr().out
    chosen = log.split("descriptor auto -> ")[1].split(":")[0]
    assert chosen in (FAST, ACCURATE)
    assert f"descriptor {chosen}: Si 64 functions" in log
    written = potential_file.read(out)
    expected = descriptor_choice.descriptors_mod.resolve(chosen, ("Si",), ase.io.read(data, ":"))
    assert written.descriptors.functions == expected.functions
    assert any(f'"descriptor": "{chosen}"' in line for line in written.comments)


def test_water_gets_the_narrow_descriptor(monkeypatch):
    """The measured case of docs/descriptors.md: on liquid water C64-wide's
    quadratic model has twice C64's loss. Fewer atoms than the default
    sample keep this under a minute."""
    from conftest import shared_data
    from nnp.data import read_structures

    monkeypatch.setattr(descriptor_choice, "CHOICE_MAX_ATOMS", 6000)
    water = read_structures(shared_data("water-deepmd/train.xyz"))
    choice = descriptor_choice.choose(water, ("H", "O"), TrainConfig())
    assert choice.name == ACCURATE and choice.fast.loss > 1.5 * choice.accurate.loss, choice.line()


def test_a_run_that_cannot_fit_is_refused_before_the_choice(tmp_path, capsys, monkeypatch):
    def no_choice(*args, **kwargs):
        raise AssertionError("compared descriptors before the memory check")

    monkeypatch.setattr(descriptor_choice, "choose", no_choice)
    data = tmp_path / "si.xyz"
    ase.io.write(data, labelled_si(6), format="extxyz")
    config = tmp_path / "tiny.yaml"
    config.write_text("memory_budget: 0.001\n")
    assert main(["--data", str(data), "--output", str(tmp_path / "si.nnp"), "--config", str(config)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: memory: the run needs an estimated ")
