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
  3. `report_markdown`: DIR/report.md with the tables and figures (DIR/analysis/*.png|svg|csv,
     DIR/analysis/summary.json holds every number of the report).

Rerunning after a kill skips finished runs, resumes interrupted ones, and recomputes the
analysis (cheap) from whatever has finished. Failed runs are listed with their reasons.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import time
import warnings
from typing import Any, Callable

import jax
import ml_collections
import numpy as np

from algoprog import rundir
from algoprog.training import data, sweep
from algoprog.analysis import account, ceg, diagnostics, fit, plots, runs
from algoprog.training import config as config_lib

REPORT_FILE = "report.md"


class ReproduceError(ValueError):
  """A reproduce config field or the state of the study is unusable; names the field."""


# ----------------------------------------------------------------------------------------
# The runs.


def full_runs_table(sweep_dir: pathlib.Path) -> tuple[runs.RunTable, list[dict]]:
  """(the full runs' points, the manifest's full-run entries) of a sweep directory."""
  manifest = json.loads((sweep_dir / sweep.MANIFEST_FILE).read_text())["runs"]
  full = [r for r in manifest if r["stage"] == "full"]
  table = runs.load_runs(sweep_dir / "runs")
  keep = np.isin(table.run_id, [r["run_id"] for r in full])
  excluded = tuple(e for e in table.excluded if e.run_id in {r["run_id"] for r in full})
  return dataclasses.replace(table.select(keep), excluded=excluded), full


# ----------------------------------------------------------------------------------------
# Scaling fits.


def coverage_rows(table: runs.RunTable, result: fit.PowerLawFit) -> list[dict]:
  """Per group: runs, the compute span of all its points and of its frontier points."""
  rows = []
  for g, group in enumerate(result.groups):
    sub = table.only_groups([group])
    on = result.points_weight[g] > 0
    low, high = float(result.points_compute[g][on].min()), float(
        result.points_compute[g][on].max())
    rows.append({"group": group, "runs": len(sub.run_ids), "points": int(sub.loss.size),
                 "min_compute": float(sub.compute.min()),
                 "max_compute": float(sub.compute.max()),
                 "frontier_points": int(on.sum()), "frontier_min_compute": low,
                 "frontier_max_compute": high, "frontier_decades": math.log10(high / low),
                 "best_loss": float(sub.loss.min())})
  return rows


def auto_ceg_computes(coverage: list[dict]) -> list[float]:
  """The low end, middle and high end (FLOPs) of the compute range every group's frontier
  covers (or of the union, if they do not overlap)."""
  low = max(r["frontier_min_compute"] for r in coverage)
  high = min(r["frontier_max_compute"] for r in coverage)
  if low >= high:
    low = min(r["frontier_min_compute"] for r in coverage)
    high = max(r["frontier_max_compute"] for r in coverage)
  return [float(f"{c:.3g}") for c in (low, math.sqrt(low * high), high)]


def past_warmup(table: runs.RunTable, fraction: float) -> np.ndarray:
  """Which points (one bool each) lie at or past `fraction` of their run's training tokens.
  The first evaluations of a run (warmup, loss near ln V) lie on no compute-optimal
  frontier: a law fitted through them bends to fit the start of training. They still count
  when the frontier is taken (algoprog.analysis.fit: envelope first, then the eligible points)."""
  keep = np.ones(table.loss.shape, bool)
  for run_id in table.run_ids:
    rows = table.run_id == run_id
    keep[rows] = table.tokens[rows] >= fraction * table.tokens[rows].max()
  return keep


@dataclasses.dataclass(frozen=True)
class Evidence:
  """What the diagnostics read besides the fit (algoprog.analysis.diagnostics): the LR-sweep record,
  the seed noise and the unigram entropy of the training tokens (None: unknown)."""
  lr_choices: dict
  noise: diagnostics.SeedNoise
  entropy: float | None


def fit_scaling_laws(table: runs.RunTable, groups: list[str],
                     analysis: ml_collections.ConfigDict, irreducible: str,
                     evidence: Evidence) -> dict:
  """One frontier fit of `groups` with E `irreducible`, its bootstrap, per-group diagnostics
  and the exponent difference of every pair ("distinguishable" only when both groups are
  determined; else None and `not_determined` says why)."""
  options = fit.PowerLawOptions(irreducible=irreducible,
                                shared_exponent=analysis.shared_exponent)
  eligible = past_warmup(table, analysis.skip_fraction)
  result, bootstrap, fit_warnings = fit.fit_and_bootstrap(
      table, groups=groups, frontier=analysis.frontier, options=options,
      num_samples=analysis.bootstrap, resample=analysis.resample, seed=analysis.seed,
      eligible=eligible)
  diags = diagnostics.diagnose(result, table, lr_choices=evidence.lr_choices,
                               noise=evidence.noise, entropy=evidence.entropy)
  pairs = []
  if bootstrap is not None:
    for i, a in enumerate(groups):
      for b in groups[i + 1:]:
        test = ceg.scale_dependence(result, bootstrap, a, b, analysis.level)
        reasons = diagnostics.not_determined(diags, [a, b])
        pairs.append({"group": b, "reference": a,
                      **_interval_columns("exponent_difference", test.exponent_difference),
                      "distinguishable": None if reasons else test.scale_dependent,
                      "not_determined": reasons})
  return {"irreducible": str(irreducible), "result": result, "bootstrap": bootstrap,
          "laws": fit.law_rows(result, bootstrap, analysis.level),
          "diagnostics": {g: dataclasses.asdict(d) for g, d in diags.items()},
          "exponent_pairs": pairs, "warnings": fit_warnings}


def scaling_analysis(table: runs.RunTable, analysis: ml_collections.ConfigDict,
                     out: pathlib.Path, evidence: Evidence) -> dict:
  """Frontier fits with bootstrap CIs, diagnostics, coverage, CEG table and figures of the
  scaling groups; with `analysis.sensitivity_irreducible`, the laws and exponent
  differences again with that choice of E (a sensitivity row)."""
  groups = [g for g in analysis.scaling_groups if g in table.groups]
  missing = [g for g in analysis.scaling_groups if g not in table.groups]
  if len(groups) < 1 or analysis.reference not in groups:
    raise ReproduceError(f"analysis.reference: group {analysis.reference!r} has no finished "
                         f"runs (finished groups: {', '.join(table.groups)})")
  main = fit_scaling_laws(table, groups, analysis, analysis.irreducible, evidence)
  result, bootstrap = main["result"], main["bootstrap"]
  sensitivity = None
  if analysis.sensitivity_irreducible and str(analysis.sensitivity_irreducible) != str(
      analysis.irreducible):
    sensitivity = fit_scaling_laws(table, groups, analysis, analysis.sensitivity_irreducible,
                                   evidence)
    sensitivity = {k: v for k, v in sensitivity.items() if k not in ("result", "bootstrap")}
  coverage = coverage_rows(table, result)
  computes = list(analysis.ceg_compute) or auto_ceg_computes(coverage)
  computes += [c for c in analysis.extra_ceg_compute if c not in computes]
  diags = _diagnostics_of(main)
  cegs = [{**dataclasses.asdict(r),
           "not_determined": diagnostics.not_determined(diags, [r.group, r.reference])}
          for r in ceg.ceg_table(result, bootstrap, analysis.reference, computes=computes,
                                 level=analysis.level)]
  figures = {"loss_vs_compute": plots.loss_vs_compute(
      table.only_groups(groups), result,
      title="Scaling runs: validation loss vs compute, frontier fits")}
  low = min(r["frontier_min_compute"] for r in coverage)
  high = max(max(r["frontier_max_compute"] for r in coverage), max(computes))
  grid = np.geomspace(low, high, 60)
  bands = [ceg.ceg_band(result, bootstrap, analysis.reference, g, grid, analysis.level)
           for g in groups if g != analysis.reference]
  if bands:
    figures["ceg_vs_compute"] = plots.ceg_vs_compute(
        bands, title=f"CEG over {analysis.reference} from the fitted frontiers")
  for name, figure in figures.items():
    plots.save_figure(figure, out / name)
  return {"groups": groups, "missing_groups": missing, "result": result,
          "bootstrap": bootstrap, "irreducible": main["irreducible"], "laws": main["laws"],
          "diagnostics": main["diagnostics"], "coverage": coverage, "ceg": cegs,
          "exponent_pairs": main["exponent_pairs"], "warnings": main["warnings"],
          "sensitivity": sensitivity, "figures": list(figures)}


def _diagnostics_of(fitted: dict) -> dict[str, diagnostics.GroupDiagnostics]:
  """The GroupDiagnostics of a `fit_scaling_laws` (or summary) dict."""
  return {g: diagnostics.GroupDiagnostics(d["group"], tuple(d["reasons"]),
                                          tuple(d["skipped"]))
          for g, d in fitted["diagnostics"].items()}


def _interval_columns(name: str, interval) -> dict:
  return {name: float(interval.estimate), f"{name}_lower": float(interval.lower),
          f"{name}_upper": float(interval.upper)}


# ----------------------------------------------------------------------------------------
# Ablations: raw-curve CEG at one target loss, per seed.


def _seed_of(run_id: str, full: list[dict]) -> int | None:
  for entry in full:
    if entry["run_id"] == run_id:
      return int(entry["overrides"]["seed"])
  return None


def ablation_target(table: runs.RunTable, analysis: ml_collections.ConfigDict) -> float:
  """The configured target loss, or (0) the reference's worst final validation loss over
  its seeds plus `ablation_target_margin`: a loss every reference seed reaches before its
  last evaluation, so the reference's crossings are interpolated, not extrapolated."""
  if analysis.ablation_target_loss:
    return float(analysis.ablation_target_loss)
  sub = table.only_groups([analysis.ablation_reference])
  finals = [float(sub.loss[sub.run_id == r][-1]) for r in sub.run_ids]
  return round(max(finals) + analysis.ablation_target_margin, 3)


def ablation_row(table: runs.RunTable, full: list[dict], name: str, reference: str,
                 variant: str, target: float) -> dict:
  """CEG of `reference` over `variant` (C_variant / C_reference at `target`): geometric means
  over seeds, the spread of seed-paired ratios, and lower bounds when the variant misses."""
  row = {"ablation": name, "reference": reference, "variant": variant, "target_loss": target}
  for group in (reference, variant):
    if group not in table.groups:
      return {**row, "status": f"no finished runs of {group}"}
  ref = ceg.run_crossings(table, reference, target, allow_unreached=True)
  new = ceg.run_crossings(table, variant, target, allow_unreached=True)
  if not np.isfinite(list(ref.values())).all():
    return {**row, "status": f"reference {reference} misses the target"}
  c_ref = float(np.exp(np.mean(np.log(list(ref.values())))))
  sub = table.only_groups([variant])
  finals = {r: float(sub.compute[sub.run_id == r][-1]) for r in sub.run_ids}
  reached = {r: c for r, c in new.items() if np.isfinite(c)}
  row.update({"runs_reference": len(ref), "runs_variant": len(new),
              "runs_variant_reaching": len(reached), "compute_reference": c_ref,
              "variant_best_loss": float(sub.loss.min())})
  if len(reached) < len(new):
    # Each missing run would reach the target, if ever, after its last evaluation.
    bound = np.exp(np.mean(np.log([reached.get(r, finals[r]) for r in new]))) / c_ref
    return {**row, "status": "variant misses the target", "ceg_lower_bound": float(bound)}
  by_seed_ref = {_seed_of(r, full): c for r, c in ref.items()}
  paired = [c / by_seed_ref[_seed_of(r, full)] for r, c in new.items()
            if _seed_of(r, full) in by_seed_ref]
  c_new = float(np.exp(np.mean(np.log(list(new.values())))))
  return {**row, "status": "ok", "compute_variant": c_new, "ceg": c_new / c_ref,
          "seed_min": float(min(paired)) if paired else math.nan,
          "seed_max": float(max(paired)) if paired else math.nan, "seed_pairs": len(paired)}


def ablation_analysis(table: runs.RunTable, full: list[dict],
                      analysis: ml_collections.ConfigDict, out: pathlib.Path,
                      evidence: Evidence) -> dict:
  """Every ablation's row; rows whose reference or variant LR choice is doubtful (at the
  grid edge, within seed noise) get `not_determined` with the reasons."""
  if analysis.ablation_reference not in table.groups:
    return {"rows": [], "status": f"no finished runs of {analysis.ablation_reference}"}
  target = ablation_target(table, analysis)
  lr = diagnostics.lr_reasons(evidence.lr_choices, evidence.noise)
  rows = []
  for name, spec in analysis.ablations.items():
    row = ablation_row(table, full, name, spec.reference, spec.variant, target)
    row["not_determined"] = "; ".join(f"{g}: {r}" for g in (spec.reference, spec.variant)
                                      for r in lr.get(g, []))
    rows.append(row)
  groups = [analysis.ablation_reference] + [
      g for g in dict.fromkeys(s.variant for s in analysis.ablations.values())
      if g in table.groups]
  plots.save_figure(plots.loss_vs_compute(
      table.only_groups(groups), None, [target],
      title=f"Ablation runs and the target loss {target:g}"), out / "ablation_curves")
  plots.save_figure(plots.ablation_cegs(rows, dict(analysis.published_ablations)),
                    out / "ablation_cegs")
  return {"target_loss": target, "rows": rows, "status": "ok",
          "figures": ["ablation_curves", "ablation_cegs"]}


# ----------------------------------------------------------------------------------------
# Accounting with the measured laws next to the published constants.


def accounting_analysis(scaling: dict, ablations: dict,
                        analysis: ml_collections.ConfigDict) -> dict:
  """Headline rows of the study's accounting with its published inputs and with ours."""
  config = config_lib.load_config_file(analysis.account_config, "analysis.account_config")
  published = account.study_from_dict(config.to_dict())
  years, level = list(config.headline_years), analysis.level
  out = {"published": account.headline_rows(published, years)}
  result, boot = scaling["result"], scaling["bootstrap"]
  law_map = {label: group for label, group in analysis.study_laws.items()
             if group in scaling["groups"]}
  # The measured rows use every mapped law: any law's reasons make them not determined.
  out["not_determined"] = diagnostics.not_determined(_diagnostics_of(scaling),
                                                     list(law_map.values()))
  cegs = {r["ablation"]: r["ceg"] for r in ablations.get("rows", [])
          if r.get("status") == "ok" and r["ablation"] in published.ablations}
  missing = sorted(set(analysis.study_laws) - set(law_map)) + sorted(
      set(published.ablations) - set(cegs))
  fitted = account.FittedLaws(
      {label: result.for_group(g) for label, g in law_map.items()},
      {} if boot is None else {label: boot.for_group(g) for label, g in law_map.items()},
      cegs, {})
  try:
    measured, sampled = account.with_fitted_laws(published, fitted)
    direct = next((r for r in ablations.get("rows", [])
                   if r["ablation"] == analysis.direct_total and r.get("status") == "ok"),
                  None)
    if direct is not None:
      measured = account.with_value(measured, "interaction.measured_total", direct["ceg"])
      if sampled is not None:
        sampled = account.with_value(sampled, "interaction.measured_total", direct["ceg"])
    out["measured"] = account.headline_rows(measured, years, (), sampled, level)
    out["measured_components"] = account.component_rows(measured, years[:1], sampled, level)
  except (account.AccountError, ValueError, FloatingPointError) as e:
    out["error"] = str(e)
  out["published_inputs_kept"] = missing
  return out


# ----------------------------------------------------------------------------------------
# Orchestration.


def analyse(config: ml_collections.ConfigDict, sweep_dir: pathlib.Path,
            out: pathlib.Path, log: Callable[[str], Any] = print) -> dict:
  """Everything the report shows, from the finished runs of `sweep_dir`; tables to `out`."""
  analysis = config.analysis
  out.mkdir(parents=True, exist_ok=True)
  table, full = full_runs_table(sweep_dir)
  lr = json.loads((sweep_dir / sweep.LR_CHOICES_FILE).read_text()) if (
      sweep_dir / sweep.LR_CHOICES_FILE).exists() else {}
  entropy, entropy_note = training_unigram_entropy(config)
  evidence = Evidence(lr, diagnostics.seed_noise(table.run_info.values()), entropy)
  with jax.enable_x64(True), warnings.catch_warnings(), np.errstate(all="ignore"):
    # Bootstrap refits that fail and laws that never reach a loss give NaN samples; the
    # intervals ignore them and the report says where a value is undefined.
    warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
    scaling = scaling_analysis(table, analysis, out, evidence)
    ablations = ablation_analysis(table, full, analysis, out, evidence)
    accounting = accounting_analysis(scaling, ablations, analysis)
  if lr:
    plots.save_figure(plots.lr_sweeps(lr), out / "lr_sweeps")
  failures = json.loads((sweep_dir / sweep.FAILURES_FILE).read_text())["failures"] if (
      sweep_dir / sweep.FAILURES_FILE).exists() else []
  fingerprints = {}
  for run_dir in sorted((sweep_dir / "runs").glob("*/")):
    path = run_dir / rundir.RUN_FILE
    if path.exists():
      info = json.loads(path.read_text())
      if info.get("data_fingerprint"):
        fingerprints[json.dumps(info["data_fingerprint"], sort_keys=True)] = info[
            "data_fingerprint"]
  summary = {"scaling": {k: v for k, v in scaling.items() if k not in ("result", "bootstrap")},
             "ablations": ablations, "accounting": accounting, "lr_choices": lr,
             "failures": failures, "excluded": [dataclasses.asdict(e) for e in table.excluded],
             "data_fingerprints": list(fingerprints.values()),
             "evidence": {"seed_noise": evidence.noise.value,
                          "seed_noise_source": evidence.noise.source,
                          "unigram_entropy": entropy, "unigram_entropy_source": entropy_note},
             "runs": len(table.run_ids), "train_seconds": total_train_seconds(sweep_dir)}
  (out / "summary.json").write_text(json.dumps(rundir.json_safe(summary), indent=1))
  for name, rows in (("laws", scaling["laws"]), ("coverage", scaling["coverage"]),
                     ("ceg", scaling["ceg"]), ("ablations", ablations["rows"]),
                     ("headline_measured", accounting.get("measured", [])),
                     ("headline_published", accounting["published"])):
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
  path.write_text(report_markdown(config, summary))
  log(f"report: {path}")
  return path


def total_train_seconds(sweep_dir: pathlib.Path) -> float:
  """Summed wall time of every run's training (all sessions), from run.json."""
  total = 0.0
  for path in (sweep_dir / "runs").glob(f"*/{rundir.RUN_FILE}"):
    total += float(json.loads(path.read_text()).get("wall_time_s") or 0.0)
  return total


# ----------------------------------------------------------------------------------------
# The report.


def _g(value: Any, fmt: str = "{:.4g}") -> str:
  if value is None or (isinstance(value, float) and not math.isfinite(value)):
    return "–"
  return fmt.format(value)


def _ci(row: dict, name: str, fmt: str = "{:.4g}") -> str:
  """`name` with its interval from `name_lower`/`name_upper` (law and pair rows)."""
  return _interval_text(row.get(name), row.get(f"{name}_lower"), row.get(f"{name}_upper"),
                        fmt)


def _band_ci(row: dict, fmt: str = "{:.4g}") -> str:
  """A long-format CEG row's estimate with its interval (keys estimate, lower, upper)."""
  return _interval_text(row.get("estimate"), row.get("lower"), row.get("upper"), fmt)


def _interval_text(estimate, lower, upper, fmt: str) -> str:
  text = _g(estimate, fmt)
  if lower is not None and upper is not None and math.isfinite(lower) and math.isfinite(upper):
    text += f" [{fmt.format(lower)}, {fmt.format(upper)}]"
    if diagnostics.zero_width(lower, upper, estimate):
      text += f" {diagnostics.ZERO_WIDTH_MARK}"
  return text


def _or_not_determined(row: dict, text: str, diags: dict | None = None) -> str:
  """`text`, or "not determined: <reasons>" when the row's inputs have reasons: with the
  groups' `diags`, each group's reason labels (the Diagnostics table has the details)."""
  if not row.get("not_determined"):
    return text
  if diags:
    return "not determined: " + diagnostics.not_determined(
        diags, [row["group"], row["reference"]], short=True)
  return f"not determined: {row['not_determined']}"


def _table(header: list[str], rows: list[list[str]]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(r) + " |" for r in rows]
  return "\n".join(lines) + "\n"


def _finite(value: Any) -> bool:
  return isinstance(value, (int, float)) and math.isfinite(value)


def _multiple(value: float | None) -> str:
  if value is None or not math.isfinite(value):
    return "–"
  return f"{value:,.0f}x" if abs(value) >= 100 else f"{value:.3g}x"


def _laws_table(law_rows: list[dict]) -> str:
  return _table(["architecture", "fit points", "a", "alpha", "E"], [
      [r["group"], str(r["fit_points"]), _ci(r, "a"), _ci(r, "alpha", "{:.4f}"),
       _ci(r, "E", "{:.3f}")] for r in law_rows])


def _pairs_table(pairs: list[dict], level: str, diags: dict | None = None) -> str:
  return _table(["group", "reference", "difference", f"{level} CI excludes 0?"], [
      [r["group"], r["reference"], _ci(r, "exponent_difference", "{:.4f}"),
       _or_not_determined(r, "yes: distinguishable" if r["distinguishable"] else
                          "no: not distinguishable at this scale", diags)] for r in pairs])


def _diagnostics_section(scaling: dict, evidence: dict) -> str:
  """Per group: the reasons its law is not determined, and the checks that could not run."""
  text = ["### Diagnostics\n",
          "A group with a reason below makes every number derived from its law (CEG, exponent "
          "difference, accounting) *not determined* (algoprog.analysis.diagnostics).\n"]
  if evidence:
    entropy = evidence.get("unigram_entropy")
    text.append(f"Seed noise {evidence['seed_noise']:.3f} nats "
                f"({evidence['seed_noise_source']}); unigram entropy "
                + (f"{entropy:.3f} nats/token ({evidence['unigram_entropy_source']})"
                   if entropy is not None else evidence["unigram_entropy_source"]) + ".\n")
  text.append(_table(["group", "not determined because", "checks skipped"], [
      [g, "; ".join(d["reasons"]) or "– (determined)", "; ".join(d["skipped"]) or "–"]
      for g, d in scaling["diagnostics"].items()]))
  return "\n".join(text)


def report_markdown(config: ml_collections.ConfigDict, s: dict) -> str:
  """The report: what ran, what it covered, the fits, CEGs, ablations and accounting."""
  a = config.analysis
  scaling, ablations, accounting = s["scaling"], s["ablations"], s["accounting"]
  level = f"{a.level:.0%}"
  parts = [f"# algoprog study report: {config.name}\n",
           f"{config.description}\n",
           f"{s['runs']} full runs analysed; {len(s['failures'])} failed runs; training wall "
           f"time {s['train_seconds'] / 60:.1f} min summed over all runs (LR sweeps included)"
           + (f"; the last `reproduce` session took {s['session_seconds'] / 60:.1f} min"
              if "session_seconds" in s else "")
           + ". Every number below is computed from these runs by `algoprog.reproduce`; none "
           "is set to match the study.\n"]
  for fp in s["data_fingerprints"]:
    shown = {k: (v[:16] if k.endswith("sha256") and isinstance(v, str) else v)
             for k, v in fp.items()}
    parts.append("Data: " + ", ".join(f"{k} `{v}`" for k, v in sorted(shown.items())) + "\n")
  if s["failures"]:
    parts.append("## Failed runs (kept out of the fits, listed here)\n")
    parts.append(_table(["run", "group", "reason"], [
        [f["run_id"], str(f["label"]), str(f["reason"])[:200]] for f in s["failures"]]))

  parts.append("## Compute covered\n")
  parts.append(_table(
      ["architecture", "runs", "all points, FLOPs", "frontier points", "frontier, FLOPs",
       "decades", "best loss"],
      [[r["group"], str(r["runs"]), f"{r['min_compute']:.3g} – {r['max_compute']:.3g}",
        str(r["frontier_points"]),
        f"{r['frontier_min_compute']:.3g} – {r['frontier_max_compute']:.3g}",
        f"{r['frontier_decades']:.2f}", f"{r['best_loss']:.4f}"]
       for r in scaling["coverage"]]))
  if scaling["missing_groups"]:
    parts.append(f"No finished runs (not fitted): {', '.join(scaling['missing_groups'])}.\n")

  parts.append(f"## Frontier fits  L(C) = E + a·C^alpha  ({level} bootstrap CIs over runs)\n")
  parts.append(f"Frontier: {a.frontier} of each run's points from {a.skip_fraction:.0%} of its "
               f"tokens on; E: {a.irreducible}; {a.bootstrap} bootstrap refits resampling "
               f"{a.resample}. C in FLOPs (algoprog.training.flops), L in nats/token.\n")
  parts.append(_laws_table(scaling["laws"]))
  parts.append("![loss vs compute](analysis/loss_vs_compute.png)\n")
  for w in scaling["warnings"] + diagnostics.zero_width_warnings(scaling["laws"], a.level):
    parts.append(f"> fit warning: {w}\n")
  diags = None
  if "diagnostics" in scaling:  # (summaries written before the diagnostics have none)
    parts.append(_diagnostics_section(scaling, s.get("evidence", {})))
    diags = _diagnostics_of(scaling)
  if scaling["exponent_pairs"]:
    parts.append("### Exponent differences (alpha_group − alpha_reference)\n")
    parts.append(_pairs_table(scaling["exponent_pairs"], level, diags))
  sensitivity = scaling.get("sensitivity")
  if sensitivity:
    parts.append(f"### Sensitivity: E {sensitivity['irreducible']} instead of "
                 f"{scaling.get('irreducible', a.irreducible)}\n")
    parts.append("The same frontiers refitted with the other choice of the irreducible loss; "
                 "a conclusion that holds only under one of them is not a finding.\n")
    parts.append(_laws_table(sensitivity["laws"]))
    reasons = [f"{g}: {r}" for g, d in sensitivity["diagnostics"].items()
               for r in d["reasons"]]
    if reasons:
      parts.append("Diagnostics of this fit: " + "; ".join(reasons) + ".\n")
    if sensitivity["exponent_pairs"]:
      parts.append(_pairs_table(sensitivity["exponent_pairs"], level,
                                _diagnostics_of(sensitivity)))

  parts.append(f"## CEG over {a.reference} from the fitted laws\n")
  parts.append("CEG(C) = C_reference(L_group(C)) / C: compute the reference needs for the "
               "loss the group reaches with C. Computes beyond the frontier points are "
               "extrapolations.\n")
  rows = [r for r in scaling["ceg"] if r["quantity"] == "ceg_at_compute"]
  parts.append(_table(["group", "at C (FLOPs)", f"CEG [{level} CI]"], [
      [r["group"], f"{r['at']:.3g}", _or_not_determined(r, _band_ci(r, "{:.3g}"), diags)]
      for r in rows]))
  if "ceg_vs_compute" in scaling["figures"]:
    parts.append("![CEG vs compute](analysis/ceg_vs_compute.png)\n")

  parts.append("## Ablations (raw curves at one target loss)\n")
  if ablations.get("status") != "ok":
    parts.append(f"Not analysed: {ablations.get('status')}.\n")
  else:
    published = dict(a.published_ablations)
    parts.append(
        f"Target loss {ablations['target_loss']:g} nats/token "
        f"({'configured' if a.ablation_target_loss else 'the reference worst seed final loss + ' + str(a.ablation_target_margin)}). "
        "CEG = C_variant / C_reference at the target (how much more compute the variant "
        "needs), geometric mean over seeds; spread = min–max of seed-paired ratios; each "
        "crossing interpolated in ln C between evaluations. A variant that never reaches the "
        "target gets a lower bound.\n")
    table_rows = []
    for r in ablations["rows"]:
      if r.get("status") == "ok":
        value = f"{r['ceg']:.3g}x"
        spread = f"{r['seed_min']:.3g}–{r['seed_max']:.3g} ({r['seed_pairs']} pairs)"
      elif "ceg_lower_bound" in r:
        value, spread = f"≥ {r['ceg_lower_bound']:.3g}x (target not reached)", "–"
      else:
        value, spread = r.get("status", "?"), "–"
      table_rows.append([r["ablation"], f"{r['reference']} vs {r['variant']}",
                         _or_not_determined(r, value), spread,
                         _multiple(published.get(r["ablation"]))])
    parts.append(_table(["ablation", "runs", "CEG", "seed spread", "study (64d, GPT-2 BPE)"],
                        table_rows))
    parts.append("![ablation CEGs](analysis/ablation_cegs.png)\n")
    parts.append("![ablation curves](analysis/ablation_curves.png)\n")

  parts.append("## Accounting: the study's published inputs vs this study's measurements\n")
  parts.append("The measured row replaces the study's frontier laws and ablation CEGs by the "
               "ones fitted here and extrapolates them to the frontier compute of each year: "
               "many decades beyond the data, so read it as what these small runs imply, "
               "not as a measurement at that scale.\n")
  if accounting.get("published_inputs_kept"):
    parts.append(f"Published values kept (not measured here): "
                 f"{', '.join(accounting['published_inputs_kept'])}.\n")
  head = ["inputs", "year", "FLOPs", "total", "scale-invariant", "scale-dep. share"]
  rows = []
  for name in ("published", "measured"):
    for r in accounting.get(name, []):
      if name == "measured" and accounting.get("not_determined"):
        rows.append([name, str(r["year"]), f"{r['compute']:.3g}", "not determined (below)",
                     "–", "–"])
        continue
      rows.append([name, str(r["year"]), f"{r['compute']:.3g}", _multiple(r["total"]) + (
          f" [{_multiple(r['total_lower'])}, {_multiple(r['total_upper'])}]"
          if "total_lower" in r else ""), _multiple(r["scale_invariant"]),
          _g(r["scale_dependent_share"], "{:.1%}")])
  parts.append(_table(head, rows))
  if accounting.get("not_determined"):
    parts.append(f"Measured accounting not determined: {accounting['not_determined']} "
                 "(its numbers are in analysis/summary.json and headline_measured.csv).\n")
  if any(not _finite(r.get("total")) for r in accounting.get("measured", [])):
    parts.append("A measured total shown as – is undefined: extrapolated that far, one fitted "
                 "law's loss falls below the other's irreducible loss E, so the other never "
                 "reaches it and the CEG (compute ratio) does not exist. The fitted E values "
                 "above say which.\n")
  if "error" in accounting:
    parts.append(f"Measured accounting not computed: {accounting['error']}\n")

  if s["lr_choices"]:
    parts.append("## Learning-rate sweeps\n")
    rows = []
    for key, entry in sorted(s["lr_choices"].items()):
      curve = ", ".join(f"{p['learning_rate']:.3g}: {_g(p['final_validation_loss'])}"
                        for p in sorted(entry["curve"], key=lambda p: p["learning_rate"]))
      rows.append([key, _g(entry.get("chosen_learning_rate"), "{:.3g}"),
                   "yes" if entry.get("chosen_at_grid_edge") else "no",
                   _g(entry.get("margin_to_next_best"), "{:.3f}"), curve])
    parts.append("Margin: final loss of the next best LR minus the chosen one's (nats). A "
                 "margin below the seed spread means the sweep's budget could not tell "
                 "those LRs apart; lengthen `lr_budget_fraction`.\n")
    parts.append(_table(["group/width", "chosen LR", "at grid edge", "margin", "LR: final loss"],
                        rows))
    parts.append("![LR sweeps](analysis/lr_sweeps.png)\n")
  if s["excluded"]:
    parts.append("## Excluded runs\n")
    parts.append(_table(["run", "group", "reason"], [
        [e["run_id"], e["group"], e["reason"][:200]] for e in s["excluded"]]))
  parts.append("Files: `analysis/` holds every table as CSV, all numbers in `summary.json`, "
               "and the figures as PNG and SVG; `sweep/` holds the runs.\n")
  return "\n".join(parts)


# ----------------------------------------------------------------------------------------
# The study's config (configs/reproduce_*.py call this with their scale's numbers).

# The study's tuned learning rates (SPEC.md), the centres of our LR sweeps.
STUDY_LEARNING_RATES = {
    "modern": {32: 9.95e-3, 64: 5.79e-3, 128: 3.37e-3, 256: 1.97e-3},
    "retro": {32: 5.6e-3, 64: 1.86e-3, 128: 6.2e-4, 256: 3.16e-4},
    "lstm": {32: 5.62e-2, 64: 3.16e-2, 128: 1.78e-2, 256: 1.0e-2},
}
SCALING_CONFIGS = {"lstm": "configs/lstm.py", "retro": "configs/retro.py",
                   "modern": "configs/modern.py"}
# Study ablation name -> (reference group, variant group, variant config, LR-sweep centre;
# None = the modern anchors at the ablation width). CEG = C_variant / C_reference.
ABLATIONS = {
    "swiglu_vs_gelu": ("ablation_reference", "ablation_gelu", "configs/ablation_gelu.py", None),
    "swiglu_vs_relu": ("ablation_reference", "ablation_relu", "configs/ablation_relu.py", None),
    "rotary_vs_learned": ("ablation_reference", "ablation_learned_positions",
                          "configs/ablation_learned_positions.py", None),
    "rotary_vs_sinusoidal": ("ablation_reference", "ablation_sinusoidal_positions",
                             "configs/ablation_sinusoidal_positions.py", None),
    "prenorm_vs_postnorm": ("ablation_reference", "ablation_post_norm",
                            "configs/ablation_post_norm.py", None),
    "rmsnorm_vs_layernorm": ("ablation_reference", "ablation_layernorm",
                             "configs/ablation_layernorm.py", None),
    "cosine_vs_inverse_sqrt": ("ablation_reference", "ablation_inverse_sqrt",
                               "configs/ablation_inverse_sqrt.py", None),
    "cosine_vs_linear": ("ablation_reference", "ablation_linear_decay",
                         "configs/ablation_linear_decay.py", None),
    "adamw_vs_adam": ("ablation_reference", "ablation_adam", "configs/ablation_adam.py", None),
    # SGD with heavy-ball momentum needs a far larger step than Adam: its own sweep centre.
    "adam_vs_sgd": ("ablation_adam", "ablation_sgd", "configs/ablation_sgd.py", 0.1),
    "modern_vs_retro": ("ablation_reference", "ablation_retro", "configs/retro.py", None),
}
PUBLISHED_ABLATIONS = {"swiglu_vs_gelu": 1.17, "rotary_vs_learned": 1.26,
                       "rotary_vs_sinusoidal": 1.44, "prenorm_vs_postnorm": 1.87,
                       "rmsnorm_vs_layernorm": 1.09, "cosine_vs_inverse_sqrt": 1.04,
                       "adamw_vs_adam": 1.00, "adam_vs_sgd": 1.67, "modern_vs_retro": 1.33}


def study_config(*, name: str, description: str, data: dict, train: dict,
                 scaling_widths: dict, scaling_seeds: tuple, tokens_per_param: float,
                 lr_sweep_widths: dict, ablation_width: int, ablation_seeds: tuple,
                 ablation_tokens_per_param: float, ablations: tuple = tuple(ABLATIONS),
                 lr_points: int = 3, lr_spacing_decades: float = 0.5,
                 lr_budget_fraction: float = 0.05, lr_min_tokens: int = 16_000_000,
                 lr_max_extensions: int = 2, workers: int = 1, bootstrap: int = 1000,
                 extra_ceg_compute: tuple = (), scaling_configs: dict | None = None,
                 scaling_overrides: dict | None = None, lr_anchors: dict | None = None,
                 ablation_specs: dict | None = None) -> ml_collections.ConfigDict:
  """A reproduce config: the sweep (algoprog.training.sweep) and the analysis.

  Any group label may be a scaling group (your own architecture next to the study's):
  `scaling_configs[label]` is its config file (default SCALING_CONFIGS, the study's three),
  `scaling_overrides[label]` its config overrides (nested, e.g. a plug-in's fields), and
  its LR sweeps are centred on `lr_anchors[label]` ({width: lr}, log-log interpolated), by
  default the study's tuned LRs of that label (STUDY_LEARNING_RATES) or, for a label the
  study has none for, the modern Transformer's (the recipe a new variant starts from).
  `ablation_specs` adds or replaces ablations: name -> (reference group, variant group,
  variant config file, LR-sweep centre or None for the modern anchors), as ABLATIONS.

  Fields (all overridable, e.g. --config.analysis.bootstrap=200):
    name, description: the report's title and first paragraph.
    sweep.workers: training processes at a time.
    sweep.overrides: config fields every run gets (data, train cadence; nested).
    sweep.lr_sweep.{points, spacing_decades, budget_fraction, min_tokens, center}: the LR
      grid (points, log10 spacing) and the reduced budget max(min_tokens, fraction x full).
    sweep.lr_sweep.max_extensions: points the grid may grow by past an end that wins
      (algoprog.training.sweep.lr_search).
    sweep.groups.<label>: one architecture or ablation variant (algoprog.training.sweep.plan_runs):
      config, widths, seeds, tokens_per_param, lr_widths/lr_values (sweep centres), lr_sweep,
      lr_sweep_widths, lr_center, overrides.
    analysis.scaling_groups: groups whose frontiers are fitted.
    analysis.reference: the group CEGs of the scaling fits are measured against.
    analysis.skip_fraction: each run's points before this fraction of its tokens (warmup
      is 10%) are not fitted (the frontier is taken over all points first).
    analysis.frontier, irreducible, shared_exponent: how the laws are fitted (algoprog.analysis.fit);
      irreducible "shared" (default: the architectures train on the same data, so one E
      fitted jointly), "fit" (one E per group) or a number (fixed, nats).
    analysis.sensitivity_irreducible: the laws and exponent differences refitted with this
      E (default "fit": per group) as a sensitivity row; "" for none.
    analysis.bootstrap, resample, seed, level: the CIs (refits, what is resampled).
    analysis.ceg_compute: FLOPs at which to report the fitted CEG; () -> low, middle and high
      end of the compute the frontiers cover. analysis.extra_ceg_compute: added to those.
    analysis.ablation_reference: the group every ablation target is set from.
    analysis.ablations.<name>: reference and variant group of one ablation CEG.
    analysis.ablation_target_loss: nats/token; 0 -> the reference's worst final validation
      loss over seeds + analysis.ablation_target_margin.
    analysis.direct_total: the ablation measuring modern over retro directly (the accounting's
      interaction normalisation).
    analysis.published_ablations: the study's values, printed next to ours.
    analysis.study_laws: accounting law label -> scaling group measured here.
    analysis.account_config: the accounting config whose published inputs are compared.
  """
  c = ml_collections.ConfigDict()
  c.name = name
  c.description = description
  c.sweep = ml_collections.ConfigDict()
  c.sweep.workers = workers
  # Every data field and every non-budget train field is listed, so that any of them can
  # be overridden from the command line (--config.sweep.overrides.data.source=text).
  base = config_lib.base_config()
  budget_fields = ("tokens", "tokens_per_param", "min_tokens", "flops")
  c.sweep.overrides = ml_collections.ConfigDict({
      "data": {**base.data.to_dict(), **data},
      "train": {**{k: v for k, v in base.train.to_dict().items() if k not in budget_fields},
                **train}})
  c.sweep.lr_sweep = ml_collections.ConfigDict(dict(
      points=lr_points, spacing_decades=lr_spacing_decades, budget_fraction=lr_budget_fraction,
      min_tokens=lr_min_tokens, center=3e-3, max_extensions=lr_max_extensions))
  groups = {}
  config_files = {**SCALING_CONFIGS, **(scaling_configs or {})}
  anchors_by_label = {**STUDY_LEARNING_RATES, **(lr_anchors or {})}
  for label, widths in scaling_widths.items():
    if label not in config_files:
      raise ReproduceError(f"scaling_configs: no config file for scaling group {label!r} "
                           f"(the study's are {', '.join(SCALING_CONFIGS)}; pass "
                           f"scaling_configs={{{label!r}: 'path/to/config.py'}})")
    anchors = anchors_by_label.get(label, STUDY_LEARNING_RATES["modern"])
    groups[label] = dict(config=config_files[label], widths=tuple(widths),
                         seeds=tuple(scaling_seeds), tokens_per_param=float(tokens_per_param),
                         lr_widths=tuple(anchors), lr_values=tuple(anchors.values()),
                         lr_sweep=True,
                         lr_sweep_widths=tuple(lr_sweep_widths.get(label, widths)),
                         lr_center=0.0, flops_budgets=(),
                         overrides=dict((scaling_overrides or {}).get(label, {})))
  modern = STUDY_LEARNING_RATES["modern"]
  specs = {**ABLATIONS, **(ablation_specs or {})}
  unknown = [a for a in ablations if a not in specs]
  if unknown:
    raise ReproduceError(f"ablations: unknown {', '.join(map(repr, unknown))}; expected names "
                         f"of {', '.join(specs)} (or add them with ablation_specs)")
  variants = {"ablation_reference": ("configs/modern.py", None)}
  for ablation in ablations:
    _, variant, config_file, center = specs[ablation]
    variants[variant] = (config_file, center)
  for label, (config_file, center) in variants.items():
    groups[label] = dict(config=config_file, widths=(ablation_width,),
                         seeds=tuple(ablation_seeds),
                         tokens_per_param=float(ablation_tokens_per_param),
                         lr_widths=() if center else tuple(modern),
                         lr_values=() if center else tuple(modern.values()),
                         lr_sweep=True, lr_sweep_widths=(), lr_center=float(center or 0.0),
                         flops_budgets=(), overrides={})
  c.sweep.groups = ml_collections.ConfigDict(groups)

  c.analysis = ml_collections.ConfigDict()
  c.analysis.scaling_groups = tuple(scaling_widths)
  c.analysis.reference = "lstm" if "lstm" in scaling_widths else tuple(scaling_widths)[0]
  c.analysis.frontier = "envelope"
  c.analysis.skip_fraction = 0.1
  c.analysis.irreducible = "shared"
  c.analysis.sensitivity_irreducible = "fit"
  c.analysis.shared_exponent = False
  c.analysis.bootstrap = bootstrap
  c.analysis.resample = "runs"
  c.analysis.seed = 0
  c.analysis.level = 0.95
  c.analysis.ceg_compute = ()
  c.analysis.extra_ceg_compute = tuple(extra_ceg_compute)
  c.analysis.ablation_reference = "ablation_reference"
  c.analysis.ablations = ml_collections.ConfigDict({
      a: dict(reference=specs[a][0], variant=specs[a][1]) for a in ablations})
  c.analysis.ablation_target_loss = 0.0
  c.analysis.ablation_target_margin = 0.02
  c.analysis.direct_total = "modern_vs_retro"
  c.analysis.published_ablations = ml_collections.ConfigDict(PUBLISHED_ABLATIONS)
  c.analysis.study_laws = ml_collections.ConfigDict(
      {label: label for label in ("lstm", "retro", "modern") if label in scaling_widths})
  c.analysis.account_config = "configs/account_study.py"
  return c
