"""Scaling-law fits in JAX float64: frontiers, power laws, Chinchilla L(N, D), bootstrap.

Pipeline: a RunTable (algoprog.analysis.runs) -> per-group fit points (the frontier) -> a fit.

Frontier (which points a group's law is fitted to), `frontier=`:
  "envelope"  the lower envelope of loss vs cumulative compute over all runs of the group: a
              point is on it when its loss is strictly below every other point of the group
              at the same or lower compute (so each curve contributes the points where it
              is the best so far; ties at equal compute go to the lower loss).
  "final"     the last point of each run.
  "all"       every point (e.g. a published table of final losses, one row per run).
  "isoflop"   Chinchilla approach 2: at each compute budget, every run whose curve spans
              the budget gives its loss there (interpolated in log-compute; a single-point
              run counts at a budget within 10**0.05 of its compute), a parabola in
              ln(params) is fitted to loss vs params and its minimum is the fit point.
`eligible=` (one bool per point: a compute range, points past warmup) restricts the fit
points AFTER the envelope/final points are taken over all points (for "isoflop": the
curves are cut to the eligible points first).

Power law L(C) = E + a * C**alpha (algoprog.analysis.laws.PowerLaw), per group:
  * residuals are in log space, r = ln(E + a*C**alpha) - ln(L_observed), computed as
    logaddexp(ln E, ln a + alpha ln C) so E, a > 0 hold by construction;
  * the objective is the weighted SUM (not mean) of r**2 ("squares"), or of the Huber loss
    of r ("huber": r**2/2 for |r| <= delta, delta*(|r| - delta/2) beyond; delta 1e-3);
  * parameters are fitted in log space: ln E, ln b and alpha, where ln b = ln a +
    alpha*ln(C0) with C0 the geometric-mean compute of the points (centring decorrelates
    the multiplier from the exponent);
  * E is fitted per group ("fit"), shared by all groups ("shared"), or fixed (a number, in
    nats; the study fixed 1.9); `shared_exponent=True` gives every group the same alpha
    with its own multiplier (scale-invariant ablations: separate fits of small runs are
    ill-conditioned);
  * Levenberg-Marquardt (iteratively reweighted for Huber) from several starting points
    (vmapped); starts come from log-log regressions of L - E0 on C for E0 at fractions of
    the smallest loss; the lowest objective wins.

Chinchilla L(N, D) = E + A/N**alpha + B/D**beta (algoprog.analysis.laws.ChinchillaLaw, with its
closed forms: loss, optimal allocation, frontier; Hoffmann et al. 2022, approach 3): Huber
loss (delta 1e-3) of ln L through ln L_pred = logsumexp(a - alpha ln N, b - beta ln D, e)
with A = e**a, B = e**b, E = e**e; minimised from every point of a grid of starts
(vmapped; by default Hoffmann's 4,500-point grid), best optimum kept. Hoffmann et al. used
L-BFGS; we use Levenberg-Marquardt (IRLS for Huber), which reaches the same optimum (the
benchmark checks it against scipy's L-BFGS-B) in far fewer, vmappable iterations.

Bootstrap (`resample=`):
  "runs"    whole runs are drawn with replacement within each group (as many as the group
            has); the frontier is recomputed from the drawn runs (a run drawn twice counts
            twice). This is the default: points of one curve are not independent.
  "points"  the frontier points of the full data are drawn with replacement within each
            group.
Every refit starts from the full-data optimum. Samples share the draw across groups (sample
i of every group comes from one joint resample), so joint quantities such as CEG are
computed per sample. Intervals are percentile intervals (algoprog.analysis.laws.interval).

All entry points switch JAX to float64 for their own computation only (a context manager),
and return numpy float64 arrays.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import warnings
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from algoprog.analysis import laws
from algoprog.analysis.runs import RunTable

FRONTIERS = ("envelope", "final", "all", "isoflop")
RESAMPLES = ("runs", "points")
DEFAULT_HUBER_DELTA = 1e-3
# Starting irreducible losses for power-law fits, as fractions of the smallest fit loss.
_E_START_FRACTIONS = (0.05, 0.3, 0.5, 0.7, 0.85, 0.95)
# A single-point run counts at an IsoFLOP budget within this many decades of its compute.
_ISOFLOP_TOLERANCE_DECADES = 0.05


class FitError(ValueError):
  """Input a fit cannot be trusted on (too few points, one compute value, non-finite data,
  a fixed E above the losses). The message is one line naming the group."""


class FitWarning(UserWarning):
  """A fit that ran but whose result is doubtful (loss below the fitted E, no convergence,
  alpha >= 0, IsoFLOP budgets dropped)."""


def float64(fn: Callable) -> Callable:
  """Runs `fn` with JAX float64 enabled, leaving the process default (float32) alone."""

  @functools.wraps(fn)
  def wrapped(*args, **kwargs):
    with jax.enable_x64(True):
      return fn(*args, **kwargs)

  return wrapped


# ----------------------------------------------------------------------------------------
# Optimisation.


def _least_squares(residual_fn: Callable, theta0: jnp.ndarray, weight: jnp.ndarray,
                   huber_delta: float | None, max_iter: int, ftol: float,
                   jacobian_fn: Callable | None = None):
  """Levenberg-Marquardt on sum(weight * rho(residual_fn(theta))), rho = r**2 or Huber.

  The Huber case is iteratively reweighted: each step is the Gauss-Newton step of the
  quadratic that matches the Huber objective's gradient (weights min(1, delta/|r|)), and a
  step is accepted only if the true objective falls. Stops after an accepted step that
  lowers the objective by less than `ftol` relatively, when the damping saturates (no
  step helps), or after `max_iter` iterations. Returns (theta, objective, iterations).
  Traceable: vmap it over starts or over bootstrap weights. `jacobian_fn(theta)` returns
  (residual, jacobian); default forward-mode autodiff of `residual_fn`.
  """
  objective = lambda theta: _penalty(residual_fn(theta), weight, huber_delta)
  if jacobian_fn is None:
    jacobian_fn = lambda theta: (residual_fn(theta), jax.jacfwd(residual_fn)(theta))

  def step(carry):
    theta, value, damping, iteration, _ = carry
    residual, jacobian = jacobian_fn(theta)
    if huber_delta is None:
      irls = weight
    else:
      irls = weight * jnp.minimum(1.0, huber_delta / jnp.maximum(jnp.abs(residual), 1e-300))
    gradient = jacobian.T @ (irls * residual)
    hessian = jacobian.T @ (irls[:, None] * jacobian)
    # Marquardt scaling: damping proportional to the curvature of each parameter.
    scale = jnp.diag(hessian) + 1e-12 * jnp.max(jnp.diag(hessian)) + 1e-300
    candidate = theta + jnp.linalg.solve(hessian + damping * jnp.diag(scale), -gradient)
    new_value = objective(candidate)
    accepted = jnp.isfinite(new_value) & (new_value < value)
    # Only a near-Gauss-Newton step (small damping) that barely helps means converged.
    small = accepted & (damping < 1.0) & (value - new_value <= ftol * value)
    done = small | (damping > 1e12) | (value == 0)
    return (jnp.where(accepted, candidate, theta), jnp.where(accepted, new_value, value),
            jnp.where(accepted, damping * 0.3, damping * 10.0), iteration + 1, done)

  def keep_going(carry):
    return (carry[3] < max_iter) & ~carry[4]

  value0 = objective(theta0)
  init = (theta0, jnp.where(jnp.isfinite(value0), value0, jnp.inf), jnp.asarray(1e-3),
          jnp.asarray(0), jnp.asarray(False))
  theta, value, _, iterations, _ = jax.lax.while_loop(keep_going, step, init)
  return theta, value, iterations


def _best(params, values):
  """The start with the lowest finite objective (leading axis of `params`)."""
  best = jnp.argmin(jnp.where(jnp.isfinite(values), values, jnp.inf))
  return jax.tree.map(lambda p: p[best], params), values[best]


def huber(residual: jnp.ndarray, delta: float) -> jnp.ndarray:
  """Huber loss: residual**2/2 for |residual| <= delta, delta*(|residual| - delta/2) beyond."""
  abs_r = jnp.abs(residual)
  return jnp.where(abs_r <= delta, 0.5 * residual**2, delta * (abs_r - 0.5 * delta))


def _penalty(residual, weight, huber_delta):
  """Weighted SUM of squares (huber_delta None) or of Huber losses: summing keeps gradients
  at the data's scale, so L-BFGS does not stop early as it does on a mean."""
  if huber_delta is None:
    return jnp.sum(weight * residual**2)
  return jnp.sum(weight * huber(residual, huber_delta))


