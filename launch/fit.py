r"""Fits scaling laws and compute-equivalent gains:
`python -m launch.fit --runs=DIR_or_CSV --out=DIR [--reference=GROUP ...]`.

Prints the fitted laws with confidence intervals, their diagnostics (algoprog.analysis.diagnostics:
numbers derived from a law with reasons are "not determined"), the CEG tables and the
excluded runs; on a sweep folder fits only its full runs unless --all_stages; writes to --out: laws.csv, laws.json (the format `launch.account --config.laws_json` reads),
ceg.csv, raw_ceg.csv, excluded.csv, summary.json and loss_vs_compute.{png,svg}
(+ ceg_vs_compute.{png,svg} with a bootstrap). docs/fit.md documents every flag.
"""

import dataclasses
import json
import math
import pathlib
import sys

import numpy as np
from absl import app, flags

from algoprog import rundir
from algoprog.training import console
from algoprog.analysis import ceg, diagnostics, fit, laws, plots, runs

_RUNS = flags.DEFINE_string("runs", None, "A folder of training runs, or a .csv/.jsonl table.")
_OUT = flags.DEFINE_string("out", None, "Output folder (created).")
_COLUMNS = flags.DEFINE_string(
    "columns", None, "Column mapping for a CSV/JSONL table, e.g. "
    "'compute=flops,loss=val_loss,run=run_id,group=arch,params=n,tokens=d'.")
_GROUPS = flags.DEFINE_list("groups", None, "Groups to fit (default: all).")
_FRONTIER = flags.DEFINE_enum("frontier", "envelope", list(fit.FRONTIERS),
                              "Which points each group's law is fitted to.")
_IRREDUCIBLE = flags.DEFINE_string(
    "irreducible", "auto", "E: 'fit' (per group), 'shared' (one for all groups), a number "
    "of nats (fixed; the study used 1.9), or 'auto': shared when every run records the same "
    "training data (a folder of runs), else per group.")
_SENSITIVITY = flags.DEFINE_bool(
    "sensitivity", True, "Also refit with the other of 'shared'/'fit' E and print its laws "
    "and exponent differences (a sensitivity row).")
_ALL_STAGES = flags.DEFINE_bool(
    "all_stages", False, "On a sweep folder, also fit the LR-sweep runs (default: full runs "
    "only; runs without a recorded stage count as full unless their id has '_lrsweep' or "
    "the sweep's manifest.json says otherwise).")
_UNIGRAM_ENTROPY = flags.DEFINE_float(
    "unigram_entropy", 0.0, "Unigram entropy of the training tokens, nats/token: runs "
    "ending near it are on the plateau (a diagnostic); 0: unknown, check skipped.")
_SHARED_EXPONENT = flags.DEFINE_bool("shared_exponent", False,
                                     "One exponent for all groups, a multiplier each.")
_LOSS = flags.DEFINE_enum("loss", "squares", ["squares", "huber"],
                          "Penalty on ln-loss residuals.")
_HUBER_DELTA = flags.DEFINE_float("huber_delta", fit.DEFAULT_HUBER_DELTA,
                                  "Huber delta (with --loss=huber).")
_MIN_COMPUTE = flags.DEFINE_float(
    "min_compute", None, "Fit no frontier point below this many FLOPs (the frontier is "
    "taken over all points first).")
_MAX_COMPUTE = flags.DEFINE_float("max_compute", None,
                                  "Fit no frontier point above this many FLOPs.")
_REFERENCE = flags.DEFINE_string("reference", None,
                                 "Reference group of the CEGs (default: the first group).")
_TARGET_LOSS = flags.DEFINE_multi_float(
    "target_loss", [], "Target loss(es), nats/token: raw-curve CEG, fitted CEG at that loss, "
    "and lines on the figure.")
_CEG_COMPUTE = flags.DEFINE_multi_float("ceg_compute", [],
                                        "Compute(s), FLOPs, at which to report fitted CEG.")
