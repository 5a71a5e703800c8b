"""Profile of the irreducible loss E: derived numbers as bands over every plausible E.

Over 1-3 decades of compute the data rarely pin E (it trades off against a and alpha; a
free fit runs to 0 or to the lowest loss). Instead of declaring every derived number "not
determined", refit the laws with E FIXED at each point of a grid and report how each
derived number moves with E, restricted to the E the data find plausible.

Model: one E shared by the groups compared (architectures trained on the same data have one
irreducible loss); per group L(C) = E + a * C**alpha, fitted by least squares on ln-loss
residuals (the convention of algoprog.analysis.fit) to the group's frontier points.

Grid: `num_grid` values evenly spaced from 0 to `upper_fraction` x the lowest fit loss
(nats), plus the profile optimum E_hat (bounded scalar minimisation of the profile
objective) and any `extra_E` (e.g. the pipeline's fitted shared E).

Plausible E (`criterion`):
  "lr"         profile likelihood ratio: with Gaussian ln-loss residuals of unknown common
               variance, -2 ln LR(E) = n ln(SSR(E) / SSR(E_hat)) (n fit points, SSR the
               summed squared residuals over the groups); E is plausible when this is at most
               the chi-square(1) quantile at `level`. It assumes independent residuals,
               which points along one training curve are not, so on its own it can be too
               narrow.
  "bootstrap"  the percentile interval at `level` of E_hat over run resamples (each
               resample's own profile minimum on the grid): carries the run-to-run
               correlation the likelihood ignores.
  "either"     (default) the union: E is plausible if either criterion keeps it. The
               conservative choice: a number reported "for every plausible E" holds under
               both views.

Derived numbers per pair (group, reference), at every grid E, with a percentile bootstrap
interval over run resamples (same resamples at every E):
  exponent_difference   alpha_group - alpha_reference (< 0: the group's loss falls faster,
                        its CEG grows with compute);
  ceg_at_compute        CEG(C) = C_reference(L_group(C)) / C at each requested compute
                        (FLOPs): with a shared E, (a_g/a_ref)**(1/alpha_ref) *
                        C**(alpha_g/alpha_ref - 1).
Band over the plausible E: the range of the estimates, and the union of the intervals
(lowest lower bound to highest upper bound). Verdict: each plausible grid E is classed by its
interval (above the null, below it, or containing it; null 0 for differences, 1 for CEG);
one class everywhere reads "... for every plausible E (x to y nats)", several read
"it depends on E (E x to y: ...; ...)" ("the sign depends on E" when the estimates change
sign); both add that the plausible E reach the top of the grid when they do (E could then
lie higher still, up to the lowest loss).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np
from scipy import optimize, stats

from algoprog.analysis import fit as fit_lib
from algoprog.analysis import laws
from algoprog.analysis import resample
from algoprog.analysis.runs import RunTable

CRITERIA = ("lr", "bootstrap", "either")
_LM_ITERATIONS = 40


# ----------------------------------------------------------------------------------------
# Fits with E fixed (numpy, vectorised over any leading axes).


def fit_fixed_E(log_compute: np.ndarray, loss: np.ndarray, weight: np.ndarray,
                E: np.ndarray | float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Least-squares fit of ln L = ln(E + exp(ln_b + alpha * x)) with E fixed, per series.

  Args:
    log_compute: x = ln(C / C0), (..., P). loss: nats/token, (..., P). weight: (..., P)
      fit weight (0: not a point). E: nats, broadcastable to the leading axes (...); every
      weighted loss must be above it.
  Returns:
    (ln_b, alpha, ssr), each (...): the multiplier at C0 (a = exp(ln_b) * C0**-alpha), the
    exponent and the weighted sum of squared ln-loss residuals. NaN where a series has
    fewer than 2 distinct computes.
  Levenberg-Marquardt on the two parameters (closed-form 2x2 steps), started from the
  weighted regression of ln(L - E) on x; at E = 0 the model is linear and the start is the
  optimum.
  """
  x, loss, w = np.broadcast_arrays(log_compute, loss, weight)
  E = np.asarray(E, np.float64)[..., None]
  w = np.where(loss > E, w, 0.0)  # a point at or below E cannot be fitted with that E
  log_loss = np.log(loss)
  log_E = np.log(np.maximum(E, 0.0), where=E > 0, out=np.full(E.shape, -np.inf))
  # Start: regression of ln(L - E) on x; weight (1 - E/L)**2 turns its residuals into
  # ln-loss residuals to first order.
  y = np.log(np.where(w > 0, loss - E, 1.0))
  v = w * (1.0 - E / loss)**2
  sw = np.maximum(v.sum(-1, keepdims=True), 1e-300)
  xm, ym = (v * x).sum(-1, keepdims=True) / sw, (v * y).sum(-1, keepdims=True) / sw
  sxx = (v * (x - xm)**2).sum(-1)
  alpha = (v * (x - xm) * (y - ym)).sum(-1) / np.maximum(sxx, 1e-300)
  log_b = ym[..., 0] - alpha * xm[..., 0]

  def residual(lb, al):
    p = lb[..., None] + al[..., None] * x
    log_pred = np.logaddexp(log_E, p)
    return log_pred - log_loss, np.exp(p - log_pred)

  def objective(r):
    return np.sum(w * np.where(w > 0, r, 0.0)**2, -1)

  r, s = residual(log_b, alpha)
  value = objective(r)
  damping = np.full(value.shape, 1e-3)
  stalled = 0
  for _ in range(_LM_ITERATIONS):
    r = np.where(w > 0, r, 0.0)
    a11, a12, a22 = (w * s * s).sum(-1), (w * s * s * x).sum(-1), (w * s * s * x * x).sum(-1)
    g1, g2 = (w * s * r).sum(-1), (w * s * x * r).sum(-1)
    h11, h22 = a11 * (1 + damping), a22 * (1 + damping)
    det = h11 * h22 - a12**2
    det = np.where(np.abs(det) > 1e-300, det, np.nan)
    d1, d2 = -(h22 * g1 - a12 * g2) / det, -(h11 * g2 - a12 * g1) / det
    lb_new, al_new = log_b + d1, alpha + d2
    r_new, s_new = residual(lb_new, al_new)
    value_new = objective(r_new)
    better = np.isfinite(value_new) & (value_new < value)
    # Stop once no series has gained more than 1e-12 relatively for 3 iterations in a row.
    gained = better & (value - value_new > 1e-12 * np.maximum(value, 1e-300))
    stalled = 0 if gained.any() else stalled + 1
    if stalled >= 3:
      break
    log_b, alpha = np.where(better, lb_new, log_b), np.where(better, al_new, alpha)
    value = np.where(better, value_new, value)
    r = np.where(better[..., None], r_new, r)
    s = np.where(better[..., None], s_new, s)
    damping = np.where(better, damping * 0.3, damping * 10.0)
  r, _ = residual(log_b, alpha)
  value = objective(r)
  distinct = _distinct_computes(x, w)
  bad = distinct < 2
  return (np.where(bad, np.nan, log_b), np.where(bad, np.nan, alpha),
          np.where(bad, np.nan, value))


