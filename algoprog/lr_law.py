"""The learning-rate law math that both halves use: the sweep (algoprog.training.sweep)
centres sweeps and sets unswept widths' LRs with it, the analysis (algoprog.analysis.lr)
adds intervals to it. Pure numpy; imports neither the training nor the analysis.

Law: ln lr* = ln c + b ln(width), by (weighted) least squares in log-log space.
Ambiguity of an LR choice: with independent seed noise of standard deviation `noise`
(nats) on each sweep loss, the runner-up (second-best grid LR) is truly better with
probability P = Phi(-margin / (sqrt(2) noise)); a choice is ambiguous when the margin is
under AMBIGUOUS_NOISE_MULTIPLE (2) x the noise, i.e. P > AMBIGUOUS_PROBABILITY (7.9%): the
one criterion the sweep (train the runner-up's full runs) and the analysis's diagnostics
("LR within seed noise") share.
Seed noise measured from runs: the median over configurations run with several seeds of
the standard deviation of their final validation losses (`measured_seed_noise`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Mapping, Sequence

import numpy as np

AMBIGUOUS_NOISE_MULTIPLE = 2.0
# P(runner-up truly better) at a margin of AMBIGUOUS_NOISE_MULTIPLE x the noise: 0.0786.
AMBIGUOUS_PROBABILITY = 0.5 * math.erfc(AMBIGUOUS_NOISE_MULTIPLE / 2.0)
# nats: the seed noise assumed where none is measured or given, a guess for small runs.
DEFAULT_SEED_NOISE = 0.02
# run.json fields that make two runs the same configuration (they may differ in seed only).
SEED_KEY = ("label", "width", "learning_rate", "tokens_planned", "stage")


def seed_finals(run_infos: Iterable[Mapping]) -> dict[tuple, list[float]]:
  """{configuration (SEED_KEY values): final validation losses of its seeds} from run.json
  records: completed runs with a finite final validation loss, one loss per seed."""
  finals: dict[tuple, dict] = {}
  for info in run_infos:
    loss = info.get("final_validation_loss")
    if info.get("status") != "completed" or not isinstance(loss, (int, float)) or not (
        math.isfinite(loss)):
      continue
    key = tuple(info.get(k) for k in SEED_KEY)
    finals.setdefault(key, {})[info.get("seed")] = float(loss)
  return {k: list(v.values()) for k, v in finals.items()}


def measured_seed_noise(run_infos: Iterable[Mapping]) -> tuple[float, int] | None:
  """(median over configurations with several seeds of the SD of their final losses, in
  nats; how many configurations), or None when no configuration has several seeds."""
  stds = [float(np.std(v, ddof=1)) for v in seed_finals(run_infos).values() if len(v) > 1]
  return (float(np.median(stds)), len(stds)) if stds else None


def runner_up_probability(margin: float, noise: float) -> float:
  """P(runner-up truly better) = Phi(-margin / (sqrt(2) noise)) for a loss margin (nats)
  between the two best grid points and seed noise `noise` (nats, SD of one final loss);
  0 when noise is 0 and the margin positive."""
  if noise <= 0:
    return 0.5 if margin <= 0 else 0.0
  return 0.5 * math.erfc(margin / (2.0 * noise))  # Phi(-x) = erfc(x / sqrt 2) / 2.


@dataclasses.dataclass(frozen=True)
class LogLogFit:
  """ln lr = ln_c + b ln(width) fitted by least squares.

  ln_c, b: the coefficients (ln of a learning rate; dimensionless slope). gram_inverse:
  (2, 2) inverse of the weighted normal matrix of (ln c, b) (the covariance before scaling
  by the residual variance). residuals: ln lr - fitted, one per point (ln units).
  weighted_ssr: sum of weight x residual^2.
  """
  ln_c: float
  b: float
  gram_inverse: np.ndarray
  residuals: np.ndarray
  weighted_ssr: float

  def lr(self, width: float) -> float:
    """The law's learning rate at `width`."""
    return float(math.exp(self.ln_c + self.b * math.log(width)))


def fit_log_log(widths: Sequence[float], learning_rates: Sequence[float],
                weights: Sequence[float] | None = None) -> LogLogFit:
  """Least squares of ln lr on ln width (weights: one per point, default equal).

  Raises:
    ValueError: fewer than 2 distinct widths, or non-positive widths or learning rates.
  """
  w = np.asarray(widths, np.float64)
  y = np.asarray(learning_rates, np.float64)
  if np.any(w <= 0) or np.any(y <= 0) or w.shape != y.shape:
    raise ValueError("LR law: widths and learning rates must be positive, one per width")
  if np.unique(w).size < 2:
    raise ValueError(f"LR law: {np.unique(w).size} distinct width(s); need at least 2")
  x, y = np.log(w), np.log(y)
  weight = np.ones_like(x) if weights is None else np.asarray(weights, np.float64)
  design = np.stack([np.ones_like(x), x], 1)
  gram = design.T @ (weight[:, None] * design)
  coef = np.linalg.solve(gram, design.T @ (weight * y))
  residuals = y - design @ coef
  return LogLogFit(float(coef[0]), float(coef[1]), np.linalg.inv(gram), residuals,
                   float(np.sum(weight * residuals**2)))
