"""The loop and its state: seed, then per iteration train → explore →
select → label, until the stop rule holds or the iterations run out.

The run directory holds `config.yaml` (the settings, fixed for the run),
`data.xyz` (every labelled frame; appended and fsynced, never rewritten
after the seed), `state.json` (the stage to do next and each iteration's
numbers; written atomically after every stage) and `iter.NNN/` per
iteration. A killed run continues (`--continue`) at the stage the state
names; each stage is safe to redo: training resumes its members, exploration
skips finished runs, labelling skips frames already in data.xyz.
"""

from __future__ import annotations

import io
import json
import math
import time
from pathlib import Path
from typing import Callable

import ase.io
import numpy as np

from nnp.io import potential_file
from nnp.io.atomic import atomic_write_text
from nnp.learn import config as config_mod
from nnp.learn import explore as explore_mod
from nnp.learn import label as label_mod
from nnp.learn import select as select_mod
from nnp.learn import train as train_mod
from nnp.learn.config import LearnConfig

STATE_VERSION = 1
MODEL_NAME = "model"


class State(dict):
    """state.json: {"version", "stage", "iteration", "stop_reason", "seed", "iterations": [...]}."""

    @classmethod
    def load(cls, directory: Path) -> "State":
        path = directory / "state.json"
        if not path.exists():
            raise FileNotFoundError(f"{directory} has no state.json: not an nnp learn run directory")
        state = cls(json.loads(path.read_text()))
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"{path}: state version {state.get('version')}, this nnp reads {STATE_VERSION}")
        return state

    def save(self, directory: Path) -> None:
        atomic_write_text(directory / "state.json", json.dumps(self, indent=1, default=_json_default) + "\n")

    def current(self) -> dict:
        its = self["iterations"]
        while len(its) <= self["iteration"]:
            its.append({"iteration": len(its)})
        return its[self["iteration"]]


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to state.json")


def iteration_dir(directory: Path, i: int) -> Path:
    return directory / f"iter.{i:03d}"


def members_of(directory: Path, i: int, k: int) -> list[Path]:
    """The member files of generation i (nnp.train.outputs.member_outputs' names)."""
    return [iteration_dir(directory, i) / "train" / f"{MODEL_NAME}.{m}.nnp" for m in range(k)]


def models_of(directory: Path, i: int, config: LearnConfig) -> list[Path]:
    """Generation i's potential files: the committee's members, or the one GP."""
    if config.uncertainty == "gp":
        return [train_mod.gp_output(iteration_dir(directory, i) / "train", MODEL_NAME)]
    return members_of(directory, i, config.committee)


# ----------------------------------------------------------------------------
# Starting and continuing


def start(directory: Path, config: LearnConfig, overwrite: bool = False) -> None:
    """A new run directory: the config, the initial data, the state."""
    if (directory / "state.json").exists() and not overwrite:
        raise FileExistsError(f"{directory} holds a run: continue it with --continue, or start over with --force")
    if directory.exists() and overwrite:
        for name in ("state.json", "data.xyz", label_mod.FAILED_FILE):
            (directory / name).unlink(missing_ok=True)
        for old in directory.glob("iter.*"):
            _remove_tree(old)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_text(directory / "config.yaml", config_mod.yaml_text(config))
    frames = []
    for path in config.initial_data:
        for k, atoms in enumerate(ase.io.read(path, ":")):
            atoms.info["learn_id"] = f"initial-{Path(path).stem}-{k:04d}"
            atoms.info.setdefault("config_type", "initial")
            frames.append(atoms)
    buf = io.StringIO()
    if frames:
        ase.io.write(buf, frames, format="extxyz")
    atomic_write_text(directory / "data.xyz", buf.getvalue())
    State(version=STATE_VERSION, stage="seed", iteration=0, stop_reason="", seed={}, iterations=[],
          initial_frames=len(frames)).save(directory)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def load_config(directory: Path) -> LearnConfig:
    values, source = config_mod.read_yaml_mapping(directory / "config.yaml")
    return config_mod.from_mapping(values, source)


# ----------------------------------------------------------------------------
# The stages


def stage_seed(directory: Path, config: LearnConfig, state: State, log, compute) -> None:
    run0 = config.runs[0]
    if config.initial_rattled + config.initial_random:
        log(f"seed: labelling {config.initial_rattled} rattled crystal and {config.initial_random} random-packing "
            "frames with pw.x")
    frames = explore_mod.rattled_crystals(config.initial_rattled, config.seed_repeat, config.rattle_stdev,
                                          config.rattle_strain, run0.element, run0.lattice, config.seed)
    items = [(f"seed-{k:04d}", a, {"config_type": "seed-rattled"}) for k, a in enumerate(frames)]
    spec = config_mod.RunSpec(structure="liquid", repeat=config.seed_repeat, element=run0.element,
                              lattice=run0.lattice)
    rng = np.random.default_rng(config.seed + 1)
    items += [(f"seed-random-{k:04d}", explore_mod.random_packing(spec, rng), {"config_type": "seed-random"})
              for k in range(config.initial_random)]
    label_mod.label_frames(items, directory / "data.xyz", directory / "seed", config.dft, log, compute)
    state["seed"] = label_mod.tally(directory / "data.xyz", directory / "seed", [i for i, _, _ in items])
    if label_mod.repair(directory / "data.xyz") < 2:
        raise ValueError("the seed holds fewer than 2 labelled frames: nothing to train a committee on")
    state["stage"] = "train"


