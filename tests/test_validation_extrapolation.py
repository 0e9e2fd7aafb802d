"""The training summary counts the validation atoms that the holdout model
would warn about in MD: nnp.train.outputs.extrapolating must count exactly
what the core counts (NNPCalculator's extrapolating_atoms) for the same
model and margin."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_train import labelled_si

from nnp import NNPCalculator
from nnp.descriptors import preset
from nnp.io import potential_file
from nnp.train import TrainConfig, featurize, train
from nnp.train.outputs import extrapolating, extrapolation_line

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    frames = labelled_si(12, seed=3)
    for k in (1, 2, 3):  # squeezed frames: some of their atoms leave any range the others give
        frames[k].set_cell(frames[k].cell * 0.97, scale_atoms=True)
    desc = preset("A16")
    config = TrainConfig(descriptor="A16", epochs=0, refit=False, validation_fraction=0.5, hidden_nodes=4)
    data = featurize(frames, desc, config)
    result = train(data, desc, config, log=lambda line: None)
    path = tmp_path_factory.mktemp("pot") / "holdout.nnp"
    potential_file.write(result.model.to_potential_data(), path)
    return frames, data, result, path


@pytest.mark.parametrize("margin", [0.0, 0.1])
def test_counts_agree_with_the_core(trained, margin):
    frames, data, result, path = trained
    val = result.validation_indices
    per_frame = []
    for s in val:
        atoms = frames[int(s)].copy()
        atoms.calc = NNPCalculator(str(path), extrapolation_margin=margin)
        atoms.get_potential_energy()
        per_frame.append(int(atoms.calc.results["extrapolating_atoms"]))
    outside, structures, atoms = extrapolating(result.model, data, val, margin)
    assert (outside, structures, atoms) == (sum(per_frame), sum(n > 0 for n in per_frame),
                                            sum(len(frames[int(s)]) for s in val))
    if margin == 0.0:
        assert outside > 0  # the check can fail
    # The training structures define the range: none of their atoms is outside it.
    assert extrapolating(result.model, data, result.train_indices, 0.0)[0] == 0


def test_summary_line(trained):
    _, data, result, _ = trained
    line = extrapolation_line(result.model, data, result.validation_indices)
    assert line.startswith("validation atoms outside the holdout model's training range (+10%")
    assert f"of {len(result.validation_indices)} structures" in line
