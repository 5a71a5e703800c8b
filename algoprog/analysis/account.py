"""Algorithmic-progress accounting: how much compute-equivalent gain (CEG) known innovations
explain, at which compute scale, and relative to which reference algorithm.

Two layers:
  * `Innovation`s: a year and a gain, a pytree evaluated at a compute by `gain_at`:
    `ConstantGain` (scale-invariant), `LawGain` (from a pair of fitted frontier laws),
    `ChinchillaGain` (the Kaplan -> Chinchilla multiplier M(C)), `RatioGain` (one over
    another). `decompose`, `progress_by_year` and `relative_to` account for them.
  * a `Study`: the plain inputs of one accounting (laws by label, measured ablation CEGs,
    the Chinchilla law and Kaplan's allocation, the frontier trend, innovation specs that
    name laws and ablations, references), as in configs/account_study.py.
    `study_from_dict` validates one; `resolve` turns it into Innovations; `headline`,
    `sensitivity` and `with_samples` work on it.
What launch.account computes and writes from a Study (its output settings, tables,
figures, the printed table) is algoprog.analysis.account_report.

Conventions:
  * CEG > 1 is a gain. Compute in FLOPs, loss in nats/token, years are calendar years.
  * An innovation counts from its year on: year y accounts every innovation of year <= y,
    at the frontier compute C(y) = compute_at_base_year * growth_per_year**(y - base_year)
    or at a fixed compute.
  * Log share of a component = ln(its CEG) / ln(total CEG); the shares sum to 1.
    Scale-dependent = every gain that varies with compute (all but `ConstantGain`).
  * Annual growth (CAGR) of year y = total(y)**(1 / (y - start_year)): the study's 2.23x/year
    is 6,926x over 2012-2023.
  * Interaction normalisation: ablation CEGs measured one at a time multiply to more than
    the directly measured modern-vs-retro gain (3.57x vs 1.33x), so each ablation-derived
    gain m becomes m**k, k = ln(measured total) / ln(product of the measured ablations):
    the normalised ablations multiply to exactly the measured total. Only innovations of
    kind "ablation" are normalised; literature constants and scale-dependent gains are not.
  * Uncertainty: any numeric leaf (a law's a/alpha/E, an ablation CEG) may be an array of
    samples [S], e.g. the fit module's bootstrap; every result then carries the sample
    axis, so samples propagate through the whole accounting. `laws.interval` summarises them.

Everything numeric is jax.numpy (jit/vmap/grad friendly); validation raises AccountError
with a one-line message naming the field.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Callable, Mapping, NamedTuple, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from algoprog.analysis import laws

MAX_YEAR = 2100
KINDS = ("constant", "ablation", "laws", "chinchilla")


class AccountError(ValueError):
  """Bad accounting input; the message names the field and what was expected."""


# ----------------------------------------------------------------------------------------
# Kaplan -> Chinchilla multiplier M(C).


class KaplanAllocation(NamedTuple):
  """Kaplan et al.'s allocation: N = coefficient * C**exponent parameters, D = C/(6N)."""
  coefficient: ArrayLike
  exponent: ArrayLike


def kaplan_reducible_loss(law: laws.ChinchillaLaw, allocation: KaplanAllocation,
                          compute: ArrayLike) -> jnp.ndarray:
  """Reducible loss (nats/token) of Kaplan's allocation at `compute` FLOPs."""
  params = allocation.coefficient * jnp.power(compute, allocation.exponent)
  return laws.chinchilla_reducible_loss(law, params, compute / (6.0 * params))


def chinchilla_multiplier(law: laws.ChinchillaLaw, allocation: KaplanAllocation,
                          compute: ArrayLike) -> jnp.ndarray:
  """M(C): `compute` over the compute the optimal allocation needs for Kaplan's loss.

  >= 1 everywhere (the optimum is optimal); 1 where Kaplan's allocation is optimal.
  """
  needed = laws.compute_at_loss(laws.chinchilla_frontier(law, reducible=True),
                                kaplan_reducible_loss(law, allocation, compute))
  return compute / needed


# ----------------------------------------------------------------------------------------
# Gains and innovations.


class ConstantGain(NamedTuple):
  """Scale-invariant gain: the same CEG at every compute."""
  ceg: ArrayLike


class LawGain(NamedTuple):
  """CEG of frontier law `new` over `reference` at the new algorithm's compute."""
  reference: laws.PowerLaw
  new: laws.PowerLaw


class ChinchillaGain(NamedTuple):
  """Kaplan -> Chinchilla rebalancing: M(C) of `law` for Kaplan's `allocation`."""
  law: laws.ChinchillaLaw
  allocation: KaplanAllocation


class RatioGain(NamedTuple):
  """CEG of `numerator` divided by that of `denominator` (a gain net of another)."""
  numerator: Any
  denominator: Any


Gain = Union[ConstantGain, LawGain, ChinchillaGain, RatioGain]


