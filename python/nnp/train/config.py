"""Every training setting, in one dataclass, and its checks.

Settings are `TrainConfig` fields: defaults, then a YAML file (unknown keys
are an error), then the command line. docs/training.md gives each setting
and the measurements behind the defaults.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any

import torch
from ase.data import chemical_symbols

from nnp import descriptors as descriptors_mod
from nnp.io import settings
from nnp.model.network import ACTIVATIONS, SCALING_MODES

LR_SCHEDULES = ("plateau", "cosine")
DERIVATIVES = ("auto", "stored", "streamed")
MODELS = ("nn", "gp")
GP_KERNELS = ("se", "dot")
GP_SELECTIONS = ("farthest", "cur")
GP_MEANS = ("none", "quadratic")
# The default descriptor: C64-wide or C64, whichever the data favour
# (nnp.train.descriptor_choice).
AUTO_DESCRIPTOR = "auto"
AUTO_EPOCHS = -1  # the epochs setting's `auto`


@dataclass
class TrainConfig:
    """Every training setting (YAML keys are these field names)."""

    descriptor: str = AUTO_DESCRIPTOR  # a nnp.descriptors preset name, or auto
    hidden_layers: int = 2
    hidden_nodes: int = 30
    activation: str = "tanh"  # hidden layers; the output layer is linear
    scaling: str = "minmax"  # minmax (robust to outlying frames, e.g. close contacts) or standard (mean/std)
    # AUTO_EPOCHS (-1, or `auto` in YAML): 1600 (200 Adam, then 1400 L-BFGS
    # iterations), fewer for large sets (nnp.train.phases.auto_epochs). On
    # the Si data the default model reaches its best validation loss before
    # epoch 1600, and most of it by epoch 320, so a set of 10^5 atoms need
    # not pay hours for the last 2 % (docs/training.md, "How long").
    epochs: int = AUTO_EPOCHS
    batch_size: int = 2  # structures per optimiser step
    learning_rate: float = 5e-3  # Adam
    lr_schedule: str = "cosine"  # cosine (to lr_min over the epochs) or plateau (ReduceLROnPlateau on validation loss)
    lr_min: float = 1e-5
    plateau_factor: float = 0.5
    plateau_patience: int = 10  # epochs
    energy_weight: float = 1.0  # on (eV/atom)²
    # On (eV/Å)². At 1600 epochs 0.06 gave lower energy and force errors than
    # 0.04; 0.08 lowered the force error a little further at a cost in
    # energy (docs/accuracy.md).
    force_weight: float = 0.06
    # On the virial per atom, (eV/atom)²; structures with a stress label. At
    # 0.01 every C64-wide model put C11 ~20 % below DFT, at 0.03 ~7 %; 0.05
    # brings it within a few % at no cost in force (docs/accuracy.md).
    stress_weight: float = 0.05
    # The last lbfgs_fraction of the epochs are full-batch L-BFGS iterations.
    lbfgs_fraction: float = 0.875
    lbfgs_history: int = 100
    patience: int = 0  # stop a phase after this many epochs without a better validation loss; 0: never
    weight_decay: float = 0.0  # L2 penalty 0.5·wd·|w|² on all weights and biases (Adam and L-BFGS)
    validation_fraction: float = 0.1
    seed: int = 0
    # Seed of the validation split alone; -1: `seed`. --ensemble gives its
    # members seeds seed … seed+N−1, so by default each has its own split;
    # with a fixed split_seed they share one, and the validation errors of
    # their mean are measured too.
    split_seed: int = -1
    # torch intra-op threads (0 = all cores). One by default: threads that
    # share a busy machine's cores slow training down many times
    # (docs/training.md).
    threads: int = 1
    # Threads of the streamed derivative kernels (nnp.model.network), most of
    # a streamed epoch; 0: this training's share of the cores it may run on
    # (divided among the trainings running at once: a holdout twin alongside,
    # torchrun's ranks on the node). They are the core's own and do not
    # spin, unlike torch's (docs/training.md).
    kernel_threads: int = 0
    device: str = "cpu"  # torch device: cpu, cuda, cuda:1, ...
    # A ZBL repulsive core for every element pair, switched off between
    # core_outer − core_width and core_outer (Å), so MD cannot collapse atoms
    # below the shortest training distance, where the network only extrapolates.
    # core_outer 0: for each pair, CORE_MARGIN (0.025 Å) below that pair's
    # shortest distance in the training data, rounded down to 0.05 Å, so the
    # core does not touch the training data (nnp.train.initial_model).
    core_repulsion: bool = True
    core_outer: float = 0.0
    core_width: float = 0.5
    log_every: int = 0  # epochs between progress lines; 0 = about 50 lines in all
    # Seconds between checkpoints (0: after every epoch): an interrupted run
    # loses at most this much work, and saving every epoch would cost a
    # noticeable part of a short L-BFGS epoch (docs/training.md).
    checkpoint_every: float = 10.0
    # Energy (eV) of one isolated atom per element, from the same DFT setup as
    # the data; each is trained on as a one-atom structure (never held out
    # for validation). Condensed-phase data say nothing about the energy of
    # a lone atom, and without it a model can bind far too weakly
    # (docs/training.md, docs/robustness.md).
    isolated_atom_energies: dict[str, float] = field(default_factory=dict)
    # python -m nnp.train writes a model trained on every structure. With
    # validation_fraction > 0, a holdout twin (the same settings, the
    # validation structures left out and used to select its best epoch) trains
    # alongside, in a second process: its errors on the left-out structures
    # are the validation errors reported. The extra training structures make
    # the written model a little better (docs/accuracy.md). False: the
    # written model is the holdout model. Only the command line refits;
    # nnp.train.train() trains one model.
    refit: bool = True
    # The model written is the mean of the trained network and a quadratic
    # model in the same scaled descriptors, E_i = e0 + (1 − w) NN(x) + w Q(x)
    # with w = quadratic_weight (0: the network alone). Q(x) = b·x + xᵀAx is
    # fitted before the network is trained (it depends on the data and the
    # scaling only), in closed form, to the same loss on the same structures,
    # with a relative ridge penalty quadratic_ridge (nnp.model.quadratic). The
    # best epoch is chosen on the mean. Its errors are only loosely correlated
    # with the network's, so the mean is better than either (docs/accuracy.md).
    quadratic_weight: float = 0.5
    quadratic_ridge: float = 1e-8
    # Descriptor derivatives ∂G/∂r: "stored" for the whole training set
    # (fastest; ~70 kB per atom on water), "streamed" (never stored: the core
    # applies them per batch by its force pass and Jacobian-vector product;
    # the same gradients up to float32 rounding of stored ones), or "auto":
    # stored when nnp.train.memory's estimate of the run fits memory_budget,
    # else streamed; a run that fits neither is refused before featurising.
    derivatives: str = "auto"
    # "auto" stores only when the stored estimate is at most this many GiB
    # (0: no limit, only the budget): larger sets stream even on a machine
    # that could hold their derivatives, trading epoch time for memory (the
    # measured ratio and the choice of 3 GiB: docs/performance.md).
    auto_stored_limit: float = 3.0
    # GiB that the run (all its processes) may use; 0: 80 % of the memory
    # available (MemAvailable) when it starts.
    memory_budget: float = 0.0
    chunk_size: int = 32  # structures per chunk of full-batch (L-BFGS) passes and evaluations
    # The regressor: "nn" (the network, with the quadratic term) or "gp", a
    # sparse Gaussian process on the same scaled descriptors, fitted in closed
    # form (nnp.train.gp_fit; kernels, settings and measurements in docs/gp.md).
    model: str = "nn"
    gp_kernel: str = "se"  # se (squared exponential) or dot ((x̂·ẑ)^zeta)
    # Defaults chosen on the Si validation split (docs/gp.md).
    gp_sparse: int = 500  # sparse points per element
    gp_mean: str = "quadratic"  # the GP's prior mean beside e0 and the core: quadratic (fitted first) or none
    gp_selection: str = "farthest"  # how they are chosen: farthest (point sampling) or cur (on the kernel matrix)
    gp_delta: float = 1.0  # eV, the prior's atomic-energy scale
    gp_lengthscale: float = 10.0  # se, in units of the scaled descriptor
    gp_zeta: int = 4  # dot
    gp_sigma_energy: float = 0.0005  # eV/atom
    gp_sigma_force: float = 0.05  # eV/Å
    gp_sigma_virial: float = 0.02  # eV/atom; 0: virials not fitted
    gp_jitter: float = 1e-8  # added to K_MM's diagonal, relative to delta²

    def check(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ValueError(f"config: {msg}")

        try:
            if str(self.descriptor).strip().lower() == AUTO_DESCRIPTOR:
                self.descriptor = AUTO_DESCRIPTOR
            else:
                self.descriptor = descriptors_mod.canonical_preset(self.descriptor)
        except ValueError as err:
            raise ValueError(f"config: {err} (or auto, the default)") from None
        need(self.hidden_layers >= 0, "hidden_layers must be >= 0")
        need(self.hidden_nodes >= 1, "hidden_nodes must be >= 1")
        need(self.activation in ACTIVATIONS, f"activation must be one of {ACTIVATIONS}")
        need(self.scaling in SCALING_MODES, f"scaling must be one of {SCALING_MODES}")
        if str(self.epochs).strip().lower() == "auto":
            self.epochs = AUTO_EPOCHS
        need(isinstance(self.epochs, int) and self.epochs >= AUTO_EPOCHS,
             "epochs must be >= 0 (or auto, the default: 1600, fewer for large sets)")
        need(self.batch_size >= 1, "batch_size must be >= 1")
        need(self.learning_rate > 0 and math.isfinite(self.learning_rate), "learning_rate must be > 0")
        need(self.lr_schedule in LR_SCHEDULES, f"lr_schedule must be one of {LR_SCHEDULES}")
        need(0 <= self.lr_min <= self.learning_rate, "need 0 <= lr_min <= learning_rate")
        need(0 < self.plateau_factor < 1, "plateau_factor must be in (0, 1)")
        need(self.plateau_patience >= 0, "plateau_patience must be >= 0")
        need(min(self.energy_weight, self.force_weight, self.stress_weight) >= 0, "loss weights must be >= 0")
        need(0 <= self.lbfgs_fraction <= 1, "lbfgs_fraction must be in [0, 1]")
        need(self.lbfgs_history >= 1, "lbfgs_history must be >= 1")
        need(self.patience >= 0, "patience must be >= 0")
        need(self.core_outer >= 0 and math.isfinite(self.core_outer), "core_outer must be >= 0 (0: automatic)")
        need(self.core_width > 0 and math.isfinite(self.core_width), "core_width must be > 0")
        self._check_device()
        need(self.energy_weight + self.force_weight + self.stress_weight > 0, "the loss weights cannot all be 0")
        need(self.weight_decay >= 0, "weight_decay must be >= 0")
        need(0 <= self.validation_fraction < 1, "validation_fraction must be in [0, 1)")
        need(self.split_seed >= -1, "split_seed must be >= 0 (or -1: the same as seed)")
        need(self.threads >= 0, "threads must be >= 0")
        need(self.kernel_threads >= 0, "kernel_threads must be >= 0 (0: this training's share of the cores)")
        need(self.checkpoint_every >= 0 and math.isfinite(self.checkpoint_every),
             "checkpoint_every must be >= 0 seconds (0: every epoch)")
        need(self.log_every >= 0, "log_every must be >= 0")
        need(0 <= self.quadratic_weight <= 1, "quadratic_weight must be in [0, 1] (0: the network alone)")
        need(self.quadratic_ridge >= 0 and math.isfinite(self.quadratic_ridge), "quadratic_ridge must be >= 0")
        need(self.derivatives in DERIVATIVES, f"derivatives must be one of {DERIVATIVES}")
        need(self.memory_budget >= 0 and math.isfinite(self.memory_budget),
             "memory_budget must be >= 0 GiB (0: 80 % of the available memory)")
        need(self.auto_stored_limit >= 0 and math.isfinite(self.auto_stored_limit),
             "auto_stored_limit must be >= 0 GiB (0: no limit)")
        need(self.chunk_size >= 1, "chunk_size must be >= 1")
        need(self.model in MODELS, f"model must be one of {MODELS}")
        need(self.gp_kernel in GP_KERNELS, f"gp_kernel must be one of {GP_KERNELS}")
        need(self.gp_selection in GP_SELECTIONS, f"gp_selection must be one of {GP_SELECTIONS}")
        need(self.gp_mean in GP_MEANS, f"gp_mean must be one of {GP_MEANS}")
        need(self.gp_sparse >= 1 and 1 <= self.gp_zeta <= 64, "need gp_sparse >= 1 and gp_zeta in [1, 64]")
        need(min(self.gp_delta, self.gp_lengthscale, self.gp_sigma_energy, self.gp_sigma_force) > 0
             and self.gp_sigma_virial >= 0 and self.gp_jitter >= 0,
             "gp_delta, gp_lengthscale and the gp_sigma_* must be > 0 (gp_sigma_virial and gp_jitter >= 0)")
        for element, energy in self.isolated_atom_energies.items():
            need(element in chemical_symbols[1:], f"isolated_atom_energies: {element!r} is not an element symbol")
            need(isinstance(energy, (int, float)) and not isinstance(energy, bool) and math.isfinite(energy),
                 f"isolated_atom_energies: the energy of {element} must be a finite number of eV, got {energy!r}")

    def _check_device(self) -> None:
        try:
            device = torch.device(self.device)
        except (RuntimeError, ValueError):
            raise ValueError(f"config: device {self.device!r} is not a torch device (cpu, cuda, cuda:0, ...)") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"config: device {self.device!r} asked for, but torch sees no CUDA GPU "
                             f"(torch {torch.__version__}; the CPU build has no CUDA)")
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"config: device must be cpu or cuda, got {self.device!r}")

    @property
    def split_seed_used(self) -> int:
        """The seed that draws the validation split."""
        return self.seed if self.split_seed < 0 else self.split_seed

    @property
    def refits(self) -> bool:
        """Whether the command line trains a holdout twin beside the written model."""
        return self.refit and self.validation_fraction > 0

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> "TrainConfig":
        return cls().updated(values, source)

    def updated(self, values: dict[str, Any], source: str = "config") -> "TrainConfig":
        """A copy with `values` applied; unknown keys and wrong types are errors."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ValueError(f"{source}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(fields)}")
        new = {}
        for key, value in values.items():
            if key == "epochs" and isinstance(value, str) and value.strip().lower() == "auto":
                value = AUTO_EPOCHS
            new[key] = settings.coerce(type(getattr(self, key)), value, key, source)
        return dataclasses.replace(self, **new)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> "TrainConfig":
        return cls.from_dict(*settings.read_yaml_mapping(path))

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
