"""Frontier fit points under run resampling, as arrays the uncertainty analyses share.

`algoprog.analysis.fit.bootstrap_frontiers` resamples whole runs within each group and
recomputes the frontier from the drawn runs, then refits. The analyses of issue 17 (the E
profile, rollout, LR-choice resampling) need the same resampled fit points without the
refit (they fit other models to them, e.g. a law with E fixed on a grid), so this module
exposes that first half:

    run weights (B, R)  ->  fit points (B, G, P): compute, loss, weight

Sample 0 is always the full data (every run once); samples 1..B are the resamples. Run
weights are the counts of `fit.bootstrap_weights` (draws within each group's runs), or any
(B, R) array of non-negative weights given by the caller (e.g. counts times an LR-choice
mask, algoprog.analysis.lr.lr_choice_run_weights): a run with weight 0 is absent from that
sample's frontier, as if never trained.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from algoprog.analysis import fit as fit_lib
from algoprog.analysis import laws
from algoprog.analysis.runs import RunTable


@dataclasses.dataclass(frozen=True)
class ResampledPoints:
  """Fit points of every sample; sample 0 is the full data.

  groups: fitted groups, in order. run_ids: (R,) runs in the order of the run weights.
  run_weight: (S, R) multiplicity of each run in each sample (S = 1 + resamples).
  compute: (G, P) FLOPs of the points (the same for all samples; only the points that are a
  fit point in some sample are kept). loss: (G, P) nats/token.
  weight: (S, G, P) fit weight of every point in every sample (0: not a fit point).
  """
  groups: tuple[str, ...]
  run_ids: tuple[str, ...]
  run_group: np.ndarray
  run_weight: np.ndarray
  compute: np.ndarray
  loss: np.ndarray
  weight: np.ndarray

  @property
  def num_samples(self) -> int:
    """Resamples, not counting the full data (sample 0)."""
    return self.weight.shape[0] - 1


def run_order(table: RunTable, groups: Sequence[str] | None = None) -> tuple[str, ...]:
  """The run order of `fit.group_points` (contiguous by group): the columns of run weights."""
  return fit_lib.group_points(table, groups).run_ids


def resampled_points(table: RunTable, *, groups: Sequence[str] | None = None,
                     frontier: str = "envelope", eligible: np.ndarray | None = None,
                     num_samples: int = 200, seed: int = 0,
                     run_weights: np.ndarray | None = None) -> ResampledPoints:
  """Fit points of the full data and of `num_samples` run resamples.

  Args:
    table: the runs. groups: groups to use, in order (default all).
    frontier: "envelope", "final" or "all" (fit.FRONTIERS but "isoflop").
    eligible: one bool per table point: may be a fit point (the frontier is taken over all
      points first, then restricted, as in fit.fit_frontiers).
    num_samples: resamples drawn as in fit.bootstrap_frontiers(resample="runs") with `seed`.
    run_weights: (num_samples, R) weights to use instead of drawing (R runs in
      `run_order`); they replace the draws.
  Raises:
    FitError: an unknown frontier, or run_weights of the wrong shape.
  """
  if frontier not in ("envelope", "final", "all"):
    raise fit_lib.FitError(f"frontier '{frontier}': expected envelope, final or all")
  points = fit_lib.group_points(table, groups, eligible)
  R = len(points.run_ids)
  with jax.enable_x64(True):
    if run_weights is None:
      draws = (fit_lib.bootstrap_weights(jax.random.key(seed), points.run_group, num_samples)
               if num_samples else np.zeros((0, R)))
    else:
      draws = np.asarray(run_weights, np.float64)
      if draws.ndim != 2 or draws.shape[1] != R:
        raise fit_lib.FitError(f"run_weights: shape {draws.shape}; expected (samples, {R}) "
                               "in the order of resample.run_order")
    all_weights = np.concatenate([np.ones((1, R)), draws])
    per_point = lambda w: fit_lib.frontier_weight(
        points, frontier, w[points.run] * jnp.asarray(points.valid))
    weight = np.asarray(jax.vmap(per_point)(jnp.asarray(all_weights)))
  # Only columns that are a fit point of some group in some sample matter: dropping the
  # rest (most points of a curve lie off the frontier) makes every later fit cheaper.
  used = (weight > 0).any(axis=(0, 1))
  return ResampledPoints(points.groups, points.run_ids, points.run_group, all_weights,
                         points.compute[:, used], points.loss[:, used], weight[..., used])


@fit_lib.float64
def bootstrap_with_run_weights(table: RunTable, fit: fit_lib.PowerLawFit,
                               run_weights: np.ndarray, *,
                               eligible: np.ndarray | None = None
                               ) -> fit_lib.PowerLawBootstrap:
  """fit.bootstrap_frontiers(resample="runs") with the caller's (B, R) run weights (in
  `run_order(table, fit.groups)`) instead of its own draws, e.g. an LR-choice mask times
  slot counts (algoprog.analysis.lr.lr_choice_run_weights).

  `fit` may come from a subset of `table` (the chosen-LR runs only): the groups must
  match. Uses fit's internals so that fit.py keeps its public shape; when the pipeline is
  wired, this becomes a `run_weights=` argument of fit.bootstrap_frontiers.
  """
  prepared = fit_lib._prepare(table, fit.groups, fit.frontier, None, eligible)
  if prepared.points.groups != fit.groups:
    raise fit_lib.FitError("bootstrap groups differ from the fit's; pass the same groups")
  run_weights = np.asarray(run_weights, np.float64)
  if run_weights.ndim != 2 or run_weights.shape[1] != len(prepared.points.run_ids):
    raise fit_lib.FitError(f"run_weights: shape {run_weights.shape}; expected (samples, "
                           f"{len(prepared.points.run_ids)}) in resample.run_order")
  options = fit.options
  log_c0 = fit_lib._log_centre(fit.points_compute, fit.points_weight)
  init = fit_lib._from_power_law(fit.law, options, log_c0)
  compute, loss, weight, _ = jax.vmap(prepared.fit_points)(jnp.asarray(run_weights))
  params = fit_lib._bootstrap_fit(jnp.log(compute) - log_c0, loss, weight, options, init)
  samples = fit_lib._to_power_law(params, options, log_c0, len(fit.groups))
  enough = fit_lib._enough_points(np.asarray(compute), np.asarray(weight), options)
  samples = laws.PowerLaw(*(np.where(enough, v, np.nan) for v in samples))
  return fit_lib.PowerLawBootstrap(fit.groups, samples, "runs")