def gain_at(gain: Gain, compute: ArrayLike) -> jnp.ndarray:
  """CEG of `gain` at `compute` FLOPs (shape: sample axes broadcast with compute's)."""
  compute = jnp.asarray(compute, dtype=float)
  if isinstance(gain, ConstantGain):
    return jnp.asarray(gain.ceg) * jnp.ones_like(compute)
  if isinstance(gain, LawGain):
    return laws.compute_equivalent_gain(gain.reference, gain.new, compute)
  if isinstance(gain, ChinchillaGain):
    return chinchilla_multiplier(gain.law, gain.allocation, compute)
  if isinstance(gain, RatioGain):
    return gain_at(gain.numerator, compute) / gain_at(gain.denominator, compute)
  raise AccountError(f"gain: expected ConstantGain, LawGain, ChinchillaGain or RatioGain, "
                     f"got {type(gain).__name__}")


def is_scale_dependent(gain: Gain) -> bool:
  """Whether the gain varies with compute (every kind but ConstantGain)."""
  return not isinstance(gain, ConstantGain)


@dataclasses.dataclass(frozen=True)
class Innovation:
  """An innovation: counts from `year` (calendar year) on with CEG `gain`.

  A pytree whose only leaf is `gain` (name, label, year are static), so it vmaps.
  """
  name: str
  label: str
  year: int
  gain: Gain

  @property
  def scale_dependent(self) -> bool:
    return is_scale_dependent(self.gain)


jax.tree_util.register_dataclass(Innovation, data_fields=["gain"],
                                 meta_fields=["name", "label", "year"])


def interaction_exponent(measured_cegs: Sequence[ArrayLike],
                         measured_total: ArrayLike) -> jnp.ndarray:
  """k = ln(measured_total) / ln(prod measured_cegs): m -> m**k makes them multiply to
  the directly measured total (the study: ln 1.33 / ln 3.57 = 0.224)."""
  log_product = sum(jnp.log(jnp.asarray(m)) for m in measured_cegs)
  return jnp.log(jnp.asarray(measured_total)) / log_product


def active(innovations: Sequence[Innovation], year: int) -> tuple[Innovation, ...]:
  """The innovations that count in `year` (their year <= `year`)."""
  return tuple(i for i in innovations if i.year <= year)


def relative_to(innovations: Sequence[Innovation],
                includes: Sequence[str]) -> tuple[Innovation, ...]:
  """The innovations a reference algorithm lacks: progress relative to a reference that
  already `includes` the named innovations counts only the others."""
  return tuple(i for i in innovations if i.name not in set(includes))


# ----------------------------------------------------------------------------------------
# Decomposition at one compute.


class Decomposition(NamedTuple):
  """Total CEG at one compute and its parts (arrays; sample axes if the inputs had them).

  Attributes:
    compute: FLOPs at which the gains are evaluated.
    total: product of all component CEGs.
    scale_dependent: product of the gains that vary with compute.
    scale_invariant: product of the constant gains.
    scale_dependent_share: ln(scale_dependent) / ln(total).
    components: innovation name -> CEG.
    log_shares: innovation name -> ln(CEG) / ln(total) (sum to 1).
  """
  compute: jnp.ndarray
  total: jnp.ndarray
  scale_dependent: jnp.ndarray
  scale_invariant: jnp.ndarray
  scale_dependent_share: jnp.ndarray
  components: dict
  log_shares: dict


def decompose(innovations: Sequence[Innovation], compute: ArrayLike) -> Decomposition:
  """Total CEG of `innovations` at `compute` FLOPs, by component, with log shares."""
  compute = jnp.asarray(compute, dtype=float)
  components = {i.name: gain_at(i.gain, compute) for i in innovations}
  one = jnp.ones_like(compute)
  log_dependent = sum((jnp.log(components[i.name]) for i in innovations
                       if i.scale_dependent), jnp.zeros_like(one))
  log_invariant = sum((jnp.log(components[i.name]) for i in innovations
                       if not i.scale_dependent), jnp.zeros_like(one))
  log_total = log_dependent + log_invariant
  return Decomposition(
      compute=compute,
      total=jnp.exp(log_total),
      scale_dependent=jnp.exp(log_dependent),
      scale_invariant=jnp.exp(log_invariant),
      scale_dependent_share=log_dependent / log_total,
      components=components,
      log_shares={name: jnp.log(m) / log_total for name, m in components.items()})


# ----------------------------------------------------------------------------------------
# Frontier trend and progress by year.


class Trend(NamedTuple):
  """Frontier training compute by year: C(y) = compute_at_base_year *
  growth_per_year**(y - base_year) FLOPs (study: 1e16 * 4.1**(y - 2013))."""
  compute_at_base_year: ArrayLike = 1e16
  base_year: ArrayLike = 2013
  growth_per_year: ArrayLike = 4.1


def frontier_compute(trend: Trend, year: ArrayLike) -> jnp.ndarray:
  """Frontier training compute (FLOPs) in `year`."""
  return trend.compute_at_base_year * jnp.power(
      trend.growth_per_year, jnp.asarray(year, dtype=float) - trend.base_year)


def annual_growth(total: ArrayLike, years_elapsed: ArrayLike) -> jnp.ndarray:
  """Compound annual growth rate (x/year) of a gain `total` over `years_elapsed` years."""
  return jnp.power(total, 1.0 / jnp.asarray(years_elapsed, dtype=float))