_RAW_COMBINE = flags.DEFINE_enum("raw_combine", "envelope", list(ceg.COMBINES),
                                 "How a group's runs combine for raw-curve CEG.")
_BOOTSTRAP = flags.DEFINE_integer("bootstrap", 1000, "Bootstrap refits (0: none).")
_RESAMPLE = flags.DEFINE_enum("resample", "runs", list(fit.RESAMPLES),
                              "What the bootstrap resamples.")
_LEVEL = flags.DEFINE_float("level", 0.95, "Confidence level of the intervals.")
_SEED = flags.DEFINE_integer("seed", 0, "Bootstrap seed.")
_CHINCHILLA = flags.DEFINE_bool(
    "chinchilla", False, "Also fit L(N, D) = E + A/N^alpha + B/D^beta per group on the runs' "
    "final points (needs params and tokens).")
flags.mark_flags_as_required(["runs", "out"])


def _interval_text(i: laws.Interval, fmt: str = "{:.4g}") -> str:
  text = fmt.format(i.estimate)
  if math.isfinite(i.lower):
    text += f" [{fmt.format(i.lower)}, {fmt.format(i.upper)}]"
    if diagnostics.zero_width(i.lower, i.upper, i.estimate):
      text += f" {diagnostics.ZERO_WIDTH_MARK}"
  return text


def auto_irreducible(table: runs.RunTable, groups) -> str:
  """'shared' when the groups' runs all record one training-data fingerprint (architectures
  on the same data have one irreducible loss), else 'fit' (per group; also for tables,
  which record no data)."""
  fingerprints = {json.dumps(info.get("data_fingerprint"), sort_keys=True)
                  for info in table.run_info.values() if info.get("label") in groups}
  known = table.run_info and "null" not in fingerprints
  return "shared" if known and len(fingerprints) == 1 and len(groups) > 1 else "fit"


def lr_choices_near(path: pathlib.Path) -> dict | None:
  """The sweep's lr_choices.json in a runs folder or its parent (a sweep directory or its
  runs/), or None."""
  for place in (path, path.parent):
    candidate = place / "lr_choices.json"
    if path.is_dir() and candidate.exists():
      try:
        return json.loads(candidate.read_text())
      except json.JSONDecodeError as e:
        raise runs.RunTableError(f"{candidate}: not valid JSON ({e.msg})") from None
  return None


def pair_rows(result, bootstrap, diags, level: float) -> list[dict]:
  """Exponent difference of every pair of groups; "distinguishable" only when both groups
  are determined (else None, with the reasons in not_determined)."""
  rows = []
  for i, a in enumerate(result.groups):
    for b in result.groups[i + 1:]:
      if bootstrap is None:
        d = laws.Interval(result.for_group(b).alpha - result.for_group(a).alpha, math.nan,
                          math.nan)
        verdict = None
      else:
        test = ceg.scale_dependence(result, bootstrap, a, b, level)
        d, verdict = test.exponent_difference, test.scale_dependent
      reasons = diagnostics.not_determined(diags, [a, b])
      rows.append({"group": b, "reference": a, "exponent_difference": d.estimate,
                   "exponent_difference_lower": d.lower, "exponent_difference_upper": d.upper,
                   "distinguishable": None if reasons else verdict,
                   "not_determined": reasons})
  return rows


def _verdict(row: dict, diags) -> str:
  if row["not_determined"]:
    return "not determined: " + diagnostics.not_determined(
        diags, [row["group"], row["reference"]], short=True)
  if row["distinguishable"] is None:
    return ""
  return "distinguishable" if row["distinguishable"] else "not distinguishable"


def _aligned(rows: list[list[str]]) -> str:
  widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
  return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)