# ----------------------------------------------------------------------------------------
# Points by group, and the frontier.


@dataclasses.dataclass(frozen=True)
class GroupedPoints:
  """A RunTable's points by group, padded to a (G, P) grid (pad: valid False, weight 0).

  Runs are numbered 0..R-1 over the selected groups, contiguous by group.
  """
  groups: tuple[str, ...]
  run_ids: tuple[str, ...]
  run_group: np.ndarray   # (R,) group index of each run
  run: np.ndarray         # (G, P) run index of each point
  compute: np.ndarray     # (G, P) FLOPs
  loss: np.ndarray        # (G, P) nats/token
  params: np.ndarray      # (G, P) total parameters (NaN if unknown)
  is_final: np.ndarray    # (G, P) last point of its run
  valid: np.ndarray       # (G, P)
  eligible: np.ndarray    # (G, P) may be a fit point (in the compute range, past warmup)


def group_points(table: RunTable, groups: Sequence[str] | None = None,
                 eligible: np.ndarray | None = None) -> GroupedPoints:
  """Arranges `table` (optionally only `groups`, in that order) as padded (G, P) arrays.

  `eligible` (one bool per table point, default all) marks the points that may become fit
  points; the frontier is still taken over all points (frontier_weight).
  """
  groups = tuple(groups) if groups is not None else tuple(table.groups)
  eligible = (np.ones(table.loss.shape, bool) if eligible is None
              else np.asarray(eligible, bool))
  if eligible.shape != table.loss.shape:
    raise FitError(f"eligible: {eligible.size} flags for {table.loss.size} points; expected "
                   "one per point")
  if groups:
    keep = np.isin(table.group, groups)
    table, eligible = table.only_groups(groups), eligible[keep]
  sizes = [int(np.sum(table.group == g)) for g in groups]
  shape = (len(groups), max(sizes))
  run = np.zeros(shape, np.int64)
  compute, loss = np.ones(shape), np.ones(shape)
  params = np.full(shape, np.nan)
  is_final, valid = np.zeros(shape, bool), np.zeros(shape, bool)
  ok = np.zeros(shape, bool)
  run_ids: list[str] = []
  run_group: list[int] = []
  for g, name in enumerate(groups):
    rows = np.flatnonzero(table.group == name)
    ids = list(dict.fromkeys(table.run_id[rows].tolist()))
    index = {r: len(run_ids) + i for i, r in enumerate(ids)}
    run_ids += ids
    run_group += [g] * len(ids)
    n = rows.size
    run[g, :n] = [index[r] for r in table.run_id[rows]]
    compute[g, :n], loss[g, :n] = table.compute[rows], table.loss[rows]
    params[g, :n] = table.params[rows]
    valid[g, :n] = True
    ok[g, :n] = eligible[rows]
    last = {r: i for i, r in enumerate(table.run_id[rows])}  # points are in step order
    is_final[g, list(last.values())] = True
  return GroupedPoints(groups, tuple(run_ids), np.asarray(run_group), run, compute, loss,
                       params, is_final, valid, ok)


def envelope_mask(compute: jnp.ndarray, loss: jnp.ndarray,
                  present: jnp.ndarray) -> jnp.ndarray:
  """Which points lie on the lower envelope of loss vs compute (last axis).

  A present point is on the envelope when its loss is strictly below that of every other
  present point with the same or lower compute (ties at equal compute: the lower loss).
  Pure jnp: vmaps over bootstrap presence masks.
  """
  masked_loss = jnp.where(present, loss, jnp.inf)
  order = jnp.lexsort((masked_loss, compute), axis=-1)
  sorted_loss = jnp.take_along_axis(masked_loss, order, axis=-1)
  best_before = jax.lax.cummin(sorted_loss, axis=sorted_loss.ndim - 1)
  best_before = jnp.concatenate(
      [jnp.full_like(best_before[..., :1], jnp.inf), best_before[..., :-1]], axis=-1)
  on_sorted = sorted_loss < best_before
  inverse = jnp.argsort(order, axis=-1)
  return jnp.take_along_axis(on_sorted, inverse, axis=-1) & present