class YearlyProgress(NamedTuple):
  """Cumulative CEG by year ([Y, ...] arrays; trailing sample axes if any).

  Attributes:
    years: calendar years [Y].
    compute: FLOPs at which each year is evaluated (the frontier's, or a fixed one).
    total: cumulative CEG of the innovations active in each year.
    components: innovation name -> its CEG in each year (1 before its year).
    annual_growth: total**(1/(year - start_year)) (NaN in the start year itself).
  """
  years: np.ndarray
  compute: jnp.ndarray
  total: jnp.ndarray
  components: dict
  annual_growth: jnp.ndarray


def progress_by_year(innovations: Sequence[Innovation], years: Sequence[int],
                     start_year: int, *, trend: Trend | None = None,
                     compute: ArrayLike | None = None) -> YearlyProgress:
  """Cumulative CEG in each of `years`, at the moving frontier (`trend`) or at a fixed
  `compute` (FLOPs); exactly one of the two."""
  if (trend is None) == (compute is None):
    raise AccountError("progress_by_year: pass exactly one of trend= or compute=")
  years = np.asarray(years, dtype=int)
  if trend is not None:
    computes = [frontier_compute(trend, y) for y in years]
  else:
    computes = [jnp.asarray(compute, dtype=float)] * len(years)
  components = {}
  for innovation in innovations:
    components[innovation.name] = jnp.stack([
        jnp.where(y >= innovation.year, gain_at(innovation.gain, c), 1.0)
        for y, c in zip(years, computes)])
  shape = jnp.broadcast_shapes(*(jnp.shape(c) for c in computes),
                               *(m.shape[1:] for m in components.values()))
  # [Y] components of point gains join [Y, S] sampled ones: pad axes on the right.
  components = {name: jnp.broadcast_to(m.reshape(m.shape + (1,) * (1 + len(shape) - m.ndim)),
                                       (len(years),) + shape)
                for name, m in components.items()}
  log_total = sum((jnp.log(m) for m in components.values()),
                  jnp.zeros((len(years),) + shape))
  total = jnp.exp(log_total)
  elapsed = (years - start_year).astype(float).reshape((-1,) + (1,) * len(shape))
  growth = jnp.where(elapsed > 0, annual_growth(total, jnp.where(elapsed > 0, elapsed, 1.0)),
                     jnp.nan)
  return YearlyProgress(years, jnp.stack([jnp.broadcast_to(c, shape) for c in computes]),
                        total, components, growth)


# ----------------------------------------------------------------------------------------
# A study: the inputs of one accounting, by name.


@dataclasses.dataclass(frozen=True)
class InnovationSpec:
  """An innovation as the user states it (see configs/account_study.py for each field).

  kind "constant": CEG `ceg`. "ablation": product/quotient of measured ablation CEGs named
  in `ablation` (e.g. "rotary_vs_sinusoidal / rotary_vs_learned"), normalised for
  interactions when the study says so. "laws": CEG of law `new` over law `reference`,
  divided by M(C) when `net_of_chinchilla` (the new law's runs were already trained at
  Chinchilla token ratios, so that part of the gain belongs to Chinchilla's year).
  "chinchilla": M(C).
  """
  name: str
  label: str
  year: int
  kind: str
  ceg: ArrayLike = 1.0
  ablation: str = ""
  reference: str = ""
  new: str = ""
  net_of_chinchilla: bool = False


@dataclasses.dataclass(frozen=True)
class Reference:
  """A reference algorithm: progress relative to it counts only innovations it lacks."""
  name: str
  label: str
  includes: tuple[str, ...]


class Interaction(NamedTuple):
  """Interaction normalisation of ablation gains.

  Attributes:
    normalise: whether "ablation" innovations are normalised (m -> m**k).
    components: ablation names whose product is compared with `measured_total`.
    measured_total: directly measured CEG of all of them combined (modern over retro).
  """
  normalise: bool
  components: tuple[str, ...]
  measured_total: ArrayLike


@dataclasses.dataclass(frozen=True)
class Study:
  """Inputs of one accounting.

  Attributes:
    laws: label -> frontier PowerLaw L(C) = E + a*C**alpha (FLOPs, nats/token).
    ablations: name -> CEG measured by a small-scale ablation.
    interaction: the m -> m**k interaction normalisation of "ablation" innovations.
    chinchilla: L(N, D) law for M(C).
    kaplan: Kaplan's allocation N(C).
    trend: frontier compute by year.
    innovations: the innovations, sorted by year then name.
    references: the reference algorithms for reference dependence.
    start_year: baseline year (no innovation yet); CAGRs are over start_year -> year.
  """
  laws: Mapping[str, laws.PowerLaw]
  ablations: Mapping[str, ArrayLike]
  interaction: Interaction
  chinchilla: laws.ChinchillaLaw
  kaplan: KaplanAllocation
  trend: Trend
  innovations: tuple[InnovationSpec, ...]
  references: tuple[Reference, ...]
  start_year: int


_ABLATION_TERM = re.compile(r"\s*([*/]?)\s*([A-Za-z_][A-Za-z0-9_]*)\s*")


