"""Train a potential on energies and forces and write it as a potential file.

    python -m nnp.train --data train.xyz --output Si.nnp [--config cfg.yaml]
        [--descriptor A52] [--epochs N] [--seed S] [--force]

Settings are `TrainConfig` fields: defaults, then the YAML file (unknown keys
are an error), then the command line. The loss of a batch of structures is

    L = energy_weight · mean_s((E_s^pred − E_s)/N_s)² + force_weight · mean_{i,c}(F_ic^pred − F_ic)²

(eV²/atom² and eV²/Å²). A fraction of the structures is held out for
validation; the model with the lowest validation loss is kept and written.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from nnp import descriptors as descriptors_mod
from nnp import potential_file
from nnp.data import FeaturizedDataset, read_structures, split
from nnp.model import ACTIVATIONS, SCALING_MODES, NNPModel

LR_SCHEDULES = ("plateau", "cosine")


@dataclass
class TrainConfig:
    """Every training setting (YAML keys are these field names)."""

    descriptor: str = descriptors_mod.DEFAULT_PRESET  # a nnp.descriptors preset name
    hidden_layers: int = 2
    hidden_nodes: int = 30
    activation: str = "tanh"  # hidden layers; the output layer is linear
    scaling: str = "minmax"  # minmax (robust to outlying frames, e.g. close contacts) or standard (mean/std)
    # Defaults tuned on the Si data (214 structures): about 0.3-0.6 s per epoch on one core.
    epochs: int = 400
    batch_size: int = 2  # structures per optimiser step
    learning_rate: float = 5e-3  # Adam
    lr_schedule: str = "cosine"  # cosine (to lr_min over the epochs) or plateau (ReduceLROnPlateau on validation loss)
    lr_min: float = 1e-5
    plateau_factor: float = 0.5
    plateau_patience: int = 10  # epochs
    energy_weight: float = 1.0  # on (eV/atom)²
    force_weight: float = 0.01  # on (eV/Å)²
    weight_decay: float = 0.0
    validation_fraction: float = 0.1
    seed: int = 0
    # torch intra-op threads (0 = all cores). One by default: on a busy 2-core
    # machine two threads ran 10-60x slower than one (on an idle one, 1.6x faster).
    threads: int = 1
    log_every: int = 0  # epochs between progress lines; 0 = about 50 lines in all

    def check(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ValueError(f"config: {msg}")

        if self.descriptor not in descriptors_mod.preset_names():
            raise ValueError(
                f"config: unknown descriptor preset {self.descriptor!r}; choose from {descriptors_mod.preset_names()}"
            )
        need(self.hidden_layers >= 0, "hidden_layers must be >= 0")
        need(self.hidden_nodes >= 1, "hidden_nodes must be >= 1")
        need(self.activation in ACTIVATIONS, f"activation must be one of {ACTIVATIONS}")
        need(self.scaling in SCALING_MODES, f"scaling must be one of {SCALING_MODES}")
        need(self.epochs >= 0, "epochs must be >= 0")
        need(self.batch_size >= 1, "batch_size must be >= 1")
        need(self.learning_rate > 0 and math.isfinite(self.learning_rate), "learning_rate must be > 0")
        need(self.lr_schedule in LR_SCHEDULES, f"lr_schedule must be one of {LR_SCHEDULES}")
        need(0 <= self.lr_min <= self.learning_rate, "need 0 <= lr_min <= learning_rate")
        need(0 < self.plateau_factor < 1, "plateau_factor must be in (0, 1)")
        need(self.plateau_patience >= 0, "plateau_patience must be >= 0")
        need(self.energy_weight >= 0 and self.force_weight >= 0, "loss weights must be >= 0")
        need(self.energy_weight + self.force_weight > 0, "energy_weight and force_weight cannot both be 0")
        need(self.weight_decay >= 0, "weight_decay must be >= 0")
        need(0 <= self.validation_fraction < 1, "validation_fraction must be in [0, 1)")
        need(self.threads >= 0, "threads must be >= 0")
        need(self.log_every >= 0, "log_every must be >= 0")

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
            kind = type(getattr(self, key))
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if kind is float and isinstance(value, str):  # YAML reads 1e-3 as a string
                try:
                    value = float(value)
                except ValueError:
                    pass
            if type(value) is not kind:
                raise ValueError(f"{source}: {key} must be a {kind.__name__}, got {value!r}")
            new[key] = value
        return dataclasses.replace(self, **new)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> "TrainConfig":
        import yaml

        path = Path(path)
        try:
            values = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"config file {path} does not exist") from None
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML: {err}") from None
        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping of settings, found {type(values).__name__}")
        return cls.from_dict(values, str(path))

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ------------------------------------------------------------------ training


@dataclass
class Metrics:
    loss: float
    energy_rmse: float  # eV/atom
    force_rmse: float  # eV/Å

    def __str__(self) -> str:
        return f"E {1000 * self.energy_rmse:7.2f} meV/atom  F {self.force_rmse:.4f} eV/Å"


@dataclass
class TrainResult:
    model: NNPModel
    train: Metrics
    validation: Metrics | None
    best_epoch: int
    train_indices: np.ndarray
    validation_indices: np.ndarray
    history: list[dict[str, float]] = field(default_factory=list)


def _loss_terms(model: NNPModel, batch, create_graph: bool):
    """Sums of squared per-atom energy errors and force-component errors."""
    out = model(batch, forces=True, create_graph=create_graph)
    de = (out["energy"] - batch.energy) / batch.n_atoms  # (S,) eV/atom
    df = out["forces"] - batch.forces  # (N, 3)
    return (de**2).sum(), (df**2).sum()


def evaluate(model: NNPModel, data: FeaturizedDataset, indices, config: TrainConfig, chunk: int = 64) -> Metrics:
    """Loss and RMSEs over the structures `indices` (evaluated in chunks)."""
    indices = np.asarray(indices, dtype=np.int64)
    se_e = se_f = 0.0
    n_f = 0
    for start in range(0, len(indices), chunk):
        batch = data.collate(indices[start : start + chunk])
        e, f = _loss_terms(model, batch, create_graph=False)
        se_e += float(e.detach())
        se_f += float(f.detach())
        n_f += 3 * batch.n_total_atoms
    mse_e, mse_f = se_e / len(indices), se_f / n_f
    loss = config.energy_weight * mse_e + config.force_weight * mse_f
    return Metrics(loss, math.sqrt(mse_e), math.sqrt(mse_f))


def metrics_by_config_type(model, data: FeaturizedDataset, indices, config: TrainConfig) -> dict[str, tuple[int, Metrics]]:
    """(structure count, Metrics) per config_type among `indices`."""
    groups: dict[str, list[int]] = {}
    for i in np.asarray(indices, dtype=np.int64):
        groups.setdefault(data.config_types[i], []).append(int(i))
    return {k: (len(v), evaluate(model, data, v, config)) for k, v in sorted(groups.items())}


def _fmt_time(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def build_model(data: FeaturizedDataset, descriptors, config: TrainConfig, train_idx) -> NNPModel:
    """Initialised weights, scaling and reference energies from the training set."""
    model = NNPModel(descriptors, [config.hidden_nodes] * config.hidden_layers, config.activation)
    model.init_weights(config.seed)
    model.fit_scaling(data, train_idx, config.scaling)
    model.fit_reference_energies(data, train_idx)
    return model


def _print(line: str) -> None:
    print(line, flush=True)


def train(
    data: FeaturizedDataset,
    descriptors,
    config: TrainConfig,
    log=_print,
) -> TrainResult:
    """Train on `data` as `config` says; returns the best model (lowest
    validation loss; training loss when nothing is held out)."""
    config.check()
    train_idx, val_idx = split(len(data), config.validation_fraction, config.seed)
    model = build_model(data, descriptors, config, train_idx)
    gen = torch.Generator().manual_seed(config.seed)
    history: list[dict[str, float]] = []
    # The best epoch is chosen among the trained ones (epochs >= 1).
    best_state = copy.deepcopy(model.state_dict())
    best_epoch = 0
    best_loss = math.inf

    if config.epochs > 0:
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=config.learning_rate, weight_decay=config.weight_decay)
        if config.lr_schedule == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs, eta_min=config.lr_min)
        else:
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt, factor=config.plateau_factor, patience=config.plateau_patience, min_lr=config.lr_min
            )
        log_every = config.log_every or max(1, round(config.epochs / 50))
        live = log is _print and sys.stdout.isatty()  # redraw one line between log lines
        t0 = time.perf_counter()
        n_train = len(train_idx)
        for epoch in range(1, config.epochs + 1):
            model.train()
            perm = train_idx[torch.randperm(n_train, generator=gen).numpy()]
            sum_e = sum_f = 0.0
            n_f = 0
            for start in range(0, n_train, config.batch_size):
                batch = data.collate(perm[start : start + config.batch_size])
                se, sf = _loss_terms(model, batch, create_graph=True)
                S, N3 = batch.n_structures, 3 * batch.n_total_atoms
                loss = config.energy_weight * se / S + config.force_weight * sf / N3
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sum_e += float(se.detach())
                sum_f += float(sf.detach())
                n_f += N3
            model.eval()
            train_rmse_e, train_rmse_f = math.sqrt(sum_e / n_train), math.sqrt(sum_f / n_f)
            train_loss = config.energy_weight * train_rmse_e**2 + config.force_weight * train_rmse_f**2
            val = evaluate(model, data, val_idx, config) if len(val_idx) else None
            sel_loss = val.loss if val is not None else train_loss
            improved = sel_loss < best_loss
            if improved:
                best_loss, best_epoch = sel_loss, epoch
                best_state = copy.deepcopy(model.state_dict())
            lr = opt.param_groups[0]["lr"]
            if config.lr_schedule == "cosine":
                sched.step()
            else:
                sched.step(sel_loss)
            history.append(
                dict(epoch=epoch, lr=lr, train_loss=train_loss, train_energy_rmse=train_rmse_e,
                     train_force_rmse=train_rmse_f,
                     val_loss=val.loss if val else math.nan,
                     val_energy_rmse=val.energy_rmse if val else math.nan,
                     val_force_rmse=val.force_rmse if val else math.nan)
            )
            elapsed = time.perf_counter() - t0
            eta = elapsed / epoch * (config.epochs - epoch)
            line = (
                f"epoch {epoch:{len(str(config.epochs))}d}/{config.epochs}  loss {train_loss:.3e}"
                f"  train E {1000 * train_rmse_e:6.2f} F {train_rmse_f:.4f}"
                + (f"  val E {1000 * val.energy_rmse:6.2f} meV/atom F {val.force_rmse:.4f} eV/Å" if val else "")
                + f"  lr {lr:.1e}  {_fmt_time(elapsed)} ETA {_fmt_time(eta)}{' *' if improved else ''}"
            )
            if epoch % log_every == 0 or epoch == config.epochs or epoch == 1:
                log(("\r\033[K" if live else "") + line)
            elif live:
                print("\r\033[K" + line, end="", flush=True)
            if not math.isfinite(train_loss):
                raise FloatingPointError(f"training diverged at epoch {epoch} (loss {train_loss}); lower learning_rate")
        model.load_state_dict(best_state)
    model.eval()
    train_metrics = evaluate(model, data, train_idx, config)
    val_metrics = evaluate(model, data, val_idx, config) if len(val_idx) else None
    return TrainResult(model, train_metrics, val_metrics, best_epoch, train_idx, val_idx, history)


# ----------------------------------------------------------------------- CLI


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("nnp")
    except Exception:
        import nnp

        return str(getattr(nnp, "__version__", "unknown"))


def _elements_of(structures) -> tuple[str, ...]:
    """Elements present, ordered by atomic number."""
    from ase.data import atomic_numbers

    symbols = {s for a in structures for s in a.get_chemical_symbols()}
    return tuple(sorted(symbols, key=lambda s: atomic_numbers[s]))


def provenance(data_path: Path, digest: str, config: TrainConfig, result: TrainResult, data: FeaturizedDataset) -> list[str]:
    """Comment lines for the potential file (no wall time: same seed, same file
    apart from the date line)."""
    lines = [
        f"trained by nnp {_version()} (python -m nnp.train)",
        f"date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}",
        f"data: {data_path.resolve()}",
        f"data sha256: {digest}",
        f"data: {len(data)} structures, {data.n_total_atoms} atoms; "
        f"{len(result.train_indices)} train, {len(result.validation_indices)} validation",
        "config: " + json.dumps(config.as_dict(), sort_keys=True),
        f"train RMSE: {result.train}",
    ]
    if result.validation is not None:
        lines.append(f"validation RMSE: {result.validation}  (best epoch {result.best_epoch})")
    return lines


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m nnp.train",
        description="Train a Behler–Parrinello potential on energies and forces and write a potential file.",
    )
    p.add_argument("--data", required=True, help="labelled structures (any format ASE reads with energy and forces)")
    p.add_argument("--output", required=True, help="potential file to write (e.g. Si.nnp)")
    p.add_argument("--config", help="YAML file of TrainConfig settings")
    p.add_argument("--descriptor", help=f"descriptor preset (default {descriptors_mod.DEFAULT_PRESET}): "
                   + ", ".join(descriptors_mod.preset_names()))
    p.add_argument("--epochs", type=int, help="training epochs (0: write the untrained, initialised model)")
    p.add_argument("--seed", type=int, help="random seed (split, initial weights, batch order)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return _run(args)
    except (ValueError, FileNotFoundError, FileExistsError, FloatingPointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    output = Path(args.output)
    # Refuse before any work is done.
    if output.exists() and not args.force:
        raise FileExistsError(f"{output} exists; refusing to overwrite it (use --force)")
    if output.is_dir():
        raise ValueError(f"{output} is a directory")
    config = TrainConfig.from_yaml(args.config) if args.config else TrainConfig()
    cli = {k: getattr(args, k) for k in ("descriptor", "epochs", "seed") if getattr(args, k) is not None}
    config = config.updated(cli, "command line")
    config.check()
    torch.set_num_threads(config.threads or os.cpu_count() or 1)

    data_path = Path(args.data)
    structures = read_structures(data_path)
    elements = _elements_of(structures)
    descriptors = descriptors_mod.preset(config.descriptor, elements)
    _print(f"data: {data_path} ({len(structures)} structures, {sum(len(a) for a in structures)} atoms, "
          f"elements {' '.join(elements)})")
    _print(f"descriptor {config.descriptor}: {', '.join(f'{e} {descriptors.size(e)}' for e in elements)} functions, "
          f"cutoff {descriptors.cutoff:g} Å")
    t = time.perf_counter()
    data = FeaturizedDataset.from_structures(structures, descriptors)
    _print(f"featurised in {_fmt_time(time.perf_counter() - t)} ({data.nbytes() / 2**20:.0f} MiB)")
    _print(f"network: {config.hidden_layers} x {config.hidden_nodes} {config.activation}; "
          f"{config.epochs} epochs, batch {config.batch_size} structures, lr {config.learning_rate:g} "
          f"({config.lr_schedule}), weights E {config.energy_weight:g} F {config.force_weight:g}, seed {config.seed}")

    result = train(data, descriptors, config)
    comments = provenance(data_path, _sha256(data_path), config, result, data)
    pot = result.model.to_potential_data(comments)
    potential_file.write(pot, output, overwrite=args.force)
    groups = metrics_by_config_type(result.model, data, result.validation_indices, config)
    if len(groups) > 1:
        _print("validation by config_type:")
        for name, (count, m) in groups.items():
            _print(f"  {name:24s} {count:4d} structures  {m}")
    _print(f"train      RMSE: {result.train}")
    if result.validation is not None:
        _print(f"validation RMSE: {result.validation}  (best epoch {result.best_epoch})")
    _print(f"wrote {output}; wall time {_fmt_time(time.perf_counter() - t_start)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
