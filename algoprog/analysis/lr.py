"""Learning-rate uncertainty: sweep optima with intervals, LR laws, and LR choice in the
bootstrap.

Three pieces (docs/fit.md, "Uncertainty instead of vetoes"):

1. Sweep optimum (`sweep_optimum`, `sweep_optima`). A sweep's final validation losses
   against u = ln(LR) are fitted by a parabola through the best grid point and its
   neighbours (the `span` points nearest the best in u, at least 3). The optimum is the
   vertex u* = -c1 / (2 c2). Its interval is a parametric bootstrap: the losses are
   perturbed by the seed noise (Normal(0, noise**2) each, independent), the parabola
   refitted and the vertex taken again; percentiles at `level`. A vertex outside the swept
   range is clipped to one grid step beyond it and the optimum is flagged `beyond_grid`
   (the interval is then open on that side: the sweep does not bound it). A parabola that
   opens downward (no minimum) falls back to the best grid point. Ambiguity: the runner-up
   (second-best grid point) beats the chosen one with probability
   P = Phi(-margin / (sqrt(2) * noise)) when both losses carry independent seed noise;
   `ambiguous` when P > `AMBIGUOUS_PROBABILITY` (7.9%: margin < 2 x noise, as the
   diagnostics and the sweep judge it; algoprog.lr_law).
2. LR law (`fit_lr_law`, `lr_laws`). Per group, ln lr* = ln c + b ln(width), fitted by
   weighted least squares with weights 1/se**2 of the optima (se: half the interval width
   over the normal quantile); the covariance is scaled by max(1, chi2/dof) (Birge ratio: if
   the optima scatter more than their own intervals say, the law's interval says so too).
   `LrLaw.predict(width)` gives lr and a prediction interval (the law's uncertainty plus the
   residual scatter), to centre a sweep or set an unswept width's LR.
3. LR choice in the bootstrap (`lr_choice_run_weights`). When a (group, width) has full
   runs at both the chosen and the runner-up LR, each bootstrap resample decides which one
   the study "would have chosen": it perturbs the two sweep losses by seed noise and takes
   the lower. Slots (one per group, width and seed) are drawn with replacement within each
   group as in fit.bootstrap_frontiers(resample="runs"); a drawn slot contributes only the
   run of its resample's LR. The (B, R) weights plug into
   algoprog.analysis.resample.resampled_points(run_weights=...) and into the bootstrap of
   fit.bootstrap_frontiers (there: replace its draws `bootstrap_weights(...)` by these), so
   an ambiguous LR widens the interval instead of vetoing it. The full-data fit uses the
   chosen LR's runs only (`chosen_runs_mask`).

Input: the LR-sweep record lr_choices.json of algoprog.training.sweep.choose_learning_rates,
{"label/width": {"curve": [{"learning_rate", "final_validation_loss", "status"}, ...],
"chosen_learning_rate", "margin_to_next_best", "chosen_at_grid_edge"}}.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Sequence

import numpy as np
from scipy import stats

from algoprog import lr_law
from algoprog.analysis import resample
from algoprog.analysis.runs import RunTable

# The ambiguity criterion and the log-log law are shared with the sweep (algoprog.lr_law).
AMBIGUOUS_PROBABILITY = lr_law.AMBIGUOUS_PROBABILITY
DEFAULT_SPAN = 5  # points of a sweep around the best one that the parabola sees


class LrError(ValueError):
  """An LR sweep or law that cannot be analysed; the message names the sweep or group."""


# ----------------------------------------------------------------------------------------
# Sweep optima.


@dataclasses.dataclass(frozen=True)
class LrOptimum:
  """Optimum of one LR sweep ("label/width" key).

  lr/lower/upper: optimum and its interval (learning rate; a bound the sweep cannot give is
  0 or inf). log_lr_se: standard error of ln lr (from the interval). chosen/runner_up: the
  best and second-best grid LRs; margin: their loss difference (nats). p_runner_up:
  probability the runner-up is truly better given the noise. method: "parabola",
  "best point" (fewer than 3 points or no minimum) or "one point".
  """
  key: str
  group: str
  width: float
  lr: float
  lower: float
  upper: float
  log_lr_se: float
  chosen: float
  runner_up: float
  margin: float
  noise: float
  p_runner_up: float
  ambiguous: bool
  beyond_grid: str  # "", "below" or "above": the optimum lies outside the swept range
  method: str
  num_points: int
  level: float

  def row(self) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in dataclasses.asdict(self).items()}


def sweep_points(entry: Mapping) -> tuple[np.ndarray, np.ndarray]:
  """(learning rates, final losses) of the completed, finite points of one sweep entry,
  sorted by learning rate."""
  pts = sorted((float(p["learning_rate"]), float(p["final_validation_loss"]))
               for p in entry.get("curve", [])
               if p.get("status", "completed") == "completed"
               and isinstance(p.get("final_validation_loss"), (int, float))
               and math.isfinite(p["final_validation_loss"]))
  if not pts:
    return np.zeros(0), np.zeros(0)
  lr, loss = map(np.asarray, zip(*pts))
  return lr, loss


def sweep_optimum(learning_rates: Sequence[float], losses: Sequence[float], noise: float, *,
                  key: str = "sweep", level: float = 0.95, span: int = DEFAULT_SPAN,
                  num_samples: int = 2000, seed: int = 0) -> LrOptimum:
  """The optimum LR of one sweep with its interval and ambiguity (module docstring).

  Args:
    learning_rates: grid LRs. losses: final validation losses (nats/token), same order.
    noise: seed noise, the standard deviation of one final loss (nats; e.g.
      noise.pooled_seed_noise). key: "label/width" (names the sweep; width parsed from it).
  Raises:
    LrError: no points, or non-positive learning rates, noise < 0.
  """
  lr = np.asarray(learning_rates, np.float64)
  loss = np.asarray(losses, np.float64)
  if lr.size == 0:
    raise LrError(f"LR sweep {key}: no completed point with a finite final loss")
  if np.any(lr <= 0) or lr.shape != loss.shape:
    raise LrError(f"LR sweep {key}: learning rates must be positive, one per loss")
  if not noise >= 0:
    raise LrError(f"LR sweep {key}: noise {noise}; expected >= 0 nats")
  order = np.argsort(lr)
  lr, loss = lr[order], loss[order]
  group, _, width = key.rpartition("/")
  width_value = float(width) if _is_number(width) else math.nan
  ranked = np.argsort(loss)
  best = int(ranked[0])
  chosen = float(lr[best])
  runner_up = float(lr[ranked[1]]) if lr.size > 1 else math.nan
  margin = float(loss[ranked[1]] - loss[best]) if lr.size > 1 else math.nan
  p_runner = lr_law.runner_up_probability(margin, noise) if lr.size > 1 else math.nan
  u = np.log(lr)
  step = float(np.median(np.diff(u))) if u.size > 1 else math.nan
  common = dict(key=key, group=group or key, width=width_value, chosen=chosen,
                runner_up=runner_up, margin=margin, noise=float(noise),
                p_runner_up=p_runner,
                ambiguous=bool(lr.size < 2 or p_runner > AMBIGUOUS_PROBABILITY),
                num_points=int(lr.size), level=level)
  if lr.size < 3:
    edge = "" if lr.size < 2 else ("below" if best == 0 else "above")
    lower = 0.0 if edge == "below" or lr.size < 2 else chosen
    upper = math.inf if edge == "above" or lr.size < 2 else chosen
    if lr.size == 2:  # the optimum lies past the better point, away from the worse one
      lower, upper = (0.0, math.exp(u.mean())) if best == 0 else (math.exp(u.mean()),
                                                                   math.inf)
    return LrOptimum(lr=chosen, lower=lower, upper=upper, log_lr_se=math.inf,
                     beyond_grid=edge, method="best point" if lr.size == 2 else "one point",
                     **common)
  # The `span` points nearest the best in ln LR (a parabola is a local model).
  near = np.sort(np.argsort(np.abs(u - u[best]), kind="stable")[:max(3, span)])
  us, ls = u[near], loss[near]
  centre = us.mean()
  design = np.stack([np.ones_like(us), us - centre, (us - centre)**2], 1)
  solve = np.linalg.pinv(design)                                   # (3, n)
  rng = np.random.default_rng(seed)
  perturbed = ls + noise * rng.normal(size=(num_samples, ls.size))
  coef = np.concatenate([ls[None], perturbed]) @ solve.T            # (1 + S, 3)
  lo_u, hi_u = u[0] - step, u[-1] + step
  opens_up = coef[:, 2] > 0
  vertex = np.where(opens_up, centre - coef[:, 1] / (2 * np.where(opens_up, coef[:, 2], 1.0)),
                    np.nan)
  # A parabola without a minimum: that sample's optimum is its best grid point.
  argbest = np.argmin(np.concatenate([ls[None], perturbed]), 1)
  vertex = np.where(opens_up, vertex, us[argbest])
  vertex = np.clip(vertex, lo_u, hi_u)
  estimate = float(vertex[0]) if opens_up[0] else float(u[best])
  method = "parabola" if opens_up[0] else "best point"
  lower_u, upper_u = np.percentile(vertex[1:], [50 * (1 - level), 50 * (1 + level)])
  beyond = ("below" if estimate <= u[0] else "above" if estimate >= u[-1] else "")
  lower = 0.0 if lower_u <= lo_u + 1e-12 else math.exp(lower_u)
  upper = math.inf if upper_u >= hi_u - 1e-12 else math.exp(upper_u)
  z = stats.norm.ppf(0.5 + level / 2)
  se = (upper_u - lower_u) / (2 * z) if noise > 0 else 0.0
  if not (math.isfinite(math.log(lower) if lower > 0 else -math.inf)
          and math.isfinite(upper)):
    se = math.inf
  return LrOptimum(lr=math.exp(estimate), lower=lower, upper=upper, log_lr_se=float(se),
                   beyond_grid=beyond, method=method, **common)


def _is_number(text: str) -> bool:
  try:
    float(text)
    return True
  except ValueError:
    return False


def sweep_optima(lr_choices: Mapping[str, Mapping], noise: float, *, level: float = 0.95,
                 span: int = DEFAULT_SPAN, num_samples: int = 2000, seed: int = 0
                 ) -> list[LrOptimum]:
  """`sweep_optimum` of every entry of an lr_choices.json record (sorted by key); entries
  without a completed point are skipped."""
  out = []
  for key, entry in sorted(lr_choices.items()):
    lr, loss = sweep_points(entry)
    if lr.size:
      out.append(sweep_optimum(lr, loss, noise, key=key, level=level, span=span,
                               num_samples=num_samples, seed=seed))
  return out


# ----------------------------------------------------------------------------------------
# LR law lr* = c * width**b.


@dataclasses.dataclass(frozen=True)
class LrLaw:
  """ln lr* = ln c + b ln(width), per group.

  c, b: estimates; c_lower/c_upper, b_lower/b_upper: intervals at `level` (t with dof
  widths - 2, or normal when the dof are 0 and the optima carry their own errors).
  covariance: (2, 2) of (ln c, b). scatter: residual standard deviation of ln lr* about the
  law (0 with two widths). widths: the widths fitted.
  """
  group: str
  c: float
  b: float
  c_lower: float
  c_upper: float
  b_lower: float
  b_upper: float
  covariance: np.ndarray
  scatter: float
  widths: tuple[float, ...]
  level: float

  def predict(self, width: float | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lr, lower, upper) at `width`: the law, and a prediction interval at `level` from
    the law's covariance plus the scatter of single optima about it."""
    w = np.log(np.asarray(width, np.float64))
    mean = math.log(self.c) + self.b * w
    var = (self.covariance[0, 0] + 2 * w * self.covariance[0, 1]
           + w * w * self.covariance[1, 1] + self.scatter**2)
    z = stats.norm.ppf(0.5 + self.level / 2)
    sd = np.sqrt(np.maximum(var, 0.0))
    return np.exp(mean), np.exp(mean - z * sd), np.exp(mean + z * sd)

  def to_json(self) -> dict:
    return {"group": self.group, "c": self.c, "b": self.b, "c_interval": [self.c_lower,
                                                                          self.c_upper],
            "b_interval": [self.b_lower, self.b_upper], "scatter": self.scatter,
            "widths": list(self.widths), "level": self.level}


