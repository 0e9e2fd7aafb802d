"""Streamed descriptor derivatives against stored ones. A streamed batch
carries no dG_dr: the model contracts with ∂G/∂r through the core's force
pass and Jacobian-vector product. Against derivatives stored in float64,
batches are the same bit for bit (but for dG_dr) and losses and weight
gradients agree to ~1e-12; training stores float32 derivatives, so the
written models agree to single-precision effects. Also: the quadratic fit,
finite differences of the streamed loss, the memory estimate's choice
between the modes, and the pre-flight refusal."""

from __future__ import annotations

from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
import yaml
from ase.build import bulk
from ase.calculators.lj import LennardJones
from ase.calculators.singlepoint import SinglePointCalculator

import nnp.train.cli as train_cli
from nnp import descriptors as descriptors_mod
from nnp.data import FeaturizedDataset, read_structures
from nnp.train import TrainConfig, build_model, main
from nnp.model.network import kernel_threads, set_kernel_threads
from nnp.train import memory, refit
from nnp.train.initial_model import fit_quadratic_term
from nnp.train.loss import Objective
from nnp.train.training_set import featurize, split_structures, with_isolated_atoms
from conftest import shared_data
from test_train import labelled_si

torch.set_num_threads(1)

SMALL = dict(descriptor="A16", hidden_layers=1, hidden_nodes=8, batch_size=2, validation_fraction=0.25,
             threads=1, checkpoint_every=0.0, refit=False, stress_weight=0.1, chunk_size=3)
# Streamed vs stored (float64) losses and gradients: the same sums in another order.
RTOL = 1e-10


