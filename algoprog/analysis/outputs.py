"""The files of a scaling analysis: its tables as CSV and its figures, for any caller.

`write_scaling_outputs(analysis, table, out)` is what `launch.fit` and `algoprog.reproduce`
both write from an `algoprog.analysis.scaling.ScalingAnalysis` (each adds its own
summary.json, and reproduce the ablation and accounting files):

  laws.csv, coverage.csv, ceg.csv, raw_ceg.csv   the fitted laws, compute covered, CEGs
  excluded.csv      whole runs the loader left out and plateau points not fitted (one row
                    each, with the reason)
  loss_vs_compute   every run's curve, the frontier points and the fitted laws
  ceg_vs_compute    CEG over the reference from the laws, with bootstrap bands
  lr_laws           the sweeps' LR optima and each group's LR law (with an LR-sweep record)
  e_profile         the shared-E profile and the derived numbers over E (.csv, figure)
  raw_scale         CEG along the raw envelopes against target loss (.csv, figure)
  rollout           the largest runs predicted by fits without them (.csv, figure)

Figures are written as .png and .svg (plots.save_figure). Sections that did not run write
nothing.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Sequence

import numpy as np

from algoprog import rundir
from algoprog.analysis import ceg, plots, uncertainty_plots
from algoprog.analysis.runs import RunTable
from algoprog.analysis.scaling import ScalingAnalysis


def excluded_rows(table: RunTable, analysis: ScalingAnalysis) -> list[dict]:
  """excluded.csv: whole runs left out by the loader ("points": "all") and the plateau
  points not fitted, one row each with its reason."""
  return ([{**dataclasses.asdict(e), "points": "all"} for e in table.excluded]
          + (analysis.plateau.rows() if analysis.plateau else []))


def ceg_grid(analysis: ScalingAnalysis, points: int = 60) -> np.ndarray:
  """FLOPs for the CEG figure: from the lowest frontier point to the highest frontier point
  or reported CEG compute, whichever is larger."""
  low = min(r.frontier_min_compute for r in analysis.coverage)
  high = max([r.frontier_max_compute for r in analysis.coverage] + list(analysis.computes))
  return np.geomspace(low, high, points)


def write_scaling_outputs(analysis: ScalingAnalysis, table: RunTable, out: pathlib.Path,
                          target_losses: Sequence[float] = ()) -> list[str]:
  """The analysis's tables and figures into `out` (created; module docstring); `table` is
  the run table it was computed from (its excluded runs are listed). Returns the names
  written, figures by stem."""
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  numbers = analysis.to_json()
  tables = {"laws": numbers["laws"], "coverage": numbers["coverage"], "ceg": numbers["ceg"],
            "raw_ceg": numbers["raw_ceg"], "excluded": excluded_rows(table, analysis)}
  if analysis.e_profile is not None and analysis.e_profile.derived:
    tables["e_profile"] = [r for d in analysis.e_profile.derived for r in d.rows()]
  if analysis.raw_scale:
    tables["raw_scale"] = [r for x in analysis.raw_scale for r in x.rows()]
  if analysis.rollout is not None:
    tables["rollout"] = analysis.rollout.rows()
  for name, rows in tables.items():
    rundir.write_csv(out / f"{name}.csv", rows)

  fitted = analysis.table if analysis.table is not None else table
  figures = {"loss_vs_compute": plots.loss_vs_compute(
      fitted.only_groups(list(analysis.groups)), analysis.fit, list(target_losses),
      list(analysis.raw_ceg), title="Scaling runs: validation loss vs compute, frontier fits")}
  others = [g for g in analysis.groups if g != analysis.reference]
  if others and analysis.coverage:  # (no bootstrap: the estimate without a band)
    grid = ceg_grid(analysis)
    figures["ceg_vs_compute"] = plots.ceg_vs_compute(
        [ceg.ceg_band(analysis.fit, analysis.bootstrap, analysis.reference, g, grid,
                      analysis.options.level) for g in others],
        title=f"CEG over {analysis.reference} from the fitted frontiers")
  if analysis.lr is not None and analysis.lr.optima:
    figures["lr_laws"] = uncertainty_plots.lr_laws(
        list(analysis.lr.optima), analysis.lr.laws, title="LR optima and LR laws")
  if "e_profile" in tables:
    figures["e_profile"] = uncertainty_plots.e_profile(
        analysis.e_profile, title="Profile of the shared irreducible loss E")
  if "raw_scale" in tables:
    figures["raw_scale"] = uncertainty_plots.raw_scale(
        list(analysis.raw_scale),
        title=f"CEG over {analysis.reference} along the raw envelopes")
  if "rollout" in tables:
    figures["rollout"] = uncertainty_plots.rollout(
        analysis.rollout, title="Largest runs predicted by fits without them")
  for name, figure in figures.items():
    plots.save_figure(figure, out / name)
  return [f"{name}.csv" for name in tables] + list(figures)