def fit_lr_law(widths: Sequence[float], optimum_lr: Sequence[float],
               log_lr_se: Sequence[float] | None = None, *, group: str = "group",
               level: float = 0.95) -> LrLaw:
  """Fits ln lr* = ln c + b ln(width) (module docstring).

  Args:
    widths: model widths. optimum_lr: optimum LR per width. log_lr_se: standard error of
      each ln lr* (default equal weights; infinite or NaN errors: the point is left out).
  Raises:
    LrError: fewer than 2 usable distinct widths, non-positive widths or rates.
  """
  w = np.asarray(widths, np.float64)
  y = np.log(np.asarray(optimum_lr, np.float64))
  se = (np.ones_like(w) if log_lr_se is None else np.asarray(log_lr_se, np.float64))
  use = np.isfinite(se) & np.isfinite(y) & (w > 0)
  weighted = log_lr_se is not None and np.all(se[use] > 0)
  w, y, se = w[use], y[use], se[use]
  if np.unique(w).size < 2:
    raise LrError(f"LR law of {group}: {np.unique(w).size} width(s) with a bounded optimum; "
                  "need at least 2")
  weight = 1.0 / se**2 if weighted else np.ones_like(w)
  law = lr_law.fit_log_log(w, np.exp(y), weight)
  dof = w.size - 2
  chi2 = law.weighted_ssr
  if weighted:
    # Birge ratio: the optima scatter more than their own errors say -> widen.
    scale = max(1.0, chi2 / dof) if dof > 0 else 1.0
    quantile = (stats.t.ppf(0.5 + level / 2, dof) if dof > 0 and scale > 1
                else stats.norm.ppf(0.5 + level / 2))
  else:
    scale = chi2 / dof if dof > 0 else math.nan
    quantile = stats.t.ppf(0.5 + level / 2, dof) if dof > 0 else math.nan
  covariance = law.gram_inverse * scale
  scatter = float(np.sqrt(np.sum(law.residuals**2) / dof)) if dof > 0 else 0.0
  sd = np.sqrt(np.diag(covariance))
  return LrLaw(group, float(math.exp(law.ln_c)), law.b,
               float(math.exp(law.ln_c - quantile * sd[0])),
               float(math.exp(law.ln_c + quantile * sd[0])),
               law.b - quantile * sd[1], law.b + quantile * sd[1],
               covariance, scatter, tuple(float(v) for v in w), level)


