"""Checking the extrapolation: rollout validation and residual curvature.

Rollout (`rollout`). As model ladders do: per group, the runs of the `holdout` largest
model sizes (total parameters; final compute when the table has none) are held out, the
laws are fitted to the remaining runs (all groups jointly, same frontier and options as the
real fit) and bootstrapped (runs resampled), and the fitted law predicts the held-out
runs' frontier: the points of the held-out runs that lie on the group's frontier taken over
ALL runs (those are what the law claims to describe). Reported per group: the prediction
error observed - predicted at each such point (nats), its mean and its value at the largest
compute, and whether each observation lies inside the predictive interval at `level`: the
bootstrap laws' predictions plus seed noise (`noise`, nats; Normal, independent of the law)
when given. With noise 0 the interval is the law's alone and a real run will often fall
outside it by its own seed noise: pass the measured seed noise (noise.pooled_seed_noise).

Residual curvature (`residual_curvature`, `curvature_test`). A power law that is the right
model leaves residuals r = ln L_observed - ln L_law without structure in ln C. A polynomial
in u = ln C (centred) is fitted to them by least squares and its top term tested: b with
its standard error and a two-sided t-test (n - order - 1 dof) says whether the data bend
away from the law. The order is 2 (a quadratic: b > 0 means above the law at both ends of
the range) when E is fixed or shared, and 3 when each group fits its own E: a free E bends
the law itself, and the fit leaves residuals orthogonal to its own derivatives (in ln E, ln
a and alpha), which nearly span {1, u, u**2}, so a quadratic term would be ~0 by
construction; the cubic is the first bend a per-group E cannot absorb. `bend` =
b * (span/2)**order is the size of that bend in ln-loss (~ relative loss) at the ends of
the range. Fit points along one training curve are correlated, so the p-value is
optimistic: read a significant bend as "check it".
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from algoprog.analysis import fit as fit_lib
from algoprog.analysis import laws
from algoprog.analysis.runs import RunTable


# ----------------------------------------------------------------------------------------
# Rollout.


@dataclasses.dataclass(frozen=True)
class GroupRollout:
  """One group's rollout. compute/observed/predicted/lower/upper/inside: (n,) per held-out
  frontier point (FLOPs, nats/token). error = observed - predicted (nats)."""
  group: str
  held_out: tuple[str, ...]
  train_law: laws.PowerLaw
  train_max_compute: float
  compute: np.ndarray
  observed: np.ndarray
  predicted: np.ndarray
  lower: np.ndarray
  upper: np.ndarray
  inside: np.ndarray

  @property
  def error(self) -> np.ndarray:
    return self.observed - self.predicted

  @property
  def mean_error(self) -> float:
    return float(np.mean(self.error)) if self.error.size else math.nan

  @property
  def error_at_largest(self) -> float:
    return float(self.error[np.argmax(self.compute)]) if self.error.size else math.nan

  @property
  def extrapolation_decades(self) -> float:
    """How far past the training fit points the held-out frontier reaches."""
    if not self.compute.size:
      return 0.0
    return float(math.log10(self.compute.max() / self.train_max_compute))

  def summary(self) -> str:
    if not self.compute.size:
      return f"{self.group}: no held-out frontier point (the held-out runs never lead)"
    return (f"{self.group}: held out {', '.join(self.held_out)}; prediction error "
            f"{self.error_at_largest:+.4f} nats at {self.compute.max():.3g} FLOPs "
            f"({self.extrapolation_decades:.2f} decades past the fit), mean "
            f"{self.mean_error:+.4f}; {int(self.inside.sum())}/{self.inside.size} points "
            "inside the predicted interval")

  def rows(self) -> list[dict]:
    return [{"group": self.group, "compute": float(c), "observed": float(o),
             "predicted": float(p), "error": float(o - p), "lower": float(lo),
             "upper": float(hi), "inside": bool(i)}
            for c, o, p, lo, hi, i in zip(self.compute, self.observed, self.predicted,
                                          self.lower, self.upper, self.inside)]


@dataclasses.dataclass(frozen=True)
class Rollout:
  """Rollout of every group (`groups`), at `level`, with seed `noise` (nats) in the
  predictive interval."""
  groups: tuple[GroupRollout, ...]
  level: float
  noise: float
  holdout: int

  def rows(self) -> list[dict]:
    return [r for g in self.groups for r in g.rows()]

  def to_json(self) -> dict:
    return {"level": self.level, "noise": self.noise, "holdout": self.holdout,
            "groups": [{"group": g.group, "held_out": list(g.held_out),
                        "train_law": dict(zip(("a", "alpha", "E"), map(float, g.train_law))),
                        "mean_error": _num(g.mean_error),
                        "error_at_largest": _num(g.error_at_largest),
                        "extrapolation_decades": g.extrapolation_decades,
                        "inside": int(g.inside.sum()), "points": int(g.inside.size),
                        "summary": g.summary(), "points_detail": g.rows()}
                       for g in self.groups]}


def _num(v: float) -> float | None:
  return float(v) if math.isfinite(v) else None


def held_out_runs(table: RunTable, group: str, holdout: int = 1) -> tuple[str, ...]:
  """The runs of `group` with the `holdout` largest distinct model sizes (params; final
  compute where params are unknown)."""
  sub = table.only_groups([group])
  size = {}
  for run_id in sub.run_ids:
    rows = sub.run_id == run_id
    p = sub.params[rows][0]
    size[run_id] = float(p) if math.isfinite(p) else float(sub.compute[rows][-1])
  largest = sorted(set(size.values()))[-holdout:]
  return tuple(r for r, s in size.items() if s in largest)


def rollout(table: RunTable, *, groups: Sequence[str] | None = None, holdout: int = 1,
            frontier: str = "envelope",
            options: fit_lib.PowerLawOptions = fit_lib.PowerLawOptions(),
            eligible: np.ndarray | None = None, num_samples: int = 200, seed: int = 0,
            level: float = 0.95, noise: float = 0.0) -> Rollout:
  """Fits each group without its largest `holdout` size(s) and predicts them (module
  docstring).

  Args:
    table: the runs. groups: groups to check (default all), fitted jointly.
    holdout: number of largest sizes held out per group.
    frontier, options, eligible: as the real fit (fit.fit_frontiers; not "isoflop").
    num_samples, seed: bootstrap of the training fit (runs resampled).
    level: predictive interval level. noise: seed noise added to the prediction (nats).
  Raises:
    FitError: too few runs left to fit a group, or frontier "isoflop".
  """
  if frontier == "isoflop":
    raise fit_lib.FitError("rollout: frontier 'isoflop' is not supported (use envelope, "
                           "final or all)")
  groups = tuple(groups or table.groups)
  eligible = (np.ones(table.loss.shape, bool) if eligible is None
              else np.asarray(eligible, bool))
  held = {g: held_out_runs(table, g, holdout) for g in groups}
  held_all = [r for rs in held.values() for r in rs]
  train_mask = ~np.isin(table.run_id, held_all)
  train = table.select(train_mask)
  result = fit_lib.fit_frontiers(train, groups=groups, frontier=frontier, options=options,
                                 eligible=eligible[train_mask])
  boot = (fit_lib.bootstrap_frontiers(train, result, num_samples=num_samples, seed=seed,
                                      eligible=eligible[train_mask])
          if num_samples else None)
  # The frontier over ALL runs, restricted to the held-out runs' points.
  points = fit_lib.group_points(table, groups, eligible)
  with jax.enable_x64(True):
    on = np.asarray(fit_lib.frontier_weight(points, frontier,
                                            jnp.asarray(points.valid, jnp.float64))) > 0
  rng = np.random.default_rng(seed)
  out = []
  for g, group in enumerate(groups):
    run_names = np.array(points.run_ids, dtype=object)[points.run[g]]
    mine = on[g] & np.isin(run_names, held[group])
    compute, observed = points.compute[g][mine], points.loss[g][mine]
    order = np.argsort(compute)
    compute, observed = compute[order], observed[order]
    law = result.for_group(group)
    predicted = np.asarray(laws.loss_at_compute(law, compute), np.float64)
    if boot is not None:
      s = boot.for_group(group)
      draws = (np.asarray(s.E)[:, None] + np.asarray(s.a)[:, None]
               * compute[None, :]**np.asarray(s.alpha)[:, None])
      draws = draws + noise * rng.normal(size=draws.shape)
      lower, upper = laws.confidence_interval(draws, level)
    else:
      z = stats.norm.ppf(0.5 + level / 2)
      lower, upper = predicted - z * noise, predicted + z * noise
    inside = (observed >= lower) & (observed <= upper)
    w = result.points_weight[g] > 0
    out.append(GroupRollout(group, held[group], law,
                            float(result.points_compute[g][w].max()), compute, observed,
                            predicted, np.asarray(lower), np.asarray(upper), inside))
  return Rollout(tuple(out), level, float(noise), holdout)


# ----------------------------------------------------------------------------------------
# Residual curvature.


@dataclasses.dataclass(frozen=True)
class Curvature:
  """Top polynomial term of the ln-loss residuals against centred ln C (module docstring).

  order: 2 (quadratic) or 3 (cubic). b, b_se: its coefficient and standard error (per
  (ln C)**order). t, p: t statistic and two-sided p-value (dof = points - order - 1).
  bend: b * (span/2)**order (ln-loss at the range's ends). significant: p < 1 - level.
  """
  group: str
  order: int
  b: float
  b_se: float
  t: float
  p: float
  bend: float
  points: int
  significant: bool

  def summary(self) -> str:
    if not math.isfinite(self.p):
      return (f"{self.group}: too few points ({self.points}) to test a degree-{self.order} "
              "bend")
    term = "quadratic" if self.order == 2 else "cubic"
    verdict = ("systematic curvature" if self.significant else "no significant curvature")
    return (f"{self.group}: {verdict} in the log-log residuals ({term} term, bend "
            f"{self.bend:+.4f} ln-loss at the ends of the range; t = {self.t:.2f}, "
            f"p = {self.p:.3g}, {self.points} points)")

  def to_json(self) -> dict:
    return {k: (v if not isinstance(v, float) or math.isfinite(v) else None)
            for k, v in {**dataclasses.asdict(self), "summary": self.summary()}.items()}


def curvature_test(compute: Sequence[float], residual: Sequence[float], *, order: int = 2,
                   group: str = "points", level: float = 0.95) -> Curvature:
  """Test of the degree-`order` term of `residual` (ln L_observed - ln L_law) as a
  polynomial in ln `compute` (module docstring)."""
  u = np.log(np.asarray(compute, np.float64))
  r = np.asarray(residual, np.float64)
  n = u.size
  if order not in (2, 3):
    raise ValueError(f"order {order}: expected 2 or 3")
  if n < order + 2 or np.unique(u).size < order + 1:
    return Curvature(group, order, math.nan, math.nan, math.nan, math.nan, math.nan, n,
                     False)
  u = u - u.mean()
  design = np.stack([u**k for k in range(order + 1)], 1)
  coef, *_ = np.linalg.lstsq(design, r, rcond=None)
  resid = r - design @ coef
  dof = n - order - 1
  sigma2 = float(resid @ resid) / dof
  cov = np.linalg.pinv(design.T @ design) * sigma2
  se = float(math.sqrt(cov[order, order])) if cov[order, order] > 0 else 0.0
  b = float(coef[order])
  t = b / se if se > 0 else (math.inf if b else 0.0)
  p = float(2 * stats.t.sf(abs(t), dof))
  bend = float(b * (np.ptp(u) / 2)**order)
  return Curvature(group, order, b, se, float(t), p, bend, n, bool(p < 1 - level))


def residual_curvature(result: fit_lib.PowerLawFit, *, level: float = 0.95
                       ) -> list[Curvature]:
  """`curvature_test` of every group's fit points against its fitted law: quadratic term
  with E fixed or shared, cubic with E fitted per group."""
  order = 3 if result.options.irreducible == "fit" else 2
  out = []
  for g, group in enumerate(result.groups):
    w = result.points_weight[g] > 0
    c, l = result.points_compute[g][w], result.points_loss[g][w]
    law = result.for_group(group)
    predicted = np.asarray(laws.loss_at_compute(law, c), np.float64)
    out.append(curvature_test(c, np.log(l) - np.log(predicted), order=order, group=group,
                              level=level))
  return out
