"""Tables, CSV files and the report of the descriptor-length study (`nnp.study`).

Reads the stored stage results of DIR/points/R/*.json and writes, in DIR:

  report.md                    every number, with the DFT-PBE references of docs/science.md beside them
  errors.csv                   validation (and train) errors per run (point and model)
  properties.csv               0 K, crystal NPT, liquid and amorphous numbers and the cost per run
  rdf_{crystal,amorphous,liquid}.csv   r and g(r) of every run
  errors_vs_length.png         energy and force MAE/RMSE vs descriptor length, both series and every
                               model (paper Fig. 4)
  rdf_{crystal,amorphous,liquid}.png   g(r) overlaid by length, one panel per series (Fig. 5)
  bulk_modulus_vs_length.png   B from NPT volume fluctuations (error bars) and at 0 K, DFT line (Fig. 6)
  elastic_vs_length.png        a0, C11, C12, C44 at 0 K vs length, DFT lines

A point or stage that is missing or failed shows as "—" (failures are listed
with their error). Every file is written atomically.
"""

from __future__ import annotations

import csv
import datetime
import io
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from nnp.io.atomic import atomic_write_text
from nnp.progress import fmt_time
from nnp.study.config import MODEL_NAMES, STAGES, StudyConfig, split_run
from nnp.study.plots import plot_bulk_modulus, plot_elastic, plot_errors, plot_rdf
from nnp.study.references import DFT_PBE, EXPERIMENT

RDF_KINDS = ("crystal", "amorphous", "liquid")
OUTPUT_FILES = (
    "report.md", "errors.csv", "properties.csv",
    *(f"rdf_{k}.csv" for k in RDF_KINDS),
    "errors_vs_length.png", *(f"rdf_{k}.png" for k in RDF_KINDS),
    "bulk_modulus_vs_length.png", "elastic_vs_length.png",
)

ERROR_COLUMNS = (
    ("val_energy_mae", "validation energy MAE (meV/atom)"),
    ("val_energy_rmse", "validation energy RMSE (meV/atom)"),
    ("val_force_mae", "validation force MAE (eV/Å)"),
    ("val_force_rmse", "validation force RMSE (eV/Å)"),
    ("val_stress_rmse", "validation stress RMSE (GPa)"),
    ("train_energy_rmse", "train energy RMSE (meV/atom)"),
    ("train_force_rmse", "train force RMSE (eV/Å)"),
)
PROPERTY_COLUMNS = (
    ("a0", "0 K lattice constant (Å)"),
    ("c11", "C11 (GPa)"), ("c12", "C12 (GPa)"), ("c44", "C44 relaxed (GPa)"),
    ("c44_unrelaxed", "C44 unrelaxed (GPa)"), ("b0", "0 K bulk modulus (C11+2C12)/3 (GPa)"),
    ("a_npt", "NPT lattice constant (Å)"), ("a_npt_err", "its error (Å)"),
    ("b_npt", "NPT bulk modulus kT<V>/<dV²> (GPa)"), ("b_npt_err", "its error (GPa)"),
    ("crystal_temperature", "crystal <T> (K)"), ("crystal_cn", "crystal coordination"),
    ("liquid_density", "liquid density (g/cm³)"), ("liquid_density_err", "its error (g/cm³)"),
    ("liquid_pressure", "liquid pressure (GPa)"), ("liquid_pressure_err", "its error (GPa)"),
    ("liquid_cn", "liquid coordination"),
    ("amorphous_density", "amorphous density (g/cm³)"), ("amorphous_density_err", "its error (g/cm³)"),
    ("amorphous_cn", "amorphous coordination"),
    ("liquid_boiled", "liquid boiled (density under half the crystal's; 1/0)"),
    ("amorphous_boiled", "amorphous boiled (1/0)"),
    ("crystal_extrapolating", "crystal: extrapolating atoms (fraction)"),
    ("liquid_extrapolating", "liquid: extrapolating atoms (fraction)"),
    ("amorphous_extrapolating", "amorphous: extrapolating atoms (fraction)"),
    ("train_wall_s", "training or GP fit, with featurising (wall s)"),
    ("crystal_us", "crystal MD cost (µs/atom/step)"),
    ("melt_us", "melt-quench MD cost (µs/atom/step)"),
)


# ------------------------------------------------------------------ collect


def _get(d: Any, *keys, scale: float = 1.0) -> float:
    for k in keys:
        if not isinstance(d, dict) or d.get(k) is None:
            return math.nan
        d = d[k]
    try:
        return float(d) * scale
    except (TypeError, ValueError):
        return math.nan