def frontier_weight(points: GroupedPoints, frontier: str,
                    point_weight: jnp.ndarray) -> jnp.ndarray:
  """Fit weight of every point: `point_weight` (G, P) (run multiplicity) on the frontier
  points that are eligible, 0 elsewhere, for frontier "envelope", "final" or "all".

  The frontier is taken over ALL present points and only then restricted to the eligible
  ones: restricting first would make a large run's first in-range point (still high, early
  in its training) a frontier point whenever the smaller runs' points below it were cut.
  """
  eligible = jnp.asarray(points.eligible)
  if frontier == "envelope":
    return point_weight * eligible * envelope_mask(
        jnp.asarray(points.compute), jnp.asarray(points.loss), point_weight > 0)
  if frontier == "final":
    return point_weight * eligible * jnp.asarray(points.is_final)
  if frontier == "all":
    return point_weight * eligible
  raise FitError(f"frontier '{frontier}': expected one of {', '.join(FRONTIERS)}")


def envelope(table: RunTable, group: str) -> RunTable:
  """The points of `group` on its lower envelope (a RunTable, in the table's order)."""
  sub = table.only_groups([group])
  on = np.asarray(envelope_mask(jnp.asarray(sub.compute), jnp.asarray(sub.loss),
                                jnp.ones(sub.compute.shape, bool)))
  return sub.select(on)


def final_points(table: RunTable) -> RunTable:
  """The last point of every run."""
  last = {r: i for i, r in enumerate(table.run_id)}
  mask = np.zeros(table.run_id.size, bool)
  mask[list(last.values())] = True
  return table.select(mask)


# ----------------------------------------------------------------------------------------
# IsoFLOP minima (Chinchilla approach 2).


@dataclasses.dataclass(frozen=True)
class IsoFlopProfiles:
  """Loss of each run at each compute budget, per group, padded.

  budgets: (G, K) FLOPs (valid where budget_valid); run: (G, M) run indices (run_valid);
  log_params: (G, M) ln(total params) of each run; loss: (G, K, M) NaN where the run does
  not reach the budget.
  """
  budgets: np.ndarray
  budget_valid: np.ndarray
  run: np.ndarray
  run_valid: np.ndarray
  log_params: np.ndarray
  loss: np.ndarray


def isoflop_profiles(points: GroupedPoints, budgets: Sequence[float] | None = None,
                     num_budgets: int = 12) -> IsoFlopProfiles:
  """Interpolates each run's curve (linear in ln compute) at compute budgets.

  Default budgets per group: for tables of single-point runs, the distinct computes
  (clustered within 10**0.05); otherwise `num_budgets` log-spaced budgets across the
  group's compute range. Budgets with fewer than 3 runs of distinct sizes are dropped.

  Raises:
    FitError: a group without parameter counts, or with no usable budget.
  """
  G = len(points.groups)
  per_group = []
  for g, name in enumerate(points.groups):
    v = points.valid[g]
    if np.isnan(points.params[g][v]).any():
      raise FitError(f"group {name}: isoflop frontier needs parameter counts (map a params "
                     "column)")
    runs = list(dict.fromkeys(points.run[g][v].tolist()))
    curves = [np.flatnonzero(v & (points.run[g] == r)) for r in runs]
    log_c = np.log(points.compute[g])
    single = all(c.size == 1 for c in curves)
    if budgets is not None:
      candidates = np.log(np.asarray(budgets, np.float64))
    elif single:
      candidates = _cluster(np.sort(log_c[v]), _ISOFLOP_TOLERANCE_DECADES * np.log(10))
    else:
      candidates = np.linspace(log_c[v].min(), log_c[v].max(), num_budgets)
    table = np.full((candidates.size, len(runs)), np.nan)
    for m, idx in enumerate(curves):
      if idx.size == 1:
        near = np.abs(candidates - log_c[idx[0]]) <= _ISOFLOP_TOLERANCE_DECADES * np.log(10)
        table[near, m] = points.loss[g, idx[0]]
      else:
        order = idx[np.argsort(log_c[idx], kind="stable")]
        inside = (candidates >= log_c[order[0]]) & (candidates <= log_c[order[-1]])
        table[inside, m] = np.interp(candidates[inside], log_c[order], points.loss[g, order])
    log_params = np.log([points.params[g][c[0]] for c in curves])
    distinct = np.array([np.unique(log_params[~np.isnan(row)]).size for row in table])
    keep = distinct >= 3
    if not keep.any():
      raise FitError(f"group {name}: no compute budget is reached by 3 runs of different "
                     "sizes; the isoflop frontier needs them")
    per_group.append((candidates[keep], runs, log_params, table[keep]))
  K = max(c.size for c, *_ in per_group)
  M = max(len(r) for _, r, *_ in per_group)
  out = dict(budgets=np.ones((G, K)), budget_valid=np.zeros((G, K), bool),
             run=np.zeros((G, M), np.int64), run_valid=np.zeros((G, M), bool),
             log_params=np.zeros((G, M)), loss=np.full((G, K, M), np.nan))
  for g, (cand, runs, log_params, table) in enumerate(per_group):
    out["budgets"][g, :cand.size] = np.exp(cand)
    out["budget_valid"][g, :cand.size] = True
    out["run"][g, :len(runs)] = runs
    out["run_valid"][g, :len(runs)] = True
    out["log_params"][g, :len(runs)] = log_params
    out["loss"][g, :cand.size, :len(runs)] = table
  return IsoFlopProfiles(**out)


def _cluster(sorted_values: np.ndarray, tolerance: float) -> np.ndarray:
  """Centres of runs of sorted values whose neighbours are within `tolerance`."""
  breaks = np.flatnonzero(np.diff(sorted_values) > tolerance) + 1
  return np.array([c.mean() for c in np.split(sorted_values, breaks)])


