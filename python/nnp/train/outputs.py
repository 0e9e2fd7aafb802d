"""What `python -m nnp.train` writes and prints besides the training log:
the provenance comments of the potential file, the summary of errors, the
report directory, and for a committee the mean potential and its JSON
record."""

from __future__ import annotations

import datetime
import json
import math
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

import nnp
from nnp import _core, committee
from nnp.analysis import report
from nnp.constants import EV_PER_A3_IN_GPA
from nnp.data import FeaturizedDataset, isolated_atom
from nnp.io import potential_file
from nnp.io.atomic import atomic_write_text
from nnp.model.network import NNPModel
from nnp.train import distributed
from nnp.train.config import TrainConfig
from nnp.train.console import print_line
from nnp.train.loop import TrainResult
from nnp.train.loss import Metrics, evaluate, metrics_by_config_type
from nnp.train.refit import Member
from nnp.train.training_set import isolated_structures

# The potential file's comment line that records the run's settings (JSON),
# read back by nnp.learn to give a committee's members one descriptor choice.
CONFIG_PREFIX = "config: "


def member_outputs(output: Path, n: int) -> list[Path]:
    """Output files of an n-model committee: Si.nnp -> Si.0.nnp, Si.1.nnp, ..."""
    if n == 1:
        return [output]
    return [output.with_name(f"{output.stem}.{k}{output.suffix}") for k in range(n)]


def mean_output(output: Path) -> Path:
    """The committee's mean as one potential file: Si.nnp -> Si.mean.nnp."""
    return output.with_name(f"{output.stem}.mean{output.suffix}")


def _version() -> str:
    try:
        return version("nnp")
    except Exception:
        return str(getattr(nnp, "__version__", "unknown"))


def provenance(data_path: Path, digest: str, config: TrainConfig, final: TrainResult, holdout: TrainResult | None,
               data: FeaturizedDataset) -> list[str]:
    """Comment lines for the potential file (no wall time: same seed, same file
    apart from the date line). `holdout` None: the holdout twin failed."""
    split_line = f"{len(final.train_indices)} train, {len(final.validation_indices)} validation"
    if holdout is None:
        split_line = (f"all {len(final.train_indices)} train (refit); the holdout twin failed: "
                      "validation errors not measured")
    elif holdout is not final:
        split_line = (f"all {len(final.train_indices)} train (refit); the holdout twin: "
                      f"{len(holdout.train_indices)} train, {len(holdout.validation_indices)} validation")
    lines = [
        f"trained by nnp {_version()} (python -m nnp.train)",
        f"date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}",
        f"data: {data_path.resolve()}",
        f"data sha256: {digest}",
        f"data: {distributed.n_structures(data)} structures, {int(distributed.labels(data).n_atoms.sum())} atoms; "
        f"{split_line}",
        CONFIG_PREFIX + json.dumps(config.as_dict(), sort_keys=True),
        f"train RMSE: {final.train}",
    ]
    if holdout is not None and holdout.validation is not None:
        lines.append(f"validation RMSE: {holdout.validation}  (best epoch {holdout.best_epoch}"
                     + (" of the holdout twin)" if holdout is not final else ")"))
    return lines


def print_summary(final: TrainResult, holdout: TrainResult | None, data: FeaturizedDataset,
                  config: TrainConfig) -> None:
    """The errors of the written model and its holdout twin (None: the twin failed)."""
    if holdout is None:
        print_line(f"train      RMSE: {final.train}  MAE: {final.train.mae_str()}  (the written model, all "
                   f"{len(final.train_indices)} structures)")
        print_line("validation: not measured (the holdout twin failed)")
        print_isolated_atoms(final.model, data)
        return
    groups = metrics_by_config_type(holdout.model, data, holdout.validation_indices, config)
    twin = " of the holdout model" if holdout is not final else ""
    if len(groups) > 1:
        print_line(f"validation{twin} by config_type (RMSE | MAE):")
        for name, (count, m) in groups.items():
            print_line(f"  {name:16s} {count:4d} structures  {m} | {m.mae_str()}")
    if holdout is not final:
        print_line(f"holdout    RMSE: {holdout.train}  MAE: {holdout.train.mae_str()}  "
                   f"(its {len(holdout.train_indices)} training structures)")
    print_line(f"train      RMSE: {final.train}  MAE: {final.train.mae_str()}"
               + (f"  (the written model, all {len(final.train_indices)} structures)" if twin else ""))
    if holdout.validation is not None:
        for name, m in holdout.parts.items():
            print_line(f"  {name + ' alone':15s} RMSE: {m}  MAE: {m.mae_str()}")
        print_line(f"validation RMSE: {holdout.validation}  MAE: {holdout.validation.mae_str()}  "
                   f"(best epoch {holdout.best_epoch}{twin}"
                   + (f"; weight {config.quadratic_weight:g} on the quadratic term)" if holdout.parts else ")"))
        if holdout is not final and len(holdout.validation_indices):
            print_line(extrapolation_line(holdout.model, data, holdout.validation_indices))
    print_isolated_atoms(final.model, data)


