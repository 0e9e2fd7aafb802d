"""Data-parallel training (nnp.train.distributed): two gloo ranks launched
by torchrun write the potential file one process writes, up to the order of
floating-point sums; a failing rank ends the run with its error, not a hang."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import ase.io
import numpy as np
import pytest
import yaml

import nnp
from nnp.train.distributed import assign
from test_train import labelled_si

PACKAGE_PARENT = str(Path(nnp.__file__).resolve().parents[1])
TIMEOUT_S = 300  # a hang fails the test instead of the suite
SMALL = dict(descriptor="A16", hidden_layers=1, hidden_nodes=8, epochs=6, lbfgs_fraction=0.5, batch_size=2,
             validation_fraction=0.2, threads=1, log_every=1, checkpoint_every=0.0,
             isolated_atom_energies={"Si": -0.5})
# One process with several BLAS threads rounds the quadratic fit's products
# otherwise than one thread does (1e-6 relative in its coefficients); torchrun
# gives every rank one thread, and so does the reference run.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _env() -> dict[str, str]:
    env = {**os.environ, **ONE_THREAD, "NNP_DDP_TIMEOUT": "120"}
    # The nnp this test imports (the installed one in CI, the source tree in development).
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_PARENT, env.get("PYTHONPATH")) if p)
    return env


def _torchrun(ranks: int, target: list[str], cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks), *target]
    return subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=TIMEOUT_S)


def _one_process(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nnp.train", *args], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=TIMEOUT_S)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    """Ten 8-atom cells and two 16-atom ones (ranks hold unequal shares of a batch)."""
    frames = labelled_si(10)
    for k in (3, 7):
        big = frames[k].repeat((2, 1, 1))
        from ase.calculators.lj import LennardJones
        from ase.calculators.singlepoint import SinglePointCalculator
        big.calc = LennardJones(sigma=2.1, epsilon=0.4, rc=5.0, smooth=True)
        e, f, s = big.get_potential_energy(), big.get_forces(), big.get_stress()
        big.calc = SinglePointCalculator(big, energy=e, forces=f, stress=s)
        frames.append(big)
    path = tmp_path_factory.mktemp("ddp_data") / "si.xyz"
    ase.io.write(path, frames, format="extxyz")
    return path


def _sections(path: Path) -> dict[str, list[np.ndarray]]:
    """The numbers of a potential file by section (scaling, layer k,
    quadratic, reference_energy), comments left out."""
    out: dict[str, list[np.ndarray]] = {}
    section = "header"
    for line in path.read_text().splitlines():
        words = line.split()
        if not words or line.startswith("#"):
            continue
        if words[0] in ("scaling", "network", "quadratic"):
            section = words[0]
        elif words[0] == "layer":
            section = f"layer {words[1]}"
        elif words[0] == "reference_energy":
            out.setdefault("reference_energy", []).append(np.array([float(words[2])]))
            continue
        try:
            values = np.array([float(w) for w in words])
        except ValueError:
            continue
        out.setdefault(section, []).append(values)
    return out


def _assert_same_model(one: Path, two: Path, rel: float = 1e-10) -> None:
    a, b = _sections(one), _sections(two)
    assert a.keys() == b.keys()
    assert {"scaling", "layer 1", "layer 2", "quadratic", "reference_energy"} <= a.keys()
    for section in a:
        assert len(a[section]) == len(b[section]), section
        if section == "scaling":  # min/max scaling: reduced exactly
            assert all(np.array_equal(x, y) for x, y in zip(a[section], b[section])), "scaling rows differ"
            continue
        scale = max(float(np.abs(x).max()) for x in a[section])
        for x, y in zip(a[section], b[section]):
            np.testing.assert_allclose(y, x, rtol=rel, atol=rel * 1e-3 * scale, err_msg=section)


def _assert_close_tree(a, b, where: str = "") -> None:
    """Equal JSON trees, numbers to 1e-8 relative."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_close_tree(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b)):
            _assert_close_tree(x, y, f"{where}[{k}]")
    elif isinstance(a, float) and math.isfinite(a):
        assert b == pytest.approx(a, rel=1e-8, abs=1e-14), where
    else:
        assert a == b, where


def _write_config(path: Path, **values) -> Path:
    path.write_text(yaml.safe_dump({**SMALL, **values}))
    return path


