"""Model-free scale dependence: CEG along the raw frontier envelopes, no law, no E.

For a group, C_g(L) is the compute at which the lower envelope of its runs' curves (loss
vs cumulative compute) first reaches loss L: the earliest first crossing of L over its
runs, each run interpolated linearly in ln(compute) between the evaluations around its
first crossing (ceg.crossing_compute, vectorised). The CEG of a group over a reference at
loss L is C_ref(L) / C_g(L), computed at `num_targets` target losses spaced evenly in
ln(loss) over every loss both groups reach:

  highest target: below the first evaluation (the highest loss) of every run of both
                  groups, so no run's crossing lies before its data (its crossing would be
                  unknown and the envelope wrong);
  lowest target:  above the lowest loss of the group that gets least far, so both reach it.

Bands: resample whole runs with replacement within each group (as the fit bootstrap
does); each resample's envelope is the earliest crossing among its drawn runs (a target no
drawn run reaches gives NaN there, ignored by the percentiles and reported as the fraction
reached).

Scale dependence: slope s of ln CEG against ln C (C = the reference's compute at the
target loss, C_ref(L)), by least squares over the targets, with its bootstrap percentile
interval (each resample's slope over the targets it reaches). s > 0: the gain grows with
scale; s < 0: it shrinks; the verdict says which when the interval excludes 0, and "not
resolved" when it does not. For two power laws with a shared E, CEG = C_ref / C_g with
C_g proportional to C_ref**(alpha_ref/alpha_g), so s = 1 - alpha_ref/alpha_g exactly
(against the group's own compute it is alpha_g/alpha_ref - 1, ceg.ScaleDependence.ceg_slope);
here no law is assumed.

Caveats: high targets are reached early in training, where warmup and the schedule shape
the curves; the lowest targets are reached only by the largest runs' last points, whose
schedule (cosine decay) is not finished before the end; restrict with `min_loss` /
`max_loss` to the range you trust.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from algoprog.analysis import laws
from algoprog.analysis.runs import RunTable


class RawScaleError(ValueError):
  """No loss both groups reach, or a group missing; the message names the groups."""


def crossings(compute: np.ndarray, loss: np.ndarray, targets: np.ndarray) -> np.ndarray:
  """First-crossing compute (FLOPs) of one run (points in step order) at each target loss
  (nats/token); NaN where it never reaches the target or is already below it at its first
  point. Linear interpolation in ln(compute), as ceg.crossing_compute."""
  compute, loss = np.asarray(compute, np.float64), np.asarray(loss, np.float64)
  targets = np.asarray(targets, np.float64)
  best = np.minimum.accumulate(loss)
  # First index whose running minimum is at or below the target (best is non-increasing).
  index = np.searchsorted(-best, -targets, side="left")
  ok = (index < loss.size) & (index > 0)
  i = np.clip(index, 1, loss.size - 1)
  lo, hi = loss[i - 1], loss[i]
  fraction = (lo - targets) / np.where(lo > hi, lo - hi, 1.0)
  lc = np.log(compute)
  value = np.exp(lc[i - 1] + fraction * (lc[i] - lc[i - 1]))
  return np.where(ok, value, np.nan)


@dataclasses.dataclass(frozen=True)
class RawScale:
  """CEG of `group` over `reference` along the raw envelopes.

  target_loss: (K,) nats/token, descending. compute_reference, compute_group: (K,) FLOPs
  at which each envelope reaches the target. ceg/lower/upper: (K,) CEG and its percentile
  band at `level`. reached: (K,) fraction of resamples in which both groups reach the
  target. slope: d ln CEG / d ln C_ref with its interval (laws.Interval). verdict: one
  sentence.
  """
  group: str
  reference: str
  target_loss: np.ndarray
  compute_reference: np.ndarray
  compute_group: np.ndarray
  ceg: np.ndarray
  lower: np.ndarray
  upper: np.ndarray
  reached: np.ndarray
  slope: laws.Interval
  level: float
  num_runs: tuple[int, int]  # (reference, group)
  verdict: str

  def rows(self) -> list[dict]:
    """One row per target loss (for a CSV)."""
    return [{"group": self.group, "reference": self.reference, "target_loss": float(t),
             "compute_reference": float(cr), "compute_group": float(cg), "ceg": float(v),
             "lower": float(lo), "upper": float(hi), "reached": float(r)}
            for t, cr, cg, v, lo, hi, r in zip(self.target_loss, self.compute_reference,
                                                self.compute_group, self.ceg, self.lower,
                                                self.upper, self.reached)]

  def to_json(self) -> dict:
    s = self.slope
    return {"group": self.group, "reference": self.reference, "level": self.level,
            "slope": {"estimate": s.estimate, "lower": _num(s.lower), "upper": _num(s.upper)},
            "num_runs": {"reference": self.num_runs[0], "group": self.num_runs[1]},
            "verdict": self.verdict, "by_target": self.rows()}


def _num(v: float) -> float | None:
  return float(v) if math.isfinite(v) else None


def _run_crossings(table: RunTable, group: str, targets: np.ndarray) -> np.ndarray:
  """(R, K) first crossings of every run of `group`."""
  sub = table.only_groups([group])
  return np.stack([crossings(sub.compute[sub.run_id == r], sub.loss[sub.run_id == r], targets)
                   for r in sub.run_ids])


def target_range(table: RunTable, reference: str, group: str) -> tuple[float, float]:
  """(lowest, highest) loss both groups' envelopes reach with every run's crossing
  observed (module docstring). Raises RawScaleError when there is none."""
  highs, lows = [], []
  for name in (reference, group):
    sub = table.only_groups([name])
    firsts = [sub.loss[sub.run_id == r][0] for r in sub.run_ids]
    highs.append(min(firsts))
    lows.append(sub.loss.min())
  low, high = max(lows), min(highs)
  if not low < high:
    raise RawScaleError(f"{group} vs {reference}: no loss both reach (lowest losses "
                        f"{lows[0]:.4g}, {lows[1]:.4g}; first evaluations from "
                        f"{highs[0]:.4g}, {highs[1]:.4g})")
  return float(low), float(high)


def raw_scale_dependence(table: RunTable, reference: str, group: str, *,
                         num_targets: int = 40, min_loss: float | None = None,
                         max_loss: float | None = None, num_samples: int = 1000,
                         seed: int = 0, level: float = 0.95) -> RawScale:
  """CEG of `group` over `reference` at every loss both reach, with bands and the slope
  of ln CEG vs ln C_ref (module docstring).

  Args:
    table: the runs. reference, group: group names.
    num_targets: target losses, evenly spaced in ln(loss) strictly inside the common range
      (narrowed to [min_loss, max_loss], nats/token, when given).
    num_samples, seed: run resamples. level: band and slope interval level.
  Raises:
    RawScaleError: no common loss. RunTableError: an unknown group.
  """
  low, high = target_range(table, reference, group)
  low = max(low, min_loss) if min_loss is not None else low
  high = min(high, max_loss) if max_loss is not None else high
  if not low < high:
    raise RawScaleError(f"{group} vs {reference}: no common loss in [{min_loss}, {max_loss}]")
  # Strictly inside: the ends are reached only at a data point (no interpolation).
  targets = np.exp(np.linspace(math.log(high), math.log(low), num_targets + 2)[1:-1])
  ref = _run_crossings(table, reference, targets)                      # (R_ref, K)
  new = _run_crossings(table, group, targets)                          # (R_g, K)
  c_ref, c_new = _envelope(ref), _envelope(new)
  ceg = c_ref / c_new
  rng = np.random.default_rng(seed)
  ref_draw = rng.integers(0, ref.shape[0], (num_samples, ref.shape[0]))
  new_draw = rng.integers(0, new.shape[0], (num_samples, new.shape[0]))
  c_ref_s = _envelope(ref[ref_draw])                                   # (S, K)
  c_new_s = _envelope(new[new_draw])
  samples = c_ref_s / c_new_s
  reached = np.mean(np.isfinite(samples), 0)
  lower, upper = laws.confidence_interval(samples, level)
  slope = _slope(np.log(c_ref), np.log(ceg))
  slopes = np.array([_slope(np.log(a), np.log(b)) for a, b in zip(c_ref_s, samples)])
  slope_lo, slope_hi = laws.confidence_interval(slopes, level)
  interval = laws.Interval(float(slope), float(slope_lo), float(slope_hi))
  verdict = _verdict(group, reference, interval, c_ref, level)
  return RawScale(group, reference, targets, c_ref, c_new, ceg, lower, upper, reached,
                  interval, level, (ref.shape[0], new.shape[0]), verdict)


def _envelope(run_crossings: np.ndarray) -> np.ndarray:
  """Earliest crossing over runs (axis -2); NaN where no run reaches the target."""
  finite = np.isfinite(run_crossings)
  value = np.min(np.where(finite, run_crossings, np.inf), axis=-2)
  return np.where(finite.any(-2), value, np.nan)


def _slope(x: np.ndarray, y: np.ndarray) -> float:
  """Least-squares slope of y on x over the finite pairs (NaN with fewer than 3)."""
  ok = np.isfinite(x) & np.isfinite(y)
  if ok.sum() < 3 or np.ptp(x[ok]) == 0:
    return math.nan
  return float(np.polyfit(x[ok], y[ok], 1)[0])


def _verdict(group: str, reference: str, slope: laws.Interval, c_ref: np.ndarray,
             level: float) -> str:
  span = (f"over C_ref {np.nanmin(c_ref):.3g} to {np.nanmax(c_ref):.3g} FLOPs "
          f"({math.log10(np.nanmax(c_ref) / np.nanmin(c_ref)):.2f} decades)")
  numbers = (f"d ln CEG / d ln C = {slope.estimate:.3f} [{slope.lower:.3f}, "
             f"{slope.upper:.3f}] ({level:.0%})")
  if slope.lower > 0:
    return f"yes: the gain of {group} over {reference} grows with scale, {numbers} {span}"
  if slope.upper < 0:
    return (f"no, it shrinks: the gain of {group} over {reference} falls with scale, "
            f"{numbers} {span}")
  if not (math.isfinite(slope.lower) and math.isfinite(slope.upper)):
    return f"no interval: {numbers} {span}"
  return (f"not resolved: the interval of the slope contains 0 (no scale dependence "
          f"detected), {numbers} {span}")
