"""Memory of `pair_style nnp` in LAMMPS from 1,000 to 100,000 atoms.

Diamond Si (n×n×n cubic cells, 8 n³ atoms) started at 300 K in NVE, 0.5 fs
steps, with a small potential (tests/data/tiny.nnp: 9 functions, r_c = 4.5 Å,
network 9-5-5-1; hand-made, not fitted, so only short runs stay physical),
neighbour lists rebuilt every 2 steps. Each size runs in a fresh process,
which reports

* LAMMPS's own accounting ("Per MPI rank memory allocation", which includes
  pair_style nnp's memory_usage(): neighbour buffers, workspaces, ghost forces),
* the process resident set size (RSS, /proc/self/status) above the baseline of
  the same process before any atom exists, after `run 0`, after N steps and
  after 2N steps: memory must not grow with the number of steps,

and prints memory per atom for both, as a whole (total / atoms, which includes
a fixed overhead of a few MB) and at the margin (increase from the previous
size / added atoms): flat per-atom memory means a constant marginal value.

    python benchmarks/memory_scaling.py [--cells 5 8 11 16 23] [--potential FILE]
                                        [--budget 200000] [--min-steps 10] [--max-steps 40]

N = budget / atoms steps, clamped to [min-steps, max-steps] (default: 40 steps
at 1,000 atoms, 10 at 97,336), so the whole table takes a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024.0
    return fields["VmRSS"], fields["VmHWM"]


def lammps_mb(log: Path) -> float:
    """The last 'Per MPI rank memory allocation (min/avg/max) = a | b | c Mbytes' (max)."""
    values = re.findall(r"Per MPI rank memory allocation \(min/avg/max\) = \S+ \| \S+ \| (\S+) Mbytes",
                        log.read_text())
    return float(values[-1])


def one(cells: int, steps: int, potential: str) -> dict:
    import nnp.lammps

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "log.lammps"
        lmp = nnp.lammps.lammps(cmdargs=["-log", str(log), "-screen", "none", "-nocite"])
        lmp.commands_string(
            f"""
            units metal
            atom_style atomic
            lattice diamond 5.43
            region box block 0 {cells} 0 {cells} 0 {cells}
            create_box 1 box
            mass 1 28.0855
            pair_style nnp
            pair_coeff * * {potential} Si
            """
        )
        base, _ = rss_mb()
        lmp.commands_string(
            """
            create_atoms 1 box
            velocity all create 300.0 4928459 mom yes rot no dist gaussian
            fix nve all nve
            timestep 0.0005
            neighbor 1.0 bin
            neigh_modify every 2 delay 0 check no
            thermo_style custom step temp pe etotal
            thermo 0
            run 0
            """
        )
        natoms = lmp.get_natoms()
        setup, _ = rss_mb()
        mem_lammps = lammps_mb(log)
        t0 = time.perf_counter()
        lmp.command(f"run {steps}")
        after_n, _ = rss_mb()
        lmp.command(f"run {steps}")
        seconds = time.perf_counter() - t0
        after_2n, peak = rss_mb()
        mem_lammps_2n = lammps_mb(log)
        lmp.close()
    return {
        "atoms": natoms, "steps": steps, "lammps_mb": mem_lammps, "lammps_mb_2n": mem_lammps_2n,
        "base": base, "setup": setup, "after_n": after_n, "after_2n": after_2n, "peak": peak,
        "us_per_atom_step": 1e6 * seconds / (2 * steps * natoms),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cells", type=int, nargs="+", default=[5, 8, 11, 16, 23],
                   help="cubic cells per side (8 n^3 atoms; default 1,000 ... 97,336 atoms)")
    p.add_argument("--potential", default=str(REPO / "tests" / "data" / "tiny.nnp"))
    p.add_argument("--budget", type=int, default=200_000, help="atom-steps per run of N steps")
    p.add_argument("--min-steps", type=int, default=10)
    p.add_argument("--max-steps", type=int, default=40)
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child: one size
    p.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.one is not None:
        print(json.dumps(one(args.one, args.steps, args.potential)))
        return 0

    print(f"pair_style nnp memory, potential {args.potential}, 1 MPI rank")
    print("RSS: resident memory above the process baseline before atoms exist\n")
    header = (f"{'atoms':>8} {'steps N':>8} {'LAMMPS MB':>10} {'kB/atom':>8} {'marginal':>9} "
              f"{'RSS MB':>8} {'kB/atom':>8} {'marginal':>9} {'RSS(N) MB':>10} {'RSS(2N) MB':>11} "
              f"{'growth MB':>10} {'us/atom/step':>13}")
    print(header)
    print("-" * len(header))
    previous = None
    for cells in args.cells:
        natoms = 8 * cells**3
        steps = min(args.max_steps, max(args.min_steps, args.budget // natoms))
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(cells), "--steps", str(steps), "--potential", args.potential],
            capture_output=True, text=True, env=dict(os.environ),
        )
        if out.returncode != 0:
            print(f"{natoms:>8}  failed:\n{out.stdout}{out.stderr}")
            return 1
        r = json.loads(out.stdout.strip().splitlines()[-1])
        n = r["atoms"]
        used = r["setup"] - r["base"]
        if previous:
            dn = n - previous["atoms"]
            marginal_lammps = f"{1024 * (r['lammps_mb'] - previous['lammps_mb']) / dn:>9.3f}"
            marginal_rss = f"{1024 * (used - previous['setup'] + previous['base']) / dn:>9.3f}"
        else:
            marginal_lammps = marginal_rss = f"{'-':>9}"
        print(f"{n:>8} {r['steps']:>8} {r['lammps_mb']:>10.2f} {1024 * r['lammps_mb'] / n:>8.3f} {marginal_lammps} "
              f"{used:>8.1f} {1024 * used / n:>8.3f} {marginal_rss} {r['after_n'] - r['base']:>10.1f} "
              f"{r['after_2n'] - r['base']:>11.1f} {r['after_2n'] - r['after_n']:>10.2f} "
              f"{r['us_per_atom_step']:>13.1f}", flush=True)
        previous = r
    return 0


if __name__ == "__main__":
    sys.exit(main())