def ablation_terms(expression: str, field: str) -> list[tuple[str, int]]:
  """Parses "a / b * c" into [(a, +1), (b, -1), (c, +1)] (name, power)."""
  terms, position = [], 0
  while position < len(expression):
    match = _ABLATION_TERM.match(expression, position)
    if not match or match.end() == position or (bool(match.group(1)) != bool(terms)):
      raise AccountError(f"{field}: expected ablation names joined by * or /, "
                         f"got '{expression}'")
    terms.append((match.group(2), -1 if match.group(1) == "/" else 1))
    position = match.end()
  if not terms:
    raise AccountError(f"{field}: expected ablation names joined by * or /, got ''")
  return terms


def study_interaction_exponent(study: Study) -> jnp.ndarray:
  """k of the study's interaction normalisation (1 when it is off)."""
  if not study.interaction.normalise:
    return jnp.asarray(1.0)
  return interaction_exponent([study.ablations[n] for n in study.interaction.components],
                              study.interaction.measured_total)


def resolve(study: Study) -> tuple[Innovation, ...]:
  """The study's innovations with their gains (laws looked up, normalisation applied)."""
  k = study_interaction_exponent(study)
  chinchilla = ChinchillaGain(study.chinchilla, study.kaplan)
  innovations = []
  for spec in study.innovations:
    if spec.kind == "constant":
      gain = ConstantGain(jnp.asarray(spec.ceg))
    elif spec.kind == "ablation":
      log_ceg = sum(power * jnp.log(jnp.asarray(study.ablations[name]))
                    for name, power in ablation_terms(spec.ablation, spec.name))
      gain = ConstantGain(jnp.exp(k * log_ceg))
    elif spec.kind == "laws":
      gain = LawGain(study.laws[spec.reference], study.laws[spec.new])
      if spec.net_of_chinchilla:
        gain = RatioGain(gain, chinchilla)
    else:
      gain = chinchilla
    innovations.append(Innovation(spec.name, spec.label, spec.year, gain))
  return tuple(innovations)


def unnormalised_cegs(study: Study) -> dict:
  """Innovation name -> CEG of each "ablation" innovation before the interaction
  normalisation (what the ablations measured)."""
  raw = dataclasses.replace(study, interaction=study.interaction._replace(normalise=False))
  return {i.name: i.gain.ceg for spec, i in zip(study.innovations, resolve(raw))
          if spec.kind == "ablation"}


class Headline(NamedTuple):
  """The accounting of one year (arrays; sample axes if the study carries samples).

  Attributes:
    year: calendar year.
    decomposition: the Decomposition of the innovations active in `year` at `compute`.
    annual_growth: decomposition.total**(1/(year - start_year)), x/year.
  """
  year: int
  decomposition: Decomposition
  annual_growth: jnp.ndarray


def headline(study: Study, year: int, compute: ArrayLike | None = None,
             reference: str | None = None) -> Headline:
  """Accounting of `year` at the frontier compute (or at a fixed `compute`, FLOPs), of
  every innovation or, given the name of one of the study's references, of those that
  reference lacks."""
  check_year(year, study.start_year, "year")
  innovations = active(resolve(study), year)
  if reference is not None:
    innovations = relative_to(innovations, find_reference(study, reference).includes)
  if compute is None:
    compute = frontier_compute(study.trend, year)
  decomposition = decompose(innovations, compute)
  return Headline(year, decomposition,
                  annual_growth(decomposition.total, year - study.start_year)
                  if year > study.start_year else jnp.full_like(decomposition.total, jnp.nan))


def find_reference(study: Study, name: str) -> Reference:
  for reference in study.references:
    if reference.name == name:
      return reference
  raise AccountError(f"reference: unknown reference '{name}' (known: "
                     f"{', '.join(r.name for r in study.references)})")


def check_year(year: Any, start_year: int, field: str, *, after_start: bool = False) -> int:
  """`year` as an int, or AccountError unless start_year (<) <= year <= MAX_YEAR."""
  low = start_year + 1 if after_start else start_year
  if isinstance(year, bool) or not isinstance(year, (int, np.integer)) or not (
      low <= year <= MAX_YEAR):
    raise AccountError(f"{field}: expected an integer year in [{low}, {MAX_YEAR}], "
                       f"got {year!r}")
  return int(year)


# ----------------------------------------------------------------------------------------
# Uncertainty: samples through the whole accounting.


def _sample_vector(values: ArrayLike, field: str, lengths: dict) -> np.ndarray:
  """`values` as a 1-D float array of samples; records its length in lengths[field]."""
  values = np.asarray(values, dtype=float)
  if values.ndim != 1:
    raise AccountError(f"{field}: expected a 1-D array of samples, got shape {values.shape}")
  lengths[field] = values.size
  return values