def extrapolating(model: NNPModel, data: FeaturizedDataset, indices,
                  margin: float = _core.DEFAULT_EXTRAPOLATION_MARGIN) -> tuple[int, int, int]:
    """(atoms, structures with such an atom, atoms in all) among the
    structures `indices` whose descriptor leaves `model`'s training range
    widened by `margin` of it on both sides: the atoms LAMMPS and
    nnp.evaluate would warn about with that model. Sharded data: `indices`
    are global, counted over all ranks (a collective)."""
    local = torch.as_tensor(distributed.owned(data, indices), dtype=torch.long)
    flagged = torch.zeros(len(data), dtype=torch.bool)
    atoms = outside = 0
    for e in data.elements:
        block = data.blocks[e]
        rows = torch.isin(block.row_struct, local)
        _, _, lo, hi = (t.detach().cpu().to(torch.float64) for t in model.scaling(e))
        slack = margin * (hi - lo)  # as the core's bounds (nnp::Potential::set_extrapolation_margin)
        G = block.G[rows].to(torch.float64)
        out = ((G < lo - slack) | (G > hi + slack)).any(1)
        atoms += int(rows.sum())
        outside += int(out.sum())
        flagged[block.row_struct[rows][out]] = True
    total = distributed.reduce_floats(data, [outside, int(flagged.sum()), atoms])
    return int(total[0]), int(total[1]), int(total[2])


def extrapolation_line(model: NNPModel, data: FeaturizedDataset, indices) -> str:
    """One line: the validation atoms the holdout model would warn about."""
    outside, structures, atoms = extrapolating(model, data, indices)
    return (f"validation atoms outside the holdout model's training range (+{_core.DEFAULT_EXTRAPOLATION_MARGIN:.0%}, "
            f"where MD would warn): {outside} of {atoms}, in {structures} of {len(indices)} structures")


def print_isolated_atoms(model: NNPModel, data: FeaturizedDataset) -> None:
    """The model's isolated-atom energies against the data's lowest energy
    per atom: the binding that MD far from the data (boiling, surfaces) sees."""
    labels = distributed.labels(data)  # all ranks' structures when data-parallel
    lowest = float((labels.energy / labels.n_atoms).min())
    parts = []
    for e in data.elements:
        e_atom = float(model.predict([isolated_atom(e, math.nan)])[0]["energy"])  # the label is not used
        parts.append(f"{e} {e_atom:.3f} eV")
    print_line(f"isolated atoms in the model: {', '.join(parts)} (lowest energy in the data: {lowest:.3f} eV/atom)")
    if len(isolated_structures(data)) == 0:
        print_line("  no isolated atom was trained on, so this limit is unconstrained and the model may bind too "
                   "weakly (a liquid that boils at 1 atm): give --isolated-atom-energy EL=EV from the data's DFT "
                   "setup (docs/robustness.md)")


def write_report(directory: Path, member: Member, data: FeaturizedDataset, overwrite: bool) -> None:
    if member.final is None:
        print_line(f"no report: {member.output} was finished by an earlier run")
        return
    final, holdout = member.final, member.holdout
    # Data-parallel: every rank predicts its structures, rank 0 writes.
    sets = {"train": distributed.gather_predictions(data, final.model, final.train_indices)}
    twin_val = holdout is not None and holdout is not final and len(holdout.validation_indices) > 0
    extrapolation = extrapolation_line(holdout.model, data, holdout.validation_indices) if twin_val else ""
    if not distributed.is_main():
        if holdout is not None and len(holdout.validation_indices):
            distributed.gather_predictions(data, holdout.model, holdout.validation_indices)
        return
    if holdout is None:
        notes = [f"train: the written model, trained on all {len(final.train_indices)} structures (refit).",
                 f"validation: not measured; the holdout twin failed ({member.twin_error})."]
        report.write_report(directory, sets, final.history, overwrite=overwrite, notes=notes)
        print_line(f"wrote the report to {directory} (without validation errors)")
        return
    if len(holdout.validation_indices):
        sets["validation"] = distributed.gather_predictions(data, holdout.model, holdout.validation_indices)
    notes, curve_of = [], report.MODEL_AS_WRITTEN
    if holdout is not final:
        curve_of = "the holdout twin as written (with its quadratic term, if any; without the validation structures)"
        notes = [f"train: the written model, trained on all {len(final.train_indices)} structures (refit).",
                 f"validation: the holdout model, trained on the other {len(holdout.train_indices)} structures "
                 f"with the same settings; its best epoch ({holdout.best_epoch}) was chosen on these. "
                 "The learning curve is the holdout model's.", *([extrapolation] if extrapolation else [])]
    report.write_report(directory, sets, holdout.history, overwrite=overwrite, notes=notes, curve_of=curve_of)
    print_line(f"wrote the report to {directory}")


