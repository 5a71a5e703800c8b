"""LR uncertainty on synthetic truth: sweep optima and their intervals, ambiguity, the LR
law lr* = c * width**b, and LR choice inside the bootstrap."""

import dataclasses
import json
import math

import numpy as np
import pytest

import synthetic_study as ss
from algoprog.analysis import e_profile, fit, lr, resample, runs, uncertainty_plots

C_TRUE, B_TRUE = 0.3, -0.7
CURVATURE = 0.05  # nats per (ln LR)**2 around the optimum
NOISE = 0.01


def sweep(width, seed, offset=0.2, noise=NOISE, points=9):
  """A quarter-decade LR grid around the true optimum (shifted by `offset` in ln LR)."""
  u_star = math.log(C_TRUE * width**B_TRUE)
  grid = np.exp(u_star + offset + math.log(10) * 0.25 * (np.arange(points) - points // 2))
  rng = np.random.default_rng(seed)
  loss = 4.0 + CURVATURE * (np.log(grid) - u_star)**2 + noise * rng.normal(size=points)
  return grid, loss, math.exp(u_star)


def test_sweep_optimum_interval_covers_the_truth_at_about_the_nominal_rate():
  hits = []
  for seed in range(40):
    grid, loss, truth = sweep(64, seed)
    o = lr.sweep_optimum(grid, loss, NOISE, key="modern/64", num_samples=400, seed=seed)
    hits.append(o.lower <= truth <= o.upper)
    assert o.method == "parabola" and o.group == "modern" and o.width == 64
  assert 0.85 <= np.mean(hits) <= 1.0, np.mean(hits)


def test_edges_two_point_sweeps_and_ambiguity():
  # The best point at the top of the grid: the optimum may lie beyond it.
  grid, loss, truth = sweep(64, 0, offset=-0.9 * math.log(10))
  o = lr.sweep_optimum(grid, loss, NOISE, key="modern/64")
  assert o.beyond_grid == "above" and o.upper == math.inf and o.log_lr_se == math.inf
  # The baseline's two-point sweeps (lr_choices.json as written by training.sweep).
  choices = {"lstm/32": {"chosen_at_grid_edge": True, "chosen_learning_rate": 0.09994,
                         "margin_to_next_best": 0.053,
                         "curve": [{"final_validation_loss": 3.397, "learning_rate": 0.0316,
                                    "status": "completed"},
                                   {"final_validation_loss": 3.344, "learning_rate": 0.09994,
                                    "status": "completed"}]}}
  (two,) = lr.sweep_optima(choices, noise=0.127)
  assert two.method == "best point" and two.chosen == 0.09994 and two.upper == math.inf
  assert two.lower == pytest.approx(math.sqrt(0.0316 * 0.09994))
  # Margin 0.053 with 0.127 seed noise: P(runner-up better) = Phi(-0.053 / (sqrt 2 0.127)).
  assert two.p_runner_up == pytest.approx(0.3834, abs=2e-3) and two.ambiguous
  json.dumps(two.row())
  grid, loss, _ = sweep(64, 1, noise=0.0)
  clear = lr.sweep_optimum(grid, loss + np.where(np.arange(9) == 4, -0.2, 0.0), 0.01)
  assert not clear.ambiguous and clear.p_runner_up < 1e-6
  with pytest.raises(lr.LrError, match="LR sweep x/1: no completed point"):
    lr.sweep_optimum([], [], 0.01, key="x/1")


def test_lr_law_recovers_c_and_b_and_predicts_an_unswept_width():
  optima = []
  for i, width in enumerate((32, 64, 128, 256)):
    grid, loss, _ = sweep(width, 10 + i)
    optima.append(lr.sweep_optimum(grid, loss, NOISE, key=f"modern/{width}", seed=i))
  law = lr.lr_laws(optima)["modern"]
  assert law.b_lower <= B_TRUE <= law.b_upper
  assert law.c_lower <= C_TRUE <= law.c_upper
  assert abs(law.b - B_TRUE) < 0.1
  lr512, low, high = law.predict(512)
  assert low <= C_TRUE * 512**B_TRUE <= high and low < lr512 < high
  json.dumps(law.to_json())
  figure = uncertainty_plots.lr_laws(optima, {"modern": law})
  assert figure.axes
  with pytest.raises(lr.LrError, match="LR law of g: 1 width"):
    lr.fit_lr_law([32, 32], [0.01, 0.012], group="g")


def two_lr_study(runner_up_penalty):
  """modern/lstm, 6 widths; every (group, width) has full runs at the chosen LR and at the
  runner-up LR, whose final losses are worse by `runner_up_penalty` (relative)."""
  finals = np.geomspace(1e13, 1e16, 6)
  table = ss.study({"lstm": ss.LSTM, "modern": ss.MODERN}, finals, 0.005, seed=3)
  rows, info, choices = [], {}, {}
  for run_id in table.run_ids:
    sel = table.run_id == run_id
    base = table.run_info[run_id]
    key = f"{base['label']}/{base['width']}"
    for lr_value, factor, suffix in ((1e-3, 1.0, ""), (3e-3, 1 + runner_up_penalty, "_b")):
      rid = run_id + suffix
      rows += [(rid, base["label"], c, l * factor) for c, l in zip(table.compute[sel],
                                                                   table.loss[sel])]
      info[rid] = {**base, "learning_rate": lr_value}
    margin = 0.02
    choices[key] = {"chosen_learning_rate": 1e-3, "curve": [
        {"learning_rate": 1e-3, "final_validation_loss": 4.0, "status": "completed"},
        {"learning_rate": 3e-3, "final_validation_loss": 4.0 + margin,
         "status": "completed"}]}
  full = dataclasses.replace(runs.make_table(*zip(*rows)), run_info=info)
  return full, choices


def test_lr_choice_resampling_picks_one_lr_per_slot_and_widens_intervals():
  table, choices = two_lr_study(0.03)
  keep = lr.chosen_runs_mask(table, choices)
  assert not any(r.endswith("_b") for r in table.run_id[keep])
  order = resample.run_order(table)
  # Decisive sweeps (margin 0.02 >> noise 1e-4): the chosen LR in every resample.
  w = lr.lr_choice_run_weights(table, choices, 1e-4, num_samples=50)
  runner = np.array([r.endswith("_b") for r in order])
  assert w.shape == (50, len(order)) and np.all(w[:, runner] == 0)
  assert np.all(w.sum(1) == 12)  # 6 slots per group drawn with replacement
  # Ambiguous sweeps (margin 0.02 vs noise 0.2): each resample picks per (group, width);
  # about half the time the runner-up; never both runs of one slot.
  w = lr.lr_choice_run_weights(table, choices, 0.2, num_samples=200, seed=1)
  share = w[:, runner].sum() / w.sum()
  assert 0.35 < share < 0.65
  assert np.all(w.sum(1) == 12)
  # Plugged into the E profile (resample.resampled_points) and into the fit bootstrap
  # (resample.bootstrap_with_run_weights): the runner-up's worse runs widen the intervals
  # compared with the same resampling when the sweeps are decisive.
  decisive = lr.lr_choice_run_weights(table, choices, 1e-4, num_samples=200, seed=1)
  narrow = e_profile.profile_E(table, frontier="final", num_grid=3, extra_E=[1.9],
                               run_weights=decisive)
  wide = e_profile.profile_E(table, frontier="final", num_grid=3, extra_E=[1.9],
                             run_weights=w)
  k = int(np.flatnonzero(narrow.E == 1.9)[0])
  width = lambda p: p.derived[0].upper[k] - p.derived[0].lower[k]
  assert width(wide) > width(narrow)
  # The full-data fit uses the chosen LR's runs only.
  result = fit.fit_frontiers(table.select(keep), frontier="final",
                             options=fit.PowerLawOptions(irreducible=1.9))
  spread = lambda weights: np.nanstd(
      resample.bootstrap_with_run_weights(table, result, weights).for_group("lstm").a)
  assert spread(w) > spread(decisive)