def collect(sdir, config: StudyConfig) -> list[dict[str, Any]]:
    """One row per run of the study (a point with one model): numbers (NaN
    when missing), stage statuses and errors, and the RDFs."""
    rows = []
    for run in config.runs:
        p, model = split_run(run)
        res = {stage: sdir.result(run, stage) for stage in STAGES}
        done = {s: r for s, r in res.items() if r and r.get("status") == "done"}
        row: dict[str, Any] = {"point": p, "model": model, "run": run, "series": p[0], "length": int(p[1:])}
        row["status"] = {s: (r.get("status") if r else "pending") for s, r in res.items()}
        row["errors"] = {s: r.get("error", "") for s, r in res.items() if r and r.get("status") == "failed"}
        row["wall_s"] = sum(float(r.get("wall_s") or 0) for r in res.values() if r)
        tr = done.get("train")
        row["same_as"] = (tr or {}).get("same_as")
        row["n_functions"] = int(tr["n_functions"]) if tr else int(p[1:])
        row["train_energy_rmse"] = _get(tr, "train_energy_rmse", scale=1000)
        row["train_force_rmse"] = _get(tr, "train_force_rmse")
        # A twin's copied results took no time: its cost is the original's.
        row["train_wall_s"] = _get(sdir.result(row["same_as"], "train") if row["same_as"] else tr, "wall_s")
        val = done.get("validation")
        m = (val or {}).get("metrics", {}).get("validation", {}).get("overall")
        row["val_energy_mae"] = _get(m, "energy_mae_meV_atom")
        row["val_energy_rmse"] = _get(m, "energy_rmse_meV_atom")
        row["val_force_mae"] = _get(m, "force_mae_eV_A")
        row["val_force_rmse"] = _get(m, "force_rmse_eV_A")
        row["val_stress_rmse"] = _get(m, "stress_rmse_GPa")
        zk = done.get("zero_k")
        for key, src in (("a0", "a"), ("c11", "c11"), ("c12", "c12"), ("c44", "c44"),
                         ("c44_unrelaxed", "c44_unrelaxed"), ("b0", "bulk_modulus")):
            row[key] = _get(zk, src)
        cr = done.get("crystal")
        row["a_npt"], row["a_npt_err"] = _get(cr, "a"), _get(cr, "a_err")
        row["b_npt"], row["b_npt_err"] = _get(cr, "bulk_modulus"), _get(cr, "bulk_modulus_err")
        row["crystal_temperature"] = _get(cr, "temperature")
        row["crystal_cn"] = _get(cr, "coordination")
        row["crystal_extrapolating"] = _get(cr, "extrapolating_fraction")
        row["crystal_us"] = _get(cr, "seconds_per_atom_step", scale=1e6)
        me = done.get("melt")
        row["melt_us"] = _get(me, "seconds_per_atom_step", scale=1e6)
        for kind in ("liquid", "amorphous"):
            row[f"{kind}_density"] = _get(me, kind, "density")
            row[f"{kind}_density_err"] = _get(me, kind, "density_err")
            row[f"{kind}_cn"] = _get(me, kind, "coordination")
            row[f"{kind}_pressure"] = _get(me, kind, "pressure_gpa")
            row[f"{kind}_pressure_err"] = _get(me, kind, "pressure_gpa_err")
            row[f"{kind}_boiled"] = _get(me, kind, "boiled")
            row[f"{kind}_extrapolating"] = _get(me, kind, "extrapolating_fraction")
        row["rdf"] = {}
        if cr:
            row["rdf"]["crystal"] = (np.asarray(cr["rdf_r"], float), np.asarray(cr["rdf_g"], float))
        if me:
            for kind in ("liquid", "amorphous"):
                if not me[kind].get("boiled"):  # a gas's g(r) would only flatten the plot
                    row["rdf"][kind] = (np.asarray(me[kind]["rdf_r"], float), np.asarray(me[kind]["rdf_g"], float))
        rows.append(row)
    return rows


# --------------------------------------------------------------------- files


def _num(x: float, digits: int) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _pm(x: float, err: float, digits: int) -> str:
    """x ± err; a quantity held fixed (error exactly 0, e.g. the density of
    an NVT run) or without an error bar is printed alone."""
    if not math.isfinite(x):
        return "—"
    return f"{x:.{digits}f} ± {err:.{digits}f}" if math.isfinite(err) and err > 0 else f"{x:.{digits}f}"


