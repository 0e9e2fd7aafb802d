"""How good is the potential an `nnp learn` run ended with? (docs/active-learning.md)

    python benchmarks/learn_si.py RUN_DIR [--generation G] [--md-steps 10000] [--json out.json]

For generation G (default: the newest trained) of the run in RUN_DIR:

* errors of its committee mean on the bundled Si data (examples/si/data/
  train.xyz, VASP PBE; the run never saw it, so it is a test set here):
  forces, and energies after removing the mean per-atom offset (the DFT
  settings differ, so only energy differences compare), per config_type;
* a0, C11, C12, C44 and B of diamond from its first member (LAMMPS, 0 K);
* stability: 64-atom LAMMPS MD with the committee (liquid at 2000 K,
  melt-quench 2000 K -> 300 K), whether it runs to the end, the shortest
  distance seen and the fraction of frames above the run's trust_hi.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import ase.io
import numpy as np

from nnp.analysis import properties
from nnp.calculator import NNPCalculator
from nnp.learn import explore, loop
from nnp.learn.config import RunSpec

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "examples" / "si" / "data" / "train.xyz"


def test_errors(members: list[Path], data: Path) -> dict:
    calc = NNPCalculator([str(m) for m in members], committee="mean")
    per_type: dict[str, dict[str, list]] = defaultdict(lambda: {"de": [], "df": []})
    for atoms in ase.io.read(data, ":"):
        e_ref, f_ref = atoms.get_potential_energy() / len(atoms), atoms.get_forces()
        a = atoms.copy()
        a.calc = calc
        rows = per_type[atoms.info.get("config_type", "all")]
        rows["de"].append(a.get_potential_energy() / len(a) - e_ref)
        rows["df"].append((a.get_forces() - f_ref).ravel())
    offset = float(np.mean(np.concatenate([r["de"] for r in per_type.values()])))
    out = {"energy_offset_eV_per_atom": offset}
    for name, r in sorted(per_type.items()):
        de, df = np.array(r["de"]) - offset, np.concatenate(r["df"])
        out[name] = {"frames": len(de), "energy_rmse_meV_per_atom": 1000 * float(np.sqrt(np.mean(de**2))),
                     "force_rmse_eV_per_A": float(np.sqrt(np.mean(df**2))),
                     "force_mae_eV_per_A": float(np.mean(np.abs(df)))}
    df_all = np.concatenate([np.concatenate(r["df"]) for r in per_type.values()])
    out["all"] = {"force_rmse_eV_per_A": float(np.sqrt(np.mean(df_all**2)))}
    return out


def crystal_properties(member: Path) -> dict:
    pair = properties.Pair.nnp(member)
    lattice = properties.relax_lattice(pair, a_guess=5.47)
    elastic = properties.elastic_constants(pair, lattice.a)
    return {"a0": lattice.a, **elastic.as_dict()}


def stability(members: list[Path], steps: int, trust_hi: float, workdir: Path) -> dict:
    out = {}
    runs = [("liquid-2000K", RunSpec(structure="liquid", repeat=(2, 2, 2), temperatures=(2000.0,), steps=steps,
                                     every=max(steps // 200, 1))),
            ("melt-quench", RunSpec(structure="amorphous", repeat=(2, 2, 2), temperatures=(2000.0,), t_end=300.0,
                                    steps=steps, every=max(steps // 200, 1)))]
    for name, spec in runs:
        r = explore.run_md(spec, name, 2000.0, 0.0, members, ["Si"], workdir / name, seed=7)
        dmin = min((float(np.min(f.get_all_distances(mic=True)[np.triu_indices(len(f), 1)])) for f in r.frames),
                   default=math.nan)
        devi = np.array([f.info["max_devi_f"] for f in r.frames])
        out[name] = {"steps": steps, "frames": len(r.frames), "finished": not r.error, "error": r.error[:200],
                     "shortest_distance_A": dmin, "fraction_above_trust_hi": float(np.mean(devi >= trust_hi)),
                     "median_max_devi_f": float(np.median(devi)) if len(devi) else math.nan}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("--generation", type=int)
    p.add_argument("--md-steps", type=int, default=10000)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    config = loop.load_config(args.run)
    state = loop.State.load(args.run)
    trained = [it["iteration"] for it in state["iterations"] if "validation" in it]
    g = args.generation if args.generation is not None else trained[-1]
    members = loop.members_of(args.run, g, config.committee)
    hi = state["iterations"][g]["trust_hi"]
    result = {"run": str(args.run), "generation": g, "data_frames": state["iterations"][g]["data_frames"]}
    result["test_on_bundled_si"] = test_errors(members, DATA)
    result["crystal"] = crystal_properties(members[0])
    with tempfile.TemporaryDirectory() as tmp:
        result["stability"] = stability(members, args.md_steps, hi, Path(tmp))
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