def with_samples(study: Study, law_samples: Mapping[str, laws.PowerLaw] | None = None,
                 ceg_samples: Mapping[str, ArrayLike] | None = None) -> Study:
  """The study with sampled laws (label -> PowerLaw of [S] arrays, e.g. the fit module's
  bootstrap) and sampled CEGs (ablation or constant-innovation name -> [S]); everything
  not sampled keeps its point value. All samples must share one length S."""
  law_samples, ceg_samples = dict(law_samples or {}), dict(ceg_samples or {})
  lengths = {}
  new_laws = dict(study.laws)
  for label, law in law_samples.items():
    if label not in study.laws:
      raise AccountError(f"bootstrap.{label}: unknown law label (known: "
                         f"{', '.join(sorted(study.laws))})")
    fields = [_sample_vector(v, f"bootstrap.{label}.{field}", lengths)
              for field, v in zip(laws.PowerLaw._fields, law)]
    new_laws[label] = laws.PowerLaw(*(jnp.asarray(v) for v in fields))
  ablations = dict(study.ablations)
  specs = {s.name: s for s in study.innovations}
  for name, values in ceg_samples.items():
    values = _sample_vector(values, f"ceg_bootstrap.{name}", lengths)
    if name in ablations:
      ablations[name] = jnp.asarray(values)
    elif name in specs and specs[name].kind == "constant":
      specs[name] = dataclasses.replace(specs[name], ceg=jnp.asarray(values))
    else:
      raise AccountError(f"ceg_bootstrap.{name}: expected an ablation or a constant "
                         f"innovation name")
  if len(set(lengths.values())) > 1:
    raise AccountError("bootstrap: expected every sample array to have the same length, "
                       f"got {dict(sorted(lengths.items()))}")
  return dataclasses.replace(study, laws=new_laws, ablations=ablations,
                             innovations=tuple(specs[s.name] for s in study.innovations))


# ----------------------------------------------------------------------------------------
# Sensitivity (tornado).


def get_value(study: Study, path: str) -> Any:
  """The input at a dotted `path`, e.g. "laws.lstm.alpha", "trend.growth_per_year",
  "innovations.moe.ceg", "ablations.swiglu_vs_gelu", "chinchilla.beta"."""
  node = study
  for part in path.split("."):
    node = _child(node, part, path)
  return node


def with_value(study: Study, path: str, value: Any) -> Study:
  """The study with the input at dotted `path` replaced by `value`."""
  return _replace(study, path.split("."), value, path)


def _child(node: Any, part: str, path: str) -> Any:
  if isinstance(node, Mapping) and part in node:
    return node[part]
  if isinstance(node, tuple) and not hasattr(node, "_fields"):
    for item in node:
      if getattr(item, "name", None) == part:
        return item
  elif hasattr(node, part) and not part.startswith("_"):
    return getattr(node, part)
  raise AccountError(f"{path}: no input named '{part}' there")


def _replace(node: Any, parts: list[str], value: Any, path: str) -> Any:
  child = _child(node, parts[0], path)
  new_child = value if len(parts) == 1 else _replace(child, parts[1:], value, path)
  if isinstance(node, Mapping):
    return {**node, parts[0]: new_child}
  if isinstance(node, tuple) and not hasattr(node, "_fields"):
    return tuple(new_child if item is child else item for item in node)
  if hasattr(node, "_fields"):
    return node._replace(**{parts[0]: new_child})
  return dataclasses.replace(node, **{parts[0]: new_child})


class SensitivityRow(NamedTuple):
  """How the headline metric moves when one input goes from `low_value` to `high_value`."""
  parameter: str
  base_value: float
  low_value: float
  high_value: float
  base: float
  at_low: float
  at_high: float


def sensitivity(study: Study, metric: Callable[[Study], ArrayLike],
                ranges: Mapping[str, tuple[float, float]]) -> list[SensitivityRow]:
  """Tornado table: `metric` (e.g. the 2023 total) at each input's low and high value, all
  else fixed; rows sorted by swing |ln(at_high / at_low)|, largest first."""
  base = float(metric(study))
  rows = []
  for path, (low, high) in ranges.items():
    rows.append(SensitivityRow(path, float(np.asarray(get_value(study, path))), float(low),
                               float(high), base, float(metric(with_value(study, path, low))),
                               float(metric(with_value(study, path, high)))))
  return sorted(rows, key=lambda r: -abs(math.log(r.at_high / r.at_low))
                if r.at_low > 0 and r.at_high > 0 else -math.inf)


# ----------------------------------------------------------------------------------------
# Reading a study and fitted laws from plain data (configs, JSON).


def _number(value: Any, field: str, *, positive: bool = False) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not (
      math.isfinite(value)):
    raise AccountError(f"{field}: expected a finite number, got {value!r}")
  if positive and value <= 0:
    raise AccountError(f"{field}: expected a number > 0, got {value!r}")
  return float(value)


def _mapping(value: Any, field: str) -> Mapping:
  if not isinstance(value, Mapping):
    raise AccountError(f"{field}: expected a mapping, got {type(value).__name__}")
  return value


def _names(value: Any, field: str) -> tuple[str, ...]:
  """A comma-separated string (command-line friendly) or a sequence of names."""
  if isinstance(value, str):
    return tuple(n.strip() for n in value.split(",") if n.strip())
  if isinstance(value, (list, tuple)) and all(isinstance(n, str) for n in value):
    return tuple(value)
  raise AccountError(f"{field}: expected comma-separated names, got {value!r}")