@pytest.mark.parametrize("case", ["refit", "patience_streamed"])
def test_two_ranks_write_the_model_of_one_process(tmp_path, data_file, case):
    """Adam (each rank its share of every batch) then L-BFGS (the loss and
    gradient summed over ranks), the quadratic fit, the scaling, the
    validation errors and the best epoch: the two ranks' potential file is
    the one process's to 1e-10 in every number, the scaling rows identical.
    `refit`: the holdout twin and the written model, one after the other;
    `patience_streamed`: early stopping on the validation loss, with
    streamed derivatives."""
    extra = {} if case == "refit" else dict(refit=False, patience=1, epochs=14, lbfgs_fraction=0.5,
                                            validation_fraction=0.3, derivatives="streamed", learning_rate=0.05,
                                            force_weight=0.001, stress_weight=0.0)
    cfg = _write_config(tmp_path / "cfg.yaml", **extra)
    one = _one_process(["--data", str(data_file), "-o", "one/si.nnp", "--config", str(cfg),
                        "--report", "one_report"], tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    module = ["-m", "nnp.train"] if case == "refit" else ["-m", "nnp", "train"]  # both entry points
    two = _torchrun(2, [*module, "--data", str(data_file), "-o", "two/si.nnp", "--config", str(cfg),
                        "--report", "two_report"], tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "data-parallel: 2 ranks" in two.stdout
    assert two.stdout.count("wrote two/si.nnp") == 1  # rank 0 alone prints
    _assert_same_model(tmp_path / "one/si.nnp", tmp_path / "two/si.nnp")
    # The report: predictions gathered from both ranks, the learning curve of reduced losses.
    m1, m2 = (json.loads((tmp_path / f"{r}_report/metrics.json").read_text()) for r in ("one", "two"))
    assert set(m1["sets"]) == {"train", "validation"}
    _assert_close_tree(m1["sets"], m2["sets"])
    _assert_close_tree(m1["history"], m2["history"])
    if case == "patience_streamed":
        stops = [line for line in one.stdout.splitlines() if "stops here" in line]
        assert len(stops) == 2  # Adam, then L-BFGS (an energy-weighted loss on this data)
        assert stops == [line for line in two.stdout.splitlines() if "stops here" in line]


FAILING = textwrap.dedent("""
    import os, sys
    import nnp.train.phases as phases

    def fail(self, model):
        raise ValueError("injected failure in the first L-BFGS epoch")

    if os.environ["RANK"] == "1":
        phases.LbfgsPhase.run_epoch = fail
    from nnp.train.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_a_failing_rank_ends_the_run_with_its_error_and_resume_continues(tmp_path, data_file):
    """Rank 1 raises in its first L-BFGS epoch while rank 0 waits for its
    gradient: the run ends (no hang) with rank 1's one-line error, non-zero
    status and no potential file, but rank 0's checkpoint of the Adam
    epochs; --resume on two ranks then writes the model one uninterrupted
    process writes."""
    script = tmp_path / "failing_rank.py"
    script.write_text(FAILING)
    cfg = _write_config(tmp_path / "cfg.yaml", refit=False)
    args = ["--data", str(data_file), "-o", "si.nnp", "--config", str(cfg)]
    run = _torchrun(2, [str(script), *args], tmp_path)
    assert run.returncode != 0
    assert "[rank 1] error: injected failure in the first L-BFGS epoch" in run.stderr
    assert "Traceback" not in run.stderr.split("[rank 1] error")[0].split("torch.distributed")[0]
    assert not (tmp_path / "si.nnp").exists() and (tmp_path / "si.nnp.ckpt").exists()
    resumed = _torchrun(2, ["-m", "nnp.train", *args, "--resume"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from si.nnp.ckpt after epoch 3" in resumed.stdout
    one = _one_process(["--data", str(data_file), "-o", "one.nnp", "--config", str(cfg)], tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    _assert_same_model(tmp_path / "one.nnp", tmp_path / "si.nnp")


def test_shares_are_consecutive_runs_of_equal_atoms():
    """Consecutive runs (the quadratic fit's sums go along the ranks in
    structure order), split near equal atom counts, one structure at least."""
    n = np.array([8, 8, 64, 16, 8, 1, 8, 8, 8, 8])
    owner = assign(n, 2)
    assert (np.diff(owner) >= 0).all() and list(owner).count(0) == 3  # 80 atoms, then 57
    assert (assign(np.array([5, 5, 5, 5]), 4) == np.arange(4)).all()
    assert (assign(np.array([100, 1, 1]), 3) == np.arange(3)).all()
    with pytest.raises(ValueError, match="3 structures cannot be shared by 4 ranks"):
        assign(np.array([1, 1, 1]), 4)
