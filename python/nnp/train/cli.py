"""python -m nnp.train: read the data, train (with the holdout twin, or a
committee), write the potential file(s), the summary and the report."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Sequence

import torch
from ase.data import atomic_numbers

from nnp import descriptors as descriptors_mod
from nnp.cli import check_output_directory
from nnp.data import FeaturizedDataset, data_sha256, read_structures
from nnp.io import potential_file
from nnp.model.network import kernel_threads, set_kernel_threads
from nnp.progress import Bar, fmt_time, restart_clock
from nnp.train import checkpoints, descriptor_choice, distributed, refit
from nnp.train.config import AUTO_DESCRIPTOR, AUTO_EPOCHS, DERIVATIVES, MODELS, TrainConfig
from nnp.train.console import print_line
from nnp.train.memory import plan as plan_memory
from nnp.train.outputs import (mean_output, member_outputs, print_summary, provenance, write_committee,
                               write_report)
from nnp.train.phases import EPOCH_ATOM_BUDGET, phase_lengths, with_epochs
from nnp.train.refit import HoldoutTwinFailed, Member, checkpoint_paths, train_member
from nnp.train.training_set import check_isolated_atoms, featurize, with_isolated_atoms


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="nnp train",
        description="Train a Behler–Parrinello potential on energies, forces (and stress) and write a potential file.",
    )
    p.add_argument("--data", required=True, help="labelled structures (any format ASE reads with energy and forces)")
    p.add_argument("-o", "--output", required=True, help="potential file to write (e.g. Si.nnp)")
    p.add_argument("--config", help="YAML file of TrainConfig settings")
    p.add_argument("--descriptor", help="descriptor preset, or auto (the default: C64-wide, or C64 where a "
                   "quadratic model fits the data clearly better in it; docs/descriptors.md): "
                   + ", ".join(descriptors_mod.preset_names()))
    p.add_argument("--model", choices=MODELS,
                   help="the regressor: nn (default: networks with the quadratic term) or gp (a sparse Gaussian "
                        "process fitted in closed form, settings gp_* in the config; docs/gp.md)")
    p.add_argument("--epochs", type=_epochs_arg, help="training epochs (0: write the untrained, initialised "
                   "model; auto, the default: 1600, fewer for sets over ~15,000 atoms)")
    p.add_argument("--seed", type=int, help="random seed (split, initial weights, batch order)")
    p.add_argument("--device", help="torch device to train on: cpu (default) or cuda")
    p.add_argument("--derivatives", choices=DERIVATIVES,
                   help="descriptor derivatives stored for the whole set, streamed (never stored: applied per "
                        "batch by the core, memory independent of neighbours x functions), or auto (default: stored when its estimate is at most auto_stored_limit, 3 GiB, and fits the "
                        "memory budget; else streamed)")
    p.add_argument("--isolated-atom-energy", action="append", metavar="EL=EV",
                   help="energy of one isolated atom of element EL in eV, from the same DFT setup as the data; "
                        "trained on as a one-atom structure so the model binds with the right cohesive energy "
                        "(repeat for several elements)")
    p.add_argument("--ensemble", type=int, default=1, metavar="N",
                   help="train a committee of N models (seeds seed..seed+N-1, each with its own validation split "
                        "unless split_seed is set, which with refit is its holdout twin's); "
                        "writes OUTPUT's stem .0 ... .N-1, their mean as one potential (.mean) and a "
                        ".committee.json with their disagreement")
    p.add_argument("--report", metavar="DIR", help="write metrics (JSON), parity plots and the learning curve to DIR")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from its checkpoint (OUTPUT.ckpt), same settings and data")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs and discard an old checkpoint")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return _run(args)
    except (ValueError, FileNotFoundError, FileExistsError, FloatingPointError, ChildProcessError) as err:
        ctx = distributed.context()
        print(f"{f'[rank {ctx.rank}] ' if ctx is not None else ''}error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; rerun the same command with --resume to continue from its last checkpoint",
              file=sys.stderr)
        return 130
    finally:
        distributed.finish()


def _epochs_arg(text: str) -> int:
    if text.strip().lower() == "auto":
        return AUTO_EPOCHS
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of epochs or auto, got {text!r}") from None


def _element_energies(items: Sequence[str]) -> dict[str, float]:
    """EL=EV pairs of --isolated-atom-energy."""
    out = {}
    for item in items:
        element, sep, value = item.partition("=")
        try:
            out[element.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--isolated-atom-energy {item!r}: expected ELEMENT=ENERGY_EV, e.g. Si=-0.881") from None
        if not sep:
            raise ValueError(f"--isolated-atom-energy {item!r}: expected ELEMENT=ENERGY_EV, e.g. Si=-0.881")
    return out


def _check_outputs(args: argparse.Namespace, outputs: list[Path]) -> None:
    """Refuse, before any work is done, to overwrite anything without --force."""
    if len(outputs) > 1:
        mean = mean_output(Path(args.output))
        if mean.is_dir():
            raise ValueError(f"{mean} is a directory")
        if mean.exists() and not (args.force or args.resume):
            raise FileExistsError(f"{mean} exists; refusing to overwrite it (use --force)")
    for out in outputs:
        if out.is_dir():
            raise ValueError(f"{out} is a directory")
        _make_parent(out)
        if out.exists() and not (args.force or args.resume):  # --resume skips a finished member
            raise FileExistsError(f"{out} exists; refusing to overwrite it (use --force)")
        ckpts = checkpoint_paths(out)
        if args.resume and not any(p.exists() for p in ckpts) and not out.exists():
            raise FileNotFoundError(f"no checkpoint {ckpts[0]} to resume from")
        for ckpt in ckpts:
            if ckpt.exists() and not (args.resume or args.force):
                raise FileExistsError(f"{ckpt} is the checkpoint of an interrupted run: continue it with --resume, "
                                      "or start over with --force")
    if args.report:
        report_dir = Path(args.report)
        try:
            check_output_directory(report_dir)
        except ValueError as err:
            raise ValueError(f"report directory {report_dir}: {err}") from None
        if report_dir.exists() and (not report_dir.is_dir() or any(report_dir.iterdir())) and not args.force:
            raise FileExistsError(f"report directory {report_dir} exists and is not empty (use --force)")


def _make_parent(path: Path) -> None:
    """Create the directory an output goes to now, so that a bad path fails
    before featurising rather than at the first checkpoint."""
    try:
        check_output_directory(path.parent)
        path.parent.mkdir(parents=True, exist_ok=True)
    except ValueError as err:
        raise ValueError(f"cannot write {path}: {err}") from None
    except OSError as err:
        raise ValueError(f"cannot create the directory of {path}: {err.strerror}") from None


def _config(args: argparse.Namespace) -> TrainConfig:
    """Defaults, then the YAML file, then the command line."""
    config = TrainConfig.from_yaml(args.config) if args.config else TrainConfig()
    cli = {k: getattr(args, k) for k in ("model", "descriptor", "epochs", "seed", "device", "derivatives")
           if getattr(args, k) is not None}
    if args.isolated_atom_energy:
        cli["isolated_atom_energies"] = {**config.isolated_atom_energies,
                                         **_element_energies(args.isolated_atom_energy)}
    config = config.updated(cli, "command line")
    config.check()
    if config.refits and config.patience > 0:
        raise ValueError("config: patience stops training on the validation loss, and the refit model (trained "
                         "on every structure) has no validation set: set refit: false to use early stopping")
    return config


def _descriptor_of_interrupted_run(config: TrainConfig, outputs: list[Path]) -> TrainConfig:
    """`config` with the preset `auto` chose for the run being resumed, as its
    checkpoints record it: choosing again would give the same answer after
    minutes of quadratic fits (10 on the water set)."""
    paths = [p for out in outputs for p in checkpoint_paths(out)]
    chosen = distributed.on_main(lambda: checkpoints.saved_descriptor(paths))
    if chosen is None:
        return config
    print_line(f"descriptor auto -> {chosen}: as chosen for the interrupted run (its checkpoint)")
    return config.updated({"descriptor": chosen})


def _epochs_for(config: TrainConfig, n_atoms: int) -> TrainConfig:
    """`epochs: auto` resolved from the whole file (every rank reads it, so
    all ranks and the holdout twin agree), and said."""
    resolved = with_epochs(config, n_atoms)
    if resolved.epochs != config.epochs and config.model == "nn":
        print_line(f"epochs auto -> {resolved.epochs}: at most 1600 and about {EPOCH_ATOM_BUDGET:.1e} atom-epochs "
                   f"for {n_atoms} atoms (--epochs sets it)")
    return resolved


def _elements_of(structures) -> tuple[str, ...]:
    """Elements present, ordered by atomic number."""
    symbols = {s for a in structures for s in a.get_chemical_symbols()}
    return tuple(sorted(symbols, key=lambda s: atomic_numbers[s]))


def _run(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    restart_clock()
    output = Path(args.output)
    if args.ensemble < 1:
        raise ValueError("--ensemble must be >= 1")
    outputs = member_outputs(output, args.ensemble)
    ctx = distributed.start()  # under torchrun with several ranks: data-parallel
    distributed.on_main(lambda: _check_outputs(args, outputs))
    config = _config(args)
    finished = distributed.on_main(lambda: all(_finished(out) for out in outputs)
                                   and (len(outputs) == 1 or mean_output(output).exists()))
    if args.resume and finished:
        for out in outputs:  # nothing to do: say so before reading and featurising the data
            print_line(f"{out} is finished; skipping it")
        return 0
    if ctx is not None:
        if args.ensemble > 1:
            raise ValueError("--ensemble is not supported under torchrun: train the members one by one (--seed)")
        config = config.updated({"device": distributed.device_for(config.device)})
    torch.set_num_threads(config.threads or max(1, (os.cpu_count() or 1) // (ctx.local_world if ctx else 1)))
    set_kernel_threads(refit.kernel_threads(config, ctx.local_world if ctx else 1))

    data_path = Path(args.data)
    structures = read_structures(data_path)
    digest = data_sha256(data_path)
    if ctx is not None:
        distributed.check_same_data(digest)
    elements = _elements_of(structures)
    print_line(f"data: {data_path} ({len(structures)} structures, {sum(len(a) for a in structures)} atoms, "
               f"elements {' '.join(elements)})")
    check_isolated_atoms(elements, config)  # before the descriptor choice's minute of work
    config = _epochs_for(config, sum(len(a) for a in structures))
    if args.resume and config.descriptor == AUTO_DESCRIPTOR:
        config = _descriptor_of_interrupted_run(config, outputs)
    if config.descriptor == AUTO_DESCRIPTOR and ctx is None and config.model == "nn":
        plan_memory(structures, descriptor_choice.CandidateShape(elements), config)  # refuses before work
    name, descriptors = descriptor_choice.resolve(config, elements, structures)
    config = config.updated({"descriptor": name})  # the twin, checkpoints and the file record the choice
    print_line(f"descriptor {config.descriptor}: {', '.join(f'{e} {descriptors.size(e)}' for e in elements)} "
               f"functions, cutoff {descriptors.cutoff:g} Å")
    t = time.perf_counter()
    if config.isolated_atom_energies:
        print_line("isolated atoms (always trained): " + ", ".join(
            f"{e} {E:g} eV" for e, E in sorted(config.isolated_atom_energies.items())))
    if config.model == "gp":
        if ctx is not None:
            raise ValueError("--model gp is fitted in closed form by one process: run it without torchrun")
        return _run_gp(args, structures, descriptors, config, output, data_path, digest, t_start)
    if ctx is None:
        memory = plan_memory(structures, descriptors, config)  # refuses a run that cannot fit, before any work
        n = kernel_threads()
        print_line(memory.line() + (f"; {n} kernel thread{'s' if n > 1 else ''} per training"
                                    if memory.streamed_mode else ""))
        bar = Bar(len(structures) + len(config.isolated_atom_energies), "featurising", "structures")
        data = featurize(structures, descriptors, config, streamed=memory.streamed_mode,
                         progress=lambda done, total: bar.update(done))
        bar.close()
        print_line(f"featurised in {fmt_time(time.perf_counter() - t)} ({data.nbytes() / 2**20:.0f} MiB)")
    else:
        data = _featurize_shard(ctx, structures, descriptors, config, t)
    _print_plan(config)
    results = [_train_and_write(data, descriptors, member, out, args.resume, data_path, digest)
               for member, out in _members(config, outputs)]
    if len(outputs) > 1:
        write_committee(output, results, data, digest)
    if args.report:
        write_report(Path(args.report), results[0], data, args.force)
    print_line(f"wall time {fmt_time(time.perf_counter() - t_start)}")
    return 0


def _run_gp(args: argparse.Namespace, structures, descriptors, config: TrainConfig, output: Path, data_path: Path,
            digest: str, t_start: float) -> int:
    """--model gp: the closed-form GP fit (nnp.train.gp_run) in place of training."""
    from nnp.train import gp_run

    if args.ensemble != 1 or args.resume:
        raise ValueError("--model gp is fitted in closed form: --ensemble and --resume apply to networks only")
    code = gp_run.run(structures, descriptors, config, output, data_path, digest,
                      Path(args.report) if args.report else None, args.force)
    print_line(f"wall time {fmt_time(time.perf_counter() - t_start)}")
    return code


def _featurize_shard(ctx: distributed.Context, structures, descriptors, config: TrainConfig, t: float):
    """Data-parallel: this rank's shard, featurised after a memory plan for
    the shard (nnp.train.distributed)."""
    every = with_isolated_atoms(structures, config)
    mine = [every[s] for s in distributed.my_structures(ctx, every)]
    memory = plan_memory(mine, descriptors, config.updated({"isolated_atom_energies": {}}), share=ctx.local_world,
                         reduce=distributed.reduce)
    print_line(f"data-parallel: {ctx.world} ranks ({ctx.local_world} on this node), {len(mine)} of the "
               f"{len(every)} structures on rank 0; the holdout twin, if any, trains before the written model")
    print_line(memory.line() + " per rank")
    bar = Bar(len(mine), "featurising (rank 0)", "structures")
    data = distributed.featurize_shard(ctx, every, descriptors, memory.streamed_mode,
                                       progress=lambda done, total: bar.update(done))
    bar.close()
    print_line(f"featurised in {fmt_time(time.perf_counter() - t)} ({data.nbytes() / 2**20:.0f} MiB on rank 0)")
    return data


def _print_plan(config: TrainConfig) -> None:
    n_adam, n_lbfgs = phase_lengths(config)
    print_line(f"network: {config.hidden_layers} x {config.hidden_nodes} {config.activation}; {config.epochs} epochs "
               f"(Adam {n_adam}, batch {config.batch_size} structures, lr {config.learning_rate:g} "
               f"{config.lr_schedule}; L-BFGS {n_lbfgs}), weights E {config.energy_weight:g} "
               f"F {config.force_weight:g} S {config.stress_weight:g}, seed {config.seed}, device {config.device}")
    if config.refits:
        how = "alongside, in a second process" if refit.twin_in_parallel(config) else "first"
        print_line(f"refit: the written model trains on all structures; its holdout twin, which leaves out the "
                   f"validation structures (fraction {config.validation_fraction:g}) and gives the validation "
                   f"errors, trains {how}")


def _members(config: TrainConfig, outputs: list[Path]):
    """(config, output) of each committee member (seeds seed, seed + 1, ...)."""
    for k, out in enumerate(outputs):
        member = config if len(outputs) == 1 else config.updated({"seed": config.seed + k})
        if len(outputs) > 1:
            print_line(f"committee member {k + 1}/{len(outputs)}: seed {member.seed} -> {out}")
        yield member, out


def _finished(out: Path) -> bool:
    """Whether an earlier run wrote `out` and left no checkpoint of it."""
    return out.exists() and not any(p.exists() for p in checkpoint_paths(out))


def _train_and_write(data: FeaturizedDataset, descriptors, config: TrainConfig, out: Path, resume: bool,
                     data_path: Path, digest: str) -> Member:
    if resume and distributed.on_main(lambda: _finished(out)):  # data-parallel: rank 0's files decide
        print_line(f"{out} is finished; skipping it")
        return Member(out, config, None, None)
    twin_error = ""
    try:
        final, holdout = train_member(data, descriptors, config, out, resume, digest)
    except HoldoutTwinFailed as err:
        if err.final is None:
            raise  # training stopped: the error says how to resume
        final, holdout, twin_error = err.final, None, str(err)  # the finished model is written all the same
    if distributed.is_main():  # data-parallel: rank 0 writes
        pot = final.model.to_potential_data(provenance(data_path, digest, config, final, holdout, data))
        potential_file.write(pot, out, overwrite=True)  # refused above unless --force or resuming
        for path in checkpoint_paths(out):
            path.unlink(missing_ok=True)
    print_summary(final, holdout, data, config)
    print_line(f"wrote {out}")
    if twin_error:
        print(f"warning: {twin_error}; {out} is written, its validation errors are not measured", file=sys.stderr)
    return Member(out, config, final, holdout, twin_error)
