"""Model-free scale dependence on synthetic curves: the slope of ln CEG vs ln C has the
right sign for different exponents and is ~0 for equal ones."""

import json

import numpy as np
import pytest

import synthetic_study as ss
from algoprog.analysis import ceg, laws, raw_scale, uncertainty_plots

FINALS = np.geomspace(1e13, 1e17, 8)


def test_crossings_match_the_single_curve_crossing():
  c = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
  loss = np.array([6.0, 4.9, 5.2, 4.0, 3.5])
  targets = np.array([5.5, 5.0, 4.5, 3.8, 3.0, 7.0])
  got = raw_scale.crossings(c, loss, targets)
  for t, g in zip(targets[:4], got[:4]):
    assert g == pytest.approx(ceg.crossing_compute(c, loss, t))
  assert np.isnan(got[4]) and np.isnan(got[5])  # never reached; before the first point


def test_gain_grows_with_scale_for_a_steeper_exponent():
  table = ss.study({"lstm": ss.LSTM, "modern": ss.MODERN}, FINALS, 0.005, seed=0,
                   seeds_per_width=2, num_points=16)
  result = raw_scale.raw_scale_dependence(table, "lstm", "modern", num_samples=300)
  # Two power laws with a shared E: slope of ln CEG vs ln C_ref = 1 - alpha_ref/alpha_g.
  truth = 1 - ss.LSTM.alpha / ss.MODERN.alpha
  assert result.slope.lower > 0
  assert result.slope.estimate == pytest.approx(truth, abs=0.08)
  assert result.verdict.startswith("yes: the gain of modern over lstm grows with scale")
  assert np.all(result.lower <= result.ceg) and np.all(result.ceg <= result.upper)
  # CEG at each target agrees with the laws' CEG at that loss (envelopes are near the laws).
  exact = np.asarray(laws.compute_equivalent_gain_at_loss(ss.LSTM, ss.MODERN,
                                                          result.target_loss[-5:]))
  np.testing.assert_allclose(result.ceg[-5:], exact, rtol=0.5)
  json.dumps(result.to_json())
  reverse = raw_scale.raw_scale_dependence(table, "modern", "lstm", num_samples=100)
  assert reverse.slope.upper < 0 and reverse.verdict.startswith("no, it shrinks")
  assert uncertainty_plots.raw_scale([result]).axes


def test_equal_exponents_give_no_scale_dependence():
  variant = laws.PowerLaw(ss.MODERN.a * 1.2, ss.MODERN.alpha, ss.MODERN.E)
  table = ss.study({"a": ss.MODERN, "b": variant}, FINALS, 0.005, seed=1, seeds_per_width=2,
                   num_points=16)
  result = raw_scale.raw_scale_dependence(table, "a", "b", num_samples=300)
  assert result.slope.lower < 0 < result.slope.upper
  assert abs(result.slope.estimate) < 0.1
  assert result.verdict.startswith("not resolved")
  assert np.median(result.ceg) == pytest.approx(1.2**(1 / ss.MODERN.alpha), rel=0.3)


def test_no_common_loss_is_an_error_naming_the_groups():
  a = ss.study({"a": ss.MODERN}, FINALS[:2], 0.0, seed=0)
  far = laws.PowerLaw(ss.MODERN.a * 3, ss.MODERN.alpha, 30.0)
  b = ss.study({"b": far}, FINALS[:2], 0.0, seed=0)
  from algoprog.analysis import runs
  both = runs.make_table(np.concatenate([a.run_id, b.run_id]),
                         np.concatenate([a.group, b.group]),
                         np.concatenate([a.compute, b.compute]),
                         np.concatenate([a.loss, b.loss]))
  with pytest.raises(raw_scale.RawScaleError, match="b vs a: no loss both reach"):
    raw_scale.raw_scale_dependence(both, "a", "b")
