"""Rollout validation and residual curvature on synthetic truth."""

import dataclasses
import json

import numpy as np
import pytest

import synthetic_study as ss
from algoprog.analysis import e_profile, fit, laws, rollout, uncertainty_plots

FINALS = np.geomspace(1e13, 1e17, 8)


def test_rollout_predicts_a_true_law_and_catches_a_bend():
  # "good" follows its law at every size; "bent": the two largest runs end 4% above it
  # (a law fitted below them extrapolates too optimistically).
  table = ss.study({"good": ss.MODERN, "bent": ss.LSTM}, FINALS, 0.003, seed=2)
  bent_big = (table.group == "bent") & np.isin(table.run_id, ["bent_w112_s0", "bent_w128_s0"])
  table = dataclasses.replace(table, loss=np.where(bent_big, table.loss * 1.04, table.loss))
  result = rollout.rollout(table, holdout=2, frontier="final", num_samples=50,
                           noise=0.003 * 4.5,
                           options=fit.PowerLawOptions(irreducible=1.9))
  good, bent = result.groups
  assert good.held_out == ("good_w112_s0", "good_w128_s0")
  assert good.compute.size == 2 and good.extrapolation_decades == pytest.approx(
      np.log10(FINALS[-1] / FINALS[-3]))
  assert abs(good.error_at_largest) < 0.05 and good.inside.all()
  assert bent.mean_error > 0.1 and not bent.inside.any()
  assert "0/2 points inside the predicted interval" in bent.summary()
  json.dumps(result.to_json())
  assert uncertainty_plots.rollout(result).axes


def test_curvature_test_on_arrays():
  rng = np.random.default_rng(0)
  c = np.geomspace(1e13, 1e17, 15)
  u = np.log(c) - np.log(c).mean()
  flat = rollout.curvature_test(c, 0.002 * rng.normal(size=c.size))
  assert not flat.significant
  bent = rollout.curvature_test(c, 0.002 * u**2 + 0.002 * rng.normal(size=c.size))
  assert bent.significant and bent.b > 0
  assert bent.bend == pytest.approx(0.002 * (np.ptp(u) / 2)**2, rel=0.3)
  cubic = rollout.curvature_test(c, 0.0005 * u**3, order=3)
  assert cubic.significant and cubic.b == pytest.approx(0.0005, rel=1e-6)
  few = rollout.curvature_test(c[:3], np.zeros(3))
  assert not few.significant and "too few points" in few.summary()
  json.dumps(bent.to_json())


def fixed_E_fit(table, E):
  """A PowerLawFit of one group's final points with E fixed (numpy, no JAX compile)."""
  final = fit.final_points(table)
  c, l = final.compute, final.loss
  x0 = np.log(c).mean()
  log_b, alpha, ssr = e_profile.fit_fixed_E(np.log(c) - x0, l, np.ones_like(c), E)
  law = laws.PowerLaw(np.array([np.exp(log_b - alpha * x0)]), np.array([alpha]),
                      np.array([E]))
  return fit.PowerLawFit(("lstm",), law, fit.PowerLawOptions(irreducible=E), "final",
                         float(ssr), 1, c[None], l[None], np.ones((1, c.size)))


def test_residual_curvature_flags_a_wrong_E():
  table = ss.study({"lstm": ss.LSTM}, FINALS, 0.002, seed=0)
  (ok,) = rollout.residual_curvature(fixed_E_fit(table, 1.9))
  (bad,) = rollout.residual_curvature(fixed_E_fit(table, 0.0))
  assert ok.order == 2 and not ok.significant
  assert bad.significant and bad.b > 0 and "systematic curvature" in bad.summary()
