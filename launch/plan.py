r"""Plans a study: `python -m launch.plan --law=... --law=... [grid flags]` or
`python -m launch.plan --runs=DIR_or_CSV [grid flags]`.

For each design of the grid (widths x seeds x tokens/param) it simulates studies from the
assumed (or fitted) laws and noise, fits each through the real pipeline
(algoprog.analysis.planner), and prints per design the power (probability the interval of
the hypothesis excludes zero), the expected interval width, total FLOPs and hours per chip;
then the cheapest design reaching --target_power and the sentence "to determine X you
need ...". docs/plan.md documents every flag. Bad input is one `error:` line naming the
flag.
"""

import dataclasses
import json
import math
import pathlib
import sys

from absl import app, flags, logging

from algoprog import hardware, rundir
from algoprog.training import console
from algoprog.analysis import fit, lr, planner, runs

_RUNS = flags.DEFINE_string("runs", None, "A folder of runs or a .csv/.jsonl table: the "
                            "laws and noise are fitted/measured from it (instead of --law).")
_COLUMNS = flags.DEFINE_string("columns", None, "Column mapping for a CSV/JSONL table "
                               "(as launch.fit).")
_KINDS = flags.DEFINE_list("kinds", [], "With --runs: GROUP=KIND (transformer or lstm) "
                           "for each group not a transformer (a run folder records it).")
_LAW = flags.DEFINE_multi_string(
    "law", [], "Stated assumption per group, repeatable: NAME:a=A,alpha=ALPHA,E=E[,kind="
    "lstm] (L = E + a*C^alpha, C in FLOPs, L in nats/token).")
_SEED_NOISE = flags.DEFINE_float("seed_noise", None, "Seed noise, nats (one offset per "
                                 "run). Default: measured with --runs, else 0.02.")
_POINT_NOISE = flags.DEFINE_float("point_noise", None, "Per-evaluation noise, nats. "
                                  "Default: measured with --runs, else 0.01.")
_HYPOTHESIS = flags.DEFINE_enum("hypothesis", "exponent_difference",
                                list(planner.QUANTITIES), "What the study must determine.")
_REFERENCE = flags.DEFINE_string("reference", None, "Reference group (default: the first).")
_GROUP = flags.DEFINE_string("group", None, "Compared group (default: the second).")
_CEG_COMPUTE = flags.DEFINE_float("ceg_compute", None,
                                  "FLOPs at which the CEG hypothesis is tested.")
_WIDTH_MIN = flags.DEFINE_integer("width_min", 32, "Smallest width of every design.")
_WIDTH_MAX = flags.DEFINE_list("width_max", ["64", "128", "256"], "Largest widths.")
_WIDTH_COUNT = flags.DEFINE_list("width_count", ["3"], "Widths per design "
                                 "(log-spaced, multiples of 16).")
_SEEDS = flags.DEFINE_list("seeds", ["1", "2", "4"], "Seeds per width.")
_TOKENS_PER_PARAM = flags.DEFINE_list("tokens_per_param", ["20", "40"],
                                      "Training tokens per parameter.")
_OPTIMAL_TPP = flags.DEFINE_float("optimal_tokens_per_param",
                                  planner.DEFAULT_OPTIMAL_TOKENS_PER_PARAM,
                                  "Compute-optimal tokens/param of the simulated L(N, D).")
_VOCAB = flags.DEFINE_integer("vocab_size", planner.DEFAULT_VOCAB, "Vocabulary size.")
_SEQUENCE = flags.DEFINE_integer("sequence_length", planner.DEFAULT_SEQUENCE_LENGTH,
                                 "Sequence length (attention FLOPs).")
_POINTS = flags.DEFINE_integer("points_per_run", 8, "Evaluations per simulated run.")
_CURVE_DECADES = flags.DEFINE_float("curve_decades", 2.0,
                                    "Decades of tokens each simulated curve spans.")
_SKIP_FRACTION = flags.DEFINE_float(
    "skip_fraction", 0.1, "Each run's points before this fraction of its tokens are not "
    "fitted (warmup; the frontier is taken over all points first).")
_SIMULATIONS = flags.DEFINE_integer("simulations", 100, "Simulated studies per design.")
_BOOTSTRAP = flags.DEFINE_integer("bootstrap", 100, "Bootstrap refits per simulated study.")
_LEVEL = flags.DEFINE_float("level", 0.95, "Confidence level of the intervals.")
_IRREDUCIBLE = flags.DEFINE_string(
    "irreducible", "auto", "E of the fits: shared, fit, a number of nats, or auto: shared, "
    "except for stated laws whose E differ (then fit).")
