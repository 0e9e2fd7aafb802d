"""Memory and time of training with stored and with streamed descriptor
derivatives (`derivatives: stored | streamed`), side by side.

For the bundled Si data and the shared water set, each mode runs the real
command line (`python -m nnp.train`, default descriptor and network, holdout
twin alongside) for a few epochs in a fresh process, and this script prints

* the memory estimate the run printed before featurising (nnp.train.memory),
* the measured peak memory of all its processes: the sum of Pss from
  /proc/<pid>/smaps_rollup over the process and its children, sampled every
  0.2 s (shared pages are split between the processes that share them),
* the featurisation time, and the time per Adam and per L-BFGS epoch (the
  written model's epochs, from the arrival times of its progress lines).

Then a synthetic set of about 10⁶ atoms (the water frames replicated and
rattled) in streamed mode, in this process: a fraction of it is featurised
and a few L-BFGS chunks evaluated, and memory and time per epoch are
extrapolated to the whole set (printed as such).

    python benchmarks/train_memory.py [--epochs 4] [--skip-si] [--skip-water] [--skip-million]
        [--million-fraction 0.125]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from nnp import descriptors as descriptors_mod
from nnp.data import read_structures
from nnp.train import TrainConfig, build_model
from nnp.train import memory
from nnp.train.loss import Objective
from nnp.train.training_set import featurize

REPO = Path(__file__).resolve().parents[1]
SI = REPO / "examples/si/data/train.xyz"
WATER = REPO.parent / "shared/data/water-deepmd/train.xyz"
GIB = 2**30


def pss_bytes(pid: int) -> int:
    """Pss of `pid` and all its descendants."""
    total = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1]) * 1024
                break
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += pss_bytes(int(child))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return total


class PeakSampler:
    """The largest pss_bytes(pid) seen, sampled in a thread."""

    def __init__(self, pid: int, every: float = 0.2):
        self.pid, self.every, self.peak = pid, every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, pss_bytes(self.pid))
            self._stop.wait(self.every)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


EPOCH = re.compile(r"^epoch\s+(\d+)/\d+ (adam|lbfgs)")


def run_cli(data: Path, mode: str, epochs: int, workdir: Path) -> dict:
    """One `python -m nnp.train` run; its estimate, peak PSS and timings."""
    config = workdir / f"{mode}.yaml"
    config.write_text(yaml.safe_dump({"epochs": epochs, "lbfgs_fraction": 0.5, "log_every": 1,
                                      "derivatives": mode}))
    cmd = [sys.executable, "-m", "nnp.train", "--data", str(data), "--output", str(workdir / f"{mode}.nnp"),
           "--config", str(config), "--force"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    sampler = PeakSampler(proc.pid)
    arrivals: list[tuple[float, str]] = []
    for line in proc.stdout:
        arrivals.append((time.perf_counter() - t0, line.rstrip()))
    proc.wait()
    peak = sampler.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n" + "\n".join(l for _, l in arrivals[-20:]))
    return dict(peak=peak, wall=time.perf_counter() - t0, **_timings(arrivals))


def _timings(arrivals: list[tuple[float, str]]) -> dict:
    """Estimate, featurisation time and mean epoch times from the timed log lines."""
    out: dict = {"estimate": float("nan"), "featurise": float("nan"), "adam": [], "lbfgs": []}
    t_memory = last = None
    for t, line in arrivals:
        if line.startswith("memory:"):
            t_memory = t
            out["estimate"] = float(re.search(r"estimated peak ([\d.]+) GiB", line).group(1))
        elif line.startswith("featurised") and t_memory is not None:
            out["featurise"] = t - t_memory
        elif "quadratic term fitted" in line and "[all data]" in line or line.startswith("[all data] quadratic"):
            last = t
        body = line.split("] ", 1)[1] if line.startswith("[all data]") else None
        if body is not None and (m := EPOCH.match(body)):
            if last is not None:
                out[m.group(2)].append(t - last)
            last = t
    out["adam"] = float(np.mean(out["adam"])) if out["adam"] else float("nan")
    out["lbfgs"] = float(np.mean(out["lbfgs"])) if out["lbfgs"] else float("nan")
    return out


def million_atoms(fraction: float, chunks: int = 4, target: int = 1_000_000) -> dict:
    """Streamed mode on ~10⁶ atoms of rattled water copies: the estimate for
    all of them, and measured memory and time on `fraction` of them."""
    frames = read_structures(WATER)
    rng = np.random.default_rng(0)
    copies = []
    while sum(len(a) for a in copies) < target:
        a = frames[len(copies) % len(frames)].copy()
        a.positions += rng.normal(scale=0.02, size=a.positions.shape)
        a.calc = frames[len(copies) % len(frames)].calc
        copies.append(a)
    n_atoms = sum(len(a) for a in copies)
    config = TrainConfig(derivatives="streamed", threads=1)
    ds = descriptors_mod.resolve(config.descriptor, ("H", "O"), frames)
    plan = memory.plan(copies, ds, config)
    part = copies[: max(config.chunk_size * chunks, int(len(copies) * fraction))]
    before = pss_bytes(os.getpid())
    sampler = PeakSampler(os.getpid())
    t = time.perf_counter()
    data = featurize(part, ds, config, streamed=True)
    t_feat = time.perf_counter() - t
    featurised = pss_bytes(os.getpid())
    model = build_model(data, ds, config, np.arange(len(data)))
    idx = np.arange(chunks * config.chunk_size)
    objective = Objective(data, idx, config, torch.device("cpu"))
    t = time.perf_counter()
    objective.full_batch(model)
    t_chunks = time.perf_counter() - t
    peak = sampler.stop()
    scale = len(copies) / len(part)
    per_structure = t_chunks / len(idx)
    return dict(atoms=n_atoms, structures=len(copies), estimate=plan.streamed.total, measured_atoms=sum(len(a) for a in part),
                featurise_part=t_feat, featurise_all=t_feat * scale,
                data_part=featurised - before, data_all=(featurised - before) * scale,
                peak_part=peak, peak_all=peak + (featurised - before) * (scale - 1),
                lbfgs_evaluation=per_structure * len(copies), adam_epoch=per_structure * len(copies))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--water-epochs", type=int, default=2)
    p.add_argument("--skip-si", action="store_true")
    p.add_argument("--skip-water", action="store_true")
    p.add_argument("--skip-million", action="store_true")
    p.add_argument("--million-fraction", type=float, default=0.125)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    torch.set_num_threads(1)
    results: dict = {}
    sets = [("Si", SI, args.epochs, args.skip_si), ("water", WATER, args.water_epochs, args.skip_water)]
    print(f"{'data':6s} {'mode':9s} {'estimate':>9s} {'peak PSS':>9s} {'featurise':>10s} {'Adam epoch':>11s} "
          f"{'L-BFGS epoch':>13s} {'wall':>7s}")
    for name, path, epochs, skip in sets:
        if skip or not path.exists():
            continue
        for mode in ("stored", "streamed"):
            with tempfile.TemporaryDirectory() as tmp:
                r = run_cli(path, mode, epochs, Path(tmp))
            results[f"{name}/{mode}"] = r
            print(f"{name:6s} {mode:9s} {r['estimate']:7.2f} G {r['peak'] / GIB:7.2f} G {r['featurise']:9.1f}s "
                  f"{r['adam']:10.1f}s {r['lbfgs']:12.1f}s {r['wall']:6.0f}s", flush=True)
    if not args.skip_million and WATER.exists():
        m = million_atoms(args.million_fraction)
        results["million"] = m
        print(f"\nsynthetic water, {m['atoms']} atoms ({m['structures']} frames), streamed; measured on "
              f"{m['measured_atoms']} atoms, extrapolated linearly to all:")
        print(f"  estimate {m['estimate'] / GIB:.2f} GiB; peak PSS {m['peak_part'] / GIB:.2f} GiB measured, "
              f"{m['peak_all'] / GIB:.2f} GiB extrapolated (featurised data {m['data_all'] / GIB:.2f} GiB)")
        print(f"  featurise {m['featurise_part']:.0f} s measured, {m['featurise_all']:.0f} s extrapolated; "
              f"one full-batch evaluation (L-BFGS epoch: 1-3 of them, plus validation) "
              f"{m['lbfgs_evaluation']:.0f} s extrapolated from 4 chunks of 32 structures")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