def _trust(config: LearnConfig, validation: dict) -> tuple[float, float]:
    """(lo, hi): as configured, or from the uncertainty on the validation frames."""
    lo, key, unit = config.trust_lo, config.uncertainty_key, config.trust_unit
    if lo == "auto":
        lo = max(validation[key]) if validation[key] else math.nan
        if not lo > 0:
            raise ValueError(f"trust.lo auto: no validation frame to set it from; give trust.lo in {unit}")
    hi = config.trust_hi if config.trust_hi != "auto" else config.trust_hi_factor * lo
    if not hi > lo:
        raise ValueError(f"trust window: hi {hi:g} is not above lo {lo:g} {unit}")
    return float(lo), float(hi)


def stage_train(directory: Path, config: LearnConfig, state: State, log) -> None:
    i = state["iteration"]
    it = state.current()
    data = directory / "data.xyz"
    n = label_mod.repair(data)
    key, unit, gp = config.uncertainty_key, config.trust_unit, config.uncertainty == "gp"
    log(f"iteration {i}: {'fitting a GP' if gp else f'training a committee of {config.committee}'} on {n} frames")
    t0 = time.perf_counter()
    if gp:
        members = train_mod.train_gp(data, iteration_dir(directory, i) / "train", config.train_settings,
                                     config.seed, MODEL_NAME, log)
    else:
        members = train_mod.train_committee(data, iteration_dir(directory, i) / "train", config.committee,
                                            config.epochs, config.train_settings, config.seed, MODEL_NAME, log)
    it["train_s"] = it.get("train_s", 0.0) + time.perf_counter() - t0
    validation = train_mod.validation_errors(members, data, key)
    it["data_frames"] = n
    it["validation"] = {k: v for k, v in validation.items() if k != key}
    it[f"validation_{key}"] = validation[key]
    it["trust_lo"], it["trust_hi"] = _trust(config, validation)
    log(f"  validation ({validation['frames']} frames, {'GP' if gp else 'committee mean'}): E "
        f"{validation['energy_rmse_meV_per_atom']:.2f} meV/atom, F {validation['force_rmse_eV_per_A']:.4f} eV/Å; "
        f"trust window [{it['trust_lo']:.3f}, {it['trust_hi']:.3f}) {unit}")
    state["stage"] = "explore"


def stage_explore(directory: Path, config: LearnConfig, state: State, log) -> None:
    i = state["iteration"]
    it = state.current()
    members = models_of(directory, i, config)
    key = config.uncertainty_key
    potential = potential_file.read(members[0])
    log(f"iteration {i}: exploring ({sum(len(r.names()) for r in config.runs)} LAMMPS runs)")
    t0 = time.perf_counter()
    results = explore_mod.explore(config.runs, members, potential.elements, iteration_dir(directory, i) / "explore",
                                  config.seed + 7919 * (i + 1), log, config.uncertainty)
    it["explore_s"] = time.perf_counter() - t0
    radii = select_mod.core_radii(potential)
    counts = {"explored": 0, "accurate": 0, "candidate": 0, "failed": 0, "nan": 0, "above_hi": 0, "core": 0}
    candidates, summary = [], []
    for r in results:
        for frame in r.frames:
            v = select_mod.classify(frame, it["trust_lo"], it["trust_hi"], radii, key)
            counts["explored"] += 1
            counts[v.kind] += 1
            if v.reason:
                counts[v.reason] += 1
            summary.append({"run": r.name, "step": frame.info["md_step"], key: frame.info[key],
                            "class": v.kind, "reason": v.reason})
            if v.kind == select_mod.CANDIDATE:
                frame.info["learn_candidate"] = len(candidates)
                candidates.append(frame)
    it.update(counts)
    it["runs_stopped"] = sum(1 for r in results if r.error)
    it["fraction_above_lo"] = (counts["candidate"] + counts["failed"]) / max(counts["explored"], 1)
    _write_frames(iteration_dir(directory, i) / "candidates.xyz", candidates)
    atomic_write_text(iteration_dir(directory, i) / "explored.json", json.dumps(summary, default=_json_default))
    log(f"  {counts['explored']} frames: {counts['accurate']} accurate, {counts['candidate']} candidates, "
        f"{counts['failed']} failed (NaN {counts['nan']}, above hi {counts['above_hi']}, in a core "
        f"{counts['core']}); {100 * it['fraction_above_lo']:.1f} % above trust_lo")
    # A run that LAMMPS stopped (atoms lost) blew up after few frames: never converged.
    if counts["explored"] and it["fraction_above_lo"] <= config.stop_fraction and not it["runs_stopped"]:
        state["stage"], state["stop_reason"] = "done", "converged"
        log(f"  converged: at most {100 * config.stop_fraction:g} % of explored frames above trust_lo, "
            "every MD run finished")
    elif not counts["explored"]:
        raise RuntimeError(f"iteration {i}: exploration produced no frame; see the LAMMPS logs in "
                           f"{iteration_dir(directory, i) / 'explore'}")
    else:
        state["stage"] = "select"