_TARGET_POWER = flags.DEFINE_float("target_power", 0.8, "Power the cheapest design needs.")
_MIN_COVERAGE = flags.DEFINE_float(
    "min_coverage", 0.8, "Coverage (intervals holding the true value) the cheapest design "
    "needs: below it, excluding zero is partly the design's bias.")
_ACCELERATORS = flags.DEFINE_list("accelerators", ["cpu", "v5e", "h100"], "Chips for the "
                                  "hours columns: " + ", ".join([*hardware.ACCELERATORS,
                                                                 "cpu"]) + ".")
_DTYPE = flags.DEFINE_string("dtype", "bfloat16", "Peak used for accelerators (cpu: "
                             "float32, as the CPU trains).")
_MFU = flags.DEFINE_float("mfu", 0.4, "Model-FLOP utilisation assumed on accelerators.")
_CPU_MFU = flags.DEFINE_float("cpu_mfu", 0.3, "Model-FLOP utilisation assumed on this "
                              "CPU, as a fraction of its measured matmul peak.")
_SEED = flags.DEFINE_integer("seed", 0, "Simulation seed.")
_OUT = flags.DEFINE_string("out", None, "Optional folder for plan.csv and plan.json.")


def _numbers(flag, cast) -> list:
  try:
    values = [cast(v) for v in flag.value]
  except ValueError:
    raise planner.PlanError(f"--{flag.name}={','.join(flag.value)}: expected numbers") from None
  if not values or any(not v > 0 for v in values):
    raise planner.PlanError(f"--{flag.name}={','.join(flag.value)}: expected positive numbers")
  return values


def _check_flags() -> None:
  """One PlanError naming the first bad flag."""
  if bool(_RUNS.value) == bool(_LAW.value):
    raise planner.PlanError("--runs / --law: give a run table (--runs) or stated laws "
                            "(--law, at least two), not both or neither")
  if _LAW.value and len(_LAW.value) < 2:
    raise planner.PlanError("--law: expected at least two groups (one --law each)")
  for flag in (_LEVEL, _TARGET_POWER, _MFU, _CPU_MFU):
    if not 0 < flag.value <= 1 or (flag is _LEVEL and flag.value >= 1):
      raise planner.PlanError(f"--{flag.name}={flag.value}: expected a number in (0, 1]")
  if not 0 <= _MIN_COVERAGE.value <= 1:
    raise planner.PlanError(f"--min_coverage={_MIN_COVERAGE.value}: expected a number in "
                            "[0, 1]")
  for flag, minimum in ((_SIMULATIONS, 1), (_BOOTSTRAP, 10), (_POINTS, 2), (_VOCAB, 1),
                        (_SEQUENCE, 1)):
    if flag.value < minimum:
      raise planner.PlanError(f"--{flag.name}={flag.value}: expected at least {minimum}")
  for flag in (_SEED_NOISE, _POINT_NOISE):
    if flag.value is not None and not flag.value >= 0:
      raise planner.PlanError(f"--{flag.name}={flag.value}: expected nats >= 0")
  if not 0 <= _SKIP_FRACTION.value < 1:
    raise planner.PlanError(f"--skip_fraction={_SKIP_FRACTION.value}: expected a number in "
                            "[0, 1)")
  if not _CURVE_DECADES.value > 0 or not _OPTIMAL_TPP.value > 0:
    bad = _CURVE_DECADES if not _CURVE_DECADES.value > 0 else _OPTIMAL_TPP
    raise planner.PlanError(f"--{bad.name}={bad.value}: expected a positive number")
  if _HYPOTHESIS.value == "ceg" and _CEG_COMPUTE.value is None:
    raise planner.PlanError("--ceg_compute: required with --hypothesis=ceg (FLOPs)")
  if _CEG_COMPUTE.value is not None and not 0 < _CEG_COMPUTE.value < math.inf:
    raise planner.PlanError(f"--ceg_compute={_CEG_COMPUTE.value}: expected a positive "
                            "number of FLOPs")
  if _IRREDUCIBLE.value != "auto":
    try:
      fit.PowerLawOptions(irreducible=_IRREDUCIBLE.value)
    except fit.FitError:
      raise planner.PlanError(f"--irreducible={_IRREDUCIBLE.value}: expected auto, shared, "
                              "fit or a number of nats") from None
  if _DTYPE.value not in hardware.DTYPES:
    raise planner.PlanError(f"--dtype={_DTYPE.value}: expected one of "
                            f"{', '.join(hardware.DTYPES)}")