def _distinct_computes(x: np.ndarray, w: np.ndarray) -> np.ndarray:
  """Number of distinct x among the weighted points of each series (...)."""
  xs = np.where(w > 0, x, np.nan)
  xs = np.sort(xs, -1)
  new = np.isfinite(xs) & ~np.isclose(xs, np.roll(xs, 1, -1), rtol=0, atol=1e-12)
  new[..., 0] = np.isfinite(xs[..., 0])
  return new.sum(-1)


# ----------------------------------------------------------------------------------------
# The profile.


@dataclasses.dataclass(frozen=True)
class DerivedProfile:
  """One derived number as a function of E.

  quantity: "exponent_difference" (alpha_group - alpha_reference, at = NaN) or
  "ceg_at_compute" (CEG of group over reference at `at` FLOPs). E: (K,) grid, nats.
  estimate/lower/upper: (K,) full-data value and bootstrap percentile interval at `level`.
  plausible: (K,) the plausible E. band_*: over the plausible E: range of the estimates
  and union of the intervals. verdict: one sentence (module docstring).
  """
  quantity: str
  group: str
  reference: str
  at: float
  E: np.ndarray
  estimate: np.ndarray
  lower: np.ndarray
  upper: np.ndarray
  plausible: np.ndarray
  null: float
  band_estimate_low: float
  band_estimate_high: float
  band_lower: float
  band_upper: float
  verdict: str

  def rows(self) -> list[dict]:
    """One row per grid E (for a CSV)."""
    return [{"quantity": self.quantity, "group": self.group, "reference": self.reference,
             "at": self.at, "E": float(e), "estimate": float(v), "lower": float(lo),
             "upper": float(hi), "plausible": bool(p)}
            for e, v, lo, hi, p in zip(self.E, self.estimate, self.lower, self.upper,
                                       self.plausible)]

  def to_json(self) -> dict:
    return {"quantity": self.quantity, "group": self.group, "reference": self.reference,
            "at": _num(self.at), "null": self.null,
            "band": {"estimate_low": _num(self.band_estimate_low),
                     "estimate_high": _num(self.band_estimate_high),
                     "lower": _num(self.band_lower), "upper": _num(self.band_upper)},
            "verdict": self.verdict, "by_E": self.rows()}


