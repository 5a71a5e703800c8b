"""E profile on synthetic truth: the true E is plausible, derived numbers cover the truth at
it, bootstrap intervals cover at about the nominal rate, and verdicts read right."""

import json

import numpy as np
import pytest

import synthetic_study as ss
from algoprog.analysis import e_profile, laws, uncertainty_plots

FINALS = np.geomspace(1e13, 1e17, 8)
TRUE_DIFF = ss.MODERN.alpha - ss.LSTM.alpha


def test_fixed_E_fit_is_exact_on_exact_data():
  c = np.geomspace(1e13, 1e17, 12)
  loss = ss.MODERN.E + ss.MODERN.a * c**ss.MODERN.alpha  # float64 (numpy)
  x = np.log(c) - np.log(c).mean()
  log_b, alpha, ssr = e_profile.fit_fixed_E(x, loss, np.ones_like(c), 1.9)
  assert alpha == pytest.approx(ss.MODERN.alpha, rel=1e-6)
  assert np.exp(log_b - alpha * np.log(c).mean()) == pytest.approx(ss.MODERN.a, rel=1e-5)
  assert ssr < 1e-18
  # Vectorised over E: at E = 0 the model is a straight line in log-log space.
  _, _, ssr_grid = e_profile.fit_fixed_E(x, loss, np.ones_like(c), np.array([0.0, 1.0, 1.9]))
  assert np.argmin(ssr_grid) == 2 and ssr_grid[0] > 0


def test_profile_keeps_the_true_E_and_bands_cover_the_truth():
  # (Seed 0 of this study is one of the ~5-10% whose intervals miss; the coverage test
  # below checks the rate.)
  table = ss.study({"lstm": ss.LSTM, "modern": ss.MODERN}, FINALS, 0.01, seed=1)
  profile = e_profile.profile_E(table, frontier="final", computes=[1e17], extra_E=[1.9],
                                num_samples=200, num_grid=12)
  k = int(np.flatnonzero(profile.E == 1.9)[0])
  assert profile.plausible[k]
  assert profile.E_hat == pytest.approx(1.9, abs=0.7)
  low, high = profile.plausible_range
  assert low < 1.9 < high
  diff, ceg17 = profile.derived
  assert diff.lower[k] <= TRUE_DIFF <= diff.upper[k]
  truth = float(laws.compute_equivalent_gain(ss.LSTM, ss.MODERN, 1e17))
  assert ceg17.lower[k] <= truth <= ceg17.upper[k]
  assert diff.band_lower <= TRUE_DIFF <= diff.band_upper
  assert ceg17.verdict.startswith("modern beats lstm at 1e+17 FLOPs for every plausible E")
  assert "falls faster" in diff.verdict
  json.dumps(profile.to_json())  # report-ready
  lines = profile.summary()
  assert lines[0].startswith("E profile of lstm, modern (16 fit points)")
  assert lines[2].startswith("modern vs lstm, CEG at 1e+17 FLOPs: ")
  assert len(profile.rows()) == profile.E.size * 2 and len(diff.rows()) == profile.E.size
  figure = uncertainty_plots.e_profile(profile, ceg17)
  assert len(figure.axes) == 2


def test_bootstrap_intervals_cover_at_about_the_nominal_rate():
  # 40 small studies (8 runs per group, 1% seed noise): the 90% interval of the exponent
  # difference at the true E covers the truth at about 90% (the percentile bootstrap of 8
  # runs runs a little narrow: ~80-90%), and the true E is plausible nearly always.
  cover, plausible = [], []
  for seed in range(40):
    table = ss.study({"lstm": ss.LSTM, "modern": ss.MODERN}, FINALS, 0.01, seed=seed)
    profile = e_profile.profile_E(table, frontier="final", num_grid=4, extra_E=[1.9],
                                  num_samples=100, seed=seed, level=0.9)
    k = int(np.flatnonzero(profile.E == 1.9)[0])
    d = profile.derived[0]
    cover.append(d.lower[k] <= TRUE_DIFF <= d.upper[k])
    plausible.append(profile.plausible[k])
  assert 0.7 <= np.mean(cover) <= 1.0, np.mean(cover)
  assert np.mean(plausible) >= 0.85


def test_a_pure_power_law_leaves_E_down_to_zero_plausible():
  # E = 0 truth over 4 decades: the profile cannot rule out small E, and says so.
  zero = laws.PowerLaw(5.0, -0.05, 0.0)
  table = ss.study({"a": zero, "b": laws.PowerLaw(5.5, -0.05, 0.0)}, FINALS, 0.01, seed=1)
  profile = e_profile.profile_E(table, frontier="final", num_grid=10, num_samples=100)
  assert profile.plausible[0]  # E = 0 is on the grid and plausible
  assert "for every plausible E (0 to" in profile.derived[0].verdict


def test_verdicts_when_the_answer_depends_on_E():
  grid = np.array([0.0, 0.5, 1.0, 1.5, 2.0])
  values = np.array([[1.5, 1.4, 1.5], [1.2, 1.1, 1.3], [1.0, 0.7, 1.3], [0.8, 0.7, 0.9],
                     [0.6, 0.5, 0.7]])  # (K, 1 + samples): sample 0 is the estimate
  d = e_profile._derived("ceg_at_compute", "modern", "lstm", 1e17, grid, values,
                         np.ones(5, bool), 1.0, 0.95)
  assert d.verdict.startswith("the sign depends on E (E 0 to 0.5: modern beats lstm")
  assert "E 1.5 to 2: lstm beats modern" in d.verdict
  assert "E 1 to 1: modern vs lstm at 1e+17 FLOPs is not resolved" in d.verdict
  # Only the plausible E count.
  only = e_profile._derived("ceg_at_compute", "modern", "lstm", 1e17, grid, values,
                            np.array([1, 1, 0, 0, 0], bool), 1.0, 0.95)
  assert "for every plausible E (0 to 0.5 nats)" in only.verdict
  assert only.band_estimate_low == 1.2 and only.band_estimate_high == 1.5
  assert only.band_lower == pytest.approx(1.1, abs=0.01)  # lowest lower bound of the two


def test_bad_criterion_and_too_few_points():
  table = ss.study({"a": ss.MODERN}, FINALS[:2], 0.01, seed=0)
  with pytest.raises(ValueError, match="criterion 'x'"):
    e_profile.profile_E(table, criterion="x")
  with pytest.raises(ValueError, match="group a: 2 distinct fit computes"):
    e_profile.profile_E(table, frontier="final")
