"""Running the study: every missing stage of the selected runs (a point with
one regressor: config.run_name), stage by stage over all runs (cheap stages
first), with time estimates, failures recorded instead of raised, and runs
whose descriptor equals an earlier one's (A64 and B64) copied instead of
recomputed."""

from __future__ import annotations

import math
import shutil
import time
import traceback
from typing import Callable, Sequence

import numpy as np

from nnp import descriptors as descriptors_mod
from nnp.io.atomic import atomic_open
from nnp.progress import fmt_time
from nnp.study.config import STAGE_TITLES, STAGES, run_name, split_run
from nnp.study.stages import RUNNERS, STAGE_ERRORS, Context, headline, md_cost

REPORT_INTERVAL_S = 1800.0  # rewrite the report at least this often in long passes
DEFAULT_SPEED = 30e-6  # s/atom/step before anything was measured


class Estimator:
    """Rough wall-time estimates of stages from what finished so far (the
    same regressor's runs first: a GP fit and a network's training differ)."""

    def __init__(self, ctx: Context):
        self.ctx = ctx

    def _done(self, stage: str, key: str) -> dict[str, list[float]]:
        """`key` of the finished `stage` of every run, by model."""
        vals: dict[str, list[float]] = {}
        for run in self.ctx.config.runs:
            r = self.ctx.sdir.result(run, stage)
            if r and r.get("status") == "done" and r.get(key):
                vals.setdefault(split_run(run)[1], []).append(r[key])
        return vals

    def speed(self, run: str) -> float:
        """s/atom/step of a run's potential: its own melt/crystal run, else
        the mean of its model's, else of all."""
        own, model, every = [], [], []
        for r in self.ctx.config.runs:
            for stage in ("melt", "crystal"):
                res = self.ctx.sdir.result(r, stage)
                if res and res.get("status") == "done" and res.get("seconds_per_atom_step"):
                    v = res["seconds_per_atom_step"]
                    (own if r == run else model if split_run(r)[1] == split_run(run)[1] else every).append(v)
        vals = own or model or every
        return float(np.mean(vals)) if vals else DEFAULT_SPEED

    def stage(self, stage: str, run: str) -> float:
        cost = md_cost(stage, self.ctx.config)
        if cost:
            return cost * self.speed(run)
        by_model = self._done(stage, "wall_s")
        vals = by_model.get(split_run(run)[1]) or [v for vs in by_model.values() for v in vs]
        return float(np.mean(vals)) if vals else math.nan

    def remaining(self, todo: Sequence[tuple[str, str]]) -> str:
        """"about 3h10m", or "over 3h10m" while some stage kind has no measurement yet."""
        est = [self.stage(s, p) for s, p in todo if twin_of(self.ctx, p) is None]
        known = [e for e in est if math.isfinite(e)]
        if not known:
            return "an unknown time"
        return f"{'about' if len(known) == len(est) else 'over'} {fmt_time(sum(known))}"


def _status(ctx: Context, point: str, stage: str) -> str | None:
    r = ctx.sdir.result(point, stage)
    return r.get("status") if r else None


def pending(ctx: Context, runs: Sequence[str], retry_failed: bool) -> list[tuple[str, str]]:
    """(stage, run) of every stage not done (or failed, unless retry_failed), stage-major."""
    todo = []
    for stage in STAGES:
        for p in runs:
            st = _status(ctx, p, stage)
            if st == "done" or (st == "failed" and not retry_failed):
                continue
            todo.append((stage, p))
    return todo