def isoflop_minima(profiles: IsoFlopProfiles, run_weight: jnp.ndarray):
  """Parabola in ln(params) fitted to each budget's profile; returns (loss_min,
  log_params_opt, valid), each (G, K). A minimum counts only where the parabola opens
  upward and its vertex lies within the sizes sampled. Pure jnp: vmaps over run_weight.
  """
  w = run_weight[profiles.run] * profiles.run_valid            # (G, M)
  loss = jnp.asarray(profiles.loss)
  w = jnp.where(jnp.isnan(loss), 0.0, w[:, None, :])           # (G, K, M)
  y = jnp.where(jnp.isnan(loss), 0.0, loss)
  x = jnp.broadcast_to(jnp.asarray(profiles.log_params)[:, None, :], y.shape)
  centre = jnp.sum(w * x, -1) / jnp.maximum(jnp.sum(w, -1), 1e-300)
  u = x - centre[..., None]
  basis = jnp.stack([jnp.ones_like(u), u, u**2], -1)            # (G, K, M, 3)
  gram = jnp.einsum("gkmi,gkm,gkmj->gkij", basis, w, basis)
  rhs = jnp.einsum("gkmi,gkm,gkm->gki", basis, w, y)
  distinct = jnp.sum(w > 0, -1) >= 3
  safe_gram = jnp.where(distinct[..., None, None], gram, jnp.eye(3))
  c0, c1, c2 = jnp.moveaxis(jnp.linalg.solve(safe_gram, rhs[..., None])[..., 0], -1, 0)
  vertex = -c1 / (2 * jnp.where(c2 > 0, c2, 1.0))
  u_min = jnp.min(jnp.where(w > 0, u, jnp.inf), -1)
  u_max = jnp.max(jnp.where(w > 0, u, -jnp.inf), -1)
  valid = (distinct & (c2 > 0) & (vertex >= u_min) & (vertex <= u_max)
           & jnp.asarray(profiles.budget_valid))
  loss_min = c0 + c1 * vertex + c2 * vertex**2
  return (jnp.where(valid, loss_min, 1.0), jnp.where(valid, vertex + centre, 0.0), valid)


# ----------------------------------------------------------------------------------------
# Power-law fits.


@dataclasses.dataclass(frozen=True)
class PowerLawOptions:
  """How a power law is fitted (module docstring for the conventions).

  irreducible: "fit" (E per group), "shared" (one E for all groups) or a number (E fixed,
    nats/token).
  shared_exponent: one alpha for all groups, a multiplier per group.
  huber_delta: None for least squares on ln-loss residuals, else the Huber delta.
  max_iter, ftol: iteration cap and relative objective tolerance of Levenberg-Marquardt.
  """
  irreducible: str | float = "fit"
  shared_exponent: bool = False
  huber_delta: float | None = None
  max_iter: int = 200
  ftol: float = 1e-10

  def __post_init__(self):
    if isinstance(self.irreducible, str) and self.irreducible not in ("fit", "shared"):
      try:
        object.__setattr__(self, "irreducible", float(self.irreducible))
      except ValueError:
        raise FitError(f"irreducible '{self.irreducible}': expected 'fit', 'shared' or a "
                       "number of nats") from None

  @property
  def fixed_E(self) -> float | None:
    return None if isinstance(self.irreducible, str) else float(self.irreducible)


def _power_law_parts(params, options: PowerLawOptions, log_c0):
  """(ln E, ln b, alpha) broadcastable to (G, 1) from the flat parameter dict."""
  if options.fixed_E is not None:
    log_E = jnp.log(options.fixed_E)
  else:
    log_E = params["log_E"][:, None]
  return log_E, params["log_b"][:, None], params["alpha"][:, None]


def _power_law_residual(params, x, log_loss, weight, options: PowerLawOptions):
  """ln L_pred - ln L at every point, (G, P); 0 where weight is 0 (padding, off-frontier)."""
  log_E, log_b, alpha = _power_law_parts(params, options, None)
  log_pred = jnp.logaddexp(log_E, log_b + alpha * x)
  return jnp.where(weight > 0, log_pred - jnp.where(weight > 0, log_loss, 0.0), 0.0)


def _power_law_starts(x, loss, weight, options: PowerLawOptions):
  """Starting parameters (K leading) from weighted regressions of ln(L - E0) on x."""
  present = weight > 0
  min_loss = jnp.min(jnp.where(present, loss, jnp.inf), axis=-1)          # (G,)
  G = loss.shape[0]
  if options.fixed_E is not None:
    e_starts = jnp.full((1, G), options.fixed_E)
  elif options.irreducible == "shared":
    e_starts = jnp.asarray(_E_START_FRACTIONS)[:, None] * jnp.min(min_loss) * jnp.ones(G)
  else:
    e_starts = jnp.asarray(_E_START_FRACTIONS)[:, None] * min_loss[None, :]

  def start(e0):  # e0: (G,)
    above = present & (loss > e0[:, None])
    w = weight * above
    y = jnp.log(jnp.where(above, loss - e0[:, None], 1.0))
    sw = jnp.maximum(jnp.sum(w, -1), 1e-300)
    xm, ym = jnp.sum(w * x, -1) / sw, jnp.sum(w * y, -1) / sw
    sxy = jnp.sum(w * (x - xm[:, None]) * (y - ym[:, None]), -1)
    sxx = jnp.maximum(jnp.sum(w * (x - xm[:, None])**2, -1), 1e-300)
    if options.shared_exponent:
      slope = jnp.full(G, jnp.sum(sxy) / jnp.sum(sxx))
    else:
      slope = sxy / sxx
    slope = jnp.minimum(slope, -1e-3)  # a loss that falls with compute
    params = {"log_b": ym - slope * xm,
              "alpha": slope[:1] if options.shared_exponent else slope}
    if options.fixed_E is None:
      params["log_E"] = (jnp.log(e0[:1]) if options.irreducible == "shared"
                         else jnp.log(e0))
    return params

  return jax.vmap(start)(e_starts)


@functools.partial(jax.jit, static_argnames=("options",))
def _fit_power_laws(x, loss, weight, options: PowerLawOptions, init=None):
  """Best-of-starts fit; x = ln(C/C0), all (G, P). Returns (params, objective, iters)."""
  log_loss = jnp.log(loss)
  starts = (_power_law_starts(x, loss, weight, options) if init is None
            else jax.tree.map(lambda v: v[None], init))
  _, unravel = ravel_pytree(jax.tree.map(lambda v: v[0], starts))
  residual_fn = lambda theta: _power_law_residual(unravel(theta), x, log_loss, weight,
                                                  options).ravel()
  flat_starts = jax.vmap(lambda p: ravel_pytree(p)[0])(starts)
  fitted, values, iters = jax.vmap(lambda t: _least_squares(
      residual_fn, t, weight.ravel(), options.huber_delta, options.max_iter,
      options.ftol))(flat_starts)
  best = jnp.argmin(jnp.where(jnp.isfinite(values), values, jnp.inf))
  # The iterations of the start that won: another start hitting the cap says nothing.
  return unravel(fitted[best]), values[best], iters[best]


