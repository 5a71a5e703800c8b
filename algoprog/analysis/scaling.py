"""The scaling analysis: one function both `launch.fit` and `algoprog.reproduce` call.

`analyse_scaling(table, groups, options, evidence)` fits the compute-optimal frontier of
each group, L(C) = E + a*C^alpha (C in FLOPs, L in nats/token), with bootstrap intervals,
and derives from it, section by section:
  main           the fit with `options.irreducible`: laws, diagnostics (a group with reasons
                 makes every number derived from its law "not determined"), the exponent
                 difference of every pair of groups, the fit warnings;
  sensitivity    the same with `options.sensitivity` (the other choice of E), or None;
  coverage       per group: runs, points and the compute span of all and of frontier points;
  ceg            CEG over `options.reference` from the fitted laws at `computes` (FLOPs) and
                 `target_losses` (nats/token), plus each exponent difference;
  raw_ceg        CEG from the raw curves at each target loss (no law);
  chinchilla     L(N, D) fits on the runs' final points (with `options.chinchilla`);
  lr             LR optima per sweep and the LR law per group (with `options.lr_optima` and
                 an LR-sweep record; `lr_section`). Whatever the option, runner-up full
                 runs (trained when an LR choice was ambiguous, algoprog.training.sweep)
                 are left out of every full-data number and chosen between in each
                 bootstrap resample (`lr_choice_fit`), so LR ambiguity widens the intervals.
  plateau        points on the unigram plateau excluded before fitting
                 (`options.exclude_plateau`, with `Evidence.entropy`; algoprog.analysis.plateau);
  e_profile      the shared E profiled (`options.e_profile`; algoprog.analysis.e_profile):
                 derived numbers as bands over every plausible E, instead of "not
                 determined" when E is at a bound;
  raw_scale      model-free scale dependence of each group over the reference
                 (`options.raw_scale`; algoprog.analysis.raw_scale);
  rollout        fit without the largest runs and predict them, and the residual curvature
                 of the main fit (`options.rollout`; algoprog.analysis.rollout);
  seed_noise     the pooled seed noise with its chi-square interval (always; cheap);
  requirements   "to determine X you need ..." for each number still undetermined
                 (`options.planner_simulations`; algoprog.analysis.planner).
The result is typed (frozen dataclasses); `to_json()` gives the dict summary.json holds.

A new section is one more option (default: off), one function of the fitted main section
and the table, and one more field of `ScalingAnalysis` (None or empty when off) that
`to_json` writes under its own key: the existing sections and their JSON stay as they are.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from typing import Any, Mapping, Sequence

import numpy as np

from algoprog import rundir
from algoprog.analysis import ceg as ceg_lib
from algoprog.analysis import diagnostics, e_profile as e_profile_lib, fit, laws, lr as lr_lib
from algoprog.analysis import noise as noise_lib, plateau as plateau_lib
from algoprog.analysis import raw_scale as raw_scale_lib, requirements, resample
from algoprog.analysis import rollout as rollout_lib
from algoprog.analysis.runs import RunTable


@dataclasses.dataclass(frozen=True)
class Evidence:
  """What the diagnostics read besides the fit (algoprog.analysis.diagnostics): the sweep's
  LR-choice record (None: unknown, the LR checks are skipped), the seed noise and the
  unigram entropy of the training tokens in nats/token (None: unknown)."""
  lr_choices: Mapping[str, Mapping] | None
  noise: diagnostics.SeedNoise
  entropy: float | None = None


@dataclasses.dataclass(frozen=True, eq=False)
class ScalingOptions:
  """How the scaling analysis fits and what it reports.

  reference: the group every CEG is measured against.
  irreducible: E, "shared" (one for all groups), "fit" (per group) or a number (fixed, nats).
  sensitivity: another E choice to refit with (a sensitivity section); None or the same
    choice as `irreducible`: none.
  shared_exponent: one exponent for all groups, a multiplier each.
  huber_delta: Huber penalty on ln-loss residuals with this delta; None: least squares.
  frontier: which points each law is fitted to (algoprog.analysis.fit.FRONTIERS).
  eligible: one bool per table point: which may be fitted (the frontier is taken over all
    points first); None: all.
  bootstrap: refits for the intervals (0: none); resample: "runs" or "points"; seed: its
    PRNG seed; level: the confidence level of every interval.
  computes: FLOPs at which to report the fitted CEG; None: the low end, middle and high
    end of the compute every group's frontier covers. extra_computes: added to those.
  target_losses: nats/token: fitted CEG at each, and raw-curve CEG (`raw_combine`).
  chinchilla: also fit L(N, D) per group on the runs' final points.
  exclude_plateau: with a known unigram entropy (Evidence.entropy), points with loss above
    entropy - plateau_margin (nats) are not fitted; a group is marked only when too little
    remains (its points are then kept, and it gets the "unigram plateau" reason).
  e_profile: "off", "at_bound" (profile the shared E when a group's diagnostics say "E at a
    bound") or "always"; e_profile_grid: grid points; e_profile_samples: run resamples.
  raw_scale: model-free CEG vs target loss and its slope per group over the reference;
    raw_scale_samples: run resamples.
  rollout: hold out each group's `rollout_holdout` largest sizes, predict them; plus the
    residual curvature of the main fit. rollout_samples: bootstrap refits of that fit.
  planner_simulations: simulated studies per design for the "to determine X you need ..."
    sentences (0: none); planner_designs: how many designs (cheapest first);
    planner_max_seconds: when one simulated study times above this share of the budget
    the sentence states the assumptions instead of simulating.
  """
  reference: str
  irreducible: str | float = "shared"
  sensitivity: str | float | None = None
  shared_exponent: bool = False
  huber_delta: float | None = None
  frontier: str = "envelope"
  eligible: np.ndarray | None = None
  bootstrap: int = 1000
  resample: str = "runs"
  seed: int = 0
  level: float = 0.95
  computes: tuple[float, ...] | None = ()
  extra_computes: tuple[float, ...] = ()
  target_losses: tuple[float, ...] = ()
  raw_combine: str = "envelope"
  chinchilla: bool = False
  lr_optima: bool = False  # The lr section: LR optima per sweep and LR laws per group.
  exclude_plateau: bool = False
  plateau_margin: float = plateau_lib.MARGIN
  e_profile: str = "off"
  e_profile_grid: int = 25
  e_profile_samples: int = 200
  raw_scale: bool = False
  raw_scale_samples: int = 200
  rollout: bool = False
  rollout_holdout: int = 1
  rollout_samples: int = 100
  planner_simulations: int = 0
  planner_designs: int = 3
  planner_max_seconds: float = 60.0


E_PROFILE_MODES = ("off", "at_bound", "always")


def _json_rows(rows: Sequence[Any]) -> list[dict]:
  return [dataclasses.asdict(r) if dataclasses.is_dataclass(r) else dict(r) for r in rows]


@dataclasses.dataclass(frozen=True)
class ExponentPair:
  """alpha_group - alpha_reference with its interval; `distinguishable` (the interval
  excludes 0) only when both groups are determined and there is a bootstrap, else None;
  `not_determined` names the groups' reasons."""
  group: str
  reference: str
  exponent_difference: float
  exponent_difference_lower: float
  exponent_difference_upper: float
  distinguishable: bool | None
  not_determined: str


@dataclasses.dataclass(frozen=True)
class FrontierFit:
  """One fit of the frontiers with one choice of E, and what is read off it directly.
  `laws` are algoprog.analysis.fit.law_rows rows (group, frontier, fit_points, a, alpha, E
  with _lower/_upper, failed_refits)."""
  irreducible: str
  fit: fit.PowerLawFit
  bootstrap: fit.PowerLawBootstrap | None
  laws: tuple[dict, ...]
  diagnostics: dict[str, diagnostics.GroupDiagnostics]
  exponent_pairs: tuple[ExponentPair, ...]
  warnings: tuple[str, ...]

  def to_json(self) -> dict:
    return {"irreducible": self.irreducible, "laws": [dict(r) for r in self.laws],
            "diagnostics": {g: dataclasses.asdict(d) for g, d in self.diagnostics.items()},
            "exponent_pairs": _json_rows(self.exponent_pairs),
            "warnings": list(self.warnings)}


@dataclasses.dataclass(frozen=True)
class CoverageRow:
  """One group's runs and compute span (FLOPs): all points, and the points its law is
  fitted to; best_loss in nats/token."""
  group: str
  runs: int
  points: int
  min_compute: float
  max_compute: float
  frontier_points: int
  frontier_min_compute: float
  frontier_max_compute: float
  frontier_decades: float
  best_loss: float


@dataclasses.dataclass(frozen=True)
class FittedCeg(ceg_lib.CegRow):
  """A row of algoprog.analysis.ceg.ceg_table with the groups' diagnostics: a row with
  reasons in `not_determined` has no scale-dependence verdict (None)."""
  not_determined: str = ""


@dataclasses.dataclass(frozen=True)
class ScalingAnalysis:
  """Everything `analyse_scaling` derives (module docstring); `to_json()` for summaries."""
  groups: tuple[str, ...]
  reference: str
  options: ScalingOptions
  evidence: Evidence
  main: FrontierFit
  sensitivity: FrontierFit | None
  coverage: tuple[CoverageRow, ...]
  computes: tuple[float, ...]
  ceg: tuple[FittedCeg, ...]
  raw_ceg: tuple[ceg_lib.RawCeg, ...] = ()
  chinchilla: tuple[dict, ...] = ()
  lr: "LrSection | None" = None
  plateau: plateau_lib.PlateauExclusion | None = None
  e_profile: e_profile_lib.EProfile | None = None
  raw_scale: tuple[raw_scale_lib.RawScale, ...] = ()
  rollout: rollout_lib.Rollout | None = None
  curvature: tuple[rollout_lib.Curvature, ...] = ()
  seed_noise: noise_lib.SeedNoiseInterval | None = None
  requirements: tuple[str, ...] = ()
  notes: tuple[str, ...] = ()  # why a section that was asked for is missing, one line each
  # The points every full-data number and figure uses (analyse_scaling sets it): the input
  # table without runner-up full runs (chosen_lr_mask; those enter the bootstrap intervals
  # only).
  table: RunTable | None = None

  @property
  def fit(self) -> fit.PowerLawFit:
    return self.main.fit

  @property
  def bootstrap(self) -> fit.PowerLawBootstrap | None:
    return self.main.bootstrap

  def all_warnings(self) -> list[str]:
    """The fit's warnings and one per zero-width law interval."""
    return list(self.main.warnings) + diagnostics.zero_width_warnings(
        self.main.laws, self.options.level)

  def to_json(self) -> dict:
    """Every number as plain JSON types (NaN stays NaN: rundir.json_safe writes null)."""
    main = self.main.to_json()
    return {"groups": list(self.groups), "reference": self.reference,
            "irreducible": main["irreducible"], "laws": main["laws"],
            "diagnostics": main["diagnostics"], "coverage": _json_rows(self.coverage),
            "computes": list(self.computes), "ceg": _json_rows(self.ceg),
            "exponent_pairs": main["exponent_pairs"], "warnings": main["warnings"],
            "sensitivity": self.sensitivity.to_json() if self.sensitivity else None,
            "raw_ceg": _json_rows(self.raw_ceg), "chinchilla": _json_rows(self.chinchilla),
            "seed_noise": {"value": self.evidence.noise.value,
                           "source": self.evidence.noise.source},
            "lr": self.lr.to_json() if self.lr else None,
            "seed_noise_interval": self.seed_noise.to_json() if self.seed_noise else None,
            "plateau": self.plateau.to_json() if self.plateau else None,
            "e_profile": self.e_profile.to_json() if self.e_profile else None,
            "raw_scale": [r.to_json() for r in self.raw_scale],
            "rollout": self.rollout.to_json() if self.rollout else None,
            "curvature": [c.to_json() for c in self.curvature],
            "requirements": list(self.requirements), "notes": list(self.notes)}


# ----------------------------------------------------------------------------------------
# Sections.


def auto_irreducible(table: RunTable, groups: Sequence[str]) -> str:
  """'shared' when the groups' runs all record one training-data fingerprint (architectures
  on the same data have one irreducible loss), else 'fit' (per group; also for tables,
  which record no data)."""
  fingerprints = {json.dumps(info.get("data_fingerprint"), sort_keys=True)
                  for info in table.run_info.values() if info.get("label") in groups}
  known = table.run_info and "null" not in fingerprints
  return "shared" if known and len(fingerprints) == 1 and len(groups) > 1 else "fit"


def laws_json(result: fit.PowerLawFit, bootstrap: fit.PowerLawBootstrap | None) -> dict:
  """{"laws": {group: {a, alpha, E}}, "bootstrap": {group: {a: [...], ...}}}: the format
  launch.account reads (NaN samples, failed refits, as null)."""
  data = {"laws": {g: result.for_group(g)._asdict() for g in result.groups}}
  if bootstrap is not None:
    data["bootstrap"] = {
        g: {k: [rundir.json_safe(v) for v in vs] for k, vs in
            bootstrap.for_group(g)._asdict().items()} for g in bootstrap.groups}
  return data


def past_warmup(table: RunTable, fraction: float) -> np.ndarray:
  """Which points (one bool each) lie at or past `fraction` of their run's training tokens.
  The first evaluations of a run (warmup, loss near ln V) lie on no compute-optimal
  frontier: a law fitted through them bends to fit the start of training. They still count
  when the frontier is taken (algoprog.analysis.fit: envelope first, then the eligible points)."""
  keep = np.ones(table.loss.shape, bool)
  for run_id in table.run_ids:
    rows = table.run_id == run_id
    keep[rows] = table.tokens[rows] >= fraction * table.tokens[rows].max()
  return keep


def exponent_pairs(result: fit.PowerLawFit, bootstrap: fit.PowerLawBootstrap | None,
                   diags: Mapping[str, diagnostics.GroupDiagnostics], level: float
                   ) -> list[ExponentPair]:
  """Exponent difference of every pair of groups; without a bootstrap, the estimate alone
  (NaN interval, no verdict)."""
  pairs = []
  for i, a in enumerate(result.groups):
    for b in result.groups[i + 1:]:
      if bootstrap is None:
        d = laws.Interval(result.for_group(b).alpha - result.for_group(a).alpha, math.nan,
                          math.nan)
        verdict = None
      else:
        test = ceg_lib.scale_dependence(result, bootstrap, a, b, level)
        d, verdict = test.exponent_difference, test.scale_dependent
      reasons = diagnostics.not_determined(diags, [a, b])
      pairs.append(ExponentPair(b, a, float(d.estimate), float(d.lower), float(d.upper),
                                None if reasons else verdict, reasons))
  return pairs


def fit_frontiers(table: RunTable, groups: Sequence[str], options: ScalingOptions,
                  irreducible: str | float, evidence: Evidence,
                  plateau: plateau_lib.PlateauExclusion | None = None,
                  chosen: np.ndarray | None = None) -> FrontierFit:
  """One frontier fit of `groups` with E `irreducible`, its bootstrap, per-group diagnostics
  and the exponent differences. With `plateau` (points already excluded), the plateau
  diagnostic is replaced by its exclusion: only a group with too little left gets the
  reason. `chosen` (chosen_lr_mask of `table`): the fit uses those points and the
  bootstrap chooses between them and the runner-up runs (lr_choice_fit); None: every
  point, bootstrapped as `options.resample` says."""
  power_law = fit.PowerLawOptions(irreducible=irreducible,
                                  shared_exponent=options.shared_exponent,
                                  huber_delta=options.huber_delta)
  if chosen is None:
    result, bootstrap, fit_warnings = fit.fit_and_bootstrap(
        table, groups=list(groups), frontier=options.frontier, options=power_law,
        num_samples=options.bootstrap, resample=options.resample, seed=options.seed,
        eligible=options.eligible)
  else:
    result, bootstrap, fit_warnings = lr_choice_fit(table, chosen, groups, options,
                                                    power_law, evidence)
    table = table.select(chosen)
  diags = diagnostics.diagnose(result, table, lr_choices=evidence.lr_choices,
                               noise=evidence.noise,
                               entropy=None if plateau else evidence.entropy)
  if plateau is not None:
    diags = plateau_diagnostics(diags, plateau)
  return FrontierFit(str(irreducible), result, bootstrap,
                     tuple(fit.law_rows(result, bootstrap, options.level)), diags,
                     tuple(exponent_pairs(result, bootstrap, diags, options.level)),
                     tuple(fit_warnings))


def plateau_diagnostics(diags: Mapping[str, diagnostics.GroupDiagnostics],
                        plateau: plateau_lib.PlateauExclusion
                        ) -> dict[str, diagnostics.GroupDiagnostics]:
  """`diags` with the plateau check replaced by the exclusion: a "unigram plateau" reason
  only for a group with too little left below the plateau."""
  left = {p.group: p for p in plateau.groups}
  out = {}
  for group, d in diags.items():
    reasons = tuple(d.reasons)
    if group in left and left[group].too_little:
      reasons += (f"unigram plateau: {left[group].reason}",)
    skipped = tuple(s for s in d.skipped if not s.startswith("unigram plateau"))
    out[group] = diagnostics.GroupDiagnostics(group, reasons, skipped)
  return out


def plateau_exclusion(table: RunTable, groups: Sequence[str], options: ScalingOptions,
                      entropy: float) -> tuple[plateau_lib.PlateauExclusion, np.ndarray]:
  """(the exclusion, the eligible mask to fit with): plateau points of `groups` are not
  fitted, except in a group with too little left (its points stay; the diagnostics mark
  it)."""
  base = (np.ones(table.loss.shape, bool) if options.eligible is None
          else np.asarray(options.eligible, bool))
  exclusion = plateau_lib.exclude_plateau(table, entropy, margin=options.plateau_margin,
                                          eligible=base)
  eligible = exclusion.eligible.copy()
  kept = {p.group for p in exclusion.groups if p.too_little or p.group not in groups}
  for group in kept:
    rows = table.group == group
    eligible[rows] = base[rows]
  # Only the points actually left out are listed (excluded.csv, the report).
  exclusion = dataclasses.replace(
      exclusion, eligible=eligible,
      excluded=tuple(e for e in exclusion.excluded if e.group not in kept),
      groups=tuple(p for p in exclusion.groups if p.group in groups))
  return exclusion, eligible


# Which reasons the E profile bounds (algoprog.analysis.requirements holds them: the
# planner's sentences need them too, and that module must not import this one).
bounded_by_profile = requirements.bounded_by_profile
remaining_reasons = requirements.remaining_reasons


def wants_e_profile(options: ScalingOptions, main: FrontierFit) -> bool:
  """`options.e_profile` "always", or "at_bound" and some group's E is at a bound."""
  if options.e_profile == "always":
    return True
  return options.e_profile == "at_bound" and any(
      bounded_by_profile(r) for d in main.diagnostics.values() for r in d.reasons)


def profile_section(table: RunTable, groups: Sequence[str], options: ScalingOptions,
                    main: FrontierFit, computes: Sequence[float]
                    ) -> e_profile_lib.EProfile:
  """The shared-E profile of `groups`, CEG at `computes` (FLOPs), for every group against
  the reference and every other pair as the exponent differences orders it (later group
  over earlier: their exponent difference gets its band too); the main fit's E (shared)
  joins the grid."""
  extra = ([float(main.fit.law.E[0])] if main.fit.options.irreducible == "shared" else [])
  others = [(b, a) for i, a in enumerate(groups) for b in groups[i + 1:]
            if options.reference not in (a, b)]
  return e_profile_lib.profile_E(
      table, groups=list(groups),
      pairs=[(g, options.reference) for g in groups if g != options.reference] + others,
      computes=list(computes), frontier=options.frontier, eligible=options.eligible,
      num_grid=options.e_profile_grid, extra_E=extra,
      num_samples=options.e_profile_samples, seed=options.seed, level=options.level)


def raw_scale_section(table: RunTable, groups: Sequence[str], options: ScalingOptions,
                      max_loss: float | None = None
                      ) -> tuple[list[raw_scale_lib.RawScale], list[str]]:
  """Model-free scale dependence of every group over the reference at target losses up to
  `max_loss` (nats/token; the plateau's edge when plateau points are excluded from the
  fits, so the CEG is not read where both groups still predict unigram frequencies), and
  one note per pair that has none (no common loss)."""
  out, notes = [], []
  for g in groups:
    if g == options.reference:
      continue
    try:
      out.append(raw_scale_lib.raw_scale_dependence(
          table, options.reference, g, max_loss=max_loss,
          num_samples=options.raw_scale_samples, seed=options.seed, level=options.level))
    except raw_scale_lib.RawScaleError as e:
      notes.append(f"raw scale dependence: {e}")
  return out, notes


def rollout_section(table: RunTable, groups: Sequence[str], options: ScalingOptions,
                    main: FrontierFit, noise: float
                    ) -> tuple[rollout_lib.Rollout | None, list[rollout_lib.Curvature],
                               list[str]]:
  """Rollout of the groups (fitted as the main fit, largest sizes held out) and the main
  fit's residual curvature; a note when the rollout cannot be fitted."""
  curvature = rollout_lib.residual_curvature(main.fit, level=options.level)
  try:
    result = rollout_lib.rollout(
        table, groups=list(groups), holdout=options.rollout_holdout,
        frontier=options.frontier, options=main.fit.options, eligible=options.eligible,
        num_samples=options.rollout_samples, seed=options.seed, level=options.level,
        noise=noise)
  except fit.FitError as e:
    return None, curvature, [f"rollout: {e}"]
  return result, curvature, []


def coverage_rows(table: RunTable, result: fit.PowerLawFit) -> list[CoverageRow]:
  """Per group: runs, the compute span of all its points and of its frontier points."""
  rows = []
  for g, group in enumerate(result.groups):
    sub = table.only_groups([group])
    on = result.points_weight[g] > 0
    low = float(result.points_compute[g][on].min())
    high = float(result.points_compute[g][on].max())
    rows.append(CoverageRow(group, len(sub.run_ids), int(sub.loss.size),
                            float(sub.compute.min()), float(sub.compute.max()), int(on.sum()),
                            low, high, math.log10(high / low), float(sub.loss.min())))
  return rows


def auto_ceg_computes(coverage: Sequence[CoverageRow]) -> list[float]:
  """The low end, middle and high end (FLOPs) of the compute range every group's frontier
  covers (or of the union, if they do not overlap)."""
  low = max(r.frontier_min_compute for r in coverage)
  high = min(r.frontier_max_compute for r in coverage)
  if low >= high:
    low = min(r.frontier_min_compute for r in coverage)
    high = max(r.frontier_max_compute for r in coverage)
  return [float(f"{c:.3g}") for c in (low, math.sqrt(low * high), high)]


def fitted_cegs(main: FrontierFit, reference: str, computes: Sequence[float],
                losses: Sequence[float], level: float) -> list[FittedCeg]:
  """CEG over `reference` from the fitted laws, each row with the groups' reasons."""
  rows = []
  for r in ceg_lib.ceg_table(main.fit, main.bootstrap, reference, computes=computes,
                             losses=losses, level=level):
    reasons = diagnostics.not_determined(main.diagnostics, [r.group, r.reference])
    rows.append(FittedCeg(r.group, r.reference, r.quantity, r.at, r.estimate, r.lower,
                          r.upper, None if reasons else r.scale_dependent, reasons))
  return rows


def chinchilla_rows(table: RunTable, groups: Sequence[str], num_samples: int, seed: int,
                    level: float) -> list[dict]:
  """Per group: L(N, D) = E + A/N^alpha + B/D^beta fitted on the runs' final points with
  intervals, and the compute-optimal loss and parameter exponents it implies."""
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
    row["loss_exponent"] = float(laws.chinchilla_frontier(result.law).alpha)
    row["params_exponent"] = float(result.law.beta / (result.law.alpha + result.law.beta))
    rows.append(row)
  return rows


# ----------------------------------------------------------------------------------------
# LR choice and the lr section.


def chosen_lr_mask(table: RunTable, evidence: Evidence) -> np.ndarray | None:
  """One bool per point: False on runner-up full runs (trained at an LR other than their
  sweep's choice, algoprog.analysis.lr.chosen_runs_mask); None when there are none, no
  LR-sweep record, or the table holds LR-sweep runs too (launch.fit --all_stages: every
  run is fitted as asked): then nothing changes."""
  # (The runs in the table's points: run_info may also describe runs not loaded.)
  if not evidence.lr_choices or any(
      table.run_info.get(r, {}).get("stage") == "lr_sweep" for r in table.run_ids):
    return None
  mask = lr_lib.chosen_runs_mask(table, evidence.lr_choices)
  return None if mask.all() else mask


def lr_choice_fit(table: RunTable, chosen: np.ndarray, groups: Sequence[str],
                  options: ScalingOptions, power_law: fit.PowerLawOptions,
                  evidence: Evidence
                  ) -> tuple[fit.PowerLawFit, fit.PowerLawBootstrap | None, list[str]]:
  """The fit of the chosen-LR runs only, and a bootstrap in which every resample draws
  (group, width, seed) slots with replacement and takes, per ambiguous sweep, the run at
  the LR its own perturbed sweep losses choose (lr.lr_choice_run_weights, seed noise
  `evidence.noise`): the runner-up's runs enter the intervals, not the estimate. Always
  resamples whole runs (options.resample is ignored here). Returns as fit.fit_and_bootstrap."""
  eligible = None if options.eligible is None else np.asarray(options.eligible)
  result, _, messages = fit.fit_and_bootstrap(
      table.select(chosen), groups=list(groups), frontier=options.frontier,
      options=power_law, eligible=None if eligible is None else eligible[chosen])
  if not options.bootstrap:
    return result, None, messages
  weights = lr_lib.lr_choice_run_weights(table, evidence.lr_choices, evidence.noise.value,
                                         groups=list(groups), num_samples=options.bootstrap,
                                         seed=options.seed)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", fit.FitWarning)
    bootstrap = resample.bootstrap_with_run_weights(table, result, weights,
                                                    eligible=eligible)
  return result, bootstrap, messages + [str(w.message) for w in caught]


@dataclasses.dataclass(frozen=True)
class LrSection:
  """LR optima of every sweep (lr.LrOptimum: parabola vertex in ln LR with a parametric
  bootstrap interval under the seed noise, p_runner_up) and the LR law per group
  (lr.LrLaw: lr* = c * width^b with intervals); runner_up_sweeps: the "label/width" sweeps
  whose runner-up full runs are in the table (chosen between in each bootstrap)."""
  optima: tuple[lr_lib.LrOptimum, ...]
  laws: dict[str, lr_lib.LrLaw]
  runner_up_sweeps: tuple[str, ...]

  def to_json(self) -> dict:
    return {"optima": [o.row() for o in self.optima],
            "laws": {g: law.to_json() for g, law in self.laws.items()},
            "runner_up_sweeps": list(self.runner_up_sweeps)}


def lr_section(table: RunTable, evidence: Evidence, level: float) -> LrSection | None:
  """The lr section from the LR-sweep record (None without one)."""
  if not evidence.lr_choices:
    return None
  optima = lr_lib.sweep_optima(evidence.lr_choices, evidence.noise.value, level=level)
  rates: dict[str, set[float]] = {}
  for slot in lr_lib.run_slots(table).values():
    rates.setdefault(slot.key, set()).add(float(f"{slot.learning_rate:.6g}"))
  runner_up = sorted(k for k, v in rates.items() if len(v) > 1)
  return LrSection(tuple(optima), lr_lib.lr_laws(optima, level=level), tuple(runner_up))


# ----------------------------------------------------------------------------------------
# The analysis.


def analyse_scaling(table: RunTable, groups: Sequence[str], options: ScalingOptions,
                    evidence: Evidence) -> ScalingAnalysis:
  """The scaling analysis of `groups` in `table` (module docstring). Raises
  fit.FitError (one line) when `options.reference` is not among `groups` or a fit cannot
  be trusted, ceg.TargetNotReached when a raw-curve target is never reached."""
  groups = tuple(groups)
  if options.reference not in groups:
    raise fit.FitError(f"reference: {options.reference!r} is not a fitted group "
                       f"({', '.join(groups)})")
  if options.e_profile not in E_PROFILE_MODES:
    raise fit.FitError(f"e_profile: {options.e_profile!r}; expected one of "
                       f"{', '.join(E_PROFILE_MODES)}")
  notes: list[str] = []
  plateau = None
  if options.exclude_plateau:
    if evidence.entropy is None:
      notes.append("plateau exclusion: skipped, the unigram entropy is unknown")
    else:
      plateau, eligible = plateau_exclusion(table, groups, options, evidence.entropy)
      options = dataclasses.replace(options, eligible=eligible)
  chosen = chosen_lr_mask(table, evidence)
  main = fit_frontiers(table, groups, options, options.irreducible, evidence, plateau, chosen)
  sensitivity = None
  if options.sensitivity not in (None, "") and str(options.sensitivity) != str(
      options.irreducible):
    sensitivity = fit_frontiers(table, groups, options, options.sensitivity, evidence,
                                plateau, chosen)
  lr = lr_section(table, evidence, options.level) if options.lr_optima else None
  if chosen is not None:  # Runner-up runs: in the bootstrap's CIs only.
    table = table.select(chosen)
    if options.eligible is not None:
      options = dataclasses.replace(options, eligible=np.asarray(options.eligible)[chosen])
  coverage = tuple(coverage_rows(table, main.fit))
  computes = (list(options.computes) if options.computes is not None
              else auto_ceg_computes(coverage))
  computes += [c for c in options.extra_computes if c not in computes]
  cegs = fitted_cegs(main, options.reference, computes, options.target_losses, options.level)
  raw = [r for t in options.target_losses for r in ceg_lib.raw_ceg_table(
      table, options.reference, t, groups=list(groups), combine=options.raw_combine,
      num_samples=options.bootstrap, seed=options.seed, level=options.level)]
  chinchilla = (chinchilla_rows(table, groups, options.bootstrap, options.seed,
                                options.level) if options.chinchilla else [])
  profile = None
  if wants_e_profile(options, main):
    try:
      profile = profile_section(table, groups, options, main, computes)
    except fit.FitError as e:
      notes.append(f"E profile: {e}")
  below_plateau = (evidence.entropy - options.plateau_margin
                   if plateau is not None else None)
  raw_scale, raw_notes = (raw_scale_section(table, groups, options, below_plateau)
                          if options.raw_scale else ([], []))
  seed_noise = noise_lib.seed_noise_from_runs(table.run_info.values(), level=options.level)
  rolled, curvature, roll_notes = (
      rollout_section(table, groups, options, main, evidence.noise.value)
      if options.rollout else (None, [], []))
  analysis = ScalingAnalysis(groups, options.reference, options, evidence, main,
                             sensitivity, coverage, tuple(computes), tuple(cegs), tuple(raw),
                             tuple(chinchilla), lr, plateau, profile, tuple(raw_scale), rolled,
                             tuple(curvature), seed_noise, (),
                             tuple(notes + raw_notes + roll_notes), table)
  if options.planner_simulations:
    sentences, plan_notes = requirements.requirement_sentences(table, analysis)
    analysis = dataclasses.replace(analysis, requirements=tuple(sentences),
                                   notes=analysis.notes + tuple(plan_notes))
  return analysis