@dataclasses.dataclass(frozen=True)
class EProfile:
  """Laws refitted at fixed E over a grid, the plausible E, and derived numbers.

  E: (K,) grid, nats, ascending. objective: (K,) summed squared ln-loss residuals of the
  full data. deviance: (K,) n ln(objective / objective(E_hat)). threshold: chi-square(1)
  quantile at `level`. plausible_lr / plausible_bootstrap / plausible: (K,) masks.
  E_hat: the profile optimum (nats); E_hat_lower/upper: bootstrap percentile interval of
  the resamples' grid optima. a, alpha: (K, G) full-data laws; a_samples, alpha_samples:
  (K, B, G). num_points: fit points of the full data. derived: DerivedProfile per pair and
  quantity.
  """
  groups: tuple[str, ...]
  E: np.ndarray
  objective: np.ndarray
  deviance: np.ndarray
  threshold: float
  plausible_lr: np.ndarray
  plausible_bootstrap: np.ndarray
  plausible: np.ndarray
  E_hat: float
  E_hat_lower: float
  E_hat_upper: float
  a: np.ndarray
  alpha: np.ndarray
  a_samples: np.ndarray
  alpha_samples: np.ndarray
  num_points: int
  level: float
  criterion: str
  derived: tuple[DerivedProfile, ...]

  @property
  def plausible_range(self) -> tuple[float, float]:
    """Lowest and highest plausible grid E (nats)."""
    e = self.E[self.plausible]
    return float(e.min()), float(e.max())

  def law(self, group: str, E: float) -> laws.PowerLaw:
    """The full-data law of `group` at the grid E nearest `E`."""
    k = int(np.argmin(np.abs(self.E - E)))
    g = self.groups.index(group)
    return laws.PowerLaw(float(self.a[k, g]), float(self.alpha[k, g]), float(self.E[k]))

  def summary(self) -> list[str]:
    """Report lines: the plausible E and how they were chosen, then each verdict."""
    low, high = self.plausible_range
    boot = (f"bootstrap optimum interval [{self.E_hat_lower:.3g}, {self.E_hat_upper:.3g}]"
            if math.isfinite(self.E_hat_lower) else "no bootstrap")
    head = (f"E profile of {', '.join(self.groups)} ({self.num_points} fit points): best E "
            f"{self.E_hat:.3g} nats; plausible E {low:.3g} to {high:.3g} nats (criterion "
            f"{self.criterion}: likelihood ratio <= {self.threshold:.2f}, {boot}; "
            f"{self.level:.0%})")
    lines = [head]
    for d in self.derived:
      what = ("exponent difference" if d.quantity == "exponent_difference"
              else f"CEG at {d.at:.3g} FLOPs")
      lines.append(f"{d.group} vs {d.reference}, {what}: {d.band_estimate_low:.4g} to "
                   f"{d.band_estimate_high:.4g} over the plausible E, interval "
                   f"[{d.band_lower:.4g}, {d.band_upper:.4g}]: {d.verdict}")
    return lines

  def rows(self) -> list[dict]:
    """One row per (grid E, group): the law and whether E is plausible."""
    return [{"E": float(e), "group": group, "a": float(self.a[k, g]),
             "alpha": float(self.alpha[k, g]), "objective": float(self.objective[k]),
             "deviance": float(self.deviance[k]), "plausible": bool(self.plausible[k])}
            for k, e in enumerate(self.E) for g, group in enumerate(self.groups)]

  def to_json(self) -> dict:
    low, high = self.plausible_range
    return {"groups": list(self.groups), "criterion": self.criterion, "level": self.level,
            "E_hat": self.E_hat, "E_hat_bootstrap": [_num(self.E_hat_lower),
                                                     _num(self.E_hat_upper)],
            "plausible_E": [low, high], "threshold": self.threshold,
            "num_points": self.num_points, "summary": self.summary(), "grid": self.rows(),
            "derived": [d.to_json() for d in self.derived]}


def _num(value: float) -> float | None:
  return None if value is None or not math.isfinite(value) else float(value)