def scaled_down(c: StudyConfig) -> list[str]:
    """How `c` is smaller than the paper's protocol (`StudyConfig()`), as
    phrases for the banner; empty for a full run. `--quick` gives all of them."""
    paper = StudyConfig()
    out = []
    epochs, paper_epochs = c.train.get("epochs"), paper.train.get("epochs")
    if epochs is not None and (paper_epochs is None or epochs < paper_epochs):
        out.append(f"{epochs} training epochs")
    if c.max_structures and c.max_structures != paper.max_structures:
        out.append(f"{c.max_structures} training structures")
    if c.crystal_ps < paper.crystal_ps:
        out.append(f"{c.crystal_ps:g} ps crystal NPT (the paper: {paper.crystal_ps:g} ps)")
    if c.crystal_cells < paper.crystal_cells or c.melt_cells < paper.melt_cells:
        out.append(f"{8 * c.crystal_cells**3}-atom crystal and {8 * c.melt_cells**3}-atom melt cells "
                   f"(the paper: {8 * paper.crystal_cells**3})")
    if c.quench_rate > paper.quench_rate:
        out.append(f"a quench rate of {c.quench_rate:,.0f} K/ps (the paper: {paper.quench_rate:g} K/ps)")
    if c.liquid_ps < paper.liquid_ps or c.amorphous_ps < paper.amorphous_ps:
        out.append(f"{c.liquid_ps:g} ps liquid and {c.amorphous_ps:g} ps amorphous averages")
    return out


def banner(c: StudyConfig) -> str:
    """The one-line warning of a scaled-down run ("" for the full protocol),
    on top of report.md and on every plot."""
    return "QUICK RUN: scaled-down settings, the numbers test the pipeline and are not results" \
        if scaled_down(c) else ""


def plot_banner(c: StudyConfig) -> str:
    """The banner of a scaled-down run's plots, short enough for one line of
    the narrowest figure; "" for the full protocol."""
    return "QUICK RUN (scaled-down settings): not results" if scaled_down(c) else ""


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow(["" if isinstance(v, float) and not math.isfinite(v) else (f"{v:.10g}" if isinstance(v, float) else v)
                    for v in r])
    return buf.getvalue()


def write_csvs(root: Path, rows: list[dict]) -> list[str]:
    written = []
    keys = [k for k, _ in ERROR_COLUMNS]
    atomic_write_text(root / "errors.csv", _csv_text(
        ["point", "model", "series", "length", "n_functions", "status", *keys],
        [[r["point"], r["model"], r["series"], r["length"], r["n_functions"], r["status"]["validation"],
          *(r[k] for k in keys)] for r in rows]))
    written.append("errors.csv")
    keys = [k for k, _ in PROPERTY_COLUMNS]
    atomic_write_text(root / "properties.csv", _csv_text(
        ["point", "model", "series", "length", *keys],
        [[r["point"], r["model"], r["series"], r["length"], *(r[k] for k in keys)] for r in rows]))
    written.append("properties.csv")
    for kind in RDF_KINDS:
        have = [r for r in rows if kind in r["rdf"]]
        path = root / f"rdf_{kind}.csv"
        if not have:
            path.unlink(missing_ok=True)
            continue
        r0 = have[0]["rdf"][kind][0]
        cols = [r["rdf"][kind][1] if len(r["rdf"][kind][0]) == len(r0) else np.full(len(r0), math.nan) for r in have]
        atomic_write_text(path, _csv_text(["r_A", *(r["run"] for r in have)],
                                    [[float(r0[i]), *(float(c[i]) for c in cols)] for i in range(len(r0))]))
        written.append(path.name)
    return written


# ------------------------------------------------------------------ markdown