def _write_frames(path: Path, frames) -> None:
    buf = io.StringIO()
    if frames:
        ase.io.write(buf, frames, format="extxyz")
    atomic_write_text(path, buf.getvalue())


def _read_frames(path: Path) -> list:
    return ase.io.read(path, ":", format="extxyz") if path.stat().st_size else []


def stage_select(directory: Path, config: LearnConfig, state: State, log) -> None:
    i = state["iteration"]
    it = state.current()
    candidates = _read_frames(iteration_dir(directory, i) / "candidates.xyz")
    potential = potential_file.read(models_of(directory, i, config)[0])
    chosen = select_mod.select(candidates, config.frames, potential, config.uncertainty_key)
    atomic_write_text(iteration_dir(directory, i) / "selected.json", json.dumps(chosen) + "\n")
    it["selected"] = len(chosen)
    log(f"  selected {len(chosen)} of {len(candidates)} candidates (farthest point in descriptor space)")
    state["stage"] = "label"


def stage_label(directory: Path, config: LearnConfig, state: State, log, compute) -> None:
    i = state["iteration"]
    it = state.current()
    idir = iteration_dir(directory, i)
    candidates = _read_frames(idir / "candidates.xyz")
    chosen = json.loads((idir / "selected.json").read_text())
    items = []
    for c in chosen:
        frame = candidates[c]
        extra = {"config_type": f"learn-{frame.info['learn_run'].split('-')[0]}", "learn_iteration": i,
                 "learn_run": frame.info["learn_run"], "md_step": frame.info["md_step"],
                 config.uncertainty_key: frame.info[config.uncertainty_key]}
        items.append((f"i{i:03d}-c{c:05d}", frame, extra))
    log(f"iteration {i}: labelling {len(items)} frames with pw.x")
    label_mod.label_frames(items, directory / "data.xyz", idir / "label", config.dft, log, compute)
    ids = {learn_id for learn_id, _, _ in items}
    it.update(label_mod.tally(directory / "data.xyz", idir / "label", ids))
    # The generation's errors on the frames it chose: data it never saw.
    new = [a for a in ase.io.read(directory / "data.xyz", ":", format="extxyz") if a.info.get("learn_id") in ids]
    test = train_mod.committee_errors(models_of(directory, i, config), new, config.uncertainty_key)
    it["test"] = {k: v for k, v in test.items() if k != config.uncertainty_key}
    if i + 1 >= config.max_iterations:
        state["stage"], state["stop_reason"] = "done", "max_iterations"
    else:
        state["iteration"], state["stage"] = i + 1, "train"


def run(directory: Path, config: LearnConfig, log, compute: Callable | None = None,
        on_stage: Callable[[State], None] | None = None) -> State:
    """Do the stages the state names until the run is done; `compute` replaces
    the pw.x single point (tests); the report is rewritten after every stage."""
    from nnp.learn import report

    state = State.load(directory)
    while state["stage"] != "done":
        stage = state["stage"]
        if stage == "seed":
            stage_seed(directory, config, state, log, compute)
        elif stage == "train":
            stage_train(directory, config, state, log)
        elif stage == "explore":
            stage_explore(directory, config, state, log)
        elif stage == "select":
            stage_select(directory, config, state, log)
        elif stage == "label":
            stage_label(directory, config, state, log, compute)
        else:
            raise ValueError(f"{directory / 'state.json'}: unknown stage {stage!r}")
        state.save(directory)
        report.write(directory, state)
        if on_stage is not None:
            on_stage(state)
    return state


def reopen(directory: Path, state: State, max_iterations: int) -> None:
    """Continue a run stopped by its iteration limit up to `max_iterations`."""
    if state["stage"] == "done" and state["stop_reason"] == "max_iterations" and \
            state["iteration"] + 1 < max_iterations:
        state["iteration"] += 1
        state["stage"], state["stop_reason"] = "train", ""
        state.save(directory)
