"""The settings of an active-learning run (`nnp learn CONFIG`), read from YAML.

    initial: {data: [seed.xyz], rattled: 20}        # labelled frames to start from
    dft: {ecutwfc: 20, kpts: [2, 2, 2]}             # nnp.dft.QESettings fields
    train: {committee: 4, epochs: 400, settings: {hidden_nodes: 20}}
    exploration:
      runs:
        - {structure: crystal, repeat: [1, 1, 1], temperatures: [300, 900, 1500], steps: 2000}
        - {structure: liquid, temperatures: [2000], ensemble: npt, pressures: [0]}
        - {structure: amorphous, temperatures: [2000], t_end: 300, steps: 4000}
    trust: {lo: 0.15, hi: 0.6}                      # eV/Å, or lo: auto
    uncertainty: committee                          # or gp: one GP and its std (eV), docs/active-learning.md
    selection: {frames: 10}
    stop: {fraction: 0.05, max_iterations: 10}

Unknown keys are an error that names them. `quick_config()` is `--quick`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnp.dft import QESettings
from nnp.io.settings import read_yaml_mapping

STRUCTURES = ("crystal", "liquid", "amorphous", "vacancy", "surface")
ENSEMBLES = ("nvt", "npt")
UNCERTAINTIES = ("committee", "gp")
# The trust window's defaults per uncertainty: the committee's max force
# deviation (eV/Å), the GP's max per-atom std (eV; measured in
# docs/active-learning.md, "One GP instead of a committee").
TRUST_DEFAULTS = {"committee": (0.15, 0.6), "gp": (0.05, 0.5)}
# Keys of `train` that only a committee uses.
COMMITTEE_ONLY = ("committee", "epochs")


@dataclass(frozen=True)
class RunSpec:
    """One kind of exploration run; every (temperature, pressure) pair is a
    separate LAMMPS run of `steps` steps, a frame every `every` steps."""

    structure: str = "crystal"
    repeat: tuple[int, int, int] = (1, 1, 1)  # conventional 8-atom cubic cells
    lattice: float = 5.469  # Å (PBE diamond Si; liquid/amorphous starts use the same density)
    element: str = "Si"
    temperatures: tuple[float, ...] = (300.0,)  # K, one run each
    t_end: float | None = None  # K: ramp the thermostat from each temperature to t_end (melt-quench)
    ensemble: str = "nvt"
    pressures: tuple[float, ...] = (0.0,)  # bar, npt only
    steps: int = 1000
    timestep_fs: float = 1.0
    every: int = 20  # steps between frames (and deviation lines)
    vacuum: float = 8.0  # Å of vacuum above a surface slab

    def check(self, where: str) -> None:
        need(self.structure in STRUCTURES, f"{where}: structure must be one of {', '.join(STRUCTURES)}")
        need(self.ensemble in ENSEMBLES, f"{where}: ensemble must be nvt or npt")
        need(len(self.repeat) == 3 and min(self.repeat) >= 1, f"{where}: repeat must be three integers >= 1")
        need(self.lattice > 0 and self.vacuum >= 0, f"{where}: lattice must be > 0 and vacuum >= 0")
        need(len(self.temperatures) > 0 and min(self.temperatures) > 0, f"{where}: temperatures must be > 0 K")
        need(self.t_end is None or self.t_end > 0, f"{where}: t_end must be > 0 K")
        need(len(self.pressures) > 0, f"{where}: pressures must not be empty")
        need(self.steps >= 1 and self.every >= 1 and self.timestep_fs > 0,
             f"{where}: steps and every must be >= 1, timestep_fs > 0")
        need(self.every <= self.steps, f"{where}: every ({self.every}) must not exceed steps ({self.steps})")

    def names(self) -> list[tuple[str, float, float]]:
        """(run name, temperature, pressure) of every run of this kind."""
        pressures = self.pressures if self.ensemble == "npt" else (0.0,)
        out = []
        for t in self.temperatures:
            for p in pressures:
                name = f"{self.structure}-{t:g}K" + (f"-{self.t_end:g}K" if self.t_end else "")
                name += f"-{p:g}bar" if self.ensemble == "npt" else ""
                out.append((name, float(t), float(p)))
        return out


@dataclass(frozen=True)
class LearnConfig:
    initial_data: tuple[str, ...] = ()  # labelled extxyz files (same DFT settings as `dft`)
    initial_rattled: int = 0  # crystal frames (random strain and displacements) labelled with pw.x first
    # Random packings (liquid-like, atoms >= 2 Å apart) labelled with pw.x
    # first: without them, liquid MD from a crystal-only seed blows up before
    # it dumps a frame worth labelling.
    initial_random: int = 0
    rattle_stdev: float = 0.05  # Å
    rattle_strain: float = 0.03  # largest relative strain of a rattled cell
    seed_repeat: tuple[int, int, int] = (1, 1, 1)
    dft: QESettings = field(default_factory=QESettings)
    committee: int = 4  # members trained per generation (seeds seed..seed+K-1)
    epochs: int = 400
    train_settings: dict[str, Any] = field(default_factory=dict)  # more nnp.train TrainConfig keys
    runs: tuple[RunSpec, ...] = (RunSpec(),)
    # "committee": K networks and their max force deviation (eV/Å); "gp": one
    # sparse GP (nnp train --model gp) and the max over atoms of its std (eV).
    uncertainty: str = "committee"
    # None: TRUST_DEFAULTS of the uncertainty. "auto": lo from the validation
    # frames' largest uncertainty, hi = trust_hi_factor × lo.
    trust_lo: float | str | None = None
    trust_hi: float | str | None = None
    trust_hi_factor: float = 3.0
    frames: int = 10  # labelled per iteration at most
    stop_fraction: float = 0.05  # stop when at most this fraction of explored frames is above trust_lo
    max_iterations: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        defaults = TRUST_DEFAULTS.get(self.uncertainty, TRUST_DEFAULTS["committee"])
        for name, default in zip(("trust_lo", "trust_hi"), defaults):
            if getattr(self, name) is None:
                object.__setattr__(self, name, default)

    @property
    def uncertainty_key(self) -> str:
        """The frame's info key the trust window applies to."""
        return "max_gp_std" if self.uncertainty == "gp" else "max_devi_f"

    @property
    def trust_unit(self) -> str:
        return "eV" if self.uncertainty == "gp" else "eV/Å"

    def check(self) -> None:
        need(self.initial_data or self.initial_rattled + self.initial_random > 0,
             "initial: give labelled data (initial.data) and/or initial.rattled or initial.random > 0 frames to label")
        need(min(self.initial_random, self.initial_rattled) >= 0 and self.rattle_stdev >= 0
             and 0 <= self.rattle_strain < 0.5, "initial: rattled and random >= 0, rattle_stdev >= 0, "
             "0 <= rattle_strain < 0.5")
        need(self.uncertainty in UNCERTAINTIES, f"uncertainty must be one of {', '.join(UNCERTAINTIES)}, "
             f"got {self.uncertainty!r}")
        if self.uncertainty == "committee":
            need(self.committee >= 2, "train.committee must be >= 2 (the deviation needs two members)")
            gp_keys = sorted(k for k in self.train_settings if k.startswith("gp_"))
            need(not gp_keys, f"train.settings: {', '.join(gp_keys)} apply to uncertainty: gp only")
        need(self.epochs >= 1, "train.epochs must be >= 1")
        for key in ("seed", "epochs", "validation_fraction", "split_seed", "refit", "model"):
            need(key not in self.train_settings, f"train.settings: {key} is set by nnp learn (use train.epochs, "
                 "uncertainty)")
        need(len(self.runs) > 0, "exploration.runs must not be empty")
        for i, run in enumerate(self.runs):
            run.check(f"exploration.runs[{i}]")
        for name in ("trust_lo", "trust_hi"):
            v = getattr(self, name)
            need(v == "auto" or (isinstance(v, float) and v > 0 and math.isfinite(v)),
                 f"trust.{name.split('_')[1]} must be a number > 0 ({self.trust_unit}) or auto")
        if isinstance(self.trust_lo, float) and isinstance(self.trust_hi, float):
            need(self.trust_hi > self.trust_lo, "trust.hi must be above trust.lo")
        if self.uncertainty == "gp":
            self._check_gp_trust()
        need(self.trust_hi_factor > 1, "trust.hi_factor must be > 1")
        need(self.frames >= 1, "selection.frames must be >= 1")
        need(0 <= self.stop_fraction < 1, "stop.fraction must be in [0, 1)")
        need(self.max_iterations >= 1, "stop.max_iterations must be >= 1")

    def _check_gp_trust(self) -> None:
        """The GP's std never exceeds its prior scale gp_delta (eV): a bound
        at or above it is never reached, most likely a force value in eV/Å."""
        delta = self.train_settings.get("gp_delta", GP_DELTA_DEFAULT)
        if isinstance(delta, bool) or not isinstance(delta, (int, float)):
            return  # nnp train names the bad gp_delta
        for name in ("trust_lo", "trust_hi"):
            v = getattr(self, name)
            if v != "auto":
                need(v < delta, f"trust.{name.split('_')[1]} = {v:g} eV: with uncertainty: gp the "
                     f"trust window is in eV (the GP's std per atom), below gp_delta = {delta:g} eV, which the "
                     "std never exceeds (a force deviation in eV/Å is for uncertainty: committee)")

    def as_dict(self) -> dict[str, Any]:
        """The YAML mapping that reads back as this config."""
        d = dataclasses.asdict(self)
        q = d.pop("dft")
        q["kpts"] = "gamma" if q["kpts"] is None else list(q["kpts"])
        runs = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in r.items()} for r in d.pop("runs")]
        return {
            "initial": {"data": list(self.initial_data), "rattled": self.initial_rattled,
                        "random": self.initial_random,
                        "rattle_stdev": self.rattle_stdev, "rattle_strain": self.rattle_strain,
                        "repeat": list(self.seed_repeat)},
            "dft": q,
            "uncertainty": self.uncertainty,
            "train": ({"committee": self.committee, "epochs": self.epochs} if self.uncertainty == "committee"
                      else {}) | {"settings": dict(self.train_settings)},
            "exploration": {"runs": runs},
            "trust": {"lo": self.trust_lo, "hi": self.trust_hi, "hi_factor": self.trust_hi_factor},
            "selection": {"frames": self.frames},
            "stop": {"fraction": self.stop_fraction, "max_iterations": self.max_iterations},
            "seed": self.seed,
        }


