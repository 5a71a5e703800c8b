r"""Fits scaling laws and compute-equivalent gains:
`python -m launch.fit --runs=DIR_or_CSV --out=DIR [--reference=GROUP ...]`.

Runs algoprog.analysis.scaling.analyse_scaling (the analysis reproduce runs too) and
prints algoprog.analysis.report.fit_text: the fitted laws with confidence intervals, their
diagnostics (numbers derived from a law with reasons are "not determined"), the exponent
differences, the sensitivity refit, the CEG tables, the E profile (when E is at a bound),
the raw-curve scale dependence, the rollout and residual curvature, the excluded runs and
plateau points (and, with --plan_simulations, the planner's sentences). On a sweep
folder it fits only the full runs unless --all_stages. Writes to --out: laws.csv,
laws.json (the format `launch.account --config.laws_json` reads), ceg.csv, raw_ceg.csv,
excluded.csv, summary.json and loss_vs_compute.{png,svg} (+ ceg_vs_compute.{png,svg}
with a bootstrap). docs/fit.md documents every flag.
"""

import dataclasses
import json
import math
import pathlib
import sys

from absl import app, flags

from algoprog import rundir
from algoprog.training import console
from algoprog.analysis import ceg, diagnostics, fit, outputs, report, runs, scaling

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
    "unigram_entropy", 0.0, "Unigram entropy of the training tokens, nats/token: points "
    "above it minus --plateau_margin are not fitted (listed in excluded.csv; a group is "
    "marked only when too little remains); 0: unknown, nothing excluded.")
_PLATEAU_MARGIN = flags.DEFINE_float(
    "plateau_margin", 0.1, "Nats below the unigram entropy that still count as plateau.")
_E_PROFILE = flags.DEFINE_enum(
    "e_profile", "at_bound", list(scaling.E_PROFILE_MODES),
    "Profile the shared E (bands over every plausible E instead of 'not determined'): "
    "'at_bound' when a group's E is at a bound, 'always', or 'off'.")
_E_PROFILE_SAMPLES = flags.DEFINE_integer("e_profile_samples", 200,
                                          "Run resamples of the E profile.")
_RAW_SCALE = flags.DEFINE_bool(
    "raw_scale", True, "Model-free scale dependence: CEG along the raw envelopes at every "
    "loss both reach, and the slope of ln CEG vs ln C with its interval.")
_ROLLOUT = flags.DEFINE_bool(
    "rollout", True, "Hold out each group's largest size, predict it from the rest, and "
    "test the residual curvature.")
_ROLLOUT_HOLDOUT = flags.DEFINE_integer("rollout_holdout", 1,
                                        "Largest sizes held out per group by --rollout.")
_PLAN = flags.DEFINE_integer(
    "plan_simulations", 0, "Simulated studies per design for the 'to determine X you need "
    "...' sentence of each undetermined number (0: none; about 20 is enough).")
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
_TARGET_LOSS = flags.DEFINE_multi_string(
    "target_loss", [], "Target loss(es), nats/token: raw-curve CEG, fitted CEG at that loss, "
    "and lines on the figure; repeat the flag or give a comma list (--target_loss=4.5,5).")
_CEG_COMPUTE = flags.DEFINE_multi_string(
    "ceg_compute", [], "Compute(s), FLOPs, at which to report fitted CEG; repeat the flag or "
    "give a comma list (--ceg_compute=1e15,1e17).")
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


def _irreducible_ok(value: str) -> bool:
  try:
    return value in ("auto", "fit", "shared") or (math.isfinite(float(value))
                                                   and float(value) >= 0)
  except ValueError:
    return False


# Checked when the flags are parsed, before any run is read: one line naming the flag.
flags.register_validator("bootstrap", lambda v: v >= 0,
                         "expected a number of refits >= 0 (0: none)")
flags.register_validator("level", lambda v: 0 < v < 1,
                         "expected a confidence level in (0, 1), e.g. 0.95")
flags.register_validator("huber_delta", lambda v: v > 0 and math.isfinite(v),
                         "expected a positive number")
flags.register_validator("plateau_margin", lambda v: v >= 0 and math.isfinite(v),
                         "expected nats >= 0")
for _name in ("e_profile_samples", "plan_simulations"):
  flags.register_validator(_name, lambda v: v >= 0, "expected a count >= 0")
flags.register_validator("rollout_holdout", lambda v: v >= 1, "expected a count >= 1")
flags.register_validator("unigram_entropy", lambda v: v >= 0 and math.isfinite(v),
                         "expected nats/token > 0 (0: unknown)")
flags.register_validator("irreducible", _irreducible_ok,
                         "expected 'auto', 'fit', 'shared' or a number of "
                         "nats >= 0")
flags.register_validator("out", lambda v: v is None or not pathlib.Path(v).is_file(),
                         "expected a folder (created if missing); it is a file")
for _name in ("min_compute", "max_compute"):
  flags.register_validator(_name, lambda v: v is None or (math.isfinite(v) and v > 0),
                           "expected a positive number of FLOPs")
flags.register_multi_flags_validator(
    ["min_compute", "max_compute"],
    lambda f: f["min_compute"] is None or f["max_compute"] is None
    or f["min_compute"] < f["max_compute"],
    "--min_compute must be below --max_compute")