def lr_laws(optima: Sequence[LrOptimum], *, level: float = 0.95) -> dict[str, LrLaw]:
  """An LR law per group from its sweep optima (groups with fewer than 2 widths of bounded
  optima are left out; a sweep whose optimum is beyond its grid has an unbounded error and
  is left out of the weighted fit)."""
  by_group: dict[str, list[LrOptimum]] = {}
  for o in optima:
    by_group.setdefault(o.group, []).append(o)
  out = {}
  for group, items in sorted(by_group.items()):
    try:
      out[group] = fit_lr_law([o.width for o in items], [o.lr for o in items],
                              [o.log_lr_se for o in items], group=group, level=level)
    except LrError:
      continue
  return out


# ----------------------------------------------------------------------------------------
# LR choice inside the bootstrap.


@dataclasses.dataclass(frozen=True)
class RunSlot:
  """Where a full run sits: its (group, width) sweep key, its seed and its learning rate."""
  key: str
  seed: object
  learning_rate: float


def run_slots(table: RunTable) -> dict[str, RunSlot]:
  """RunSlot of every full run of a folder table, from its run.json (label, width, seed,
  learning_rate); runs without them, and LR-sweep runs (stage "lr_sweep"), are left out."""
  out = {}
  for run_id in table.run_ids:
    info = table.run_info.get(run_id, {})
    if info.get("stage") == "lr_sweep":
      continue
    if all(k in info for k in ("label", "width", "learning_rate")):
      out[run_id] = RunSlot(f"{info['label']}/{info['width']}", info.get("seed"),
                            float(info["learning_rate"]))
  return out