def run_study(ctx: Context, runs: Sequence[str], retry_failed: bool = False,
              write_outputs: Callable[[], None] | None = None) -> None:
    """Every missing stage of every run in `runs` (run names, e.g.
    config.runs_of(points)), stage by stage."""
    est = Estimator(ctx)
    todo = pending(ctx, runs, retry_failed)
    total = len(todo)
    if not todo:
        ctx.log("every stage of the selected points is done")
    last_outputs = time.perf_counter()
    for k, (stage, run) in enumerate(todo):
        if stage != "train":
            trained = _status(ctx, run, "train")
            if trained != "done":
                ctx.log(f"[{k + 1}/{total}] {run} {STAGE_TITLES[stage]}: skipped (no potential: training "
                        f"{'failed' if trained == 'failed' else 'not done'})")
                continue
        if _status(ctx, run, stage) == "done":
            # Another process sharing DIR finished it since the list was made.
            ctx.log(f"[{k + 1}/{total}] {run} {STAGE_TITLES[stage]}: done meanwhile by another process")
            continue
        twin = twin_of(ctx, run)
        if twin is not None and _status(ctx, twin, stage) in ("done", "failed"):
            copy_twin(ctx, twin, run, stage)
            ctx.log(f"[{k + 1}/{total}] {run} {STAGE_TITLES[stage]}: the same descriptor as {twin}, "
                    f"its result reused")
            continue
        remaining = est.remaining(todo[k:])
        cost = md_cost(stage, ctx.config)
        what = f", {cost:,} atom-steps" if cost else ""
        ctx.log(f"[{k + 1}/{total}] {run} {STAGE_TITLES[stage]}{what} — study {fmt_time(time.perf_counter() - ctx.t_start)}"
                f" so far, {remaining} to go")
        t0 = time.perf_counter()
        try:
            data = RUNNERS[stage](ctx, run)
            status = {"status": "done"}
        except STAGE_ERRORS as err:
            message = f"{type(err).__name__}: {err}"
            ctx.log(f"    {run} {stage} FAILED: {message}")
            data = {}
            status = {"status": "failed", "error": message,
                      "where": traceback.format_exc(limit=-3).strip().splitlines()[-3:]}
        wall = time.perf_counter() - t0
        ctx.sdir.save(run, stage, {**status, "stage": stage, **_names(run), "wall_s": wall, **data})
        shutil.rmtree(ctx.sdir.checkpoint(run, stage), ignore_errors=True)
        if status["status"] == "done":
            ctx.log(f"    {run} {stage} done in {fmt_time(wall)}{headline(stage, data)}")
        end_of_pass = k + 1 == total or todo[k + 1][0] != stage
        if write_outputs and (end_of_pass or time.perf_counter() - last_outputs > REPORT_INTERVAL_S):
            write_outputs()
            last_outputs = time.perf_counter()


def twin_of(ctx: Context, run: str) -> str | None:
    """An earlier run of the study with exactly the same descriptor (A64
    and B64 both hold every function) and regressor: same data, split, seed
    and settings, so the same potential and results."""
    if run not in ctx.twins:
        point, model = split_run(run)
        mine = descriptors_mod.preset(point, (ctx.element,))
        earlier = ctx.config.points[: ctx.config.points.index(point)]
        twin = next((q for q in earlier if descriptors_mod.preset(q, (ctx.element,)) == mine), None)
        ctx.twins[run] = None if twin is None else run_name(twin, model)
    return ctx.twins[run]


def copy_twin(ctx: Context, twin: str, run: str, stage: str) -> None:
    sdir = ctx.sdir
    data = sdir.result(twin, stage)
    if stage == "train" and data.get("status") == "done":
        sdir.point(run).mkdir(parents=True, exist_ok=True)
        with atomic_open(sdir.potential(run), binary=True) as fh:
            fh.write(sdir.potential(twin).read_bytes())
    if stage == "validation" and sdir.parity(twin).is_dir():
        shutil.copytree(sdir.parity(twin), sdir.parity(run), dirs_exist_ok=True)
    samples = sdir.point(twin) / f"{stage}_samples.npz"
    if samples.is_file():
        sdir.point(run).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(samples, sdir.point(run) / samples.name)
    sdir.save(run, stage, {**data, **_names(run), "same_as": twin, "wall_s": 0.0})


def _names(run: str) -> dict[str, str]:
    """The point and model of a run, as its stage files record them (the
    network's without a model, as before there was a choice)."""
    point, model = split_run(run)
    return {"point": point} if model == "nn" else {"point": point, "model": model}