def _to_power_law(params, options: PowerLawOptions, log_c0, num_groups: int) -> laws.PowerLaw:
  """Maps fitted (ln b, alpha, ln E) to PowerLaw arrays of shape (..., G) in raw units."""
  alpha = jnp.broadcast_to(params["alpha"], params["log_b"].shape)
  a = jnp.exp(params["log_b"] - alpha * log_c0)
  if options.fixed_E is not None:
    E = jnp.full_like(a, options.fixed_E)
  else:
    E = jnp.broadcast_to(jnp.exp(params["log_E"]), a.shape)
  return laws.PowerLaw(np.asarray(a), np.asarray(alpha), np.asarray(E))


@dataclasses.dataclass(frozen=True)
class PowerLawFit:
  """Fitted laws of several groups. `law` holds (G,) arrays; `points_*` the fit points.

  points_compute/points_loss/points_weight: (G, P) FLOPs, nats/token, fit weight (0 = not
  a frontier point). For "isoflop", points are the minima and `isoflop_log_params` their
  ln(N_opt).
  """
  groups: tuple[str, ...]
  law: laws.PowerLaw
  options: PowerLawOptions
  frontier: str
  objective: float
  iterations: int
  points_compute: np.ndarray
  points_loss: np.ndarray
  points_weight: np.ndarray
  isoflop_log_params: np.ndarray | None = None
  unconverged: tuple[str, ...] = ()  # groups still moving when the iteration cap stopped it

  def for_group(self, group: str) -> laws.PowerLaw:
    """The scalar law of one group."""
    g = _group_index(self.groups, group)
    return laws.PowerLaw(*(float(np.asarray(v)[g]) for v in self.law))


@dataclasses.dataclass(frozen=True)
class PowerLawBootstrap:
  """Bootstrap refits: `samples` holds (B, G) arrays; sample i of every group comes from
  the same joint resample, so per-sample CEG between groups is meaningful."""
  groups: tuple[str, ...]
  samples: laws.PowerLaw
  resample: str

  def for_group(self, group: str) -> laws.PowerLaw:
    """(B,) samples of one group's law."""
    g = _group_index(self.groups, group)
    return laws.PowerLaw(*(np.asarray(v)[:, g] for v in self.samples))


def _group_index(groups: Sequence[str], group: str) -> int:
  if group not in groups:
    raise FitError(f"group {group} not fitted (groups: {', '.join(groups)})")
  return list(groups).index(group)


class _Frontier(NamedTuple):
  """Fit inputs as a function of run weights (R,): closes over the grouped points."""
  points: GroupedPoints
  profiles: IsoFlopProfiles | None
  frontier: str

  def fit_points(self, run_weight: jnp.ndarray):
    """(compute, loss, weight, log_params_opt or None), each (G, P')."""
    if self.frontier == "isoflop":
      loss_min, log_n, valid = isoflop_minima(self.profiles, run_weight)
      return jnp.asarray(self.profiles.budgets), loss_min, valid * 1.0, log_n
    point_weight = run_weight[self.points.run] * self.points.valid
    return (jnp.asarray(self.points.compute), jnp.asarray(self.points.loss),
            frontier_weight(self.points, self.frontier, point_weight), None)


def _prepare(table: RunTable, groups, frontier: str, budgets, eligible=None) -> _Frontier:
  if frontier not in FRONTIERS:
    raise FitError(f"frontier '{frontier}': expected one of {', '.join(FRONTIERS)}")
  if frontier == "isoflop" and eligible is not None:
    # IsoFLOP minima come from interpolated curves, not an envelope: the budgets are
    # simply those the eligible points reach.
    table, eligible = table.select(np.asarray(eligible, bool)), None
  points = group_points(table, groups, eligible)
  profiles = isoflop_profiles(points, budgets) if frontier == "isoflop" else None
  return _Frontier(points, profiles, frontier)


def _check_fit_points(groups, compute, loss, weight, options: PowerLawOptions) -> None:
  """FitError for inputs no fit should be attempted on."""
  own = 3 if options.irreducible == "fit" else 2
  for g, name in enumerate(groups):
    w = weight[g] > 0
    c, l = compute[g][w], loss[g][w]
    if not (np.all(np.isfinite(c)) and np.all(np.isfinite(l))):
      raise FitError(f"group {name}: non-finite compute or loss among the fit points")
    if np.any(c <= 0) or np.any(l <= 0):
      raise FitError(f"group {name}: compute and loss must be positive")
    if c.size < own + 1:
      raise FitError(f"group {name}: {c.size} fit point(s); need at least {own + 1} to fit "
                     f"{own} parameters with a residual")
    if np.unique(c).size < 2 or (options.irreducible == "fit" and np.unique(c).size < 3):
      raise FitError(f"group {name}: the fit points span {np.unique(c).size} compute "
                     "value(s); a power law needs several")
    if options.fixed_E is not None and l.min() <= options.fixed_E:
      raise FitError(f"group {name}: loss {l.min():.4g} is at or below the fixed "
                     f"irreducible loss {options.fixed_E}; lower E or fit it")


def _warn_doubtful(fit: PowerLawFit) -> None:
  for g, name in enumerate(fit.groups):
    w = fit.points_weight[g] > 0
    below = fit.points_loss[g][w] < fit.law.E[g]
    if below.any():
      warnings.warn(f"group {name}: {below.sum()} fit point(s) below the fitted irreducible "
                    f"loss E={fit.law.E[g]:.4g}", FitWarning, stacklevel=3)
    if fit.law.alpha[g] >= 0:
      warnings.warn(f"group {name}: fitted alpha={fit.law.alpha[g]:.4g} >= 0 (loss does not "
                    "fall with compute)", FitWarning, stacklevel=3)
  if fit.iterations >= fit.options.max_iter:
    named = ", ".join(fit.unconverged) or "none moved when continued"
    warnings.warn(f"power-law fit stopped at max_iter={fit.options.max_iter} before the "
                  f"tolerance (not converged: {named})", FitWarning, stacklevel=3)


