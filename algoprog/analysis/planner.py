"""Study planning: which design (widths, seeds, tokens/param) determines a hypothesis, and
what it costs. Pure logic; `python -m launch.plan` is its command (docs/plan.md).

Inputs
  * Assumptions: per group a compute-optimal frontier L(C) = E + a*C^alpha (C in FLOPs, L
    in nats/token), a model kind ("transformer" or "lstm": how a width maps to parameters
    and FLOPs), and noise in nats: `seed` (one offset per run, drawn once: seeds shift a
    whole curve) and `point` (independent per evaluation: scatter of the frontier points).
    Stated (flags), or measured from a run table (`assumptions_from_table`).
  * A hypothesis: the exponent difference alpha_group - alpha_reference, or the CEG of
    group over reference at a compute (tested on ln CEG, i.e. CEG != 1).
  * Designs: widths (each group trains every width), seeds per width, tokens per
    parameter.

Simulated runs. Each group's frontier is realised by a Chinchilla-style
L(N, D) = E + A*N^-b + B*D^-b with b = -2*alpha and B = A*r^b, A = a / (2*(6r)^(b/2)),
r = `optimal_tokens_per_param` (default 20): under C = 6ND its compute-optimal envelope is
exactly E + a*C^alpha, with the optimum at D/N = r (`chinchilla_for_frontier`). A run of
width w has P(w) parameters and costs f(w) FLOPs per token (closed forms below); it is
placed on the law with N_eff = f(w)/6 so that its compute axis C = f(w)*D is the law's
axis (the frontier of the simulated runs is the stated law in the FLOPs the planner
counts). Each run trains D = tokens_per_param * P(w) tokens and is evaluated at
`points_per_run` token counts log-spaced over `curve_decades` decades up to D: the curve
falls steeply (above the frontier) while D/N_eff is far below r, touches the frontier near
D/N_eff = r and flattens towards E + A*N_eff^-b beyond it. No
learning-rate schedule or LR mistuning is modelled (state LR uncertainty as noise).

Each simulated study goes through the real fit pipeline: `fit.fit_and_bootstrap` (runs
resampled; frontier "envelope" over all points, then each run's points before
`skip_fraction` of its tokens left out, as the study leaves out warmup; E per the options)
and `ceg.scale_dependence` / `ceg.ceg_band` for the interval at `level`. Power = the
fraction of simulated studies whose interval excludes 0 (exponent difference) or 1 (CEG);
a study whose fit fails counts as not excluding. Interval width: upper - lower of the
exponent difference, or ln(upper/lower) of the CEG (median over studies). Coverage = the
fraction of intervals holding the true value: far below `level`, a design excludes zero
partly through its bias. `flagged` is the fraction of studies whose fit diagnostics
(`diagnostics.fit_reasons`: E at a bound, iteration cap, span < 1 decade) mark either
group: the pipeline would print those as not determined.

Closed forms (no import of algoprog.training; they follow its width rule, docs/flops.md):
  transformer: layers = width/16, 16*d^2 parameters per layer (attention 4d^2, SwiGLU
    12d^2) plus the tied embedding V*d and output bias V: P = d^3 + V*d + V. FLOPs per
    token f = 6*P + 12*layers*L*d (6N plus full causal attention scores and values).
  lstm: one layer, 8d^2 + 4d per layer plus V*d + V; f = 6*P.
Costs: total FLOPs = sum over runs of f(w) * D; LR sweeps are not included.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from algoprog import hardware
from algoprog.analysis import ceg as ceg_lib
from algoprog.analysis import diagnostics
from algoprog.analysis import fit as fit_lib
from algoprog.analysis import laws, runs

KINDS = ("transformer", "lstm")
QUANTITIES = ("exponent_difference", "ceg")
HEAD_DIM = 16  # Transformer widths are multiples of the head dimension.
DEFAULT_VOCAB = 4096  # The embedded corpus's BPE vocabulary.
DEFAULT_SEQUENCE_LENGTH = 128
DEFAULT_OPTIMAL_TOKENS_PER_PARAM = 20.0


class PlanError(ValueError):
  """Planner input that cannot be planned with; one line naming the field."""


# ----------------------------------------------------------------------------------------
# Assumptions, hypotheses, designs.


@dataclasses.dataclass(frozen=True)
class GroupAssumption:
  """One group: its frontier law (FLOPs -> nats/token) and model kind."""
  name: str
  law: laws.PowerLaw
  kind: str = "transformer"


@dataclasses.dataclass(frozen=True)
class Noise:
  """Loss noise in nats/token: `seed` per run (a whole curve shifts), `point` per
  evaluation; `source` says where the numbers come from."""
  seed: float
  point: float
  source: str = "stated"


@dataclasses.dataclass(frozen=True)
class Assumptions:
  """What the simulation assumes (module docstring)."""
  groups: tuple[GroupAssumption, ...]
  noise: Noise
  optimal_tokens_per_param: float = DEFAULT_OPTIMAL_TOKENS_PER_PARAM
  vocab_size: int = DEFAULT_VOCAB
  sequence_length: int = DEFAULT_SEQUENCE_LENGTH
  source: str = "stated assumptions"

  def group(self, name: str) -> GroupAssumption:
    for g in self.groups:
      if g.name == name:
        return g
    raise PlanError(f"group '{name}': not among the assumed groups "
                    f"({', '.join(g.name for g in self.groups)})")


@dataclasses.dataclass(frozen=True)
class Hypothesis:
  """`quantity` "exponent_difference" (alpha_group - alpha_reference) or "ceg" (CEG of
  group over reference at `compute` FLOPs)."""
  quantity: str
  reference: str
  group: str
  compute: float | None = None

  def __post_init__(self):
    if self.quantity not in QUANTITIES:
      raise PlanError(f"hypothesis '{self.quantity}': expected one of {', '.join(QUANTITIES)}")
    if self.reference == self.group:
      raise PlanError(f"hypothesis: group and reference are both '{self.group}'; expected "
                      "two groups")
    if self.quantity == "ceg" and not (self.compute and self.compute > 0
                                       and math.isfinite(self.compute)):
      raise PlanError(f"hypothesis ceg: compute {self.compute}; expected a positive number "
                      "of FLOPs")

  def describe(self) -> str:
    if self.quantity == "exponent_difference":
      return f"the exponent difference alpha_{self.group} - alpha_{self.reference}"
    return f"the CEG of {self.group} over {self.reference} at {self.compute:.3g} FLOPs"

  def true_value(self, assumptions: Assumptions) -> float:
    """The hypothesised value under the assumed laws (exponent difference, or CEG)."""
    ref, new = assumptions.group(self.reference).law, assumptions.group(self.group).law
    if self.quantity == "exponent_difference":
      return float(new.alpha - ref.alpha)
    return float(laws.compute_equivalent_gain(ref, new, self.compute))


@dataclasses.dataclass(frozen=True)
class Design:
  """What a study trains: every group at every width, `seeds` runs each, for
  `tokens_per_param` tokens per (total) parameter."""
  widths: tuple[int, ...]
  seeds: int
  tokens_per_param: float

  def describe(self) -> str:
    return (f"widths {self.widths[0]}-{self.widths[-1]} ({len(self.widths)} widths), "
            f"{self.seeds} seed{'s' if self.seeds > 1 else ''}, "
            f"{self.tokens_per_param:g} tokens/param")


def design_grid(width_counts: Sequence[int], width_min: int, width_maxes: Sequence[int],
                seeds: Sequence[int], tokens_per_param: Sequence[float], *,
                multiple: int = HEAD_DIM) -> list[Design]:
  """Every combination: `count` widths log-spaced from `width_min` to each max, rounded to
  a multiple of `multiple` (duplicates after rounding dropped), x seeds x tokens/param.

  Raises:
    PlanError: a non-positive count, width, seed count or tokens/param, or a max below
      the min (naming the field).
  """
  for name, values in (("width_counts", width_counts), ("width_maxes", width_maxes),
                       ("seeds", seeds), ("tokens_per_param", tokens_per_param)):
    if not len(values) or any(not (v > 0 and math.isfinite(v)) for v in values):
      raise PlanError(f"{name} {list(values)}: expected one or more positive numbers")
  if width_min < multiple or width_min % multiple:
    raise PlanError(f"width_min {width_min}: expected a positive multiple of {multiple}")
  designs = []
  for top in width_maxes:
    if top < width_min:
      raise PlanError(f"width_max {top}: expected at least width_min {width_min}")
    for count in width_counts:
      raw = np.geomspace(width_min, top, int(count)) if count > 1 else np.array([top])
      widths = tuple(sorted({max(multiple, int(round(w / multiple)) * multiple)
                             for w in raw}))
      for s in seeds:
        for r in tokens_per_param:
          designs.append(Design(widths, int(s), float(r)))
  return list(dict.fromkeys(designs))  # Same widths from two counts: one design.


def parse_group(text: str) -> GroupAssumption:
  """A group from "NAME:a=88,alpha=-0.094,E=1.9[,kind=lstm]" (FLOPs -> nats/token).

  Raises:
    PlanError: a missing name or a/alpha/E, an unknown key, a non-number, a non-positive
      a, a negative E or an alpha >= 0 (one line quoting the text).
  """
  name, sep, rest = text.partition(":")
  if not sep or not name.strip():
    raise PlanError(f"group '{text}': expected NAME:a=A,alpha=ALPHA,E=E[,kind=KIND]")
  values: dict[str, str] = {}
  for item in filter(None, (s.strip() for s in rest.split(","))):
    key, eq, value = item.partition("=")
    if not eq or key.strip() not in ("a", "alpha", "E", "kind"):
      raise PlanError(f"group '{text}': '{item}' is not one of a=, alpha=, E=, kind=")
    values[key.strip()] = value.strip()
  missing = [k for k in ("a", "alpha", "E") if k not in values]
  if missing:
    raise PlanError(f"group '{text}': missing {', '.join(missing)}")
  try:
    a, alpha, E = (float(values[k]) for k in ("a", "alpha", "E"))
  except ValueError:
    raise PlanError(f"group '{text}': a, alpha and E must be numbers") from None
  if not (a > 0 and alpha < 0 and E >= 0 and all(map(math.isfinite, (a, alpha, E)))):
    raise PlanError(f"group '{text}': expected a > 0, alpha < 0 and E >= 0 (finite)")
  kind = values.get("kind", "transformer")
  if kind not in KINDS:
    raise PlanError(f"group '{text}': kind '{kind}', expected one of {', '.join(KINDS)}")
  return GroupAssumption(name.strip(), laws.PowerLaw(a, alpha, E), kind)


# ----------------------------------------------------------------------------------------
# Model size closed forms.


def params_for_width(kind: str, width: float, vocab_size: int = DEFAULT_VOCAB) -> float:
  """Total parameters of a `kind` model of `width` (module docstring)."""
  d = float(width)
  if kind == "transformer":
    return d**3 + vocab_size * d + vocab_size
  if kind == "lstm":
    return 8 * d**2 + 4 * d + vocab_size * d + vocab_size
  raise PlanError(f"kind '{kind}': expected one of {', '.join(KINDS)}")


def flops_per_token(kind: str, width: float, vocab_size: int = DEFAULT_VOCAB,
                    sequence_length: int = DEFAULT_SEQUENCE_LENGTH) -> float:
  """Approximate training FLOPs per token (forward + backward): 6P, plus for Transformers
  the full attention scores and values, 12 * layers * L * d (module docstring)."""
  six_n = 6.0 * params_for_width(kind, width, vocab_size)
  if kind == "transformer":
    layers = max(1.0, float(width) / HEAD_DIM)
    return six_n + 12.0 * layers * sequence_length * float(width)
  return six_n


# ----------------------------------------------------------------------------------------
# Simulation.


def chinchilla_for_frontier(law: laws.PowerLaw, optimal_tokens_per_param: float
                            ) -> laws.ChinchillaLaw:
  """L(N, D) = E + A N^-b + B D^-b whose compute-optimal envelope under C = 6ND is `law`
  exactly, with the optimum at D/N = `optimal_tokens_per_param` (module docstring).

  Raises:
    PlanError: alpha >= 0 (a loss that does not fall with compute).
  """
  if not law.alpha < 0:
    raise PlanError(f"alpha {law.alpha}: expected a negative exponent")
  b = -2.0 * float(law.alpha)
  r = float(optimal_tokens_per_param)
  A = float(law.a) / (2.0 * (6.0 * r)**(b / 2.0))
  return laws.ChinchillaLaw(float(law.E), A, A * r**b, b, b)


@dataclasses.dataclass(frozen=True)
class SimulationSettings:
  """How each simulated run is evaluated and each study fitted.

  points_per_run: evaluations per run, log-spaced over `curve_decades` decades of tokens
    ending at the run's last token.
  bootstrap: refits per simulated study (resampling runs); level: interval level.
  irreducible: E of the fits ("shared", "fit" or a number of nats).
  skip_fraction: each run's points before this fraction of its tokens are not fitted
    (the frontier is taken over all points first), as the study pipeline leaves out
    warmup points (reproduce's analysis.skip_fraction, default 0.1).
  """
  points_per_run: int = 8
  curve_decades: float = 2.0
  bootstrap: int = 100
  level: float = 0.95
  irreducible: str | float = "shared"
  skip_fraction: float = 0.1


def run_budget(kind: str, width: int, tokens_per_param: float, assumptions: Assumptions
               ) -> tuple[float, float, float]:
  """(parameters, tokens, FLOPs) of one run of `width` (module docstring)."""
  params = params_for_width(kind, width, assumptions.vocab_size)
  tokens = tokens_per_param * params
  per_token = flops_per_token(kind, width, assumptions.vocab_size,
                              assumptions.sequence_length)
  return params, tokens, per_token * tokens


def design_flops(design: Design, assumptions: Assumptions) -> float:
  """Total training FLOPs of a design: every group, width and seed."""
  return sum(design.seeds * run_budget(g.kind, w, design.tokens_per_param, assumptions)[2]
             for g in assumptions.groups for w in design.widths)


def design_decades(design: Design, assumptions: Assumptions) -> float:
  """Decades of compute the design's final points span (smallest run to largest)."""
  finals = [run_budget(g.kind, w, design.tokens_per_param, assumptions)[2]
            for g in assumptions.groups for w in design.widths]
  return math.log10(max(finals) / min(finals))


def simulate_table(assumptions: Assumptions, design: Design, rng: np.random.Generator,
                   settings: SimulationSettings = SimulationSettings()) -> runs.RunTable:
  """One simulated study's run table (module docstring): every group x width x seed,
  `settings.points_per_run` evaluations each, noise drawn from `rng`."""
  columns: dict[str, list] = {k: [] for k in ("run_id", "group", "compute", "loss",
                                                "params", "tokens")}
  for g in assumptions.groups:
    chinchilla = chinchilla_for_frontier(g.law, assumptions.optimal_tokens_per_param)
    for width in design.widths:
      params, total, _ = run_budget(g.kind, width, design.tokens_per_param, assumptions)
      per_token = flops_per_token(g.kind, width, assumptions.vocab_size,
                                  assumptions.sequence_length)
      tokens = np.geomspace(total * 10**-settings.curve_decades, total,
                            settings.points_per_run)
      # N_eff = f/6 puts the run on the law in the planner's own FLOPs (docstring).
      clean = np.asarray(laws.chinchilla_loss(chinchilla, per_token / 6.0, tokens))
      for seed in range(design.seeds):
        noisy = (clean + assumptions.noise.seed * rng.normal()
                 + assumptions.noise.point * rng.normal(size=tokens.size))
        # Noise cannot make a loss non-positive; a floor far below any real loss.
        noisy = np.maximum(noisy, 1e-3)
        columns["run_id"] += [f"{g.name}/w{width}/s{seed}"] * tokens.size
        columns["group"] += [g.name] * tokens.size
        columns["compute"] += list(per_token * tokens)
        columns["loss"] += list(noisy)
        columns["params"] += [params] * tokens.size
        columns["tokens"] += list(tokens)
  return runs.make_table(**columns, source="simulated")


def past_fraction(table: runs.RunTable, fraction: float) -> np.ndarray:
  """One bool per point: at or past `fraction` of its run's final tokens (the study
  pipeline's rule for leaving out warmup points; all True without a tokens column)."""
  keep = np.ones(table.loss.shape, bool)
  if fraction <= 0 or np.isnan(table.tokens).any():
    return keep
  for run_id in table.run_ids:
    rows = table.run_id == run_id
    keep[rows] = table.tokens[rows] >= fraction * table.tokens[rows].max()
  return keep


@dataclasses.dataclass(frozen=True)
class StudyOutcome:
  """One simulated study: the estimate and interval (on the test scale: exponent
  difference, or ln CEG), whether the interval excludes 0, and whether the diagnostics
  flag either group. NaNs when the fit failed."""
  estimate: float
  lower: float
  upper: float
  excludes_zero: bool
  flagged: bool
  failed: bool = False

  def covers(self, value: float) -> bool:
    """Whether the interval contains `value` (on the test scale)."""
    return bool(self.lower <= value <= self.upper)


def analyse_study(table: runs.RunTable, hypothesis: Hypothesis,
                  settings: SimulationSettings, seed: int = 0) -> StudyOutcome:
  """Fits a study's table through the real pipeline and tests the hypothesis."""
  groups = [hypothesis.reference, hypothesis.group]
  nan = math.nan
  try:
    result, bootstrap, _ = fit_lib.fit_and_bootstrap(
        table, groups=groups, frontier="envelope",
        options=fit_lib.PowerLawOptions(irreducible=settings.irreducible),
        num_samples=settings.bootstrap, resample="runs", seed=seed,
        eligible=past_fraction(table, settings.skip_fraction))
  except fit_lib.FitError:
    return StudyOutcome(nan, nan, nan, False, True, True)
  reasons = diagnostics.fit_reasons(result)
  flagged = bool(reasons[hypothesis.reference] or reasons[hypothesis.group])
  if hypothesis.quantity == "exponent_difference":
    test = ceg_lib.scale_dependence(result, bootstrap, hypothesis.reference, hypothesis.group,
                                    settings.level)
    d = test.exponent_difference
    estimate, lower, upper = d.estimate, d.lower, d.upper
  else:
    band = ceg_lib.ceg_band(result, bootstrap, hypothesis.reference, hypothesis.group,
                            [hypothesis.compute], settings.level)
    estimate, lower, upper = (math.log(float(v[0])) if float(v[0]) > 0 else nan
                              for v in (band.estimate, band.lower, band.upper))
  if not (math.isfinite(lower) and math.isfinite(upper)):
    return StudyOutcome(estimate, lower, upper, False, flagged, True)
  return StudyOutcome(estimate, lower, upper, bool(lower > 0 or upper < 0), flagged)


@dataclasses.dataclass(frozen=True)
class DesignResult:
  """A design's simulated performance and cost.

  power: fraction of simulated studies whose interval excludes 0 (or CEG 1).
  mean_estimate: mean estimate on the test scale (exponent difference, or ln CEG) over
    studies whose fit succeeded and gave a finite estimate: against the true value it shows the design's bias (an
    envelope of few widths is not the frontier).
  coverage: fraction of studies whose interval contains the true value (nominally
    `level`; far below it, the power partly measures bias, not the effect).
  interval_width: median interval width on the test scale (exponent difference, or ln
    CEG) over studies whose fit succeeded with a finite interval (NaN if none did); the median, because a design
    with few runs per group has a few resamples of one run each and then a heavy tail.
  flagged: fraction of studies the fit diagnostics mark; failed: fraction whose fit failed.
  flops: total training FLOPs; decades: compute span of the final points.
  """
  design: Design
  power: float
  mean_estimate: float
  interval_width: float
  coverage: float
  flagged: float
  failed: float
  flops: float
  decades: float
  simulations: int


def evaluate_design(assumptions: Assumptions, hypothesis: Hypothesis, design: Design, *,
                    simulations: int = 50,
                    settings: SimulationSettings = SimulationSettings(),
                    seed: int = 0) -> DesignResult:
  """Simulates `simulations` studies of `design` and fits each (module docstring)."""
  if simulations < 1:
    raise PlanError(f"simulations {simulations}: expected at least 1")
  rng = np.random.default_rng(seed)
  truth = hypothesis.true_value(assumptions)
  if hypothesis.quantity == "ceg":
    truth = math.log(truth)
  outcomes = [analyse_study(simulate_table(assumptions, design, rng, settings), hypothesis,
                            settings, seed=seed + i) for i in range(simulations)]
  fitted = [o for o in outcomes if not o.failed]
  # A fitted study may still have no CEG (one law never reaches the other's loss): NaN,
  # left out of the mean and the median, not propagated into them.
  estimates = [o.estimate for o in fitted if math.isfinite(o.estimate)]
  widths = [o.upper - o.lower for o in fitted if math.isfinite(o.upper - o.lower)]
  return DesignResult(
      design, float(np.mean([o.excludes_zero for o in outcomes])),
      float(np.mean(estimates)) if estimates else math.nan,
      float(np.median(widths)) if widths else math.nan,
      float(np.mean([o.covers(truth) for o in outcomes])),
      float(np.mean([o.flagged for o in outcomes])),
      float(np.mean([o.failed for o in outcomes])),
      design_flops(design, assumptions), design_decades(design, assumptions), simulations)


def plan(assumptions: Assumptions, hypothesis: Hypothesis, designs: Iterable[Design], *,
         simulations: int = 50, settings: SimulationSettings = SimulationSettings(),
         seed: int = 0, progress: Callable[[DesignResult], None] | None = None
         ) -> list[DesignResult]:
  """`evaluate_design` for every design (same seed each: designs are compared on common
  random numbers), in order of total FLOPs. `progress` is called after each design."""
  for name in (hypothesis.reference, hypothesis.group):
    assumptions.group(name)
  ordered = sorted(designs, key=lambda d: design_flops(d, assumptions))
  results = []
  for design in ordered:
    results.append(evaluate_design(assumptions, hypothesis, design, simulations=simulations,
                                   settings=settings, seed=seed))
    if progress:
      progress(results[-1])
  return results


def cheapest(results: Sequence[DesignResult], target_power: float = 0.8,
             min_coverage: float = 0.0) -> DesignResult | None:
  """The design with the fewest total FLOPs whose power reaches `target_power` and whose
  coverage reaches `min_coverage` (a design whose intervals often miss the true value
  excludes zero partly through its bias), or None."""
  reaching = [r for r in results if r.power >= target_power and r.coverage >= min_coverage]
  return min(reaching, key=lambda r: r.flops) if reaching else None


# ----------------------------------------------------------------------------------------
# Assumptions measured from a run table.


def seed_noise_from_table(table: runs.RunTable) -> diagnostics.SeedNoise:
  """Seed noise (nats): from a folder's run records (`diagnostics.seed_noise`), else from
  the table: runs of one group with the same parameters and final tokens differ only in
  seed; the median over such configurations of the std of their final losses. With no
  such runs `diagnostics.DEFAULT_SEED_NOISE` (configurations 0)."""
  if table.run_info:
    noise = diagnostics.seed_noise(table.run_info.values())
    if noise.configurations:
      return noise
  finals: dict[tuple, list[float]] = {}
  for run in table.run_ids:
    on = np.flatnonzero(table.run_id == run)
    last = on[-1]
    if np.isnan(table.params[last]) or np.isnan(table.tokens[last]):
      continue
    key = (table.group[last], float(table.params[last]), float(table.tokens[last]))
    finals.setdefault(key, []).append(float(table.loss[last]))
  stds = [float(np.std(v, ddof=1)) for v in finals.values() if len(v) > 1]
  if not stds:
    return diagnostics.SeedNoise(diagnostics.DEFAULT_SEED_NOISE, 0)
  return diagnostics.SeedNoise(float(np.median(stds)), len(stds))


def kinds_from_runs(table: runs.RunTable) -> dict[str, str]:
  """{group: model kind} from a run folder's recorded configs (config.model.kind), for the
  groups whose runs all record one known kind; {} for a CSV/JSONL table."""
  seen: dict[str, set] = {}
  for info in table.run_info.values():
    model = (info.get("config") or {}).get("model") or {}
    seen.setdefault(str(info.get("label")), set()).add(model.get("kind"))
  return {g: next(iter(k)) for g, k in seen.items() if len(k) == 1 and next(iter(k)) in KINDS}


def assumptions_from_table(table: runs.RunTable, *, kinds: Mapping[str, str],
                           groups: Sequence[str] | None = None,
                           irreducible: str | float = "shared",
                           point_noise: float | None = None,
                           seed_noise: float | None = None, skip_fraction: float = 0.1,
                           **kwargs) -> Assumptions:
  """Fitted frontier laws (envelope, E per `irreducible`, each run's points before
  `skip_fraction` of its tokens not fitted: `past_fraction`) and measured noise of a table.

  Point noise = the standard deviation (ddof = 3) of loss minus fitted law over each
  group's frontier points, pooled over groups (nats; it includes some seed noise, so
  adding seed noise on top is conservative). Seed noise per `seed_noise_from_table`.
  Either can be overridden. `kinds` maps group -> kind (missing: transformer); `kwargs`
  go to Assumptions (vocab_size, sequence_length, optimal_tokens_per_param).

  Raises:
    FitError: the table cannot be fitted (too few points).
  """
  groups = list(groups or table.groups)
  result, _, _ = fit_lib.fit_and_bootstrap(
      table, groups=groups, frontier="envelope",
      options=fit_lib.PowerLawOptions(irreducible=irreducible),
      eligible=past_fraction(table, skip_fraction))
  residuals = []
  for g, name in enumerate(result.groups):
    on = result.points_weight[g] > 0
    predicted = np.asarray(laws.loss_at_compute(result.for_group(name),
                                                result.points_compute[g][on]))
    residuals.append(result.points_loss[g][on] - predicted)
  pooled = np.concatenate(residuals)
  measured_point = float(np.sqrt(np.sum(pooled**2) / max(1, pooled.size - 3 * len(groups))))
  noise = seed_noise_from_table(table)
  source = (f"point {'stated' if point_noise is not None else 'measured: frontier scatter'};"
            f" seed {'stated' if seed_noise is not None else noise.source}")
  return Assumptions(
      tuple(GroupAssumption(g, result.for_group(g), kinds.get(g, "transformer"))
            for g in result.groups),
      Noise(seed_noise if seed_noise is not None else noise.value,
            point_noise if point_noise is not None else measured_point, source),
      source=f"laws fitted to {table.source or 'a run table'}", **kwargs)


# ----------------------------------------------------------------------------------------
# Reporting.


@dataclasses.dataclass(frozen=True)
class Chip:
  """A column of hours: `name` as the user wrote it, the accelerator, the dtype whose peak
  counts, and the model-FLOP utilisation assumed (fraction of that peak)."""
  name: str
  accelerator: hardware.Accelerator
  dtype: str = "bfloat16"
  mfu: float = 0.4

  def hours(self, flops: float) -> float:
    """Hours on one chip: flops / (peak * mfu) / 3600."""
    return hardware.wall_seconds(flops, self.accelerator, dtype=self.dtype,
                                 mfu=self.mfu) / 3600.0


def _hours_text(hours: float) -> str:
  if hours < 1 / 60:
    return f"{hours * 3600:.0f}s"
  if hours < 1:
    return f"{hours * 60:.0f}m"
  if hours < 48:
    return f"{hours:.1f}h"
  return f"{hours / 24:.0f}d"


def results_table(results: Sequence[DesignResult], chips: Sequence[Chip] = ()) -> str:
  """Aligned text table, one row per design, with an hours-per-chip column per chip."""
  header = ["widths", "seeds", "tok/param", "decades", "power", "mean est", "CI width",
            "coverage", "flagged", "FLOPs"] + [f"{chip.name} h" for chip in chips]
  rows = [header]
  for r in results:
    rows.append([",".join(str(w) for w in r.design.widths), str(r.design.seeds),
                 f"{r.design.tokens_per_param:g}", f"{r.decades:.2f}", f"{r.power:.2f}",
                 f"{r.mean_estimate:.3g}", f"{r.interval_width:.3g}", f"{r.coverage:.2f}",
                 f"{r.flagged:.2f}",
                 f"{r.flops:.3g}"] + [_hours_text(chip.hours(r.flops)) for chip in chips])
  widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
  return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
                   for row in rows)


