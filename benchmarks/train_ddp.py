"""Time per epoch of data-parallel training (nnp.train.distributed) for 1
and 2 ranks (or any counts), side by side, on the same data and settings.

Each count runs the real command line: one process (`python -m nnp.train`)
or torchrun (`python -m torch.distributed.run --standalone --nproc_per_node
N -m nnp.train`), every rank with one thread (torchrun's OMP_NUM_THREADS=1,
set for the single process too), logging every epoch. Epoch times are the
gaps between the arrival times of consecutive epoch lines (each includes
the logged evaluation of the training set, also sharded); the script prints
the median Adam and L-BFGS epoch per count, the featurisation and quadratic
fit times (from the run's own lines), the wall time, and whether the
potential files agree (the numbers of every non-comment line to 1e-10).

    python benchmarks/train_ddp.py [--data examples/si/data/train.xyz] [--ranks 1 2]
        [--epochs 8] [--lbfgs-fraction 0.5] [--config extra.yaml]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
EPOCH = re.compile(r"epoch\s+(\d+)/\d+\s+(Adam|LBFGS)")


def run(ranks: int, data: Path, config: Path, out: Path) -> dict:
    """One training run; its epoch lines' arrival times and its summary."""
    target = ["-m", "nnp.train", "--data", str(data), "-o", str(out), "--config", str(config), "--force"]
    if ranks == 1:
        cmd = [sys.executable, *target]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks), *target]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "python"), os.environ.get("PYTHONPATH", "")])}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1)
    arrivals: list[tuple[int, str, float]] = []
    lines = []
    for line in proc.stdout:
        now = time.perf_counter() - t0
        lines.append(line.rstrip())
        m = EPOCH.search(line)
        if m and "[holdout]" not in line:
            arrivals.append((int(m.group(1)), m.group(2), now))
    if proc.wait() != 0:
        raise SystemExit(f"{ranks} rank(s) failed:\n" + "\n".join(lines[-30:]))
    times = {"Adam": [], "LBFGS": []}
    for (e0, _, t_a), (e1, kind, t_b) in zip(arrivals, arrivals[1:]):
        if e1 == e0 + 1:
            times[kind].append(t_b - t_a)
    text = "\n".join(lines)
    featurised = re.search(r"featurised in ([^ ]+)", text)
    fitted = re.search(r"quadratic term fitted in ([^;]+);", text)
    return dict(adam=statistics.median(times["Adam"]) if times["Adam"] else float("nan"),
                lbfgs=statistics.median(times["LBFGS"]) if times["LBFGS"] else float("nan"),
                n_adam=len(times["Adam"]), n_lbfgs=len(times["LBFGS"]),
                featurised=featurised.group(1) if featurised else "?", fitted=fitted.group(1) if fitted else "?",
                wall=time.perf_counter() - t0)


def numbers(path: Path) -> list[np.ndarray]:
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            continue
        try:
            out.append(np.array([float(w) for w in line.split()[1:] if w]))
        except ValueError:
            continue
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT / "examples/si/data/train.xyz"))
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--lbfgs-fraction", type=float, default=0.5)
    p.add_argument("--config", help="YAML of further TrainConfig settings")
    args = p.parse_args()
    settings = dict(epochs=args.epochs, lbfgs_fraction=args.lbfgs_fraction, refit=False, log_every=1,
                    checkpoint_every=3600.0, threads=1)
    if args.config:
        settings.update(yaml.safe_load(Path(args.config).read_text()))
    with open("/proc/loadavg") as f:
        print(f"load average before: {f.read().split()[:3]} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "cfg.yaml"
        config.write_text(yaml.safe_dump(settings))
        results = {}
        for n in args.ranks:
            results[n] = run(n, Path(args.data), config, Path(tmp) / f"r{n}.nnp")
            r = results[n]
            print(f"{n} rank(s): Adam epoch {r['adam']:.2f} s (median of {r['n_adam']}), L-BFGS epoch "
                  f"{r['lbfgs']:.2f} s (median of {r['n_lbfgs']}), featurised in {r['featurised']}, quadratic "
                  f"fit {r['fitted']}, wall {r['wall']:.0f} s", flush=True)
        first = numbers(Path(tmp) / f"r{args.ranks[0]}.nnp")
        for n in args.ranks[1:]:
            other = numbers(Path(tmp) / f"r{n}.nnp")
            worst = max((float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-300))) for a, b in zip(first, other)
                         if len(a) and len(a) == len(b)), default=0.0)
            print(f"{n} ranks vs {args.ranks[0]}: largest relative difference of a number in the potential file "
                  f"{worst:.1e}")
    with open("/proc/loadavg") as f:
        print(f"load average after: {f.read().split()[:3]}")


if __name__ == "__main__":
    main()