def law_from_dict(values: Any, field: str) -> laws.PowerLaw:
  """PowerLaw from {"a": > 0, "alpha": < 0, "E": >= 0} (one law, scalars)."""
  values = _mapping(values, field)
  for key in ("a", "alpha", "E"):
    if key not in values:
      raise AccountError(f"{field}.{key}: missing (expected a, alpha, E)")
  a = _number(values["a"], f"{field}.a", positive=True)
  alpha = _number(values["alpha"], f"{field}.alpha")
  if alpha >= 0:
    raise AccountError(f"{field}.alpha: expected a negative exponent, got {alpha!r}")
  E = _number(values["E"], f"{field}.E")
  if E < 0:
    raise AccountError(f"{field}.E: expected an irreducible loss >= 0, got {E!r}")
  return laws.PowerLaw(a, alpha, E)


def study_from_dict(config: Mapping) -> Study:
  """A validated Study from the plain mapping of configs/account_study.py (keys it does not
  use are ignored: the launcher owns them)."""
  config = _mapping(config, "config")
  for key in ("start_year", "trend", "laws", "chinchilla", "kaplan", "ablations",
              "interaction", "innovations", "references"):
    if key not in config:
      raise AccountError(f"{key}: missing from the study config")
  start_year = config["start_year"]
  if isinstance(start_year, bool) or not isinstance(start_year, int) or not (
      1900 <= start_year < MAX_YEAR):
    raise AccountError(f"start_year: expected an integer year in [1900, {MAX_YEAR}), "
                       f"got {start_year!r}")
  trend_d = _mapping(config["trend"], "trend")
  trend = Trend(_number(trend_d.get("compute_at_base_year"), "trend.compute_at_base_year",
                        positive=True),
                _number(trend_d.get("base_year"), "trend.base_year"),
                _number(trend_d.get("growth_per_year"), "trend.growth_per_year",
                        positive=True))
  if trend.growth_per_year <= 1:
    # C(y) must grow: at growth <= 1 later years sit at the same or smaller compute.
    raise AccountError(f"trend.growth_per_year: expected a growth factor > 1 (x/year), got "
                       f"{trend.growth_per_year!r}")
  study_laws = {label: law_from_dict(v, f"laws.{label}")
                for label, v in _mapping(config["laws"], "laws").items()}
  ch = _mapping(config["chinchilla"], "chinchilla")
  chinchilla = laws.ChinchillaLaw(*(_number(ch.get(f), f"chinchilla.{f}",
                                             positive=(f != "E"))
                                     for f in laws.ChinchillaLaw._fields))
  ka = _mapping(config["kaplan"], "kaplan")
  kaplan = KaplanAllocation(*(_number(ka.get(f), f"kaplan.{f}", positive=True)
                              for f in KaplanAllocation._fields))
  ablations = {name: _number(v, f"ablations.{name}", positive=True)
               for name, v in _mapping(config["ablations"], "ablations").items()}
  inter = _mapping(config["interaction"], "interaction")
  components = _names(inter.get("components", ""), "interaction.components")
  for name in components:
    if name not in ablations:
      raise AccountError(f"interaction.components: unknown ablation '{name}' (known: "
                         f"{', '.join(sorted(ablations))})")
  normalise = bool(inter.get("normalise", False))
  interaction_total = _number(inter.get("measured_total", 1.0), "interaction.measured_total",
                              positive=True)
  if normalise and (not components or math.isclose(
      sum(math.log(ablations[n]) for n in components), 0.0, abs_tol=1e-12)):
    raise AccountError("interaction.components: expected ablations whose product is not 1 "
                       "(needed to normalise)")
  specs = [_innovation_spec(name, v, start_year, study_laws, ablations)
           for name, v in _mapping(config["innovations"], "innovations").items()]
  specs.sort(key=lambda s: (s.year, s.name))
  names = {s.name for s in specs}
  references = []
  for name, v in _mapping(config["references"], "references").items():
    v = _mapping(v, f"references.{name}")
    includes = _names(v.get("includes", ""), f"references.{name}.includes")
    for included in includes:
      if included not in names:
        raise AccountError(f"references.{name}.includes: unknown innovation '{included}' "
                           f"(known: {', '.join(sorted(names))})")
    references.append(Reference(name, str(v.get("label", name)), includes))
  references.sort(key=lambda r: len(r.includes))
  return Study(study_laws, ablations, Interaction(normalise, components, interaction_total),
               chinchilla, kaplan, trend, tuple(specs), tuple(references), start_year)