def requirement_sentence(what: str, results: Sequence[DesignResult], *,
                         target_power: float = 0.8, min_coverage: float = 0.0,
                         level: float = 0.95, chip: Chip | None = None) -> str:
  """"to determine `what` you need ..." from planned designs: the cheapest reaching
  `target_power` (and `min_coverage`), its FLOPs, compute span and (with `chip`) hours on
  one chip; or, when none does, the best power any design reached."""
  best = cheapest(results, target_power, min_coverage)
  if best is None:
    if not results:
      return f"to determine {what} no design was planned"
    top = max(results, key=lambda r: (r.coverage >= min_coverage, r.power))
    return (f"to determine {what} you need more than any planned design: the best, "
            f"{top.design.describe()} ({top.decades:.1f} decades of compute, "
            f"{top.flops:.3g} FLOPs), excludes zero with probability {top.power:.2f} "
            f"(target {target_power:g}) and holds the true value in {top.coverage:.0%} of "
            f"its intervals; widen the grid (more widths, seeds or decades)")
  text = (f"to determine {what} you need {best.design.describe()}: {best.decades:.1f} "
          f"decades of compute, {best.flops:.3g} training FLOPs, power {best.power:.2f} "
          f"(median {level:.0%} interval width {best.interval_width:.3g})")
  if chip is not None:
    text += (f", about {_hours_text(chip.hours(best.flops))} on one {chip.name} at "
             f"{chip.mfu:.0%} MFU ({chip.dtype})")
  return text