def _assumptions() -> planner.Assumptions:
  common = dict(optimal_tokens_per_param=_OPTIMAL_TPP.value, vocab_size=_VOCAB.value,
                sequence_length=_SEQUENCE.value)
  if _LAW.value:
    groups = tuple(planner.parse_group(text) for text in _LAW.value)
    names = [g.name for g in groups]
    if len(set(names)) < len(names):
      raise planner.PlanError(f"--law: a group is given twice ({', '.join(names)})")
    noise = planner.Noise(0.02 if _SEED_NOISE.value is None else _SEED_NOISE.value,
                          0.01 if _POINT_NOISE.value is None else _POINT_NOISE.value,
                          "stated" if None not in (_SEED_NOISE.value, _POINT_NOISE.value)
                          else "stated; defaults where not given (seed 0.02, point 0.01)")
    return planner.Assumptions(groups, noise, **common)
  columns = runs.ColumnMapping.parse(_COLUMNS.value) if _COLUMNS.value else None
  table = runs.load_runs(_RUNS.value, columns, stages=runs.FULL_STAGES)
  choices = runs.lr_choices_near(pathlib.Path(_RUNS.value))
  if choices:  # Laws from the chosen-LR runs, as the study fits them (runner-ups: noise only).
    table = table.select(lr.chosen_runs_mask(table, choices))
  kinds = planner.kinds_from_runs(table)  # A folder records each run's model kind.
  for item in _KINDS.value:
    group, _, kind = item.partition("=")
    if kind not in planner.KINDS:
      raise planner.PlanError(f"--kinds={item}: expected GROUP=KIND with KIND one of "
                              f"{', '.join(planner.KINDS)}")
    kinds[group] = kind
  groups = [g for g in (_REFERENCE.value, _GROUP.value) if g] or None
  if groups and len(groups) < 2:
    groups = None  # One named: fit all and pick the other below.
  return planner.assumptions_from_table(
      table, kinds=kinds, groups=groups, irreducible=_irreducible(None),
      point_noise=_POINT_NOISE.value, seed_noise=_SEED_NOISE.value,
      skip_fraction=_SKIP_FRACTION.value, **common)


def _irreducible(groups: tuple[planner.GroupAssumption, ...] | None) -> str | float:
  """--irreducible, with auto resolved: shared (the groups train on the same data), except
  for stated laws whose E differ, which a shared E would misfit."""
  if _IRREDUCIBLE.value != "auto":
    return fit.PowerLawOptions(irreducible=_IRREDUCIBLE.value).irreducible
  if groups and len({g.law.E for g in groups}) > 1:
    return "fit"
  return "shared"


