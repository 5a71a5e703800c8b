"""The learning-rate law math that both halves use: the sweep (algoprog.training.sweep)
centres sweeps and sets unswept widths' LRs with it, the analysis (algoprog.analysis.lr)
adds intervals to it. Pure numpy; imports neither the training nor the analysis.

Law: ln lr* = ln c + b ln(width), by (weighted) least squares in log-log space.
Ambiguity of an LR choice: with independent seed noise of standard deviation `noise`
(nats) on each sweep loss, the runner-up (second-best grid LR) is truly better with
probability P = Phi(-margin / (sqrt(2) noise)); a choice is ambiguous when
P > AMBIGUOUS_PROBABILITY, i.e. margin < ~1.81 noise.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

AMBIGUOUS_PROBABILITY = 0.1
# nats: the seed noise assumed where none is measured or given, a guess for small runs.
DEFAULT_SEED_NOISE = 0.02


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
