"""The one-command study: sweeps -> frontier fits -> CEGs -> ablations -> accounting -> report.

`run(config, workdir)` (launch/reproduce.py is its command line) does, resumably:
  1. the sweep in `config.sweep` (algoprog.training.sweep): LR sweeps, then the scaling runs of each
     architecture and the ablation suite, each run its own process in DIR/sweep/runs/;
  2. `analyse`: the full runs as a RunTable (LR-sweep runs are left out of the fits; their
     curves and choices go to the report), per architecture the frontier law
     L(C) = E + a*C^alpha with bootstrap CIs over runs, the exponent differences and CEG
     table against `analysis.reference`, each ablation's CEG from raw curves at one target
     loss with its seed spread, and the study's accounting redone with the measured laws
     and ablation CEGs next to the published constants;
  3. `algoprog.analysis.report.report_markdown`: DIR/report.md with the tables and figures
     (DIR/analysis/*.png|svg|csv; DIR/analysis/summary.json holds every number of the
     report).

Rerunning after a kill skips finished runs, resumes interrupted ones, and recomputes the
analysis (cheap) from whatever has finished. Failed runs are listed with their reasons.

The study's design (the config configs/reproduce_*.py build, the published constants) is
algoprog.study; every number is computed in algoprog.analysis (scaling, ablations,
measured_account) and every table rendered by algoprog.analysis.report: this module only
runs the stages in order and reads the sweep through algoprog.training.sweep and
algoprog.rundir.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time
import warnings
from typing import Any, Callable

import jax
import ml_collections
import numpy as np

from algoprog import rundir
from algoprog.analysis import (ablations as ablations_lib, account, diagnostics,
                               measured_account, outputs, plots, report, runs,
                               scaling as scaling_lib)
from algoprog.training import config as config_lib
from algoprog.training import data, sweep

REPORT_FILE = "report.md"


class ReproduceError(ValueError):
  """A reproduce config field or the state of the study is unusable; names the field."""


def full_runs_table(sweep_dir: pathlib.Path) -> tuple[runs.RunTable, list[dict]]:
  """(the full runs' points, the manifest's full-run entries) of a sweep directory."""
  full = [r for r in sweep.read_manifest(sweep_dir) if r["stage"] == "full"]
  table = runs.load_runs(sweep_dir / "runs")
  full_ids = {r["run_id"] for r in full}
  keep = np.isin(table.run_id, list(full_ids))
  excluded = tuple(e for e in table.excluded if e.run_id in full_ids)
  run_info = {r: info for r, info in table.run_info.items() if r in full_ids}
  return dataclasses.replace(table.select(keep), excluded=excluded, run_info=run_info), full


def scaling_options(analysis: ml_collections.ConfigDict, table: runs.RunTable
                    ) -> scaling_lib.ScalingOptions:
  """The scaling analysis's options from a reproduce config's `analysis` section (a config
  without the uncertainty fields, written before them, gets them off)."""
  defaults = scaling_lib.ScalingOptions(reference=analysis.reference)
  extra = {name: analysis.get(name, getattr(defaults, name)) for name in UNCERTAINTY_FIELDS}
  return scaling_lib.ScalingOptions(
      reference=analysis.reference, irreducible=analysis.irreducible,
      sensitivity=analysis.sensitivity_irreducible or None,
      shared_exponent=analysis.shared_exponent, frontier=analysis.frontier,
      eligible=scaling_lib.past_warmup(table, analysis.skip_fraction),
      bootstrap=analysis.bootstrap, resample=analysis.resample, seed=analysis.seed,
      level=analysis.level, computes=tuple(analysis.ceg_compute) or None,
      extra_computes=tuple(analysis.extra_ceg_compute), lr_optima=True, **extra)


# analysis.* fields passed to ScalingOptions as they are (algoprog.study documents them).
UNCERTAINTY_FIELDS = ("exclude_plateau", "plateau_margin", "e_profile", "e_profile_samples",
                      "raw_scale", "raw_scale_samples", "rollout", "planner_simulations",
                      "planner_designs")


def _ablation_figures(table: runs.RunTable, result: ablations_lib.AblationAnalysis,
                      analysis: ml_collections.ConfigDict, out: pathlib.Path) -> list[str]:
  groups = [analysis.ablation_reference] + [
      g for g in dict.fromkeys(s.variant for s in analysis.ablations.values())
      if g in table.groups]
  plots.save_figure(plots.loss_vs_compute(
      table.only_groups(groups), None, [result.target_loss],
      title=f"Ablation runs and the target loss {result.target_loss:g}"),
      out / "ablation_curves")
  plots.save_figure(plots.ablation_cegs(list(result.rows), dict(analysis.published_ablations)),
                    out / "ablation_cegs")
  return ["ablation_curves", "ablation_cegs"]


def analyse(config: ml_collections.ConfigDict, sweep_dir: pathlib.Path,
            out: pathlib.Path, log: Callable[[str], Any] = print) -> dict:
  """Everything the report shows, from the finished runs of `sweep_dir`; tables to `out`."""
  analysis = config.analysis
  out.mkdir(parents=True, exist_ok=True)
  table, full = full_runs_table(sweep_dir)
  lr = sweep.read_lr_choices(sweep_dir)
  entropy, entropy_note = training_unigram_entropy(config)
  evidence = scaling_lib.Evidence(lr, diagnostics.seed_noise(table.run_info.values()),
                                  entropy)
  groups = [g for g in analysis.scaling_groups if g in table.groups]
  missing = [g for g in analysis.scaling_groups if g not in table.groups]
  if analysis.reference not in groups:
    raise ReproduceError(f"analysis.reference: group {analysis.reference!r} has no finished "
                         f"runs (finished groups: {', '.join(table.groups)})")
  seeds = {e["run_id"]: (None if e["overrides"].get("seed") is None
                         else int(e["overrides"]["seed"])) for e in full}
  account_config = config_lib.load_config_file(analysis.account_config,
                                               "analysis.account_config")
  with jax.enable_x64(True), warnings.catch_warnings(), np.errstate(all="ignore"):
    # Bootstrap refits that fail and laws that never reach a loss give NaN samples; the
    # intervals ignore them and the report says where a value is undefined.
    warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
    scaling = scaling_lib.analyse_scaling(table, groups, scaling_options(analysis, table),
                                          evidence)
    scaling_files = outputs.write_scaling_outputs(scaling, table, out)
    # Runner-up full runs (ambiguous LR choices) only widen the intervals: the scaling
    # bootstrap chooses between them, each ablation row gets them as its LR alternative;
    # every estimate and figure uses the chosen-LR runs.
    runner_up = table.select(~np.isin(table.run_id, scaling.table.run_ids))
    table = scaling.table
    ablations = ablations_lib.analyse_ablations(
        table, seeds, {name: (spec.reference, spec.variant)
                       for name, spec in analysis.ablations.items()},
        analysis.ablation_reference, analysis.ablation_target_loss,
        analysis.ablation_target_margin, lr, evidence.noise,
        scaling.seed_noise if analysis.get("ablation_seed_pairs", False) else None,
        analysis.level, runner_up if runner_up.run_ids else None)
    ablations_json = ablations.to_json()
    if ablations.status == "ok":
      ablations_json["figures"] = _ablation_figures(table, ablations, analysis, out)
    accounting = measured_account.measured_vs_published(
        account.study_from_dict(account_config.to_dict()), account_config.headline_years,
        scaling, ablations, dict(analysis.study_laws), analysis.direct_total, analysis.level)
  if lr:
    plots.save_figure(plots.lr_sweeps(lr), out / "lr_sweeps")
  fingerprints = {}
  for run_dir in rundir.run_directories(sweep_dir / "runs"):
    record = rundir.read_record(run_dir)
    if record is not None and record.data_fingerprint:
      fingerprints[json.dumps(record.data_fingerprint, sort_keys=True)] = (
          record.data_fingerprint)
  scaling_json = scaling.to_json()
  summary = {"scaling": {"groups": scaling_json.pop("groups"), "missing_groups": missing,
                         **scaling_json,
                         "figures": [f for f in scaling_files if not f.endswith(".csv")]},
             "ablations": ablations_json, "accounting": accounting, "lr_choices": lr,
             "failures": sweep.read_failures(sweep_dir),
             "excluded": [dataclasses.asdict(e) for e in table.excluded],
             "data_fingerprints": list(fingerprints.values()),
             "evidence": {"seed_noise": evidence.noise.value,
                          "seed_noise_source": evidence.noise.source,
                          "unigram_entropy": entropy, "unigram_entropy_source": entropy_note},
             "runs": len(table.run_ids), "runner_up_runs": len(runner_up.run_ids),
             "train_seconds": total_train_seconds(sweep_dir)}
  (out / "summary.json").write_text(json.dumps(rundir.json_safe(summary), indent=1))
  for name, rows in (("ablations", ablations_json["rows"]),
                     ("headline_measured", accounting.get("measured", [])),
                     ("headline_published", accounting["published"]),
                     ("accounting_over_E", accounting.get("over_E", {}).get("by_E", []))):
    rundir.write_csv(out / f"{name}.csv", rows)
  log(f"analysis of {len(table.run_ids)} full runs written to {out}")
  return summary


def training_unigram_entropy(config: ml_collections.ConfigDict) -> tuple[float | None, str]:
  """(unigram entropy of the sweep's training tokens in nats/token, where it came from), or
  (None, why not): the plateau check of algoprog.analysis.diagnostics. Reads the token cache the
  sweep's runs filled (data.load_corpus of `sweep.overrides.data`)."""
  try:
    corpus = data.load_corpus(config.sweep.overrides.data)
  except Exception as e:  # Any failure only skips one check; the report says which.
    return None, f"unknown (the training tokens could not be loaded: {e})"
  return (diagnostics.unigram_entropy(corpus.train_tokens),
          f"training tokens of sweep.overrides.data ({corpus.train_tokens.size:,} tokens)")


def run(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, *, workers: int = 0,
        retry_failed: bool = False, log: Callable[[str], Any] = print,
        devices_per_worker: int = 0) -> pathlib.Path:
  """The whole study into `workdir` (resumable); returns the report's path.

  `devices_per_worker`: accelerators each training process gets (algoprog.training.sweep.execute).
  """
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  start = time.time()
  sweep_dir = workdir / "sweep"
  sweep.run_sweep(config.sweep, sweep_dir, workers or config.sweep.workers,
                  retry_failed=retry_failed, log=log, devices_per_worker=devices_per_worker)
  summary = analyse(config, sweep_dir, workdir / "analysis", log)
  summary["session_seconds"] = time.time() - start
  path = workdir / REPORT_FILE
  path.write_text(report.report_markdown(config, summary))
  log(f"report: {path}")
  return path


def total_train_seconds(sweep_dir: pathlib.Path) -> float:
  """Summed wall time (seconds) of every run's training (all sessions), from run.json."""
  total = 0.0
  for run_dir in rundir.run_directories(sweep_dir / "runs"):
    record = rundir.read_record(run_dir)
    total += float((record.wall_time_s if record else None) or 0.0)
  return total