def _chips() -> list[planner.Chip]:
  chips = []
  for name in _ACCELERATORS.value:
    try:
      chip = hardware.accelerator_named(name)
    except KeyError as e:
      raise planner.PlanError(f"--accelerators: {e.args[0]}") from None
    cpu = name.strip().lower() == hardware.CPU
    dtype = "float32" if cpu else _DTYPE.value
    if dtype not in chip.peak_flops_per_s:
      raise planner.PlanError(f"--dtype={dtype}: {chip.name} has no peak for it (has: "
                              f"{', '.join(chip.peak_flops_per_s)})")
    chips.append(planner.Chip(name, chip, dtype, _CPU_MFU.value if cpu else _MFU.value))
  return chips


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # jax's backend-probing INFO lines are noise here.
  console.quiet_libraries()
  try:
    _check_flags()
    assumptions = _assumptions()
    names = [g.name for g in assumptions.groups]
    reference = _REFERENCE.value or names[0]
    group = _GROUP.value or next((n for n in names if n != reference), reference)
    hypothesis = planner.Hypothesis(_HYPOTHESIS.value, reference, group, _CEG_COMPUTE.value)
    true_value = hypothesis.true_value(assumptions)
    designs = planner.design_grid(
        _numbers(_WIDTH_COUNT, int), _WIDTH_MIN.value, _numbers(_WIDTH_MAX, int),
        _numbers(_SEEDS, int), _numbers(_TOKENS_PER_PARAM, float))
    chips = _chips()
    settings = planner.SimulationSettings(
        points_per_run=_POINTS.value, curve_decades=_CURVE_DECADES.value,
        bootstrap=_BOOTSTRAP.value, level=_LEVEL.value, skip_fraction=_SKIP_FRACTION.value,
        irreducible=_irreducible(assumptions.groups if _LAW.value else None))
  except (planner.PlanError, runs.RunTableError, fit.FitError) as e:
    sys.exit(f"error: {e}")

  print(f"planning {hypothesis.describe()} from {assumptions.source}")
  print(f"  true value under the assumed laws: {true_value:.4g}"
        + (f" (ln CEG {math.log(true_value):.4g})" if hypothesis.quantity == "ceg" else ""))
  for g in assumptions.groups:
    print(f"  {g.name} ({g.kind}): L = {g.law.E:.4g} + {g.law.a:.4g} * C^{g.law.alpha:.4g}")
  print(f"  noise: seed {assumptions.noise.seed:.3g} nats per run, point "
        f"{assumptions.noise.point:.3g} nats per evaluation ({assumptions.noise.source})")
  print(f"  {_SIMULATIONS.value} simulated studies per design, {_BOOTSTRAP.value} bootstrap "
        f"refits each (runs resampled), {_LEVEL.value:.0%} intervals, E "
        f"{settings.irreducible}; {len(designs)} design{'s' if len(designs) > 1 else ''}")
  for chip in chips:
    print(f"  {chip.name}: {chip.accelerator.peak(chip.dtype):.3g} FLOP/s peak "
          f"({chip.dtype}) at {chip.mfu:.0%} MFU; {chip.accelerator.source}")

  def progress(r: planner.DesignResult) -> None:
    print(f"  ... {r.design.describe()}: power {r.power:.2f}", file=sys.stderr, flush=True)

  try:
    results = planner.plan(assumptions, hypothesis, designs, simulations=_SIMULATIONS.value,
                           settings=settings, seed=_SEED.value, progress=progress)
  except planner.PlanError as e:
    sys.exit(f"error: {e}")
  scale = ("exponent difference" if hypothesis.quantity == "exponent_difference"
           else "ln CEG")
  print(f"\ndesigns (power: P(interval excludes 0); mean est and CI width in {scale}; "
        "coverage: intervals holding the true value; flagged: studies the fit diagnostics mark; "
        "hours per chip)")
  print(planner.results_table(results, chips))
  best = planner.cheapest(results, _TARGET_POWER.value, _MIN_COVERAGE.value)
  print(f"\ncheapest design reaching power {_TARGET_POWER.value:g} with coverage "
        f"{_MIN_COVERAGE.value:g}: "
        + (best.design.describe() if best else "none in this grid"))
  print(planner.requirement_sentence(
      hypothesis.describe(), results, target_power=_TARGET_POWER.value,
      min_coverage=_MIN_COVERAGE.value, level=_LEVEL.value,
      chip=chips[0] if chips else None))
  if _OUT.value:
    out = pathlib.Path(_OUT.value)
    try:
      out.mkdir(parents=True, exist_ok=True)
      rows = [{**dataclasses.asdict(r), "design": None,
               "widths": ",".join(map(str, r.design.widths)), "seeds": r.design.seeds,
               "tokens_per_param": r.design.tokens_per_param} for r in results]
      rows = [{k: v for k, v in row.items() if k != "design"} for row in rows]
      rundir.write_csv(out / "plan.csv", rows)
      (out / "plan.json").write_text(json.dumps(rundir.json_safe({
          "hypothesis": dataclasses.asdict(hypothesis), "true_value": true_value,
          "assumptions": {"source": assumptions.source,
                          "noise": dataclasses.asdict(assumptions.noise),
                          "groups": [{"name": g.name, "kind": g.kind, **g.law._asdict()}
                                     for g in assumptions.groups]},
          "designs": rows, "cheapest": None if best is None else rows[results.index(best)]}),
          indent=1))
    except OSError as e:
      sys.exit(f"error: --out: cannot write {e.filename or out}: {e.strerror}")
    print(f"wrote {out}/plan.csv plan.json")


if __name__ == "__main__":
  app.run(main, flags_parser=console.parse_flags_or_exit)