def profile_E(table: RunTable, *, groups: Sequence[str] | None = None,
              pairs: Sequence[tuple[str, str]] = (), computes: Sequence[float] = (),
              frontier: str = "envelope", eligible: np.ndarray | None = None,
              num_grid: int = 25, upper_fraction: float = 0.98,
              extra_E: Sequence[float] = (), num_samples: int = 200, seed: int = 0,
              level: float = 0.95, criterion: str = "either",
              run_weights: np.ndarray | None = None) -> EProfile:
  """Profiles the shared irreducible loss E of `groups` (module docstring).

  Args:
    table: the runs. groups: groups fitted together (default all).
    pairs: (group, reference) pairs whose derived numbers to profile (default: every
      group against the first).
    computes: FLOPs at which to profile each pair's CEG.
    frontier, eligible: as fit.fit_frontiers ("envelope", "final" or "all").
    num_grid: grid points from 0 to `upper_fraction` x the lowest fit loss (nats).
    extra_E: further E to include (nats; e.g. the fitted shared E), if below the losses.
    num_samples, seed: run resamples (resample.resampled_points); `run_weights` replaces
      them (e.g. with an LR-choice mask).
    level: interval level and likelihood-ratio level. criterion: "lr", "bootstrap" or
      "either".
  Raises:
    FitError: unknown criterion, a group with fewer than 3 distinct fit computes.
  """
  if criterion not in CRITERIA:
    raise fit_lib.FitError(f"criterion '{criterion}': expected one of {', '.join(CRITERIA)}")
  points = resample.resampled_points(table, groups=groups, frontier=frontier,
                                     eligible=eligible, num_samples=num_samples, seed=seed,
                                     run_weights=run_weights)
  groups = points.groups
  full = points.weight[0]
  for g, name in enumerate(groups):
    c = points.compute[g][full[g] > 0]
    if np.unique(c).size < 3:
      raise fit_lib.FitError(f"group {name}: {np.unique(c).size} distinct fit computes; "
                             "the E profile needs at least 3")
  lowest = float(min(points.loss[g][full[g] > 0].min() for g in range(len(groups))))
  log_c0 = np.array([np.mean(np.log(points.compute[g][full[g] > 0]))
                     for g in range(len(groups))])
  x = np.log(points.compute) - log_c0[:, None]                       # (G, P)

  def total(E, weight):  # summed objective over groups; E (...), weight (S, G, P)
    _, _, ssr = fit_fixed_E(x, points.loss, weight, np.asarray(E)[..., None, None])
    return ssr.sum(-1)                                                 # (..., S)

  upper = upper_fraction * lowest
  optimum = optimize.minimize_scalar(lambda e: float(total(np.asarray(e), full[None])[0]),
                                     bounds=(0.0, upper), method="bounded",
                                     options={"xatol": 1e-6 * max(upper, 1e-12)})
  E_hat = float(optimum.x)
  grid = np.linspace(0.0, upper, num_grid)
  extras = [float(e) for e in extra_E if 0.0 <= float(e) < lowest]
  grid = np.unique(np.concatenate([grid, [E_hat], extras]))
  # Every grid E, every sample, every group at once: (K, S, G).
  log_b, alpha, ssr = fit_fixed_E(x, points.loss, points.weight,
                                  grid[:, None, None])
  a = np.exp(log_b - alpha * log_c0)
  objective = ssr.sum(-1)                                              # (K, S)
  n = int((full > 0).sum())
  best = min(float(np.nanmin(objective[:, 0])), float(optimum.fun))
  deviance = n * np.log(objective[:, 0] / best)
  threshold = float(stats.chi2.ppf(level, 1))
  plausible_lr = deviance <= threshold
  # Each resample's own profile minimum on the grid.
  boot = objective[:, 1:]
  ok = np.isfinite(boot).all(0)
  E_boot = grid[np.argmin(np.where(np.isfinite(boot), boot, np.inf), 0)][ok]
  if E_boot.size:
    e_lo, e_hi = laws.confidence_interval(E_boot, level)
    e_lo, e_hi = float(e_lo), float(e_hi)
    plausible_boot = (grid >= e_lo) & (grid <= e_hi)
  else:
    e_lo = e_hi = math.nan
    plausible_boot = np.zeros(grid.shape, bool)
  plausible = {"lr": plausible_lr, "bootstrap": plausible_boot,
               "either": plausible_lr | plausible_boot}[criterion]
  if not plausible.any():  # the bootstrap alone may miss every grid point; keep the optimum
    plausible = grid == E_hat
  pairs = list(pairs) or [(g, groups[0]) for g in groups[1:]]
  derived = []
  for group, reference in pairs:
    gi, ri = groups.index(group), groups.index(reference)
    diff = alpha[..., gi] - alpha[..., ri]                              # (K, S)
    derived.append(_derived("exponent_difference", group, reference, math.nan, grid, diff,
                            plausible, 0.0, level))
    for c in computes:
      log_ceg = ((np.log(a[..., gi]) + alpha[..., gi] * math.log(c) - np.log(a[..., ri]))
                 / alpha[..., ri] - math.log(c))
      derived.append(_derived("ceg_at_compute", group, reference, float(c), grid,
                              np.exp(log_ceg), plausible, 1.0, level))
  return EProfile(groups, grid, objective[:, 0], deviance, threshold, plausible_lr,
                  plausible_boot, plausible, E_hat, e_lo, e_hi, a[:, 0], alpha[:, 0],
                  a[:, 1:], alpha[:, 1:], n, level, criterion, tuple(derived))