class FlagError(ValueError):
  """A flag's value is unusable; the message names the flag."""


def float_list(flag: str, values: list[str]) -> tuple[float, ...]:
  """The numbers of a multi-valued flag given repeated, as comma lists, or both."""
  numbers = []
  for item in (part.strip() for value in values for part in value.split(",")):
    try:
      number = float(item)
    except ValueError:
      number = math.nan
    if not math.isfinite(number):
      raise FlagError(f"--{flag}: expected finite numbers (repeated or a comma list); got "
                      f"{item!r}")
    numbers.append(number)
  return tuple(numbers)


def main(argv):
  del argv
  console.quiet_libraries()
  out = pathlib.Path(_OUT.value)
  try:
    target_losses = float_list("target_loss", _TARGET_LOSS.value)
    computes = float_list("ceg_compute", _CEG_COMPUTE.value)
    columns = runs.ColumnMapping.parse(_COLUMNS.value) if _COLUMNS.value else None
    table = runs.load_runs(_RUNS.value, columns,
                           stages=None if _ALL_STAGES.value else runs.FULL_STAGES)
    groups = _GROUPS.value or table.groups
    reference = _REFERENCE.value or groups[0]
    if reference not in groups:
      raise fit.FitError(f"--reference={reference}: not a fitted group ({', '.join(groups)})")
    irreducible = (scaling.auto_irreducible(table, groups) if _IRREDUCIBLE.value == "auto"
                   else _IRREDUCIBLE.value)
    sensitivity = None
    if _SENSITIVITY.value and irreducible in ("shared", "fit") and len(groups) > 1:
      sensitivity = "fit" if irreducible == "shared" else "shared"
    options = scaling.ScalingOptions(
        reference=reference, irreducible=irreducible, sensitivity=sensitivity,
        shared_exponent=_SHARED_EXPONENT.value,
        huber_delta=_HUBER_DELTA.value if _LOSS.value == "huber" else None,
        frontier=_FRONTIER.value,
        # Points outside the range are not fitted, but the frontier is taken over all of them.
        eligible=(table.compute >= (_MIN_COMPUTE.value or 0))
        & (table.compute <= (_MAX_COMPUTE.value or math.inf)),
        bootstrap=_BOOTSTRAP.value, resample=_RESAMPLE.value, seed=_SEED.value,
        level=_LEVEL.value, computes=computes, target_losses=target_losses,
        raw_combine=_RAW_COMBINE.value, chinchilla=_CHINCHILLA.value,
        lr_optima=True,
        exclude_plateau=bool(_UNIGRAM_ENTROPY.value), plateau_margin=_PLATEAU_MARGIN.value,
        e_profile=_E_PROFILE.value, e_profile_samples=_E_PROFILE_SAMPLES.value,
        raw_scale=_RAW_SCALE.value and len(groups) > 1, raw_scale_samples=_BOOTSTRAP.value,
        rollout=_ROLLOUT.value and _FRONTIER.value != "isoflop",
        rollout_holdout=_ROLLOUT_HOLDOUT.value,
        rollout_samples=min(_BOOTSTRAP.value, 200),  # (its interval only; 0: none)
        planner_simulations=_PLAN.value)
    evidence = scaling.Evidence(runs.lr_choices_near(pathlib.Path(_RUNS.value)),
                                diagnostics.seed_noise(table.run_info.values()),
                                _UNIGRAM_ENTROPY.value or None)
    analysis = scaling.analyse_scaling(table, groups, options, evidence)
  except (FlagError, runs.RunTableError, fit.FitError, ceg.TargetNotReached) as e:
    sys.exit(f"error: {e}")

  print(report.fit_text(analysis, table, _RAW_COMBINE.value))
  written = outputs.write_scaling_outputs(analysis, table, out, target_losses)
  numbers = analysis.to_json()
  (out / "laws.json").write_text(json.dumps(
      scaling.laws_json(analysis.fit, analysis.bootstrap), indent=1))
  summary = {"source": table.source, "frontier": analysis.fit.frontier,
             "options": dataclasses.asdict(analysis.fit.options), "reference": reference,
             "bootstrap": _BOOTSTRAP.value, "resample": _RESAMPLE.value,
             "level": _LEVEL.value, **{k: numbers[k] for k in (
                 "laws", "diagnostics", "seed_noise", "exponent_pairs")},
             "sensitivity": numbers["sensitivity"] or {},
             "other_stages": [dataclasses.asdict(e) for e in table.other_stages],
             **{k: numbers[k] for k in ("ceg", "raw_ceg", "chinchilla")},
             "excluded": [dataclasses.asdict(e) for e in table.excluded],
             "warnings": analysis.all_warnings(), "lr": numbers["lr"],
             **{k: numbers[k] for k in ("seed_noise_interval", "plateau", "e_profile",
                                        "raw_scale", "rollout", "curvature", "requirements",
                                        "notes")}}
  (out / "summary.json").write_text(json.dumps(rundir.json_safe(summary), indent=1))
  print(f"\nwrote {out}/: laws.json summary.json {' '.join(written)}")


if __name__ == "__main__":
  app.run(main, flags_parser=console.parse_flags_or_exit)
