"""The descriptor-length study, end to end (docs/science.md, "The study the
project reproduces").

    python -m nnp.study --data train.xyz --out DIR [--quick] [--config study.yaml]
        [--points A16,B64] [--models nn,gp] [--update] [--restart] [--force] [--retry-failed]
        [--report-only]

For every descriptor preset of series A and B at lengths 16, 28, 40, 52, 64
(`StudyConfig.points`) and every regressor of `--models` (the network, nn,
the default; the sparse GP of `nnp train --model gp`, gp), with one data
split and seed for all; a point with one regressor is a *run*, stored in
DIR/points/R/ (R = A16 for the network, A16-gp for the GP):

  train       a 2x30 potential (training defaults) or the GP, DIR/points/R/potential.nnp
  validation  energy/force/stress MAE and RMSE and parity plots (nnp.analysis.report)
  zero_k      0 K lattice constant, C11, C12, C44 (relaxed and not), B = (C11+2C12)/3
  melt        melt -> liquid (g(r), pressure; NVT at liquid_density) -> NPT quench
              -> amorphous (g(r), density); a phase that boiled is flagged
  crystal     NPT of the crystal: lattice constant, bulk modulus from volume
              fluctuations (block-average error bars), g(r)

Stages run stage by stage over all points (cheap ones first), so errors and 0 K
numbers appear long before the 1 ns runs finish. Each finished stage of each
run is stored as DIR/points/R/STAGE.json and never recomputed; long MD
stages also checkpoint (LAMMPS restart files) every --checkpoint-minutes, so a
killed run resumes where it stopped. DIR/study.json holds the settings, data
digest and training settings: a rerun with other settings is refused (use
--update to rerun only the stages the changes affect, keeping the old results
in DIR/superseded/, --restart to discard the results, or another DIR). A stage that fails (e.g. a
potential that blows up in the liquid) is recorded as failed with its error
and the study goes on; --retry-failed runs such stages again.

Outputs, rewritten after every stage pass (and every 30 min in long passes):
DIR/report.md, DIR/errors.csv, DIR/properties.csv, DIR/rdf_*.csv and plots
(errors_vs_length.png: one line per series and regressor,
rdf_{crystal,amorphous,liquid}.png, bulk_modulus_vs_length.png,
elastic_vs_length.png), with a model column when there are several.

Two processes may share a DIR with disjoint --points (e.g. one per core).

Modules, each using only those above it:

  config      StudyConfig, the stages and the settings each depends on
  references  the DFT and experimental values the report compares to
  plots       the figures; report: tables, CSV files and report.md
  directory   the study directory: layout, identity, resume and update rules
  stages      the five stage runners of one run
  runner      the study loop: pending stages, estimates, failures, twins
  cli         python -m nnp.study
"""

from nnp.study.cli import build_config, load_structures, main, parse_args, parse_models, select_points
from nnp.study.config import MODELS, STAGE_TITLES, STAGES, StudyConfig, run_name, split_run
from nnp.study.directory import (
    FORMAT, StudyDir, StudyError, comparable, config_differences, identity, prepare_directory, read_json,
    stage_identity, stale_stages, supersede, write_json,
)
from nnp.study.runner import Estimator, copy_twin, pending, run_study, twin_of
from nnp.study.stages import (
    RUNNERS, STAGE_ERRORS, Context, crystal_stages, md_cost, melt_stages, run_crystal, run_melt,
    run_train, run_validation, run_zero_k,
)

__all__ = [
    "FORMAT", "MODELS", "RUNNERS", "STAGES", "STAGE_ERRORS", "STAGE_TITLES", "Context", "Estimator",
    "StudyConfig", "StudyDir", "StudyError", "build_config", "comparable", "config_differences", "copy_twin",
    "crystal_stages", "identity", "load_structures", "main", "md_cost", "melt_stages", "parse_args",
    "parse_models", "pending", "prepare_directory", "read_json", "run_crystal", "run_melt", "run_name",
    "run_study", "run_train", "run_validation", "run_zero_k", "select_points", "split_run", "stage_identity",
    "stale_stages", "supersede", "twin_of", "write_json",
]
