"""Settings of the descriptor-length study (`python -m nnp.study`).

`StudyConfig()` is the paper's protocol (docs/science.md, "The study the
project reproduces"): series A and B at lengths 16…64, 2×30 networks with the
training defaults, NPT at 300 K and 1 atm with 1 fs steps for 1 ns on 512
atoms, melt-quench 2000 K -> 300 K at 70 K/ps. `StudyConfig.quick()` scales
everything down so the whole pipeline runs in a few minutes.

Every field changes the numbers, so a study directory stores its config and
refuses to continue with a different one. `models` picks the regressors
(the network, the sparse GP) each point is run with; a point run with one
is a *run*, named by `run_name`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any

from nnp import descriptors as descriptors_mod
from nnp.io import settings
from nnp.train import TrainConfig

SERIES = tuple(descriptors_mod.SERIES)  # ("A", "B")
LENGTHS = tuple(descriptors_mod.LENGTHS)  # (16, 28, 40, 52, 64)
# Training settings the study sets itself, per point.
STUDY_OWNED_TRAIN_KEYS = ("descriptor", "seed", "model")
# The regressors a point can be run with (TrainConfig.model): the network
# and the sparse GP, on the same descriptor, data, split and seed.
MODELS = ("nn", "gp")
MODEL_NAMES = {"nn": "network", "gp": "GP"}


def run_name(point: str, model: str) -> str:
    """The name of one point run with one regressor, and its folder under
    DIR/points/: the network's is the point's name (so study directories
    made before there was a choice are read as they are), the others' get
    a suffix (A16-gp)."""
    return point if model == "nn" else f"{point}-{model}"


def split_run(run: str) -> tuple[str, str]:
    """(point, model) of a run name: "A16" -> ("A16", "nn"), "A16-gp" -> ("A16", "gp")."""
    point, _, model = run.partition("-")
    return point, model or "nn"

# The stages of every point, in the order they run.
STAGES = ("train", "validation", "zero_k", "melt", "crystal")
STAGE_TITLES = {
    "train": "training",
    "validation": "validation errors",
    "zero_k": "0 K lattice and elastic constants",
    "melt": "melt-quench (liquid, amorphous)",
    "crystal": "crystal NPT",
}


# The settings each stage's numbers depend on (besides the data, its digest
# and the resolved training settings, which every stage depends on). With
# `--update`, a stage is rerun only when one of its settings changed.
_EVERY_STAGE = ("seed", "max_structures", "train")
_MD = ("timestep_fs", "pressure_atm", "t_damp_fs", "p_damp_fs", "sample_every", "rdf_every", "rdf_bins",
       "rdf_cutoff", "blocks")
STAGE_SETTINGS: dict[str, tuple[str, ...]] = {
    "train": _EVERY_STAGE,
    "validation": _EVERY_STAGE,
    "zero_k": (*_EVERY_STAGE, "elastic_cells", "elastic_strain"),
    "melt": (*_EVERY_STAGE, *_MD, "melt_cells", "liquid_density", "melt_temperature", "melt_ps",
             "liquid_temperature", "liquid_equilibrate_ps", "liquid_ps", "quench_end_temperature",
             "quench_rate", "amorphous_equilibrate_ps", "amorphous_ps"),
    "crystal": (*_EVERY_STAGE, *_MD, "crystal_cells", "crystal_temperature", "crystal_equilibrate_ps",
                "crystal_ps"),
}
# Which points and runs exist, not what any point's numbers are.
POINT_SELECTION = ("series", "lengths", "models")


@dataclass
class StudyConfig:
    """Every setting that changes the study's numbers (YAML keys are these names)."""

    series: tuple[str, ...] = SERIES
    lengths: tuple[int, ...] = LENGTHS
    # Regressors run on every point (MODELS); the GP's settings are the
    # gp_* keys of `train`.
    models: tuple[str, ...] = ("nn",)
    seed: int = 0  # data split, initial weights, batch order, initial velocities
    # TrainConfig overrides for every point (not descriptor or seed); empty:
    # the training defaults, i.e. the paper's 2x30 networks.
    train: dict[str, Any] = field(default_factory=dict)
    max_structures: int = 0  # 0: all; else an evenly spaced subset of the data

    # 0 K: lattice by box relaxation, elastic constants by ±strain.
    elastic_cells: int = 1  # n×n×n cubic 8-atom cells (internal relaxation needs no more)
    elastic_strain: float = 0.005

    # MD, common (LAMMPS fix npt, iso).
    timestep_fs: float = 1.0
    pressure_atm: float = 1.0
    t_damp_fs: float = 100.0
    p_damp_fs: float = 1000.0
    sample_every: int = 10  # steps between volume/temperature samples
    rdf_every: int = 100  # steps between g(r) samples
    rdf_bins: int = 200
    rdf_cutoff: float = 6.0  # Å
    blocks: int = 10  # block averages for error bars

    # Crystal, NPT: lattice constant, bulk modulus from volume fluctuations, g(r).
    crystal_cells: int = 4  # 4: 512 atoms
    crystal_temperature: float = 300.0
    crystal_equilibrate_ps: float = 10.0
    crystal_ps: float = 1000.0  # production, the paper's 1 ns

    # Melt-quench: melt the crystal, liquid g(r), quench, amorphous g(r). The
    # melt and the liquid run NVT at liquid_density (0: NPT like the rest);
    # the quench and the amorphous solid run NPT. A fixed density keeps a
    # model whose liquid boils at 1 atm (too small a cohesive energy, as
    # with models trained on condensed phases only) from evaporating before
    # the quench; 2.57 g/cm³ is liquid Si at its melting point (experiment).
    melt_cells: int = 4
    liquid_density: float = 2.57  # g/cm³
    melt_temperature: float = 3000.0  # well above melting, so the crystal melts quickly
    melt_ps: float = 10.0
    liquid_temperature: float = 2000.0
    liquid_equilibrate_ps: float = 10.0
    liquid_ps: float = 20.0
    quench_end_temperature: float = 300.0
    quench_rate: float = 70.0  # K/ps (the paper's DFT protocol)
    amorphous_equilibrate_ps: float = 5.0
    amorphous_ps: float = 20.0

    @classmethod
    def quick(cls) -> "StudyConfig":
        """A few minutes on a 2-core machine: a subset of the data, a few
        epochs, 64-atom cells and a few hundred MD steps. Exercises the whole
        pipeline; its numbers mean little."""
        return cls(
            train={"epochs": 15},
            max_structures=24,
            sample_every=5,
            rdf_every=10,
            rdf_bins=100,
            blocks=4,
            crystal_cells=2,
            crystal_equilibrate_ps=0.05,
            crystal_ps=0.2,
            melt_cells=2,
            melt_ps=0.1,
            liquid_equilibrate_ps=0.03,
            liquid_ps=0.1,
            quench_rate=1700.0 / 0.15,  # 150 steps from 2000 K to 300 K
            amorphous_equilibrate_ps=0.03,
            amorphous_ps=0.1,
        )

    # ------------------------------------------------------------ checks

    def check(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ValueError(f"study config: {msg}")

        need(len(self.series) > 0 and all(s in SERIES for s in self.series),
             f"series must be a non-empty list of {', '.join(SERIES)}, got {list(self.series)}")
        need(len(self.lengths) > 0 and all(n in LENGTHS for n in self.lengths),
             f"lengths must be a non-empty list of {', '.join(map(str, LENGTHS))}, got {list(self.lengths)}")
        need(len(self.models) > 0 and all(m in MODELS for m in self.models),
             f"models must be a non-empty list of {', '.join(MODELS)}, got {list(self.models)}")
        need(len(set(self.series)) == len(self.series) and len(set(self.lengths)) == len(self.lengths)
             and len(set(self.models)) == len(self.models), "series, lengths and models must not repeat")
        need(self.seed >= 0, "seed must be >= 0")
        bad = sorted(set(self.train) & set(STUDY_OWNED_TRAIN_KEYS))
        need(not bad, f"train: {', '.join(bad)} is set by the study (the descriptor per point; use seed, "
                      "and models for the regressors)")
        for model in self.models:
            self.train_config("A16", model)  # unknown keys / wrong types
        need(self.max_structures >= 0, "max_structures must be >= 0 (0: all)")
        for name in ("elastic_cells", "crystal_cells", "melt_cells", "sample_every", "rdf_every", "rdf_bins"):
            need(getattr(self, name) >= 1, f"{name} must be >= 1")
        need(self.blocks >= 2, "blocks must be >= 2")
        need(0 < self.elastic_strain < 0.05, "elastic_strain must be in (0, 0.05)")
        positive = ("timestep_fs", "t_damp_fs", "p_damp_fs", "rdf_cutoff", "crystal_temperature",
                    "melt_temperature", "liquid_temperature", "quench_end_temperature", "quench_rate",
                    "crystal_ps", "liquid_ps", "amorphous_ps")
        for name in positive:
            v = getattr(self, name)
            need(math.isfinite(v) and v > 0, f"{name} must be > 0, got {v}")
        for name in ("crystal_equilibrate_ps", "melt_ps", "liquid_equilibrate_ps", "amorphous_equilibrate_ps"):
            v = getattr(self, name)
            need(math.isfinite(v) and v >= 0, f"{name} must be >= 0, got {v}")
        need(math.isfinite(self.pressure_atm), "pressure_atm must be finite")
        need(math.isfinite(self.liquid_density) and self.liquid_density >= 0,
             f"liquid_density must be >= 0 g/cm³ (0: NPT), got {self.liquid_density}")
        need(self.quench_end_temperature < self.liquid_temperature,
             "quench_end_temperature must be below liquid_temperature")
        for name in ("crystal_ps", "liquid_ps", "amorphous_ps"):
            need(self.steps(getattr(self, name)) >= self.sample_every * self.blocks,
                 f"{name} = {getattr(self, name)} ps is too short for {self.blocks} blocks of samples "
                 f"every {self.sample_every} steps")

    def train_config(self, descriptor: str, model: str = "nn") -> TrainConfig:
        """The TrainConfig of one point run with one regressor."""
        if "refit" in self.train:
            raise ValueError("study config: train: refit is not a study setting (each point's model is the one "
                             "trained on its split, so that its validation errors describe it)")
        return TrainConfig().updated({**self.train, "descriptor": descriptor, "seed": self.seed, "model": model},
                                     "study config: train")

    def steps(self, ps: float) -> int:
        return int(round(ps * 1000.0 / self.timestep_fs))

    @property
    def quench_ps(self) -> float:
        return (self.liquid_temperature - self.quench_end_temperature) / self.quench_rate

    @property
    def points(self) -> list[str]:
        """Descriptor presets, series-major: A16 … A64, B16 … B64."""
        return [f"{s}{n}" for s in self.series for n in self.lengths]

    def runs_of(self, points) -> list[str]:
        """Run names (`run_name`) of `points` with every model, point-major:
        A16, A16-gp, A28, …"""
        return [run_name(p, m) for p in points for m in self.models]

    @property
    def runs(self) -> list[str]:
        return self.runs_of(self.points)

    # -------------------------------------------------------- conversion

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["series"], d["lengths"], d["models"] = list(self.series), list(self.lengths), list(self.models)
        return d

    def updated(self, values: dict[str, Any], source: str = "study config") -> "StudyConfig":
        """A copy with `values` applied; unknown keys and wrong types are errors."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ValueError(f"{source}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(fields)}")
        new: dict[str, Any] = {}
        for key, value in values.items():
            current = getattr(self, key)
            if key == "models" and isinstance(value, str):  # "nn,gp", as on the command line
                value = [v.strip() for v in value.split(",")]
            if isinstance(current, tuple):
                if not isinstance(value, (list, tuple)):
                    value = [value]
                kind = type(current[0])
                if not all(type(v) is kind for v in value):
                    raise ValueError(f"{source}: {key} must be a list of {kind.__name__}, got {value!r}")
                value = tuple(value)
            elif isinstance(current, dict):
                if not isinstance(value, dict):
                    raise ValueError(f"{source}: {key} must be a mapping of settings, got {value!r}")
                value = dict(value)
            else:
                value = settings.coerce(type(current), value, key, source)
            new[key] = value
        return dataclasses.replace(self, **new)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "study config") -> "StudyConfig":
        return cls().updated(values, source)

    def updated_from_yaml(self, path: str | os.PathLike) -> "StudyConfig":
        return self.updated(*settings.read_yaml_mapping(path))