# ---------------------------------------------------------------- committee


def _mean_validation(results: list[Member], data: FeaturizedDataset) -> tuple[Metrics | None, str]:
    """Validation errors of the members' mean when they share one split:
    the mean of the models that did not see it (the holdout twins with
    refit, else the members themselves); else None and the reason."""
    if any(m.twin_error for m in results):
        return None, "the holdout twin of a member failed"
    if any(m.holdout is None for m in results):
        return None, "a member was finished by an earlier run, whose holdout model is gone"
    val = results[0].holdout.validation_indices
    if len(val) == 0:
        return None, "nothing was held out (validation_fraction 0)"
    if any(not np.array_equal(m.holdout.validation_indices, val) for m in results):
        return None, "the members have different validation splits (set split_seed to share one)"
    mean = committee.mean_potential([m.holdout.model.to_potential_data() for m in results])
    return evaluate(NNPModel.from_potential_data(mean), data, val, results[0].config), ""


def _metrics_json(m: Metrics) -> dict[str, float | None]:
    """Metrics in report units, NaN (no stress labels) as null."""
    values = {"energy_mae_meV_per_atom": 1000 * m.energy_mae, "energy_rmse_meV_per_atom": 1000 * m.energy_rmse,
              "force_mae_eV_per_A": m.force_mae, "force_rmse_eV_per_A": m.force_rmse,
              "stress_mae_GPa": EV_PER_A3_IN_GPA * m.stress_mae, "stress_rmse_GPa": EV_PER_A3_IN_GPA * m.stress_rmse}
    return {k: (v if math.isfinite(v) else None) for k, v in values.items()}


def _disagreement(models: list[NNPModel], data: FeaturizedDataset) -> dict[str, dict[str, float]]:
    """Per config_type: the RMS over structures of the std across `models`
    of the energy per atom and of the forces."""
    per_type: dict[str, list[tuple[float, float]]] = {}
    for start in range(0, len(data), 32):
        idx = np.arange(start, min(start + 32, len(data)))
        batch = data.collate(idx)
        preds = [m(batch, forces=True) for m in models]
        e = torch.stack([p["energy"].detach() / batch.n_atoms for p in preds])  # (K, S)
        f = torch.stack([p["forces"].detach() for p in preds])  # (K, N, 3)
        e_std = e.std(0, unbiased=False)
        f_var = f.var(0, unbiased=False).sum(-1)  # (N,)
        f_std = torch.sqrt(torch.zeros(len(idx), dtype=f_var.dtype).index_add(0, batch.atom_struct, f_var)
                           / (3 * batch.n_atoms))
        for s, i in enumerate(idx):
            per_type.setdefault(data.config_types[i], []).append((float(e_std[s]), float(f_std[s])))
    return {
        ct: {"structures": len(v), "energy_std_meV_per_atom": 1000 * float(np.sqrt(np.mean([x[0] ** 2 for x in v]))),
             "force_std_eV_per_A": float(np.sqrt(np.mean([x[1] ** 2 for x in v])))}
        for ct, v in sorted(per_type.items())
    }


def write_committee(output: Path, results: list[Member], data: FeaturizedDataset, digest: str) -> None:
    """Disagreement of the committee on every structure, and what later
    uncertainty estimates need: member files, seeds, splits; and the
    members' mean as one potential file (`nnp.committee`)."""
    mean = committee.write_mean([m.output for m in results], mean_output(output), overwrite=True)
    mean_validation, why_not = _mean_validation(results, data)
    summary = _disagreement([NNPModel.from_potential_data(potential_file.read(m.output)) for m in results], data)
    info = {
        "members": [str(m.output) for m in results],
        "mean": str(mean),
        "seeds": [m.config.seed for m in results],
        "split_seeds": [m.config.split_seed_used for m in results],
        "validation_fraction": results[0].config.validation_fraction,
        "refit": results[0].config.refits,
        "data_sha256": digest,
        "disagreement_by_config_type": summary,
        "mean_validation": _metrics_json(mean_validation) if mean_validation is not None else None,
    }
    path = output.with_name(f"{output.stem}.committee.json")
    atomic_write_text(path, json.dumps(info, indent=2) + "\n")
    print_line("committee disagreement (RMS over structures of the std across members):")
    for ct, v in summary.items():
        print_line(f"  {ct:16s} E {v['energy_std_meV_per_atom']:6.2f} meV/atom  F {v['force_std_eV_per_A']:.4f} eV/Å")
    print_line(f"wrote {path}")
    print_line(f"wrote {mean}: the mean of the {len(results)} members as one potential (one wider network per element)")
    if mean_validation is not None:
        twins = "holdout models'" if results[0].config.refits else "members'"
        print_line(f"validation of the mean (the {twins} mean on their shared split): RMSE {mean_validation}  "
                   f"MAE: {mean_validation.mae_str()}")
    else:
        print_line(f"  the validation errors of the mean are not measured: {why_not}")