def _derived(quantity, group, reference, at, grid, values, plausible, null, level
             ) -> DerivedProfile:
  """values: (K, S) with sample 0 the full data."""
  estimate = values[:, 0]
  if values.shape[1] > 1:
    lower, upper = laws.confidence_interval(values[:, 1:], level, axis=1)
  else:
    lower = upper = np.full(grid.shape, np.nan)
  p = plausible
  band = (float(np.nanmin(estimate[p])), float(np.nanmax(estimate[p])),
          float(np.nanmin(lower[p])) if np.isfinite(lower[p]).any() else math.nan,
          float(np.nanmax(upper[p])) if np.isfinite(upper[p]).any() else math.nan)
  verdict = _verdict(quantity, group, reference, at, grid, estimate, lower, upper, p, null)
  return DerivedProfile(quantity, group, reference, at, grid, estimate, lower, upper, p,
                        null, *band, verdict)


def classify(estimate: float, lower: float, upper: float, null: float) -> str:
  """"above" / "below" the null when the interval excludes it, "unresolved" when it
  contains it, "no estimate" when there is none; without an interval, by the estimate."""
  if not math.isfinite(estimate):
    return "no estimate"
  if not (math.isfinite(lower) and math.isfinite(upper)):
    return "above" if estimate > null else "below"
  if lower > null:
    return "above"
  if upper < null:
    return "below"
  return "unresolved"


def _phrase(quantity: str, group: str, reference: str, at: float, cls: str) -> str:
  if quantity == "ceg_at_compute":
    return {"above": f"{group} beats {reference} at {at:.3g} FLOPs",
            "below": f"{reference} beats {group} at {at:.3g} FLOPs",
            "unresolved": f"{group} vs {reference} at {at:.3g} FLOPs is not resolved (the "
                          "interval contains 1x)",
            "no estimate": f"no CEG of {group} over {reference} at {at:.3g} FLOPs"}[cls]
  return {"below": f"{group}'s loss falls faster with compute than {reference}'s (its gain "
                   "grows with scale)",
          "above": f"{group}'s loss falls more slowly with compute than {reference}'s (its "
                   "gain shrinks with scale)",
          "unresolved": f"the exponents of {group} and {reference} are not distinguished "
                        "(the interval contains 0)",
          "no estimate": f"no exponent difference of {group} and {reference}"}[cls]


def _verdict(quantity, group, reference, at, grid, estimate, lower, upper, plausible,
             null) -> str:
  idx = np.flatnonzero(plausible)
  classes = [classify(float(estimate[k]), float(lower[k]), float(upper[k]), null)
             for k in idx]
  # The grid stops just below the lowest loss: a plausible range that reaches its top may
  # go on beyond it (E up to the data), and the reader should know.
  note = ("; the plausible E reach the top of the grid, just below the lowest loss"
          if plausible[-1] and grid.size > 1 else "")
  if len(set(classes)) == 1:
    lo, hi = grid[idx].min(), grid[idx].max()
    return (f"{_phrase(quantity, group, reference, at, classes[0])} for every plausible E "
            f"({lo:.3g} to {hi:.3g} nats{note})")
  segments = []  # runs of one class along the plausible grid
  for k, cls in zip(idx, classes):
    if segments and segments[-1][0] == cls:
      segments[-1][2] = grid[k]
    else:
      segments.append([cls, grid[k], grid[k]])
  signs = np.sign(estimate[idx] - null)
  head = ("the sign depends on E" if (signs > 0).any() and (signs < 0).any()
          else "it depends on E")
  parts = [f"E {lo:.3g} to {hi:.3g}: {_phrase(quantity, group, reference, at, cls)}"
           for cls, lo, hi in segments]
  return f"{head} ({'; '.join(parts)}{note})"