def _header(rows: list[dict], c: StudyConfig, stored: dict) -> list[str]:
    ident = stored.get("identity", {})
    L: list[str] = ["# Descriptor-length study", ""]
    if banner(c):
        # A quick run's numbers (e.g. B from 0.2 ps of NPT) look like results; say they are not, first.
        L += [f"> **{banner(c)}.** This run used " + "; ".join(scaled_down(c)) + ". For results, run "
              "without `--quick` (docs/study.md).", ""]
    L.append(f"Generated {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')} by "
             "`nnp study`. Data: "
             f"`{stored.get('data', '?')}` ({ident.get('structures', '?')} structures, sha256 "
             f"{str(ident.get('data_sha256', '?'))[:12]}…); split and seed {c.seed} shared by all points.")
    tr = ident.get("train", {})
    L.append("")
    nets = (f"Networks {tr.get('hidden_layers', '?')} × {tr.get('hidden_nodes', '?')} {tr.get('activation', '')}, "
            f"{tr.get('epochs', '?')} epochs, validation" if "nn" in c.models else "Validation")
    L.append(f"{nets} fraction {tr.get('validation_fraction', '?')}. "
             f"0 K: {8 * c.elastic_cells**3}-atom cell, strain ±{c.elastic_strain:g}. "
             f"Crystal NPT: {8 * c.crystal_cells**3} atoms, {c.crystal_temperature:g} K, {c.pressure_atm:g} atm, "
             f"{c.timestep_fs:g} fs, {c.crystal_equilibrate_ps:g} ps equilibration + {c.crystal_ps:g} ps production. "
             f"Melt-quench: {8 * c.melt_cells**3} atoms, {c.melt_ps:g} ps at {c.melt_temperature:g} K, liquid "
             f"{c.liquid_equilibrate_ps:g} + {c.liquid_ps:g} ps at {c.liquid_temperature:g} K"
             + (f" (NVT at {c.liquid_density:g} g/cm³)" if c.liquid_density else "") + ", quench to "
             f"{c.quench_end_temperature:g} K at {c.quench_rate:,.0f} K/ps, amorphous {c.amorphous_equilibrate_ps:g} + "
             f"{c.amorphous_ps:g} ps. Error bars: {c.blocks} block averages.")
    if "gp" in c.models:
        hyper = f"ζ = {tr.get('gp_zeta')}" if tr.get("gp_kernel") == "dot" else f"ℓ = {tr.get('gp_lengthscale')}"
        L += ["", f"A sparse GP on every point (`nnp train --model gp`, docs/gp.md; the same split, "
              f"scaling and core as the networks): {tr.get('gp_kernel', '?')} kernel (δ = {tr.get('gp_delta')} eV, {hyper}), "
              f"{tr.get('gp_sparse', '?')} sparse points per element ({tr.get('gp_selection', '?')}), prior mean "
              f"{tr.get('gp_mean', '?')}, noise σ_E {tr.get('gp_sigma_energy')} eV/atom, σ_F "
              f"{tr.get('gp_sigma_force')} eV/Å, σ_V {tr.get('gp_sigma_virial')} eV/atom; fitted to the "
              "training structures only (no refit), as the networks are trained."]
    total = sum(r["wall_s"] for r in rows)
    done = sum(1 for r in rows for s in r["status"].values() if s == "done")
    L.append("")
    L.append(f"Compute time of the stored stages: {fmt_time(total)} "
             f"({done} of {len(rows) * len(rows[0]['status']) if rows else 0} stage results done).")
    L.append("")
    return L


def _several(rows: list[dict]) -> bool:
    """Whether the tables need a model column (more than one regressor)."""
    return len({r["model"] for r in rows}) > 1


def _first(r: dict, several: bool) -> str:
    """A table row's first cells: the point, and the model when there are several."""
    return f"| {r['point']} | {MODEL_NAMES[r['model']]} |" if several else f"| {r['point']} |"


def _table_head(several: bool, rest: str, align: str) -> list[str]:
    return [("| point | model |" if several else "| point |") + rest, ("|---|---|" if several else "|---|") + align]


def _reference(name: str, several: bool) -> str:
    return f"| {name} |" + (" |" if several else "")


def _errors_section(rows: list[dict], figures: Sequence[str]) -> list[str]:
    m = _several(rows)
    L = ["## Validation errors", "",
         "Energy per atom (meV/atom) and force components (eV/Å) of the validation structures "
         f"(the same for every point{' and model' if m else ''}), through the potential file "
         "(nnp.analysis.report); per-run parity plots in `points/R/validation/`.", "",
         *_table_head(m, " functions | E MAE | E RMSE | F MAE | F RMSE | σ RMSE (GPa) | train E RMSE | train F RMSE |",
                      "---:|---:|---:|---:|---:|---:|---:|---:|")]
    for r in rows:
        L.append(f"{_first(r, m)} {r['n_functions']} | {_num(r['val_energy_mae'], 2)} | "
                 f"{_num(r['val_energy_rmse'], 2)} | {_num(r['val_force_mae'], 4)} | {_num(r['val_force_rmse'], 4)} | "
                 f"{_num(r['val_stress_rmse'], 3)} | {_num(r['train_energy_rmse'], 2)} | "
                 f"{_num(r['train_force_rmse'], 4)} |")
    L.append("")
    if "errors_vs_length.png" in figures:
        L += ["![errors vs length](errors_vs_length.png)", ""]
    return L