@float64
def fit_frontiers(table: RunTable, *, groups: Sequence[str] | None = None,
                  frontier: str = "envelope",
                  options: PowerLawOptions = PowerLawOptions(),
                  budgets: Sequence[float] | None = None,
                  eligible: np.ndarray | None = None) -> PowerLawFit:
  """Fits L(C) = E + a*C**alpha to each group's frontier (jointly when E or alpha is shared).

  Args:
    table: validated points (algoprog.analysis.runs).
    groups: groups to fit, in order; default all.
    frontier: "envelope", "final", "all" or "isoflop" (module docstring).
    options: E fitted/shared/fixed, shared exponent, squares or Huber.
    budgets: IsoFLOP compute budgets (FLOPs); default per isoflop_profiles.
    eligible: one bool per table point: which points may be fit points (a compute range,
      points past warmup). The frontier is taken over all points first, then restricted.

  Raises:
    FitError: too few frontier points, a single compute value, a fixed E above the losses.
  Warns:
    FitWarning: fit points below the fitted E, alpha >= 0, no convergence.
  """
  prepared = _prepare(table, groups, frontier, budgets, eligible)
  run_weight = jnp.ones(len(prepared.points.run_ids))
  compute, loss, weight, log_n = (None if v is None else np.asarray(v)
                                  for v in prepared.fit_points(run_weight))
  _check_fit_points(prepared.points.groups, compute, loss, weight, options)
  return _fit_arrays(prepared.points.groups, compute, loss, weight, options, frontier, log_n)


def _fit_arrays(groups, compute, loss, weight, options, frontier, log_n=None) -> PowerLawFit:
  log_c0 = _log_centre(compute, weight)
  params, value, iters = _fit_power_laws(jnp.log(compute) - log_c0, jnp.asarray(loss),
                                         jnp.asarray(weight), options)
  law = _to_power_law(params, options, log_c0, len(groups))
  unconverged = ()
  if int(iters) >= options.max_iter:
    unconverged = _still_moving(groups, law, params, jnp.log(compute) - log_c0, loss, weight,
                                options, log_c0)
  fit = PowerLawFit(tuple(groups), law, options, frontier, float(value), int(iters),
                    compute, loss, weight, log_n, unconverged)
  _warn_doubtful(fit)
  return fit


# A group whose law moves by more than this when a capped fit is continued had not
# converged: alpha relatively, E relative to the group's lowest fit loss.
_MOVE_TOLERANCE = 1e-3


def _still_moving(groups, law, params, x, loss, weight, options, log_c0) -> tuple[str, ...]:
  """The groups whose fitted law changes when a fit stopped by the iteration cap is run on
  for another max_iter iterations from where it stopped (the joint fit cannot say which
  group kept it from converging; continuing it can)."""
  more, _, _ = _fit_power_laws(x, jnp.asarray(loss), jnp.asarray(weight), options, params)
  moved = _to_power_law(more, options, log_c0, len(groups))
  names = []
  for g, name in enumerate(groups):
    w = np.asarray(weight[g]) > 0
    scale = float(np.min(np.asarray(loss[g])[w]))
    if (abs(moved.alpha[g] - law.alpha[g]) > _MOVE_TOLERANCE * abs(law.alpha[g])
        or abs(moved.E[g] - law.E[g]) > _MOVE_TOLERANCE * scale):
      names.append(name)
  return tuple(names)


def _log_centre(compute, weight) -> float:
  w = np.asarray(weight) > 0
  return float(np.mean(np.log(np.asarray(compute)[w])))


@float64
def fit_power_law(compute: Sequence[float], loss: Sequence[float], *,
                  options: PowerLawOptions = PowerLawOptions(),
                  weight: Sequence[float] | None = None) -> laws.PowerLaw:
  """Fits one power law to given (compute FLOPs, loss nats/token) points (no frontier)."""
  compute = np.asarray(compute, np.float64)[None]
  loss = np.asarray(loss, np.float64)[None]
  weight = np.ones_like(compute) if weight is None else np.asarray(weight, np.float64)[None]
  if compute.shape != loss.shape or compute.shape != weight.shape:
    raise FitError(f"compute, loss and weight differ in length: {compute.size}, "
                   f"{loss.size}, {weight.size}")
  _check_fit_points(("points",), compute, loss, weight, options)
  fit = _fit_arrays(("points",), compute, loss, weight, options, "all")
  return fit.for_group("points")


@float64
def bootstrap_weights(key: jax.Array, pools: np.ndarray, num_samples: int) -> np.ndarray:
  """Resampling counts: for each pool p (pools[i] = pool of item i, -1 = in none), draws as
  many items as the pool holds, uniformly with replacement. Returns (num_samples, items).
  Always drawn in float64 mode, so a seed gives the same resamples in any context."""
  pools = np.asarray(pools)
  counts = jnp.zeros((num_samples, pools.size))
  for p, k in zip(np.unique(pools[pools >= 0]), jax.random.split(key, pools.size)):
    members = np.flatnonzero(pools == p)
    draws = jax.random.choice(k, members, (num_samples, members.size))
    counts = jax.vmap(lambda c, d: c.at[d].add(1.0))(counts, draws)
  return np.asarray(counts)


@float64
def bootstrap_frontiers(table: RunTable, fit: PowerLawFit, *, num_samples: int = 1000,
                        resample: str = "runs", seed: int = 0,
                        groups: Sequence[str] | None = None,
                        budgets: Sequence[float] | None = None,
                        eligible: np.ndarray | None = None) -> PowerLawBootstrap:
  """Refits `fit` (same groups, frontier, options and `eligible` points) to `num_samples`
  resamples.

  resample "runs" draws whole runs within each group and recomputes the frontier;
  "points" draws the full-data frontier points within each group (module docstring).
  Every refit starts from `fit`'s optimum. Samples whose frontier has too few points for
  the fit give NaN parameters; CIs ignore them (fraction reported by `failed_fraction`).
  """
  if resample not in RESAMPLES:
    raise FitError(f"resample '{resample}': expected one of {', '.join(RESAMPLES)}")
  prepared = _prepare(table, groups or fit.groups, fit.frontier, budgets, eligible)
  if prepared.points.groups != fit.groups:
    raise FitError("bootstrap groups differ from the fit's; pass the same groups")
  key = jax.random.key(seed)
  options = fit.options
  log_c0 = _log_centre(fit.points_compute, fit.points_weight)
  init = _from_power_law(fit.law, options, log_c0)
  if resample == "runs":
    run_weights = bootstrap_weights(key, prepared.points.run_group, num_samples)
    compute, loss, weight, _ = jax.vmap(prepared.fit_points)(run_weights)
  else:
    weight0 = jnp.asarray(fit.points_weight)
    group_of = np.where(fit.points_weight > 0,
                        np.arange(len(fit.groups))[:, None], -1).ravel()
    counts = bootstrap_weights(key, group_of, num_samples).reshape((num_samples,)
                                                                   + weight0.shape)
    weight = counts * weight0
    compute = jnp.broadcast_to(fit.points_compute, weight.shape)
    loss = jnp.broadcast_to(fit.points_loss, weight.shape)
  params = _bootstrap_fit(jnp.log(compute) - log_c0, loss, weight, options, init)
  samples = _to_power_law(params, options, log_c0, len(fit.groups))
  # Resamples too thin to fit (e.g. one run drawn for every slot) are not estimates.
  enough = _enough_points(np.asarray(compute), np.asarray(weight), options)
  samples = laws.PowerLaw(*(np.where(enough, v, np.nan) for v in samples))
  return PowerLawBootstrap(fit.groups, samples, resample)