def two_element_frames(n: int, seed: int = 0) -> list:
    """`n` rattled, strained 8-atom rock-salt NaCl cells labelled by a
    Lennard-Jones calculator (energies, forces and stress)."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        a = bulk("NaCl", "rocksalt", a=5.0 * (1 + rng.uniform(-0.03, 0.03)), cubic=True)
        a.rattle(0.1, seed=int(rng.integers(1 << 30)))
        a.calc = LennardJones(sigma=2.2, epsilon=0.3, rc=5.0, smooth=True)
        e, f, s = a.get_potential_energy(), a.get_forces(), a.get_stress()
        a.calc = SinglePointCalculator(a, energy=e, forces=f, stress=s)
        frames.append(a)
    return frames


def both_modes(frames, elements, name="A16", config=None):
    """(descriptors, stored data, streamed data) as training featurises
    them (nnp.train.training_set.featurize), but with derivatives in float64."""
    ds = descriptors_mod.resolve(name, elements, frames)
    structures = with_isolated_atoms(frames, config or TrainConfig(**SMALL))
    return ds, *(FeaturizedDataset.from_structures(structures, ds, derivative_dtype=np.float64, streamed=streamed)
                 for streamed in (False, True))


def assert_same_batch(a, b):
    """Equal batches; `b` (streamed) has no dG_dr."""
    for key, value in vars(a).items():
        if key != "blocks":
            assert torch.equal(torch.nan_to_num(value), torch.nan_to_num(getattr(b, key))), key
    assert a.blocks.keys() == b.blocks.keys()
    for e in a.blocks:
        assert b.blocks[e].dG_dr is None
        for key, value in vars(a.blocks[e]).items():
            if key != "dG_dr":
                other = getattr(b.blocks[e], key)
                assert value.dtype == other.dtype and torch.equal(value, other), (e, key)


def gradients(model) -> list[torch.Tensor]:
    grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad(set_to_none=True)
    return grads


def assert_close(x: torch.Tensor, y: torch.Tensor, rtol: float = RTOL) -> None:
    scale = float(y.abs().max())
    assert scale > 0 and float((x - y).abs().max()) <= rtol * scale, float((x - y).abs().max()) / scale


def check_losses_and_gradients(ds, stored, streamed, config):
    """Full-batch and minibatch losses and weight gradients of both modes agree to RTOL."""
    assert streamed.is_streamed and not stored.is_streamed
    assert streamed.nbytes() < stored.nbytes() / 5
    _, train_idx, _ = split_structures(stored, config)
    model = build_model(stored, ds, config, train_idx)
    assert streamed.shortest_pair_distance() == stored.shortest_pair_distance()
    assert streamed.shortest_pair_distances() == stored.shortest_pair_distances()
    for idx in (train_idx, train_idx[::-1][:3].copy(), [int(train_idx[0])]):
        assert_same_batch(stored.collate(idx), streamed.collate(idx))
    results = []
    for data in (stored, streamed):
        objective = Objective(data, train_idx, config, torch.device("cpu"))
        full = objective.full_batch(model)
        full_grads = gradients(model)
        loss, _ = objective.batch_loss(model, train_idx[:2])
        loss.backward()
        results.append((full, full_grads, float(loss.detach()), gradients(model)))
        assert objective._cached is None or not data.is_streamed  # streamed chunks are never kept
    (f1, g1, b1, m1), (f2, g2, b2, m2) = results
    assert abs(f1 - f2) <= 1e-12 * abs(f1) and abs(b1 - b2) <= 1e-12 * abs(b1)
    assert len(g1) == len(g2) > 0
    for x, y in zip(g2 + m2, g1 + m1):
        assert_close(x, y)


def test_si_streamed_equals_stored():
    config = TrainConfig(**SMALL)
    check_losses_and_gradients(*both_modes(labelled_si(8), ("Si",)), config)


def test_two_elements_streamed_equals_stored():
    """With isolated atoms too: streamed batches of atoms without neighbours."""
    config = TrainConfig(**SMALL, isolated_atom_energies={"Na": -1.0, "Cl": -2.0})
    check_losses_and_gradients(*both_modes(two_element_frames(6), ("Na", "Cl"), config=config), config)


def test_kernel_threads_change_nothing_and_share_the_cores(monkeypatch):
    """The streamed kernels split the centre rows among threads, each row
    summed by one thread: the same loss and gradients bit for bit. By
    default each training takes its share of the usable cores."""
    ds, _, streamed = both_modes(two_element_frames(6), ("Na", "Cl"))
    config = TrainConfig(**SMALL)
    _, train_idx, _ = split_structures(streamed, config)
    model = build_model(streamed, ds, config, train_idx)
    results = []
    try:
        for n in (1, 3):
            set_kernel_threads(n)
            assert kernel_threads() == n
            loss = Objective(streamed, train_idx, config, torch.device("cpu")).full_batch(model)
            results.append((loss, gradients(model)))
    finally:
        set_kernel_threads(0)
    (l1, g1), (l3, g3) = results
    assert l1 == l3 and len(g1) == len(g3) > 0 and all(torch.equal(a, b) for a, b in zip(g1, g3))
    assert kernel_threads() == torch.get_num_threads()  # 0: torch's count

    monkeypatch.setattr(refit, "usable_cores", lambda: 8)
    assert refit.kernel_threads(TrainConfig(refit=False)) == 8
    assert refit.kernel_threads(TrainConfig()) == 4  # the holdout twin trains alongside
    assert refit.kernel_threads(TrainConfig(), ranks_on_node=4) == 1
    assert refit.kernel_threads(TrainConfig(kernel_threads=3)) == 3
    assert refit.kernel_threads(TrainConfig(threads=2)) == 8  # twin after the written model: one at a time
    with pytest.raises(ValueError, match="kernel_threads must be >= 0"):
        TrainConfig(kernel_threads=-1).check()


def test_quadratic_fit_is_the_same_streamed():
    """The quadratic fit reads one structure's entries at a time; streamed,
    those are featurised again, and the fit is the same."""
    config = TrainConfig(**SMALL)
    ds, stored, streamed = both_modes(two_element_frames(5), ("Na", "Cl"))
    _, train_idx, _ = split_structures(stored, config)
    fits = []
    for data in (stored, streamed):
        model = build_model(data, ds, config, train_idx)
        fits.append(fit_quadratic_term(model, data, train_idx, config, log=lambda line: None))
    assert fits[0].constants == fits[1].constants
    for e in fits[0].terms:
        assert np.array_equal(fits[0].terms[e].linear, fits[1].terms[e].linear)
        assert np.array_equal(fits[0].terms[e].matrix, fits[1].terms[e].matrix)
    with pytest.raises(IndexError):
        streamed.blocks["Na"].dG_dr[0:int(streamed.pair_offsets["Na"][2])]  # two structures at once


def test_water_streamed_equals_stored():
    frames = read_structures(shared_data("water-deepmd/train.xyz"))[:4]
    config = TrainConfig(**{**SMALL, "descriptor": "C64", "chunk_size": 2})
    check_losses_and_gradients(*both_modes(frames, ("H", "O"), "C64", config), config)


def run_cli(tmp_path: Path, data: Path, name: str, *extra: str, **values) -> Path:
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump({**SMALL, "epochs": 4, "lbfgs_fraction": 0.5, **values}))
    out = tmp_path / f"{name}.nnp"
    assert main(["--data", str(data), "--output", str(out), "--config", str(config), *extra]) == 0
    return out


def test_streamed_gradient_is_the_finite_difference_of_its_loss():
    """The weight gradient of the streamed loss (forces and stress through
    the core's Jacobian-vector product) along a random direction of the
    parameters, against central differences of that loss."""
    config = TrainConfig(**SMALL)
    ds, stored, streamed = both_modes(two_element_frames(4, seed=2), ("Na", "Cl"))
    _, train_idx, _ = split_structures(stored, config)
    model = build_model(streamed, ds, config, train_idx)
    objective = Objective(streamed, train_idx, config, torch.device("cpu"))
    objective.full_batch(model)
    params = [p for p in model.parameters() if p.grad is not None]
    rng = torch.Generator().manual_seed(4)
    direction = [torch.randn(p.shape, generator=rng, dtype=p.dtype) for p in params]
    slope = sum(float((p.grad * d).sum()) for p, d in zip(params, direction))
    model.zero_grad(set_to_none=True)
    h, values = 1e-5, []
    for sign in (1, -1):
        with torch.no_grad():
            for p, d in zip(params, direction):
                p.add_(sign * h * d)
        values.append(objective.full_batch(model))
        model.zero_grad(set_to_none=True)
        with torch.no_grad():
            for p, d in zip(params, direction):
                p.sub_(sign * h * d)
    assert abs(slope) > 1e-6
    assert abs((values[0] - values[1]) / (2 * h) - slope) < 1e-6 * abs(slope)


def test_training_writes_nearly_the_same_model(tmp_path, capsys):
    """A short run (Adam and L-BFGS, quadratic term, stress) in both modes:
    stored derivatives are float32, streamed ones exact, so the written
    weights differ at single-precision level only."""
    data = tmp_path / "nacl.xyz"
    ase.io.write(data, two_element_frames(6), format="extxyz")
    files = [run_cli(tmp_path, data, mode, "--derivatives", mode) for mode in ("stored", "streamed")]
    out = capsys.readouterr().out
    assert "memory: derivatives stored" in out and "memory: derivatives streamed" in out
    from nnp.io import potential_file as pf
    a, b = (pf.read(f) for f in files)
    for e in a.models:
        for la, lb in zip(a.models[e].layers, b.models[e].layers):
            scale = np.abs(la.weights).max()
            assert 0 < np.abs(la.weights - lb.weights).max() < 1e-4 * scale


def test_auto_chooses_as_the_estimate_says():
    frames = two_element_frames(4)
    ds = descriptors_mod.resolve("A16", ("Na", "Cl"), frames)
    estimate = memory.plan(frames, ds, TrainConfig(**SMALL, memory_budget=1000.0))
    assert estimate.mode is memory.Derivatives.STORED
    assert estimate.streamed.total < estimate.stored.total
    between = (estimate.streamed.total + estimate.stored.total) / 2 / memory.GIB
    chosen = memory.plan(frames, ds, TrainConfig(**SMALL, memory_budget=between))
    assert chosen.mode is memory.Derivatives.STREAMED
    assert "derivatives streamed" in chosen.line()
    forced = memory.plan(frames, ds, TrainConfig(**SMALL, memory_budget=1000.0, derivatives="streamed"))
    assert forced.mode is memory.Derivatives.STREAMED


def test_auto_streams_over_the_stored_limit():
    """auto_stored_limit decides between the modes when both fit the budget:
    a limit below the stored estimate streams, one above stores, 0 lifts
    it; the log line says why and how to get the other mode."""
    frames = two_element_frames(4)
    ds = descriptors_mod.resolve("A16", ("Na", "Cl"), frames)
    config = TrainConfig(**SMALL, memory_budget=1000.0)
    stored = memory.plan(frames, ds, config.updated({"auto_stored_limit": 0.0})).stored.total / memory.GIB
    below = memory.plan(frames, ds, config.updated({"auto_stored_limit": 0.9 * stored}))
    assert below.mode is memory.Derivatives.STREAMED
    assert "auto streams: stored needs more than auto_stored_limit" in below.line()
    assert "derivatives: stored is faster" in below.line()
    above = memory.plan(frames, ds, config.updated({"auto_stored_limit": 1.1 * stored}))
    assert above.mode is memory.Derivatives.STORED
    assert "auto stores: within auto_stored_limit" in above.line() and "derivatives: streamed" in above.line()
    assert memory.plan(frames, ds, config.updated({"auto_stored_limit": 0.0})).mode is memory.Derivatives.STORED
    forced = memory.plan(frames, ds, config.updated({"auto_stored_limit": 0.9 * stored, "derivatives": "stored"}))
    assert forced.mode is memory.Derivatives.STORED and "derivatives: stored as configured" in forced.line()
    over_budget = memory.choose(config, stored=2.0 * memory.GIB, limit=1.0 * memory.GIB)
    assert over_budget == (memory.Derivatives.STREAMED, "auto streams: stored derivatives would not fit the budget")
    with pytest.raises(ValueError, match="auto_stored_limit must be >= 0"):
        TrainConfig(auto_stored_limit=-1.0).check()


def test_estimate_is_close_to_the_featurised_size():
    """The stored and streamed data estimates are within 10 % of what featurising holds."""
    frames = two_element_frames(6)
    config = TrainConfig(**SMALL)
    ds = descriptors_mod.resolve("A16", ("Na", "Cl"), frames)
    stored, streamed = (featurize(frames, ds, config, streamed=mode) for mode in (False, True))
    shape = memory.data_shape(frames, ds, config)
    for data, streamed_mode in ((stored, False), (streamed, True)):
        estimated = memory.estimate(shape, config, streamed_mode, twin=False).data
        assert abs(estimated - data.nbytes()) < 0.1 * data.nbytes() + 20_000


def test_refused_before_featurising(tmp_path, capsys, monkeypatch):
    """A budget the run cannot fit: one error line with the estimate and a
    way out, exit code 1, no traceback, nothing featurised or written."""
    data = tmp_path / "si.xyz"
    ase.io.write(data, labelled_si(6), format="extxyz")

    def no_featurising(*args, **kwargs):
        raise AssertionError("featurised before the memory check")

    monkeypatch.setattr(train_cli, "featurize", no_featurising)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**SMALL, "epochs": 2, "memory_budget": 1e-3}))
    out = tmp_path / "si.nnp"
    assert main(["--data", str(data), "--output", str(out), "--config", str(config)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: memory: the run needs an estimated ")
    assert "GiB even with streamed derivatives" in err[0] and "budget of 0.0 GiB (memory_budget)" in err[0]
    assert "Traceback" not in err[0] and not out.exists()


def test_refusal_names_a_setting_that_fits():
    frames = labelled_si(40)
    ds = descriptors_mod.resolve("A16", ("Si",), frames)
    config = TrainConfig(**{**SMALL, "derivatives": "stored"})
    estimate = memory.plan(frames, ds, config.updated({"memory_budget": 1000.0}))
    between = (estimate.stored.total + estimate.streamed.total) / 2 / memory.GIB
    with pytest.raises(ValueError, match="with derivatives stored.*would fit: derivatives: streamed"):
        memory.plan(frames, ds, config.updated({"memory_budget": between}))
