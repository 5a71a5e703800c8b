"""Compute-equivalent gains: the study's constants, closed form vs numeric, raw-curve
interpolation and its errors, fitted bands and the scale-dependence test."""

import numpy as np
import pytest

from algoprog.analysis import ceg, fit, laws, runs

LSTM = laws.PowerLaw(36.3, -0.065, 1.9)
MODERN = laws.PowerLaw(88.0, -0.094, 1.9)


def test_study_constants_lstm_to_modern():
  # SPEC: ~6.3x at L - E = 3.38 and ~26x at L - E = 2.5.
  at = lambda reducible: float(laws.compute_equivalent_gain_at_loss(LSTM, MODERN,
                                                                    1.9 + reducible))
  assert at(3.38) == pytest.approx(6.3, rel=0.02)
  assert at(2.5) == pytest.approx(26.0, rel=0.03)


def test_closed_form_matches_numeric_inversion_and_raw_curves():
  compute = np.geomspace(1e13, 1e22, 10)
  closed = (MODERN.a / LSTM.a)**(1 / LSTM.alpha) * compute**(MODERN.alpha / LSTM.alpha - 1)
  np.testing.assert_allclose(laws.compute_equivalent_gain(LSTM, MODERN, compute), closed,
                             rtol=1e-5)
  # Numeric: dense curves that follow each law, crossed at a target loss by interpolation.
  grid = np.geomspace(1e12, 1e20, 4001)
  target = 1.9 + 3.38
  c_lstm = ceg.crossing_compute(grid, laws.loss_at_compute(LSTM, grid), target)
  c_modern = ceg.crossing_compute(grid, laws.loss_at_compute(MODERN, grid), target)
  assert c_lstm / c_modern == pytest.approx(
      float(laws.compute_equivalent_gain_at_loss(LSTM, MODERN, target)), rel=1e-3)


def test_crossing_interpolates_in_log_compute():
  # Loss linear in ln C between the bracketing points: 5.5 is halfway (geometric mean).
  assert ceg.crossing_compute([1e14, 1e16, 1e18], [6.0, 5.0, 4.0], 5.5) == pytest.approx(1e15)
  # First crossing of a noisy curve, not a later one.
  assert ceg.crossing_compute([1, 2, 4, 8], [6, 4.9, 5.2, 4.0], 5.0) == pytest.approx(
      np.exp(np.log(1) + (1.0 / 1.1) * np.log(2)))


def test_unreached_targets_are_errors_naming_the_curve():
  with pytest.raises(ceg.TargetNotReached, match="never reaches loss 3 \\(lowest 4"):
    ceg.crossing_compute([1, 2], [5.0, 4.0], 3.0)
  with pytest.raises(ceg.TargetNotReached, match="before its first evaluation"):
    ceg.crossing_compute([1, 2], [5.0, 4.0], 5.5)


def curves_table():
  """Three seeds per variant; 'fast' reaches each loss with 1.5x less compute."""
  rows = []
  rng = np.random.default_rng(0)
  compute = np.geomspace(1e13, 1e16, 30)
  for group, speedup in (("base", 1.0), ("fast", 1.5)):
    for seed in range(3):
      jitter = np.exp(0.02 * rng.normal())
      loss = laws.loss_at_compute(MODERN, compute * speedup * jitter)
      rows += [(f"{group}-s{seed}", group, c, float(l)) for c, l in zip(compute, loss)]
  return runs.make_table(*zip(*rows))


def test_raw_ceg_table_with_seeds():
  table = curves_table()
  (row,) = ceg.raw_ceg_table(table, "base", 6.0, combine="mean", num_samples=200)
  assert row.group == "fast" and row.num_runs == 3
  assert row.ceg == pytest.approx(1.5, rel=0.05)
  assert row.lower < row.ceg < row.upper
  assert ceg.raw_ceg(table, "base", "fast", 6.0, combine="envelope") == pytest.approx(
      1.5, rel=0.06)
  with pytest.raises(ceg.TargetNotReached, match="run base-s.*never reaches loss 2"):
    ceg.raw_ceg_table(table, "base", 2.0, combine="mean")
  with pytest.raises(ceg.TargetNotReached, match="group base: no run reaches loss 2"):
    ceg.raw_ceg_table(table, "base", 2.0, combine="envelope")


@pytest.fixture(scope="module")
def fitted():
  """Points on the study's LSTM and modern laws plus a scale-invariant 'tweak' of modern,
  fitted with E shared, bootstrapped over points."""
  rng = np.random.default_rng(0)
  compute = np.geomspace(1e13, 2e17, 30)
  tweak = laws.PowerLaw(MODERN.a * 0.95, MODERN.alpha, MODERN.E)
  rows = []
  for group, law in (("lstm", LSTM), ("modern", MODERN), ("tweak", tweak)):
    loss = laws.loss_at_compute(law, compute) * np.exp(0.003 * rng.normal(size=compute.size))
    rows += [(f"{group}{i}", group, c, float(l)) for i, (c, l) in enumerate(zip(compute, loss))]
  table = runs.make_table(*zip(*rows))
  result = fit.fit_frontiers(table, frontier="all",
                             options=fit.PowerLawOptions(irreducible="shared"))
  return result, fit.bootstrap_frontiers(table, result, num_samples=300, resample="points")


def test_fitted_ceg_band_contains_the_truth(fitted):
  result, boot = fitted
  # One realisation, so a 99% band (the coverage rate itself is tested in test_fit.py).
  band = ceg.ceg_band(result, boot, "lstm", "modern", [1e15, 1e17], level=0.99)
  truth = laws.compute_equivalent_gain(LSTM, MODERN, np.array([1e15, 1e17]))
  assert np.all(band.lower <= truth) and np.all(truth <= band.upper)
  assert np.all(band.lower <= band.estimate) and np.all(band.estimate <= band.upper)
  at_loss = ceg.ceg_at_loss_band(result, boot, "lstm", "modern", [1.9 + 3.38])
  assert at_loss.lower[0] < 6.34 < at_loss.upper[0]
  with pytest.raises(ceg.TargetNotReached, match="at or below its fitted irreducible"):
    ceg.ceg_at_loss_band(result, boot, "lstm", "modern", [1.0])


def test_scale_dependence_test(fitted):
  result, boot = fitted
  lstm_to_modern = ceg.scale_dependence(result, boot, "lstm", "modern")
  assert lstm_to_modern.scale_dependent
  assert lstm_to_modern.exponent_difference.upper < 0  # modern's exponent is steeper
  assert lstm_to_modern.ceg_slope.estimate == pytest.approx(0.094 / 0.065 - 1, abs=0.1)
  assert not ceg.scale_dependence(result, boot, "modern", "tweak").scale_dependent


def test_ceg_table_rows(fitted):
  result, boot = fitted
  rows = ceg.ceg_table(result, boot, "lstm", computes=[1e15], losses=[5.28, 1.0])
  kinds = [(r.group, r.quantity) for r in rows]
  assert kinds == [("modern", "ceg_at_compute"), ("modern", "ceg_at_loss"),
                   ("modern", "ceg_at_loss"), ("modern", "exponent_difference"),
                   ("tweak", "ceg_at_compute"), ("tweak", "ceg_at_loss"),
                   ("tweak", "ceg_at_loss"), ("tweak", "exponent_difference")]
  assert np.isnan(rows[2].estimate)  # loss 1.0 is below E: reported, not invented
  assert rows[3].scale_dependent
