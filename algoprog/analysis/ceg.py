"""Compute-equivalent gains (CEG): from raw training curves and from fitted laws, with CIs.

Convention (the study's): the CEG of a `group` (new algorithm) over a `reference` is

    CEG = C_reference / C_group

the compute the reference needs divided by the compute the group needs, both to reach the
same validation loss. CEG > 1 means the group is more compute-efficient. "At compute C"
means at the loss the group reaches with C: CEG(C) = C_reference(L_group(C)) / C
(algoprog.analysis.laws.compute_equivalent_gain).

Two measurements:
  * raw curves (`raw_ceg`, `raw_ceg_table`): each run's curve is interpolated linearly in
    ln(compute) at the target loss, at its FIRST crossing (the first evaluation at or below
    the target and the one before it). A curve that never reaches the target is an error
    (TargetNotReached) naming the run and its lowest loss, never a silent cap. A group of
    several runs reaches the target at the earliest crossing of its runs ("envelope": the
    lower envelope of the curves) or at the geometric mean of its runs' crossings ("mean":
    seeds of one configuration; CI by resampling runs).
  * fitted laws (`ceg_band`, `ceg_at_loss_band`, `scale_dependence`, `ceg_table`): the closed
    form on fitted PowerLaws, per bootstrap sample (algoprog.analysis.fit.PowerLawBootstrap pairs the
    samples of all groups), percentile bands. Scale dependence is tested on the exponent
    difference alpha_group - alpha_reference: its CI excluding 0 means the CEG changes with
    compute (d ln CEG / d ln C = alpha_group/alpha_reference - 1 for a shared E).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike

from algoprog.analysis import fit as fit_lib
from algoprog.analysis import laws
from algoprog.analysis.runs import RunTable

COMBINES = ("envelope", "mean")


class TargetNotReached(ValueError):
  """A curve (or a fitted law) never reaches the target loss; names the run or group."""


# ----------------------------------------------------------------------------------------
# Raw curves.


def crossing_compute(compute: ArrayLike, loss: ArrayLike, target_loss: float,
                     name: str = "curve") -> float:
  """Compute (FLOPs) at which one curve first reaches `target_loss` (nats/token).

  Points in step order; loss interpolated linearly in ln(compute) between the last point
  above the target and the first at or below it.

  Raises:
    TargetNotReached: the curve never gets to the target, or is already at or below it at
      its first point (the crossing lies before the data).
  """
  compute, loss = np.asarray(compute, np.float64), np.asarray(loss, np.float64)
  reached = np.flatnonzero(loss <= target_loss)
  if reached.size == 0:
    raise TargetNotReached(f"{name} never reaches loss {target_loss:g} (lowest "
                           f"{loss.min():.4g} at {compute[np.argmin(loss)]:.3g} FLOPs)")
  i = int(reached[0])
  if i == 0:
    raise TargetNotReached(f"{name} starts at or below loss {target_loss:g} (first point "
                           f"{loss[0]:.4g} at {compute[0]:.3g} FLOPs); the crossing is "
                           "before its first evaluation")
  lc = np.log(compute[i - 1:i + 1])
  fraction = (loss[i - 1] - target_loss) / (loss[i - 1] - loss[i])
  return float(np.exp(lc[0] + fraction * (lc[1] - lc[0])))


def run_crossings(table: RunTable, group: str, target_loss: float, *,
                  allow_unreached: bool = False) -> dict[str, float]:
  """{run_id: crossing compute} for every run of `group`; NaN for runs that never reach the
  target when `allow_unreached`, else TargetNotReached."""
  sub = table.only_groups([group])
  out = {}
  for run_id in sub.run_ids:
    rows = sub.run_id == run_id
    try:
      out[run_id] = crossing_compute(sub.compute[rows], sub.loss[rows], target_loss,
                                     name=f"run {run_id} ({group})")
    except TargetNotReached:
      if not allow_unreached:
        raise
      out[run_id] = np.nan
  return out


def _combine(crossings: np.ndarray, combine: str) -> float:
  if combine == "envelope":
    return float(np.nanmin(crossings)) if np.isfinite(crossings).any() else np.nan
  return float(np.exp(np.mean(np.log(crossings))))


def group_crossing(table: RunTable, group: str, target_loss: float,
                   combine: str = "envelope") -> float:
  """Compute (FLOPs) at which `group` reaches `target_loss`: the earliest crossing of its
  runs ("envelope") or the geometric mean of all its runs' crossings ("mean").

  Raises:
    TargetNotReached: "envelope" and no run reaches it; "mean" and any run does not.
  """
  if combine not in COMBINES:
    raise ValueError(f"combine '{combine}': expected one of {', '.join(COMBINES)}")
  crossings = run_crossings(table, group, target_loss, allow_unreached=combine == "envelope")
  values = np.array(list(crossings.values()))
  if not np.isfinite(values).any():
    lowest = table.only_groups([group]).loss.min()
    raise TargetNotReached(f"group {group}: no run reaches loss {target_loss:g} (lowest "
                           f"{lowest:.4g})")
  return _combine(values, combine)


def raw_ceg(table: RunTable, reference: str, group: str, target_loss: float,
            combine: str = "envelope") -> float:
  """CEG of `group` over `reference` at `target_loss` from raw curves: C_ref / C_group."""
  return (group_crossing(table, reference, target_loss, combine)
          / group_crossing(table, group, target_loss, combine))


@dataclasses.dataclass(frozen=True)
class RawCeg:
  """One row of a raw-curve CEG table. lower/upper: percentile CI from resampling runs
  within each group (NaN when both groups have a single run)."""
  group: str
  reference: str
  target_loss: float
  compute_group: float
  compute_reference: float
  ceg: float
  lower: float
  upper: float
  num_runs: int


def raw_ceg_table(table: RunTable, reference: str, target_loss: float, *,
                  groups: Sequence[str] | None = None, combine: str = "envelope",
                  num_samples: int = 1000, seed: int = 0, level: float = 0.95) -> list[RawCeg]:
  """Raw-curve CEG of every group (default all but the reference) over `reference`.

  Raises:
    TargetNotReached: as group_crossing, naming the run or group.
  """
  groups = [g for g in (groups or table.groups) if g != reference]
  rng = np.random.default_rng(seed)
  ref = np.array(list(run_crossings(table, reference, target_loss,
                                    allow_unreached=combine == "envelope").values()))
  c_ref = group_crossing(table, reference, target_loss, combine)
  rows = []
  for group in groups:
    c_group = group_crossing(table, group, target_loss, combine)
    new = np.array(list(run_crossings(table, group, target_loss,
                                      allow_unreached=combine == "envelope").values()))
    lower = upper = np.nan
    if ref.size > 1 or new.size > 1:
      samples = np.array([
          _combine(rng.choice(ref, ref.size), combine) / _combine(rng.choice(new, new.size),
                                                                 combine)
          for _ in range(num_samples)])
      lower, upper = laws.confidence_interval(samples, level)
    rows.append(RawCeg(group, reference, target_loss, c_group, c_ref, c_ref / c_group,
                       float(lower), float(upper), int(new.size)))
  return rows


# ----------------------------------------------------------------------------------------
# Fitted laws.


@dataclasses.dataclass(frozen=True)
class CegBand:
  """CEG of `group` over `reference` at each of `at` (compute in FLOPs, or loss in
  nats/token for ceg_at_loss_band) with its percentile band."""
  group: str
  reference: str
  at: np.ndarray
  estimate: np.ndarray
  lower: np.ndarray
  upper: np.ndarray
  level: float


@fit_lib.float64
def ceg_band(fit: fit_lib.PowerLawFit, bootstrap: fit_lib.PowerLawBootstrap | None,
             reference: str, group: str, compute: ArrayLike,
             level: float = 0.95) -> CegBand:
  """CEG(C) = C_reference(L_group(C)) / C at each `compute` (FLOPs), with a band from the
  paired bootstrap samples (NaN band without a bootstrap)."""
  compute = np.atleast_1d(np.asarray(compute, np.float64))
  estimate, lower, upper = _band(
      fit, bootstrap, reference, group, level,
      lambda ref, new: laws.compute_equivalent_gain(ref, new, compute))
  return CegBand(group, reference, compute, estimate, lower, upper, level)


@fit_lib.float64
def ceg_at_loss_band(fit: fit_lib.PowerLawFit, bootstrap: fit_lib.PowerLawBootstrap | None,
                     reference: str, group: str, loss: ArrayLike,
                     level: float = 0.95) -> CegBand:
  """CEG = C_reference(L) / C_group(L) at each target `loss` (nats/token), with a band.

  Raises:
    TargetNotReached: a target at or below either group's fitted E (never reached).
  """
  loss = np.atleast_1d(np.asarray(loss, np.float64))
  for name in (reference, group):
    E = fit.for_group(name).E
    if np.any(loss <= E):
      raise TargetNotReached(f"group {name}: target loss {loss.min():g} is at or below its "
                             f"fitted irreducible loss E={E:.4g}")
  estimate, lower, upper = _band(
      fit, bootstrap, reference, group, level,
      lambda ref, new: laws.compute_equivalent_gain_at_loss(ref, new, loss))
  return CegBand(group, reference, loss, estimate, lower, upper, level)


def _band(fit, bootstrap, reference, group, level, quantity):
  """(estimate, lower, upper): quantity(ref_law, new_law) of the fitted laws and its
  percentile band over paired samples (None without a bootstrap; NaNs ignored: a sample
  whose law never reaches a loss has no CEG there)."""
  estimate = np.asarray(quantity(fit.for_group(reference), fit.for_group(group)))
  if bootstrap is None:
    return estimate, None, None
  ref, new = bootstrap.for_group(reference), bootstrap.for_group(group)
  samples = np.asarray(quantity(_column(ref), _column(new)))  # (B, K)
  return (estimate, *laws.confidence_interval(samples, level))


def _column(law: laws.PowerLaw) -> laws.PowerLaw:
  """(B,) samples -> (B, 1) so they broadcast against K evaluation points."""
  return laws.PowerLaw(*(np.asarray(v)[:, None] for v in law))


@dataclasses.dataclass(frozen=True)
class ScaleDependence:
  """Exponent difference alpha_group - alpha_reference and its CI; `scale_dependent` when
  the CI excludes 0. `ceg_slope` = alpha_group/alpha_reference - 1: d ln CEG / d ln C."""
  group: str
  reference: str
  exponent_difference: laws.Interval
  ceg_slope: laws.Interval
  scale_dependent: bool


def scale_dependence(fit: fit_lib.PowerLawFit, bootstrap: fit_lib.PowerLawBootstrap,
                     reference: str, group: str, level: float = 0.95) -> ScaleDependence:
  """Is the CEG of `group` over `reference` scale-dependent? (module docstring)."""
  ref, new = fit.for_group(reference), fit.for_group(group)
  ref_s, new_s = bootstrap.for_group(reference), bootstrap.for_group(group)
  difference = laws.interval(new.alpha - ref.alpha, new_s.alpha - ref_s.alpha, level)
  slope = laws.interval(new.alpha / ref.alpha - 1, new_s.alpha / ref_s.alpha - 1, level)
  excludes_zero = difference.lower > 0 or difference.upper < 0
  return ScaleDependence(group, reference, difference, slope, bool(excludes_zero))


@dataclasses.dataclass(frozen=True)
class CegRow:
  """One row of the fitted CEG table (long format, one quantity per row).

  quantity: "ceg_at_compute" (at = FLOPs), "ceg_at_loss" (at = nats/token) or
  "exponent_difference" (at = NaN; scale_dependent set).
  """
  group: str
  reference: str
  quantity: str
  at: float
  estimate: float
  lower: float
  upper: float
  scale_dependent: bool | None = None


def ceg_table(fit: fit_lib.PowerLawFit, bootstrap: fit_lib.PowerLawBootstrap | None,
              reference: str, *, computes: Sequence[float] = (),
              losses: Sequence[float] = (), level: float = 0.95) -> list[CegRow]:
  """CEG of every fitted group over `reference` at `computes` (FLOPs) and target `losses`
  (nats/token; targets a group never reaches give NaN rows), plus the exponent difference
  (with the scale-dependence verdict when there is a bootstrap)."""
  nan = float("nan")
  rows = []
  for group in fit.groups:
    if group == reference:
      continue
    if len(computes):
      band = ceg_band(fit, bootstrap, reference, group, computes, level)
      rows += _band_rows(band, "ceg_at_compute")
    for loss in losses:
      try:
        band = ceg_at_loss_band(fit, bootstrap, reference, group, [loss], level)
        rows += _band_rows(band, "ceg_at_loss")
      except TargetNotReached:
        rows.append(CegRow(group, reference, "ceg_at_loss", float(loss), nan, nan, nan))
    if bootstrap is not None:
      test = scale_dependence(fit, bootstrap, reference, group, level)
      d = test.exponent_difference
      rows.append(CegRow(group, reference, "exponent_difference", nan, d.estimate, d.lower,
                         d.upper, test.scale_dependent))
    else:
      d = fit.for_group(group).alpha - fit.for_group(reference).alpha
      rows.append(CegRow(group, reference, "exponent_difference", nan, d, nan, nan))
  return rows


def _band_rows(band: CegBand, quantity: str) -> list[CegRow]:
  lower = band.lower if band.lower is not None else np.full(band.at.shape, np.nan)
  upper = band.upper if band.upper is not None else np.full(band.at.shape, np.nan)
  return [CegRow(band.group, band.reference, quantity, float(a), float(e), float(lo),
                 float(hi)) for a, e, lo, hi in zip(band.at, band.estimate, lower, upper)]
