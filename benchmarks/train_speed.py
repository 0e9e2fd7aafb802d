"""Training speed: train the default model on the bundled Si data and print
wall time, peak memory and the final validation errors.

    python benchmarks/train_speed.py [--data FILE] [--keep DIR] [-- extra nnp.train args]

It runs `python -m nnp.train` exactly as a user would (default settings) in a
fresh process. Peak memory: the largest maximum resident set size of one
process, and the peak of the summed proportional set size (PSS: pages shared
after fork() counted once) of the process and its children, sampled every
0.2 s: with refit, the holdout twin trains in a forked second process.
With the metrics, "train" is the written model on its training structures and
"validation" the holdout model's errors on the structures it left out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT / "examples/si/data/train.xyz"))
    p.add_argument("--keep", metavar="DIR", help="keep the potential and the report in DIR (must not exist)")
    p.add_argument("extra", nargs="*", help="more python -m nnp.train arguments (after --)")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(args.keep) if args.keep else Path(tmp)
        if args.keep:
            out_dir.mkdir(parents=True, exist_ok=False)
        potential, report = out_dir / "Si.nnp", out_dir / "report"
        cmd = [sys.executable, "-m", "nnp.train", "--data", args.data, "--output", str(potential),
               "--report", str(report), *args.extra]
        print("$ " + " ".join(cmd), flush=True)
        t0 = time.perf_counter()
        with tempfile.TemporaryFile("w+") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
            peak_total = 0
            while proc.poll() is None:
                peak_total = max(peak_total, _tree_pss_kib(proc.pid))
                time.sleep(0.2)
            wall = time.perf_counter() - t0
            log.seek(0)
            sys.stdout.write(log.read())
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # kB on Linux
        if proc.returncode != 0:
            print(f"training failed (exit {proc.returncode})")
            return 1
        metrics = json.loads((report / "metrics.json").read_text())

    print()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; torch threads as configured")
    print(f"wall time           {wall / 60:.2f} min ({wall:.0f} s)")
    print(f"peak memory (RSS)   {peak_mib:.0f} MiB in the largest process, {peak_total / 1024:.0f} MiB in all together (PSS)")
    for name in ("train", "validation"):
        m = metrics.get("sets", metrics).get(name, {}).get("overall") if isinstance(metrics, dict) else None
        if not m:
            continue
        print(f"{name:10s} energy MAE {m['energy_mae_meV_atom']:.2f} RMSE {m['energy_rmse_meV_atom']:.2f} meV/atom | "
              f"force MAE {m['force_mae_eV_A']:.4f} RMSE {m['force_rmse_eV_A']:.4f} eV/Å | "
              f"stress MAE {_num(m.get('stress_mae_GPa'))} RMSE {_num(m.get('stress_rmse_GPa'))} GPa")
    return 0


def _tree_pss_kib(pid: int) -> int:
    """Proportional set size of `pid` and its descendants now (Linux /proc; 0 elsewhere)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            rollup = Path(f"/proc/{p}/smaps_rollup").read_text()
            total += next((int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")), 0)
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue  # ended meanwhile, or no /proc
    return total


def _num(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


if __name__ == "__main__":
    sys.exit(main())
