"""One generation: a committee (or one GP) trained on the data so far, and its errors.

Each member is its own `python -m nnp.train` process (seed s + k, the same
validation split for all: split_seed fixed, refit off, so every member's
validation frames are unseen by every member), written as `Si.k.nnp` with
its log beside it. A member whose file exists is finished; one with a
checkpoint is resumed (`--resume`), so a kill costs at most the training
since the last checkpoint. nnp.train has no warm start from another
model, so each generation trains from scratch. With `uncertainty: gp` the
generation is one file, `NAME.gp.nnp`, fitted by `nnp.train --model gp`
in closed form (nothing to resume: a killed fit is redone).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import ase.io
import numpy as np
import yaml

from nnp.calculator import NNPCalculator
from nnp.data.frames import split

VALIDATION_FRACTION = 0.1
SPLIT_SEED = 12345


def train_config(settings: dict, epochs: int) -> dict:
    return {**settings, "epochs": epochs, "refit": False, "validation_fraction": VALIDATION_FRACTION,
            "split_seed": SPLIT_SEED}


def train_committee(data: Path, directory: Path, k: int, epochs: int, settings: dict, seed: int,
                    name: str, log) -> list[Path]:
    """The k member files of one generation (trained or resumed as needed)."""
    # nnp.train pulls in torch: imported here, so that `nnp learn status` does not.
    from nnp.train.outputs import member_outputs
    from nnp.train.refit import checkpoint_paths

    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "train.yaml"
    config.write_text(yaml.safe_dump(train_config(settings, epochs), sort_keys=True))
    members = member_outputs(directory / f"{name}.nnp", k)
    for m, out in enumerate(members):
        if out.exists() and not any(p.exists() for p in checkpoint_paths(out)):
            continue
        resume = any(p.exists() for p in checkpoint_paths(out))
        log(f"  training member {m + 1}/{k} ({'resumed' if resume else f'seed {seed + m}'}) -> {out.name}")
        chosen = _descriptor_chosen(members[0]) if m > 0 and settings.get("descriptor", "auto") == "auto" else None
        extra = ["--descriptor", chosen] if chosen else []
        _train_one(data, config, out, [*extra, "--seed", str(seed + m), "--resume" if resume else "--force"])
    return members


def _descriptor_chosen(first: Path) -> str | None:
    """The preset `descriptor: auto` chose for the generation's first member
    (its file's config line), so that the others, on the same data and
    split, take it rather than choose again (~10 minutes each on the water
    set); None where that file is missing or records none: then each member
    chooses, with the same result."""
    from nnp.io import potential_file
    from nnp.train.outputs import CONFIG_PREFIX

    try:
        comments = potential_file.read(first).comments
    except (OSError, ValueError):
        return None
    for line in comments:
        if line.startswith(CONFIG_PREFIX):
            try:
                name = json.loads(line[len(CONFIG_PREFIX):]).get("descriptor")
            except (ValueError, AttributeError):
                return None
            return name if isinstance(name, str) and name != "auto" else None
    return None


def gp_output(directory: Path, name: str) -> Path:
    return directory / f"{name}.gp.nnp"


def train_gp(data: Path, directory: Path, settings: dict, seed: int, name: str, log) -> list[Path]:
    """The one GP file of a generation (`uncertainty: gp`), fitted unless it exists."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "train.yaml"
    # epochs is a network setting; the GP fit ignores it.
    config.write_text(yaml.safe_dump(train_config(settings, 1), sort_keys=True))
    out = gp_output(directory, name)
    if not out.exists():
        log(f"  fitting a GP (nnp train --model gp) -> {out.name}")
        _train_one(data, config, out, ["--model", "gp", "--seed", str(seed), "--force"])
    return [out]


def _train_one(data: Path, config: Path, out: Path, args: list[str]) -> None:
    """One `python -m nnp.train` process, its output appended to OUT.log."""
    cmd = [sys.executable, "-m", "nnp.train", "--data", str(data), "-o", str(out), "--config", str(config), *args]
    with open(out.with_suffix(".log"), "a") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = out.with_suffix(".log").read_text(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"training {out} failed (exit {proc.returncode}): {' | '.join(tail)}; "
                           f"see {out.with_suffix('.log')}")


def validation_indices(n_frames: int) -> np.ndarray:
    """The frames every member left out (nnp.train's split of a file without isolated atoms)."""
    return split(n_frames, VALIDATION_FRACTION, SPLIT_SEED)[1]


def committee_errors(members: list[Path], frames, key: str = "max_devi_f") -> dict:
    """RMSE of the committee mean's energy (meV/atom) and forces (eV/Å)
    against the labels of `frames`, and each frame's uncertainty `key`:
    max_devi_f of a committee, or max_gp_std (eV), the largest per-atom GP
    std of one GP file."""
    if not frames:
        return {"frames": 0, "energy_rmse_meV_per_atom": math.nan, "force_rmse_eV_per_A": math.nan, key: []}
    if key == "max_gp_std":
        calc = NNPCalculator(str(members[0]), gp_std=True)
    else:
        calc = NNPCalculator([str(m) for m in members], committee="mean")
    de, df, devi = [], [], []
    for atoms in frames:
        e_ref, f_ref = atoms.get_potential_energy(), atoms.get_forces()
        a = atoms.copy()
        a.calc = calc
        e = a.get_potential_energy()
        df.append((a.get_forces() - f_ref).ravel())
        de.append((e - e_ref) / len(a))
        devi.append(float(np.max(calc.results["gp_energy_std"]) if key == "max_gp_std" else
                          calc.results["max_devi_f"]))
    return {"frames": len(frames), "energy_rmse_meV_per_atom": 1000 * float(np.sqrt(np.mean(np.square(de)))),
            "force_rmse_eV_per_A": float(np.sqrt(np.mean(np.square(np.concatenate(df))))), key: devi}


def validation_errors(members: list[Path], data: Path, key: str = "max_devi_f") -> dict:
    frames = ase.io.read(data, ":", format="extxyz")
    return committee_errors(members, [frames[i] for i in validation_indices(len(frames))], key)
