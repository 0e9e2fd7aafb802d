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
rattled) trained the same way with streamed derivatives (see million_atoms).
Epoch times are given as wall time and as CPU time of the training process
(the machine is shared: CPU time is the steadier figure).

With --kernel-threads N ..., it only times streamed epochs on evenly spaced
water frames (--thread-frames) with each count of `kernel_threads` in turn
(one training: refit off, C64, no quadratic term), --thread-repeats times.

    python benchmarks/train_memory.py [--epochs 4] [--water-epochs 2] [--million-epochs 1]
        [--modes stored streamed auto] [--skip-si] [--skip-water] [--skip-million]
    python benchmarks/train_memory.py --kernel-threads 1 2 [--thread-frames 48] [--thread-repeats 2]
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

import ase.io
import numpy as np
import torch
import yaml

from nnp.data import read_structures
from nnp.descriptors import resolve

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


EPOCH = re.compile(r"^epoch\s+(\d+)/\d+ (adam|lbfgs)", re.IGNORECASE)
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` itself (not its children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return float("nan")


def run_cli(data: Path, mode: str, epochs: int, workdir: Path, **values) -> dict:
    """One `python -m nnp.train` run (default settings but for `values`);
    its estimate, peak PSS and timings."""
    config = workdir / f"{mode}.yaml"
    config.write_text(yaml.safe_dump({"epochs": epochs, "lbfgs_fraction": 0.5, "log_every": 1,
                                      "derivatives": mode, **values}))
    cmd = [sys.executable, "-m", "nnp.train", "--data", str(data), "--output", str(workdir / f"{mode}.nnp"),
           "--config", str(config), "--force"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    sampler = PeakSampler(proc.pid)
    arrivals: list[tuple[float, float, str]] = []
    for line in proc.stdout:
        arrivals.append((time.perf_counter() - t0, cpu_seconds(proc.pid), line.rstrip()))
    proc.wait()
    peak = sampler.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n" + "\n".join(l for _, _, l in arrivals[-20:]))
    return dict(peak=peak, wall=time.perf_counter() - t0, **_timings(arrivals))


def _timings(arrivals: list[tuple[float, float, str]]) -> dict:
    """Estimate, featurisation time and mean epoch times (wall and the
    written model's process CPU) from the timed log lines."""
    out: dict = {"estimate": float("nan"), "featurise": float("nan")}
    times: dict = {"adam": [], "lbfgs": [], "adam_cpu": [], "lbfgs_cpu": []}
    t_memory = last = None
    for t, cpu, line in arrivals:
        if line.startswith("[holdout]"):
            continue
        body = line.split("] ", 1)[1] if line.startswith("[all data]") else line
        if body.startswith("memory:"):
            t_memory = t
            out["estimate"] = float(re.search(r"estimated peak ([\d.]+) GiB", body).group(1))
            out["chosen"] = body.split()[2].rstrip(",")  # "memory: derivatives streamed, ..."
        elif body.startswith("featurised") and t_memory is not None:
            out["featurise"] = t - t_memory
        elif body.startswith("network:") or "quadratic term fitted" in body or body.startswith("quadratic"):
            last = (t, cpu)
        elif (m := EPOCH.match(body)) and last is not None:
            kind = m.group(2).lower()
            times[kind].append(t - last[0])
            times[kind + "_cpu"].append(cpu - last[1])
            last = (t, cpu)
    out.update({k: float(np.mean(v)) if v else float("nan") for k, v in times.items()})
    return out


def kernel_times(path: Path, frames: int = 8, repeat: int = 3) -> dict:
    """CPU ms per structure (best of `repeat`, one thread) of what one
    training evaluation needs from the core per structure, on the first
    `frames` structures: descriptor values, values with the stored Jacobian
    (what stored featurisation and the former streamed mode paid), and the
    force pass and Jacobian-vector product that streamed training runs."""
    structures = read_structures(path)[:frames]
    elements = tuple(sorted({e for a in structures for e in a.get_chemical_symbols()}))
    ds = resolve("C64", elements, structures)
    core = ds.core()

    def best(work) -> float:
        times = []
        for _ in range(repeat):
            t = time.process_time()
            for a in structures:
                work(a)
            times.append(time.process_time() - t)
        return 1e3 * min(times) / len(structures)

    def arrays(a):
        feats, kind = ds.featurize(a, derivatives=True), ds.element_indices(a.get_chemical_symbols())
        rng = np.random.default_rng(0)
        out = []
        for k, e in enumerate(ds.elements):
            f = feats[e]
            center = np.asarray(f["pair_center"], dtype=np.int64)
            R = len(f["atoms"])
            out.append((k, rng.normal(size=(R, ds.size(e))), center, np.asarray(f["pair_vector"]).reshape(-1, 3),
                        kind[np.asarray(f["pair_neighbor"])], rng.normal(size=(len(center), 3)), R))
        return out

    prepared = {id(a): arrays(a) for a in structures}
    return dict(
        values=best(lambda a: ds.featurize(a, derivatives=False)),
        jacobian=best(lambda a: ds.featurize(a, derivatives=True)),
        force_pass=best(lambda a: [core.contract_pairs(k, g, c, v, n) for k, g, c, v, n, _, _ in prepared[id(a)]]),
        jvp=best(lambda a: [core.contract_pairs_adjoint(k, u, c, v, n, R) for k, _, c, v, n, u, R in prepared[id(a)]]),
        atoms=float(np.mean([len(a) for a in structures])))


def synthetic_water(path: Path, target: int = 1_000_000) -> None:
    """The water frames replicated until `target` atoms, each copy rattled
    (0.02 Å) and labelled as its original frame, written to `path` (extxyz)."""
    frames = read_structures(WATER)
    rng = np.random.default_rng(0)
    copies, n = [], 0
    while n < target:
        a = frames[len(copies) % len(frames)].copy()
        a.positions += rng.normal(scale=0.02, size=a.positions.shape)
        a.calc = frames[len(copies) % len(frames)].calc
        copies.append(a)
        n += len(a)
    ase.io.write(path, copies, format="extxyz")


def xyz_atoms(path: Path) -> int:
    """Atoms in an (ext)xyz file, from its frame headers."""
    total = 0
    with open(path) as f:
        for line in f:
            n = int(line)
            total += n
            for _ in range(n + 1):
                next(f)
    return total


def million_atoms(workdir: Path, epochs: int, path: Path | None = None) -> dict:
    """Streamed training on ~10⁶ atoms (synthetic_water, written to `path`
    unless it exists) by the command line with `derivatives: streamed`, no
    holdout twin and no quadratic term (its normal equations over 3·10⁶
    force rows would take the better part of an hour), Adam epochs (one
    pass over the data each; an L-BFGS epoch makes 1-3), two threads."""
    path = path or workdir / "million.xyz"
    if not path.exists():
        synthetic_water(path)
    r = run_cli(path, "streamed", epochs, workdir, lbfgs_fraction=0.0, refit=False, quadratic_weight=0.0, threads=2)
    return dict(atoms=xyz_atoms(path), **r)


def kernel_thread_scaling(counts: list[int], frames: int, repeats: int, workdir: Path) -> list[dict]:
    """Epoch times of one streamed training on `frames` evenly spaced water
    frames for each `kernel_threads` count, the counts in turn, `repeats`
    rounds (wall time: the CPU time of several threads adds up)."""
    structures = read_structures(WATER)
    subset = workdir / "water_subset.xyz"
    ase.io.write(subset, structures[:: max(1, len(structures) // frames)][:frames], format="extxyz")
    rows = []
    for repeat in range(repeats):
        for n in counts:
            with tempfile.TemporaryDirectory() as tmp:
                r = run_cli(subset, "streamed", 8, Path(tmp), refit=False, descriptor="C64", quadratic_weight=0.0,
                            threads=1, kernel_threads=n)
            rows.append(dict(kernel_threads=n, repeat=repeat, **r))
            print(f"kernel_threads {n}: Adam epoch {r['adam']:.2f} s, L-BFGS epoch {r['lbfgs']:.2f} s (wall, "
                  f"mean of 4 each, {frames} frames)", flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--water-epochs", type=int, default=2)
    p.add_argument("--million-epochs", type=int, default=1)
    p.add_argument("--modes", nargs="+", default=["stored", "streamed"], choices=["stored", "streamed", "auto"],
                   help="auto: the default command's choice (the row names the mode it chose)")
    p.add_argument("--skip-si", action="store_true")
    p.add_argument("--skip-water", action="store_true")
    p.add_argument("--skip-million", action="store_true")
    p.add_argument("--million-file", type=Path, help="where to write (or read) the synthetic set")
    p.add_argument("--million-only-write", action="store_true", help="write the synthetic set and stop")
    p.add_argument("--kernel-threads", type=int, nargs="+", help="only time streamed epochs with these counts")
    p.add_argument("--thread-frames", type=int, default=48)
    p.add_argument("--thread-repeats", type=int, default=2)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    if args.million_only_write:
        synthetic_water(args.million_file)
        return
    torch.set_num_threads(1)
    if args.kernel_threads:
        with tempfile.TemporaryDirectory() as tmp:
            rows = kernel_thread_scaling(args.kernel_threads, args.thread_frames, args.thread_repeats, Path(tmp))
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
        return
    results: dict = {}
    sets = [("Si", SI, args.epochs, args.skip_si), ("water", WATER, args.water_epochs, args.skip_water)]
    print(f"{'data':6s} {'mode':11s} {'estimate':>9s} {'peak PSS':>9s} {'featurise':>10s} {'Adam epoch':>17s} "
          f"{'L-BFGS epoch':>17s} {'wall':>7s}   (epochs: wall s / CPU s of the written model's process)")

    def row(name: str, mode: str, r: dict) -> None:
        mode = f"auto:{r.get('chosen', '?')[:6]}" if mode == "auto" else mode
        print(f"{name:6s} {mode:11s} {r['estimate']:7.2f} G {r['peak'] / GIB:7.2f} G {r['featurise']:9.1f}s "
              f"{r['adam']:8.1f} / {r['adam_cpu']:6.1f} {r['lbfgs']:8.1f} / {r['lbfgs_cpu']:6.1f} {r['wall']:6.0f}s",
              flush=True)

    for name, path, epochs, skip in sets:
        if skip or not path.exists():
            continue
        k = kernel_times(path)
        results[f"{name}/kernels"] = k
        print(f"{name:6s} C64 per structure ({k['atoms']:.0f} atoms), CPU ms: values {k['values']:.1f}, values and "
              f"Jacobian {k['jacobian']:.1f}; streamed: force pass {k['force_pass']:.1f} + J·u {k['jvp']:.1f}",
              flush=True)
        for mode in args.modes:
            with tempfile.TemporaryDirectory() as tmp:
                r = run_cli(path, mode, epochs, Path(tmp))
            results[f"{name}/{mode}"] = r
            row(name, mode, r)
    if not args.skip_million and WATER.exists():
        with tempfile.TemporaryDirectory() as tmp:
            m = million_atoms(Path(tmp), args.million_epochs, args.million_file)
        results["million"] = m
        row("1e6", "streamed", m)
        print(f"synthetic water: {m['atoms']} atoms; no holdout twin, no quadratic term, Adam epochs, 2 threads")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