GP_DELTA_DEFAULT = 1.0  # eV: nnp.train.config.TrainConfig.gp_delta (not imported: it pulls in torch)


def need(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(f"config: {message}")


SECTIONS = {
    "initial": {"data": "initial_data", "rattled": "initial_rattled", "random": "initial_random",
                "rattle_stdev": "rattle_stdev",
                "rattle_strain": "rattle_strain", "repeat": "seed_repeat"},
    "train": {"committee": "committee", "epochs": "epochs", "settings": "train_settings"},
    "trust": {"lo": "trust_lo", "hi": "trust_hi", "hi_factor": "trust_hi_factor"},
    "selection": {"frames": "frames"},
    "stop": {"fraction": "stop_fraction", "max_iterations": "max_iterations"},
}


def _section(values: dict, name: str, allowed, source: str) -> dict:
    section = values.get(name, {}) or {}
    if not isinstance(section, dict):
        raise ValueError(f"{source}: {name} must be a mapping")
    unknown = sorted(set(section) - set(allowed))
    if unknown:
        raise ValueError(f"{source}: unknown key(s) in {name}: {', '.join(unknown)} (known: {', '.join(allowed)})")
    return section


def _number(value: Any, key: str, source: str, kind=float):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{source}: {key} must be a number, got {value!r}")
    if kind is int and value != int(value):
        raise ValueError(f"{source}: {key} must be an integer, got {value!r}")
    return kind(value)


def _tuple(value: Any, key: str, source: str, kind=float) -> tuple:
    items = value if isinstance(value, (list, tuple)) else [value]
    return tuple(_number(v, key, source, kind) for v in items)


def _run(item: Any, index: int, source: str) -> RunSpec:
    where = f"exploration.runs[{index}]"
    allowed = [f.name for f in dataclasses.fields(RunSpec)]
    if not isinstance(item, dict):
        raise ValueError(f"{source}: {where} must be a mapping")
    values = _section({"run": item}, "run", allowed, source)
    kw: dict[str, Any] = {}
    for key, value in values.items():
        if key in ("structure", "ensemble", "element"):
            kw[key] = str(value)
        elif key == "repeat":
            kw[key] = _tuple(value, f"{where}.repeat", source, int)
        elif key in ("temperatures", "pressures"):
            kw[key] = _tuple(value, f"{where}.{key}", source)
        elif key in ("steps", "every"):
            kw[key] = _number(value, f"{where}.{key}", source, int)
        elif value is not None:
            kw[key] = _number(value, f"{where}.{key}", source)
    return RunSpec(**kw)


def _dft(values: dict, source: str) -> QESettings:
    allowed = [f.name for f in dataclasses.fields(QESettings)]
    section = _section(values, "dft", allowed, source)
    kw = dict(section)
    if "kpts" in kw:
        kw["kpts"] = None if kw["kpts"] in ("gamma", None) else _tuple(kw["kpts"], "dft.kpts", source, int)
    for key in ("ecutwfc", "ecutrho", "degauss", "conv_thr"):
        if kw.get(key) is not None:
            kw[key] = _number(kw[key], f"dft.{key}", source)
    if "pseudopotentials" in kw:
        kw["pseudopotentials"] = {str(k): str(v) for k, v in dict(kw["pseudopotentials"]).items()}
    return QESettings(**kw)


def from_mapping(values: dict, source: str, base: Path | None = None) -> LearnConfig:
    """A LearnConfig from a YAML mapping; relative data paths are taken from `base`."""
    known = set(SECTIONS) | {"dft", "exploration", "seed", "uncertainty"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{source}: unknown section(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    kw: dict[str, Any] = {}
    for name, keys in SECTIONS.items():
        for key, value in _section(values, name, keys, source).items():
            attr = keys[key]
            if attr == "initial_data":
                paths = value if isinstance(value, list) else [value]
                kw[attr] = tuple(str((base / p) if base and not Path(p).is_absolute() else p) for p in paths)
            elif attr == "seed_repeat":
                kw[attr] = _tuple(value, "initial.repeat", source, int)
            elif attr == "train_settings":
                kw[attr] = dict(value or {})
            elif attr in ("trust_lo", "trust_hi") and value == "auto":
                kw[attr] = "auto"
            elif attr in ("initial_rattled", "initial_random", "committee", "epochs", "frames", "max_iterations"):
                kw[attr] = _number(value, f"{name}.{key}", source, int)
            else:
                kw[attr] = _number(value, f"{name}.{key}", source)
    if "dft" in values:
        kw["dft"] = _dft(values, source)
    runs = _section(values, "exploration", ["runs"], source).get("runs")
    if runs is not None:
        if not isinstance(runs, list):
            raise ValueError(f"{source}: exploration.runs must be a list of runs")
        kw["runs"] = tuple(_run(item, i, source) for i, item in enumerate(runs))
    if "seed" in values:
        kw["seed"] = _number(values["seed"], "seed", source, int)
    kw["uncertainty"] = str(values.get("uncertainty", "committee"))
    if kw["uncertainty"] == "gp":
        given = [k for k in COMMITTEE_ONLY if k in (values.get("train") or {})]
        if given:
            raise ValueError(f"{source}: train.{', train.'.join(given)} apply to uncertainty: committee; "
                             "uncertainty: gp fits one GP in closed form (its settings: train.settings gp_*)")
    config = LearnConfig(**kw)
    config.check()
    return config


def read(path: str | Path) -> LearnConfig:
    values, source = read_yaml_mapping(path)
    return from_mapping(values, source, Path(path).resolve().parent)


def quick_config() -> LearnConfig:
    """`--quick`: two tiny iterations on 8-atom Si cells with a very cheap
    pw.x setting (12 Ry, Γ point), a few epochs and short MD; minutes on
    two cores. It shows the loop works, not a usable potential."""
    config = LearnConfig(
        initial_rattled=4,
        initial_random=2,
        rattle_stdev=0.08,
        dft=QESettings(ecutwfc=12.0, kpts=None, conv_thr=1e-6),
        committee=2,
        epochs=40,
        train_settings={"hidden_nodes": 10, "descriptor": "S16"},
        runs=(RunSpec(structure="crystal", temperatures=(600.0,), steps=200, every=10),
              RunSpec(structure="liquid", temperatures=(2500.0,), steps=200, every=10)),
        trust_lo=0.05,
        trust_hi=1.0,
        frames=3,
        stop_fraction=0.0,
        max_iterations=2,
    )
    config.check()
    return config


def yaml_text(config: LearnConfig) -> str:
    import yaml

    return yaml.safe_dump(config.as_dict(), sort_keys=False)