def _same_lr(a: float, b: float) -> bool:
  return abs(a - b) <= 1e-6 * max(abs(a), abs(b))


def chosen_runs_mask(table: RunTable, lr_choices: Mapping[str, Mapping],
                     slots: Mapping[str, RunSlot] | None = None) -> np.ndarray:
  """One bool per table point: False on points of runs trained at an LR other than their
  sweep's chosen one (the runner-up's full runs): the full-data fit leaves them out."""
  slots = run_slots(table) if slots is None else slots
  keep = np.ones(table.loss.shape, bool)
  for run_id, slot in slots.items():
    chosen = lr_choices.get(slot.key, {}).get("chosen_learning_rate")
    if chosen is not None and not _same_lr(slot.learning_rate, float(chosen)):
      keep &= table.run_id != run_id
  return keep


def lr_choice_run_weights(table: RunTable, lr_choices: Mapping[str, Mapping], noise: float,
                          *, groups: Sequence[str] | None = None, num_samples: int = 200,
                          seed: int = 0, slots: Mapping[str, RunSlot] | None = None
                          ) -> np.ndarray:
  """(num_samples, R) run weights in resample.run_order(table, groups): slots drawn with
  replacement within each group, each drawn slot contributing the run at the LR its
  resample chose (module docstring, part 3).

  A (group, width) whose runs are all at one LR behaves as plain run resampling. Per
  resample, the choice between the chosen and runner-up LRs compares their sweep losses
  each plus Normal(0, noise**2) (nats).
  """
  sweeps = [r for r in table.run_ids if table.run_info.get(r, {}).get("stage") == "lr_sweep"]
  if sweeps:
    raise LrError(f"LR choice resampling: the table holds LR-sweep runs ({sweeps[0]}, ...); "
                  "load full runs only (runs.load_runs(..., stages=runs.FULL_STAGES))")
  slots = run_slots(table) if slots is None else slots
  run_ids = resample.run_order(table, groups)
  group_of = {r: g for r, g in zip(table.run_id.tolist(), table.group.tolist())}
  rng = np.random.default_rng(seed)
  # Slot = (group, key, seed): the configuration that one of the LR alternatives fills.
  slot_of = [(group_of[r], slots[r].key, slots[r].seed) if r in slots else (group_of[r], r,
                                                                             None)
             for r in run_ids]
  slot_ids = list(dict.fromkeys(slot_of))
  slot_index = np.array([slot_ids.index(s) for s in slot_of])
  slot_group = [s[0] for s in slot_ids]
  counts = np.zeros((num_samples, len(slot_ids)))
  for g in dict.fromkeys(slot_group):
    members = np.array([i for i, sg in enumerate(slot_group) if sg == g])
    draws = rng.choice(members, (num_samples, members.size))
    for i in range(num_samples):
      np.add.at(counts[i], draws[i], 1.0)
  weights = counts[:, slot_index]
  # Per sweep key with two LR alternatives among its runs: which LR each resample picks.
  for key in dict.fromkeys(s.key for s in slots.values()):
    rates = sorted({s.learning_rate for r, s in slots.items() if s.key == key and r in run_ids})
    if len(rates) < 2:
      continue
    lr, loss = sweep_points(lr_choices.get(key, {}))
    sweep = {float(a): float(b) for a, b in zip(lr, loss)}
    alternatives = [next((v for k, v in sweep.items() if _same_lr(k, rate)), math.nan)
                    for rate in rates]
    if not np.isfinite(alternatives).all():
      raise LrError(f"LR sweep {key}: full runs at {rates} but the sweep has no loss for "
                    "each of them")
    perturbed = np.asarray(alternatives) + noise * rng.normal(size=(num_samples, len(rates)))
    pick = np.asarray(rates)[np.argmin(perturbed, 1)]                 # (S,)
    for j, r in enumerate(run_ids):
      if r in slots and slots[r].key == key:
        weights[:, j] *= np.isclose(slots[r].learning_rate, pick, rtol=1e-6)
  return weights