def _innovation_spec(name: str, values: Any, start_year: int, study_laws: Mapping,
                     ablations: Mapping) -> InnovationSpec:
  field = f"innovations.{name}"
  values = _mapping(values, field)
  kind = values.get("kind")
  if kind not in KINDS:
    raise AccountError(f"{field}.kind: expected one of {', '.join(KINDS)}, got {kind!r}")
  year = check_year(values.get("year"), start_year, f"{field}.year", after_start=True)
  spec = InnovationSpec(name, str(values.get("label") or name), year, kind)
  if kind == "constant":
    return dataclasses.replace(spec, ceg=_number(values.get("ceg"), f"{field}.ceg",
                                                 positive=True))
  if kind == "ablation":
    expression = str(values.get("ablation", ""))
    for term, _ in ablation_terms(expression, f"{field}.ablation"):
      if term not in ablations:
        raise AccountError(f"{field}.ablation: unknown ablation '{term}' (known: "
                           f"{', '.join(sorted(ablations))})")
    return dataclasses.replace(spec, ablation=expression)
  if kind == "laws":
    for key in ("reference", "new"):
      if values.get(key) not in study_laws:
        raise AccountError(f"{field}.{key}: unknown law {values.get(key)!r} (known: "
                           f"{', '.join(sorted(study_laws))})")
    return dataclasses.replace(spec, reference=values["reference"], new=values["new"],
                               net_of_chinchilla=bool(values.get("net_of_chinchilla")))
  return spec


class FittedLaws(NamedTuple):
  """Fitted laws as the fit module hands them over (the JSON format of docs/account.md).

  Attributes:
    laws: label -> PowerLaw (scalars).
    bootstrap: label -> PowerLaw of [S] sample arrays (may be empty).
    cegs: ablation or constant-innovation name -> measured CEG (may be empty).
    ceg_bootstrap: name -> [S] samples of that CEG (may be empty).
  """
  laws: dict
  bootstrap: dict
  cegs: dict
  ceg_bootstrap: dict


def fitted_laws_from_dict(data: Any) -> FittedLaws:
  """Validates the JSON law format: {"laws": {label: {"a", "alpha", "E"}}, optional
  "bootstrap": {label: {"a": [...], "alpha": [...], "E": [...]}}, optional "cegs":
  {name: number}, optional "ceg_bootstrap": {name: [...]}}."""
  data = _mapping(data, "laws JSON")
  unknown = set(data) - {"laws", "bootstrap", "cegs", "ceg_bootstrap"}
  if unknown:
    raise AccountError(f"laws JSON: unknown key(s) {', '.join(sorted(unknown))} (expected "
                       "laws, bootstrap, cegs, ceg_bootstrap)")
  if "laws" not in data:
    raise AccountError("laws JSON.laws: missing (expected {label: {a, alpha, E}})")
  fitted = {label: law_from_dict(v, f"laws.{label}")
            for label, v in _mapping(data["laws"], "laws").items()}
  bootstrap = {}
  for label, v in _mapping(data.get("bootstrap", {}), "bootstrap").items():
    if label not in fitted:
      raise AccountError(f"bootstrap.{label}: no point law of that label in laws")
    v = _mapping(v, f"bootstrap.{label}")
    arrays = []
    for key in laws.PowerLaw._fields:
      arrays.append(_samples(v.get(key), f"bootstrap.{label}.{key}"))
    bootstrap[label] = laws.PowerLaw(*arrays)
  cegs = {name: _number(v, f"cegs.{name}", positive=True)
          for name, v in _mapping(data.get("cegs", {}), "cegs").items()}
  ceg_bootstrap = {name: _samples(v, f"ceg_bootstrap.{name}")
                   for name, v in _mapping(data.get("ceg_bootstrap", {}),
                                           "ceg_bootstrap").items()}
  return FittedLaws(fitted, bootstrap, cegs, ceg_bootstrap)


def _samples(values: Any, field: str) -> np.ndarray:
  """A non-empty list of numbers (null = a failed refit, kept as NaN)."""
  if not isinstance(values, (list, tuple)) or not values or not all(
      v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values):
    raise AccountError(f"{field}: expected a non-empty list of numbers, got "
                       f"{str(values)[:40]}")
  return np.array([np.nan if v is None else v for v in values], dtype=float)


def fitted_laws_to_dict(fitted_laws: Mapping[str, laws.PowerLaw],
                        bootstrap: Mapping[str, laws.PowerLaw] | None = None,
                        cegs: Mapping[str, float] | None = None,
                        ceg_bootstrap: Mapping[str, ArrayLike] | None = None) -> dict:
  """The JSON law format (json.dump-able; NaN samples become null)."""
  def listed(values):
    return [None if not np.isfinite(v) else float(v) for v in np.ravel(np.asarray(values))]
  data = {"laws": {label: {k: float(np.asarray(v)) for k, v in law._asdict().items()}
                   for label, law in fitted_laws.items()}}
  if bootstrap:
    data["bootstrap"] = {label: {k: listed(v) for k, v in law._asdict().items()}
                         for label, law in bootstrap.items()}
  if cegs:
    data["cegs"] = {name: float(v) for name, v in cegs.items()}
  if ceg_bootstrap:
    data["ceg_bootstrap"] = {name: listed(v) for name, v in ceg_bootstrap.items()}
  return data


def fitted_laws_from_fit(fit: Any, bootstrap: Any = None) -> FittedLaws:
  """FittedLaws from algoprog.analysis.fit results: a PowerLawFit (`groups`, `for_group`) and an
  optional PowerLawBootstrap (same groups, `for_group` -> [S] samples). Group names become
  the law labels."""
  point = {g: fit.for_group(g) for g in fit.groups}
  samples = {} if bootstrap is None else {
      g: laws.PowerLaw(*(np.asarray(v, dtype=float) for v in bootstrap.for_group(g)))
      for g in bootstrap.groups}
  return FittedLaws(point, samples, {}, {})