def _zero_k_section(rows: list[dict], figures: Sequence[str]) -> list[str]:
    m = _several(rows)
    L = ["## Diamond Si at 0 K", "",
         "Lattice constant by box relaxation; elastic constants by central differences of the stress at "
         "±strain, with ionic relaxation (C44 also without); B0 = (C11 + 2 C12)/3.", "",
         *_table_head(m, " a0 (Å) | C11 (GPa) | C12 (GPa) | C44 (GPa) | C44 unrelaxed (GPa) | B0 (GPa) |",
                      "---:|---:|---:|---:|---:|---:|")]
    for r in rows:
        L.append(f"{_first(r, m)} {_num(r['a0'], 4)} | {_num(r['c11'], 1)} | {_num(r['c12'], 1)} | "
                 f"{_num(r['c44'], 1)} | {_num(r['c44_unrelaxed'], 1)} | {_num(r['b0'], 1)} |")
    L.append(f"{_reference('*DFT-PBE*', m)} {DFT_PBE['a0']} | {DFT_PBE['c11']:g} | {DFT_PBE['c12']:g} | — | — | "
             f"{DFT_PBE['bulk_modulus']:g} |")
    lo, hi = EXPERIMENT["bulk_modulus"]
    L.append(f"{_reference('*experiment*', m)} {EXPERIMENT['a0']} | — | — | — | — | {lo:g}–{hi:g} |")
    L.append("")
    if "elastic_vs_length.png" in figures:
        L += ["![elastic constants vs length](elastic_vs_length.png)", ""]
    return L


def _crystal_section(rows: list[dict], c: StudyConfig, figures: Sequence[str]) -> list[str]:
    lo, hi = EXPERIMENT["bulk_modulus"]
    m = _several(rows)
    L = [f"## Crystal, NPT at {c.crystal_temperature:g} K and {c.pressure_atm:g} atm", "",
         "Lattice constant from ⟨V⟩; bulk modulus B = k_B T ⟨V⟩/⟨δV²⟩; ± one standard error from block "
         "averages. Coordination: running coordination at the first minimum of g(r). Extrapolating: mean "
         "fraction of atoms outside the descriptor range seen in training.", "",
         *_table_head(m, " a (Å) | B (GPa) | ⟨T⟩ (K) | coordination | extrapolating |", "---:|---:|---:|---:|---:|")]
    for r in rows:
        L.append(f"{_first(r, m)} {_pm(r['a_npt'], r['a_npt_err'], 4)} | {_pm(r['b_npt'], r['b_npt_err'], 1)} | "
                 f"{_num(r['crystal_temperature'], 1)} | {_num(r['crystal_cn'], 2)} | "
                 f"{_num(r['crystal_extrapolating'], 3)} |")
    L.append(f"{_reference('*DFT-PBE (0 K)*', m)} {DFT_PBE['a0']} | {DFT_PBE['bulk_modulus']:g} | | | |")
    L.append(f"{_reference('*experiment*', m)} {EXPERIMENT['a0']} | {lo:g}–{hi:g} | | | |")
    L.append("")
    if "bulk_modulus_vs_length.png" in figures:
        L += ["![bulk modulus vs length](bulk_modulus_vs_length.png)", ""]
    return L


def _melt_section(rows: list[dict], c: StudyConfig, figures: Sequence[str]) -> list[str]:
    m = _several(rows)
    L = [f"## Liquid ({c.liquid_temperature:g} K) and amorphous ({c.quench_end_temperature:g} K) Si", "",
         (f"The melt and the liquid run NVT at {c.liquid_density:g} g/cm³ (so the liquid density is fixed, "
          "not measured); "
          if c.liquid_density else "Every stage runs NPT at the same pressure; ")
         + f"the amorphous structure is the liquid quenched at {c.quench_rate:,.0f} K/ps, NPT at "
         f"{c.pressure_atm:g} atm. A phase under half the crystal's density is marked *boiled*: its g(r) "
         "means nothing.", "",
         *_table_head(m, " liquid ρ (g/cm³) | liquid P (GPa) | liquid coordination | amorphous ρ (g/cm³) "
                         "| amorphous coordination | extrapolating liquid / amorphous |", "---:|---:|---:|---:|---:|---:|")]

    def boiled(r: dict, kind: str) -> str:
        return " *boiled*" if r[f"{kind}_boiled"] == 1 else ""

    for r in rows:
        L.append(f"{_first(r, m)} {_pm(r['liquid_density'], r['liquid_density_err'], 3)}{boiled(r, 'liquid')} | "
                 f"{_pm(r['liquid_pressure'], r['liquid_pressure_err'], 2)} | {_num(r['liquid_cn'], 2)} | "
                 f"{_pm(r['amorphous_density'], r['amorphous_density_err'], 3)}{boiled(r, 'amorphous')} | "
                 f"{_num(r['amorphous_cn'], 2)} | {_num(r['liquid_extrapolating'], 3)} / "
                 f"{_num(r['amorphous_extrapolating'], 3)} |")
    L.append("")
    for kind in RDF_KINDS:
        if f"rdf_{kind}.png" in figures:
            L += [f"![g(r) {kind}](rdf_{kind}.png)", ""]
    return L