def fit_and_bootstrap(table: RunTable, *, groups: Sequence[str] | None = None,
                      frontier: str = "envelope",
                      options: PowerLawOptions = PowerLawOptions(), num_samples: int = 0,
                      resample: str = "runs", seed: int = 0,
                      eligible: np.ndarray | None = None
                      ) -> tuple[PowerLawFit, PowerLawBootstrap | None, list[str]]:
  """`fit_frontiers`, then `bootstrap_frontiers` when `num_samples` > 0, as the launchers
  run them: the warnings of both (every FitWarning, repeats included) are collected and
  returned as messages instead of shown. Returns (fit, bootstrap or None, messages)."""
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", FitWarning)
    result = fit_frontiers(table, groups=groups, frontier=frontier, options=options,
                           eligible=eligible)
    bootstrap = (bootstrap_frontiers(table, result, num_samples=num_samples,
                                     resample=resample, seed=seed, eligible=eligible)
                 if num_samples else None)
  return result, bootstrap, [str(w.message) for w in caught]


@functools.partial(jax.jit, static_argnames=("options",))
def _bootstrap_fit(x, loss, weight, options, init):
  return jax.vmap(lambda x_, l_, w_: _fit_power_laws(x_, l_, w_, options, init)[0])(
      x, loss, weight)


def _enough_points(compute, weight, options) -> np.ndarray:
  """(B, G) whether each resample has enough distinct fit computes to fit its group."""
  need = 3 if options.irreducible == "fit" else 2
  distinct = np.array([[np.unique(c[w > 0]).size for c, w in zip(cs, ws)]
                       for cs, ws in zip(compute, weight)])
  return distinct >= need


def _from_power_law(law: laws.PowerLaw, options: PowerLawOptions, log_c0: float) -> dict:
  alpha = jnp.asarray(law.alpha)
  params = {"log_b": jnp.log(jnp.asarray(law.a)) + alpha * log_c0,
            "alpha": alpha[:1] if options.shared_exponent else alpha}
  if options.fixed_E is None:
    log_E = jnp.log(jnp.asarray(law.E))
    params["log_E"] = log_E[:1] if options.irreducible == "shared" else log_E
  return params


def failed_fraction(samples: np.ndarray) -> float:
  """Fraction of bootstrap samples that are NaN (too few points to refit)."""
  return float(np.mean(np.isnan(np.asarray(samples))))


# ----------------------------------------------------------------------------------------
# Chinchilla L(N, D).


# The law type and its closed forms (loss, optimal allocation, frontier) are in
# algoprog.analysis.laws; this section fits it.


def chinchilla_grid(alphas=np.arange(0.0, 2.01, 0.5), betas=np.arange(0.0, 2.01, 0.5),
                    es=np.arange(-1.0, 1.01, 0.5), a_s=np.arange(0.0, 25.1, 5.0),
                    b_s=np.arange(0.0, 25.1, 5.0)) -> np.ndarray:
  """Starting points (S, 5) as (e, a, b, alpha, beta) = (ln E, ln A, ln B, alpha, beta);
  defaults are Hoffmann et al.'s grid (5*5*5*6*6 = 4,500 starts)."""
  return np.array(list(itertools.product(es, a_s, b_s, alphas, betas)), np.float64)


def chinchilla_residual(theta: jnp.ndarray, log_params: jnp.ndarray,
                        log_tokens: jnp.ndarray, log_loss: jnp.ndarray) -> jnp.ndarray:
  """ln L_pred - ln L with theta = (e, a, b, alpha, beta), through logsumexp."""
  e, a, b, alpha, beta = theta
  log_pred = jax.nn.logsumexp(
      jnp.stack([a - alpha * log_params, b - beta * log_tokens,
                 jnp.broadcast_to(e, log_params.shape)]), axis=0)
  return log_pred - log_loss


def chinchilla_objective(theta, log_params, log_tokens, log_loss, weight,
                         huber_delta: float = DEFAULT_HUBER_DELTA) -> jnp.ndarray:
  """Weighted SUM of Huber(ln L_pred - ln L): the quantity every start minimises."""
  return _penalty(chinchilla_residual(theta, log_params, log_tokens, log_loss), weight,
                  huber_delta)


def _chinchilla_jacobian(theta, log_params, log_tokens, log_loss):
  """(residual, d residual / d theta): the logsumexp's softmax gives the derivatives in
  closed form, ~5x cheaper than forward-mode autodiff over thousands of starts."""
  e, a, b, alpha, beta = theta
  terms = jnp.stack([a - alpha * log_params, b - beta * log_tokens,
                     jnp.broadcast_to(e, log_params.shape)], axis=-1)
  log_pred = jax.nn.logsumexp(terms, axis=-1)
  share = jnp.exp(terms - log_pred[:, None])  # each term's share of the predicted loss
  jacobian = jnp.stack([share[:, 2], share[:, 0], share[:, 1],
                        -share[:, 0] * log_params, -share[:, 1] * log_tokens], axis=-1)
  return log_pred - log_loss, jacobian


@functools.partial(jax.jit, static_argnames=("huber_delta", "max_iter", "ftol"))
def _fit_chinchilla_starts(starts, log_params, log_tokens, log_loss, weight,
                           huber_delta, max_iter, ftol):
  residual_fn = lambda t: chinchilla_residual(t, log_params, log_tokens, log_loss)
  jacobian_fn = lambda t: _chinchilla_jacobian(t, log_params, log_tokens, log_loss)
  return jax.vmap(lambda s: _least_squares(residual_fn, s, weight, huber_delta, max_iter,
                                           ftol, jacobian_fn))(starts)


@dataclasses.dataclass(frozen=True)
class ChinchillaFit:
  law: laws.ChinchillaLaw
  objective: float
  num_starts: int
  iterations: int  # most iterations any polished start took