def with_fitted_laws(study: Study, fitted: FittedLaws) -> tuple[Study, Study | None]:
  """(study with the fitted point laws and CEGs, the same with their samples or None).

  Fitted labels replace or add to the study's laws; every innovation must still find its
  laws (an innovation naming a label absent from both is an AccountError).
  """
  new_laws = {**study.laws, **fitted.laws}
  ablations = dict(study.ablations)
  specs = {s.name: s for s in study.innovations}
  for name, value in fitted.cegs.items():
    if name in ablations:
      ablations[name] = value
    elif name in specs and specs[name].kind == "constant":
      specs[name] = dataclasses.replace(specs[name], ceg=value)
    else:
      raise AccountError(f"cegs.{name}: expected an ablation or a constant innovation name")
  point = dataclasses.replace(study, laws=new_laws, ablations=ablations,
                              innovations=tuple(specs[s.name] for s in study.innovations))
  if not fitted.bootstrap and not fitted.ceg_bootstrap:
    return point, None
  return point, with_samples(point, fitted.bootstrap, fitted.ceg_bootstrap)


# ----------------------------------------------------------------------------------------
# Tables: plain rows (dicts of numbers and strings) for CSV/JSON and printing.


def _columns(name: str, point: ArrayLike, samples: ArrayLike | None,
             level: float) -> dict:
  """{name: point} plus {name_lower, name_upper} when samples are given."""
  row = {name: float(np.asarray(point))}
  if samples is not None:
    ci = laws.interval(point, samples, level)
    row[f"{name}_lower"], row[f"{name}_upper"] = ci.lower, ci.upper
  return row


def metric(headline_: Headline, name: str) -> jnp.ndarray:
  """A named number of a headline: "total", "scale_dependent", "scale_invariant",
  "scale_dependent_share", "annual_growth", or an innovation name (its CEG)."""
  d = headline_.decomposition
  if name == "annual_growth":
    return headline_.annual_growth
  if name in ("total", "scale_dependent", "scale_invariant", "scale_dependent_share"):
    return getattr(d, name)
  if name in d.components:
    return d.components[name]
  raise AccountError(f"metric: expected total, scale_dependent, scale_invariant, "
                     f"scale_dependent_share, annual_growth or an active innovation "
                     f"({', '.join(d.components)}), got '{name}'")


def headline_rows(study: Study, years: Sequence[int], fixed_compute: Sequence[float] = (),
                  sampled: Study | None = None, level: float = 0.95) -> list[dict]:
  """One row per year at the frontier, then per (year, fixed compute): FLOPs, total, the
  scale-dependent components, scale-invariant product, scale-dependent share, annual
  growth; with `level` intervals from `sampled` (the study carrying samples)."""
  rows = []
  for year in years:
    for where, compute in [("frontier", None)] + [("fixed", c) for c in fixed_compute]:
      point = headline(study, year, compute)
      draws = headline(sampled, year, compute) if sampled is not None else None
      d = point.decomposition
      row = {"year": year, "where": where, "compute": float(d.compute)}
      names = ["total"] + [i.name for i in active(resolve(study), year) if i.scale_dependent]
      names += ["scale_invariant", "scale_dependent_share", "annual_growth"]
      for name in names:
        row.update(_columns(name, metric(point, name),
                            None if draws is None else metric(draws, name), level))
      rows.append(row)
  return rows


def component_rows(study: Study, years: Sequence[int], sampled: Study | None = None,
                   level: float = 0.95) -> list[dict]:
  """One row per (year, active innovation) at the frontier: its CEG, log share and kind."""
  rows = []
  for year in years:
    point = headline(study, year).decomposition
    draws = headline(sampled, year).decomposition if sampled is not None else None
    for innovation in active(resolve(study), year):
      row = {"year": year, "compute": float(point.compute), "innovation": innovation.name,
             "label": innovation.label, "innovation_year": innovation.year,
             "scale_dependent": innovation.scale_dependent}
      for name, part in (("ceg", "components"), ("log_share", "log_shares")):
        row.update(_columns(name, getattr(point, part)[innovation.name],
                            None if draws is None else getattr(draws, part)[innovation.name],
                            level))
      rows.append(row)
  return rows


def yearly_rows(progress: YearlyProgress, sampled: YearlyProgress | None = None,
                level: float = 0.95, **labels: Any) -> list[dict]:
  """One row per year of a YearlyProgress: `labels` (e.g. where="frontier"), FLOPs, total,
  annual growth and each component's CEG."""
  rows = []
  for t, year in enumerate(progress.years):
    row = {**labels, "year": int(year), "compute": float(progress.compute[t])}
    for name in ("total", "annual_growth"):
      row.update(_columns(name, getattr(progress, name)[t],
                          None if sampled is None else getattr(sampled, name)[t], level))
    for name, values in progress.components.items():
      row[name] = float(values[t])
    rows.append(row)
  return rows