def laws_json(result: fit.PowerLawFit, bootstrap) -> dict:
  """{"laws": {group: {a, alpha, E}}, "bootstrap": {group: {a: [...], ...}}}: the format
  launch.account reads (NaN samples, failed refits, as null)."""
  data = {"laws": {g: result.for_group(g)._asdict() for g in result.groups}}
  if bootstrap is not None:
    data["bootstrap"] = {
        g: {k: [rundir.json_safe(v) for v in vs] for k, vs in
            bootstrap.for_group(g)._asdict().items()} for g in bootstrap.groups}
  return data


def chinchilla_rows(table: runs.RunTable, groups, num_samples: int, seed: int,
                    level: float) -> list[dict]:
  rows = []
  finals = fit.final_points(table)
  for group in groups:
    sub = finals.only_groups([group])
    result = fit.fit_chinchilla(sub.params, sub.tokens, sub.loss)
    samples = (fit.bootstrap_chinchilla(sub.params, sub.tokens, sub.loss, result,
                                        num_samples=num_samples, seed=seed)
               if num_samples else None)
    row = {"group": group, "points": int(sub.loss.size), "objective": result.objective}
    for name, value in result.law._asdict().items():
      i = laws.interval(value, getattr(samples, name) if samples else [math.nan], level)
      row.update({name: i.estimate, f"{name}_lower": i.lower, f"{name}_upper": i.upper})
    exponent = laws.chinchilla_frontier(result.law).alpha
    row["loss_exponent"] = float(exponent)
    row["params_exponent"] = float(result.law.beta / (result.law.alpha + result.law.beta))
    rows.append(row)
  return rows


def _laws_text(law_rows: list[dict]) -> str:
  return _aligned([["group", "points", "a", "alpha", "E"]] + [
      [r["group"], str(r["fit_points"])] + [
          _interval_text(laws.Interval(r[k], r[f"{k}_lower"], r[f"{k}_upper"]))
          for k in ("a", "alpha", "E")] for r in law_rows])


def _pairs_text(pairs: list[dict], diags) -> str:
  return _aligned([["group", "reference", "difference", "verdict"]] + [
      [r["group"], r["reference"],
       _interval_text(laws.Interval(r["exponent_difference"], r["exponent_difference_lower"],
                                    r["exponent_difference_upper"])), _verdict(r, diags)]
      for r in pairs])