def _chinchilla_inputs(params, tokens, loss, weight):
  arrays = [np.asarray(v, np.float64) for v in (params, tokens, loss)]
  if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1:
    raise FitError("params, tokens and loss must be 1-D arrays of one length")
  weight = np.ones_like(arrays[0]) if weight is None else np.asarray(weight, np.float64)
  for name, a in zip(("params", "tokens", "loss"), arrays):
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
      raise FitError(f"Chinchilla fit: {name} must be finite and positive")
  if arrays[0].size < 6:
    raise FitError(f"Chinchilla fit: {arrays[0].size} points; need at least 6 for 5 "
                   "parameters with a residual")
  if np.unique(arrays[0]).size < 2 or np.unique(arrays[1]).size < 2:
    raise FitError("Chinchilla fit: needs several model sizes and token counts")
  return [jnp.log(a) for a in arrays] + [jnp.asarray(weight)]


def _theta_to_law(theta) -> laws.ChinchillaLaw:
  theta = np.asarray(theta)
  e, a, b, alpha, beta = np.moveaxis(theta, -1, 0)
  return laws.ChinchillaLaw(np.exp(e), np.exp(a), np.exp(b), alpha, beta)


@float64
def fit_chinchilla(params: Sequence[float], tokens: Sequence[float], loss: Sequence[float],
                   weight: Sequence[float] | None = None, *,
                   huber_delta: float = DEFAULT_HUBER_DELTA, starts: np.ndarray | None = None,
                   grid_iter: int = 60, polish: int = 32, max_iter: int = 1000,
                   ftol: float = 1e-12) -> ChinchillaFit:
  """Hoffmann-style fit of L(N, D) from every start of `starts` (default chinchilla_grid()).

  Args:
    params: N, total parameters per point. tokens: D, training tokens. loss: nats/token.
    weight: per-point weights (bootstrap counts), default 1.
    huber_delta: Huber delta on ln-loss residuals (Hoffmann: 1e-3).
    starts: (S, 5) starting (ln E, ln A, ln B, alpha, beta); default chinchilla_grid().
    grid_iter: Levenberg-Marquardt iterations every start gets.
    polish: how many of the best starts then run on to convergence (max_iter, ftol).
  Raises:
    FitError: fewer than 6 points, a single size or token count, non-finite/non-positive.
  """
  inputs = _chinchilla_inputs(params, tokens, loss, weight)
  starts = chinchilla_grid() if starts is None else np.asarray(starts, np.float64)
  # Every start runs `grid_iter` iterations (vmapped, so all run as long as the slowest);
  # the `polish` best then run to convergence. Far-off starts that crawl along a flat
  # valley cost grid_iter, not max_iter.
  fitted, values, _ = _fit_chinchilla_starts(jnp.asarray(starts), *inputs, huber_delta,
                                             grid_iter, ftol)
  order = jnp.argsort(jnp.where(jnp.isfinite(values), values, jnp.inf))[:polish]
  fitted, values, iters = _fit_chinchilla_starts(fitted[order], *inputs, huber_delta,
                                                 max_iter, ftol)
  theta, value = _best(fitted, values)
  law = _theta_to_law(theta)
  if law.alpha <= 0 or law.beta <= 0:
    warnings.warn(f"Chinchilla fit: alpha={law.alpha:.3g}, beta={law.beta:.3g}; loss does not "
                  "fall with both N and D", FitWarning, stacklevel=2)
  if np.min(np.asarray(loss)) < law.E:
    warnings.warn(f"Chinchilla fit: losses below the fitted E={float(law.E):.4g}", FitWarning,
                  stacklevel=2)
  return ChinchillaFit(law, float(value), starts.shape[0], int(jnp.max(iters)))


@float64
def bootstrap_chinchilla(params: Sequence[float], tokens: Sequence[float],
                         loss: Sequence[float], fit: ChinchillaFit, *, groups=None,
                         num_samples: int = 1000, seed: int = 0,
                         huber_delta: float = DEFAULT_HUBER_DELTA, max_iter: int = 200,
                         ftol: float = 1e-10) -> laws.ChinchillaLaw:
  """(num_samples,) refits of L(N, D) on resamples, each started from `fit`'s optimum.

  `groups` (one id per point, e.g. run ids) resamples whole groups; default resamples
  points.
  """
  inputs = _chinchilla_inputs(params, tokens, loss, None)
  n = inputs[0].size
  if groups is None:
    pools = np.zeros(n, np.int64)
    counts = bootstrap_weights(jax.random.key(seed), pools, num_samples)
  else:
    ids, member = np.unique(np.asarray(groups), return_inverse=True)
    run_counts = bootstrap_weights(jax.random.key(seed), np.zeros(ids.size, np.int64),
                                   num_samples)
    counts = run_counts[:, member]
  law = fit.law
  start = jnp.log(jnp.asarray([law.E, law.A, law.B]))
  start = jnp.concatenate([start, jnp.asarray([law.alpha, law.beta])])[None]
  # Batches of 50: a vmapped loop runs as long as its slowest member, so smaller batches
  # cut the cost of the few slow refits (sequential over batches, vectorised within).
  theta = jax.lax.map(lambda w: _fit_chinchilla_starts(start, *inputs[:3], w, huber_delta,
                                                       max_iter, ftol)[0][0], counts,
                      batch_size=50)
  return _theta_to_law(theta)


# ----------------------------------------------------------------------------------------
# Summaries.


def isoflop_allocation_exponent(fit: PowerLawFit, group: str) -> float:
  """Slope of ln N_opt vs ln C over a group's IsoFLOP minima (Chinchilla: ~0.5)."""
  if fit.isoflop_log_params is None:
    raise FitError("allocation exponent needs frontier='isoflop'")
  g = _group_index(fit.groups, group)
  w = fit.points_weight[g] > 0
  return float(np.polyfit(np.log(fit.points_compute[g][w]), fit.isoflop_log_params[g][w],
                          1)[0])


def law_rows(result: PowerLawFit, bootstrap, level: float) -> list[dict]:
  """One row per group: a, alpha, E with intervals (bootstrap percentiles)."""
  rows = []
  for group in result.groups:
    law = result.for_group(group)
    row = {"group": group, "frontier": result.frontier,
           "fit_points": int((result.points_weight[result.groups.index(group)] > 0).sum())}
    for name in ("a", "alpha", "E"):
      samples = getattr(bootstrap.for_group(group), name) if bootstrap else [math.nan]
      i = laws.interval(getattr(law, name), samples, level)
      row.update({name: i.estimate, f"{name}_lower": i.lower, f"{name}_upper": i.upper})
    if bootstrap:
      row["failed_refits"] = failed_fraction(bootstrap.for_group(group).a)
    rows.append(row)
  return rows