def _cost_section(rows: list[dict]) -> list[str]:
    m = _several(rows)
    L = ["## Cost", "",
         "Wall time of the training (a network) or the fit (a GP), featurising included, and the MD cost "
         "per atom and step of the crystal NPT and the melt-quench (LAMMPS, one process; on a shared "
         "machine these vary by tens of per cent).", "",
         *_table_head(m, " training / fit | crystal MD (µs/atom/step) | melt-quench MD (µs/atom/step) |",
                      "---:|---:|---:|")]
    for r in rows:
        wall = fmt_time(r["train_wall_s"]) if math.isfinite(r["train_wall_s"]) else "—"
        L.append(f"{_first(r, m)} {wall} | {_num(r['crystal_us'], 1)} | {_num(r['melt_us'], 1)} |")
    L.append("")
    return L


def _closing(rows: list[dict]) -> list[str]:
    L: list[str] = []
    for r in rows:
        if r["same_as"]:
            L += [f"{r['run']} has exactly the same descriptor as {r['same_as']} (same functions, regressor, "
                  f"data, split and seed): its results are {r['same_as']}'s.", ""]
    failures = [(r["run"], s, e) for r in rows for s, e in r["errors"].items()]
    pending = [(r["run"], s) for r in rows for s, st in r["status"].items() if st == "pending"]
    if failures:
        L += ["## Failed stages", "", f"| {'run' if _several(rows) else 'point'} | stage | error |", "|---|---|---|"]
        for p, s, e in failures:
            L.append(f"| {p} | {s} | {str(e).replace('|', '/').replace(chr(10), ' ')} |")
        L.append("")
    if pending:
        L += [f"Not computed yet: {', '.join(f'{p} {s}' for p, s in pending)}.", ""]
    L += ["Numbers: `errors.csv`, `properties.csv`, `rdf_*.csv`; every stage's full result: "
          "`points/R/STAGE.json` (R: the point, A16, with the network; A16-gp with the GP); settings: "
          "`study.json`."]
    return L


def markdown(rows: list[dict], config: StudyConfig, stored: dict, figures: Sequence[str]) -> str:
    """report.md: the settings, a table per stage with the references, the
    figures made, failed stages and what is not computed yet."""
    L = _header(rows, config, stored)
    L += _errors_section(rows, figures)
    L += _zero_k_section(rows, figures)
    L += _crystal_section(rows, config, figures)
    L += _melt_section(rows, config, figures)
    L += _cost_section(rows)
    L += _closing(rows)
    return "\n".join(L) + "\n"


def write_outputs(sdir, config: StudyConfig, stored: dict) -> list[str]:
    """Every output file from the stored results; returns the names written."""
    root = Path(sdir.root)
    rows = collect(sdir, config)
    written = write_csvs(root, rows)
    figures = []
    note = plot_banner(config)
    plots = [("errors_vs_length.png", lambda p: plot_errors(rows, p, note)),
             *((f"rdf_{k}.png", (lambda kind: lambda p: plot_rdf(rows, kind, p, note))(k)) for k in RDF_KINDS),
             ("bulk_modulus_vs_length.png", lambda p: plot_bulk_modulus(rows, p, config.crystal_temperature, note)),
             ("elastic_vs_length.png", lambda p: plot_elastic(rows, p, note))]
    for name, make in plots:
        if make(root / name):
            figures.append(name)
        else:
            (root / name).unlink(missing_ok=True)  # a stale plot from an earlier run of this study
    atomic_write_text(root / "report.md", markdown(rows, config, stored, figures))

    return written + figures + ["report.md"]