def main(argv):
  del argv
  console.quiet_libraries()
  out = pathlib.Path(_OUT.value)
  try:
    columns = runs.ColumnMapping.parse(_COLUMNS.value) if _COLUMNS.value else None
    table = runs.load_runs(_RUNS.value, columns,
                           stages=None if _ALL_STAGES.value else runs.FULL_STAGES)
    # Points outside the range are not fitted, but the frontier is taken over all of them.
    eligible = (table.compute >= (_MIN_COMPUTE.value or 0)) & (
        table.compute <= (_MAX_COMPUTE.value or math.inf))
    groups = _GROUPS.value or table.groups
    reference = _REFERENCE.value or groups[0]
    irreducible = (auto_irreducible(table, groups) if _IRREDUCIBLE.value == "auto"
                   else _IRREDUCIBLE.value)
    fitted = {}  # E choice -> (fit, bootstrap, warnings, diagnostics)
    choices = [irreducible]
    if _SENSITIVITY.value and irreducible in ("shared", "fit") and len(groups) > 1:
      choices.append("fit" if irreducible == "shared" else "shared")
    lr_choices = lr_choices_near(pathlib.Path(_RUNS.value))
    noise = diagnostics.seed_noise(table.run_info.values())
    for choice in choices:
      options = fit.PowerLawOptions(
          irreducible=choice, shared_exponent=_SHARED_EXPONENT.value,
          huber_delta=_HUBER_DELTA.value if _LOSS.value == "huber" else None)
      result, bootstrap, fit_warnings = fit.fit_and_bootstrap(
          table, groups=groups, frontier=_FRONTIER.value, options=options,
          num_samples=_BOOTSTRAP.value, resample=_RESAMPLE.value, seed=_SEED.value,
          eligible=eligible)
      diags = diagnostics.diagnose(result, table, lr_choices=lr_choices, noise=noise,
                                   entropy=_UNIGRAM_ENTROPY.value or None)
      fitted[str(choice)] = (result, bootstrap, fit_warnings, diags)
    result, bootstrap, fit_warnings, diags = fitted[str(irreducible)]
    options = result.options
    if reference not in result.groups:
      raise fit.FitError(f"--reference={reference}: not a fitted group ("
                         f"{', '.join(result.groups)})")
    cegs = []
    for r in ceg.ceg_table(result, bootstrap, reference, computes=_CEG_COMPUTE.value,
                           losses=_TARGET_LOSS.value, level=_LEVEL.value):
      reasons = diagnostics.not_determined(diags, [r.group, r.reference])
      cegs.append({**dataclasses.asdict(r), "not_determined": reasons,
                   "scale_dependent": None if reasons else r.scale_dependent})
    raw = [r for t in _TARGET_LOSS.value for r in ceg.raw_ceg_table(
        table, reference, t, groups=groups, combine=_RAW_COMBINE.value,
        num_samples=_BOOTSTRAP.value, seed=_SEED.value, level=_LEVEL.value)]
    chinchilla = (chinchilla_rows(table, groups, _BOOTSTRAP.value, _SEED.value, _LEVEL.value)
                  if _CHINCHILLA.value else [])
  except (runs.RunTableError, fit.FitError, ceg.TargetNotReached) as e:
    sys.exit(f"error: {e}")

  out.mkdir(parents=True, exist_ok=True)
  laws_table = fit.law_rows(result, bootstrap, _LEVEL.value)
  fit_warnings = fit_warnings + diagnostics.zero_width_warnings(laws_table, _LEVEL.value)
  for message in fit_warnings:
    print(f"warning: {message}")
  if table.other_stages:
    stages = sorted({e.reason for e in table.other_stages})
    print(f"left out {len(table.other_stages)} runs of other stages ({', '.join(stages)}); "
          "--all_stages fits them too")
  print(f"{len(table.run_ids)} runs, {table.loss.size} points from {table.source}; "
        f"frontier {result.frontier}; E {options.irreducible}"
        + ("; shared exponent" if options.shared_exponent else "")
        + (f"; {_BOOTSTRAP.value} bootstrap refits resampling {_RESAMPLE.value}, "
           f"{_LEVEL.value:.0%} intervals" if bootstrap else ""))
  print("\nfitted laws  L(C) = E + a * C^alpha  (C in FLOPs, L in nats/token)")
  print(_laws_text(laws_table))
  print("\ndiagnostics (a group with reasons makes every number derived from its law "
        "not determined)")
  for group, d in diags.items():
    print(f"  {group}: " + ("; ".join(d.reasons) or "determined")
          + (f"  (skipped: {'; '.join(d.skipped)})" if d.skipped else ""))
  print(f"  seed noise {noise.value:.3g} nats ({noise.source})")
  pairs = pair_rows(result, bootstrap, diags, _LEVEL.value)
  sensitivity = {}
  for choice, (other, other_boot, other_warnings, other_diags) in fitted.items():
    if choice == str(irreducible):
      continue
    other_laws = fit.law_rows(other, other_boot, _LEVEL.value)
    other_diagnostics = other_diags
    sensitivity = {"irreducible": choice, "laws": other_laws, "warnings": other_warnings,
                   "diagnostics": {g: dataclasses.asdict(d) for g, d in other_diags.items()},
                   "exponent_pairs": pair_rows(other, other_boot, other_diags, _LEVEL.value)}
  if pairs:
    print("\nexponent differences alpha_group - alpha_reference")
    print(_pairs_text(pairs, diags))
  if sensitivity:
    print(f"\nsensitivity: E {sensitivity['irreducible']} instead of {irreducible}")
    print(_laws_text(sensitivity["laws"]))
    print(_pairs_text(sensitivity["exponent_pairs"], other_diagnostics))
  if cegs:
    print(f"\nCEG over {reference} from the fitted laws (C_{reference} / C_group)")
    print(_aligned([["group", "quantity", "at", "estimate"]] + [
        [r["group"], r["quantity"], f"{r['at']:.4g}",
         "not determined: " + diagnostics.not_determined(diags, [r["group"], r["reference"]],
                                                         short=True)
         if r["not_determined"] else
         _interval_text(laws.Interval(r["estimate"], r["lower"], r["upper"]))
         + ("  scale-dependent" if r["scale_dependent"] else "")] for r in cegs]))
  if raw:
    print(f"\nCEG over {reference} from raw curves at the target loss ({_RAW_COMBINE.value})")
    print(_aligned([["group", "target loss", "C_group", f"C_{reference}", "CEG"]] + [
        [r.group, f"{r.target_loss:g}", f"{r.compute_group:.4g}",
         f"{r.compute_reference:.4g}",
         _interval_text(laws.Interval(r.ceg, r.lower, r.upper))] for r in raw]))
  if chinchilla:
    print("\nChinchilla L(N, D) = E + A/N^alpha + B/D^beta on final points")
    print(_aligned([["group", "points", "E", "A", "B", "alpha", "beta"]] + [
        [r["group"], str(r["points"])] + [
            _interval_text(laws.Interval(r[k], r[f"{k}_lower"], r[f"{k}_upper"]))
            for k in ("E", "A", "B", "alpha", "beta")] for r in chinchilla]))
  if table.excluded:
    print(f"\nexcluded runs ({len(table.excluded)}):")
    for e in table.excluded:
      print(f"  {e.run_id} ({e.group}): {e.reason}")

  rundir.write_csv(out / "laws.csv", laws_table)
  rundir.write_csv(out / "ceg.csv", cegs)
  rundir.write_csv(out / "raw_ceg.csv", [dataclasses.asdict(r) for r in raw])
  rundir.write_csv(out / "excluded.csv", [dataclasses.asdict(e) for e in table.excluded])
  (out / "laws.json").write_text(json.dumps(laws_json(result, bootstrap), indent=1))
  summary = {"source": table.source, "frontier": result.frontier,
             "options": dataclasses.asdict(options), "reference": reference,
             "bootstrap": _BOOTSTRAP.value, "resample": _RESAMPLE.value,
             "level": _LEVEL.value, "laws": laws_table,
             "diagnostics": {g: dataclasses.asdict(d) for g, d in diags.items()},
             "seed_noise": {"value": noise.value, "source": noise.source},
             "exponent_pairs": pairs, "sensitivity": sensitivity,
             "other_stages": [dataclasses.asdict(e) for e in table.other_stages],
             "ceg": cegs,
             "raw_ceg": [dataclasses.asdict(r) for r in raw], "chinchilla": chinchilla,
             "excluded": [dataclasses.asdict(e) for e in table.excluded],
             "warnings": fit_warnings}
  (out / "summary.json").write_text(json.dumps(rundir.json_safe(summary), indent=1))
  plots.save_figure(plots.loss_vs_compute(table, result, _TARGET_LOSS.value, raw),
                    out / "loss_vs_compute")
  if bootstrap is not None and _CEG_COMPUTE.value:
    compute = sorted(_CEG_COMPUTE.value)
    grid = np.geomspace(compute[0], compute[-1], 50) if len(compute) > 1 else compute
    bands = [ceg.ceg_band(result, bootstrap, reference, g, grid, _LEVEL.value)
             for g in result.groups if g != reference]
    if bands:
      plots.save_figure(plots.ceg_vs_compute(bands), out / "ceg_vs_compute")
  print(f"\nwrote {out}/: laws.csv laws.json ceg.csv raw_ceg.csv excluded.csv summary.json "
        "loss_vs_compute.png")


if __name__ == "__main__":
  app.run(main, flags_parser=console.parse_flags_or_exit)
