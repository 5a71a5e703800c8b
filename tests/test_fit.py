"""Fits on synthetic truth: power laws (E fitted, fixed, shared), Chinchilla L(N, D),
IsoFLOP minima, the envelope, bootstrap coverage, and clear errors on degenerate input."""

import jax.numpy as jnp
import numpy as np
import pytest

from algoprog.analysis import fit, laws, runs

MODERN = laws.PowerLaw(88.0, -0.094, 1.9)
LSTM = laws.PowerLaw(36.3, -0.065, 1.9)
COMPUTE = np.geomspace(1e13, 2e17, 40)
CHINCHILLA = laws.ChinchillaLaw(1.69, 406.4, 410.7, 0.34, 0.28)
# A coarse grid of starts keeps the tests fast; the benchmark runs Hoffmann's full grid.
SMALL_GRID = fit.chinchilla_grid(alphas=[0.0, 1.0], betas=[0.0, 1.0], es=[-1.0, 0.5],
                                 a_s=[0.0, 10.0], b_s=[0.0, 10.0])


def law_points(law, compute, noise, seed):
  """Loss on the law times lognormal noise of `noise` (relative)."""
  rng = np.random.default_rng(seed)
  loss = law.E + law.a * compute**law.alpha
  return loss * np.exp(noise * rng.normal(size=compute.size))


def table_of(groups: dict, runs_per_point=False):
  """A RunTable with one single-point run per (group, compute) point."""
  rows = [(f"{g}{i}", g, c, l) for g, (cs, ls) in groups.items()
          for i, (c, l) in enumerate(zip(cs, ls))]
  return runs.make_table(*zip(*rows))


def test_power_law_recovered_with_fitted_E():
  # 0.5% noise over 4 decades: E and the exponent are correlated, hence the tolerances.
  loss = law_points(MODERN, COMPUTE, 0.005, seed=1)
  law = fit.fit_power_law(COMPUTE, loss)
  assert law.alpha == pytest.approx(MODERN.alpha, abs=0.01)
  assert law.E == pytest.approx(MODERN.E, abs=0.25)
  assert law.a == pytest.approx(MODERN.a, rel=0.25)
  # The fit is a real optimum: exact data give the truth to many digits.
  exact = fit.fit_power_law(COMPUTE, law_points(MODERN, COMPUTE, 0.0, seed=0))
  np.testing.assert_allclose(exact, MODERN, rtol=1e-5)


def test_power_law_with_fixed_E_and_huber_resists_outliers():
  loss = law_points(LSTM, COMPUTE, 0.003, seed=2)
  loss[[5, 17, 30]] *= 1.3  # three bad evaluations
  fixed = fit.PowerLawOptions(irreducible=1.9)
  squares = fit.fit_power_law(COMPUTE, loss, options=fixed)
  huber = fit.fit_power_law(COMPUTE, loss, options=fit.PowerLawOptions(
      irreducible=1.9, huber_delta=1e-3))
  assert huber.E == 1.9
  assert abs(huber.alpha - LSTM.alpha) < 0.002
  assert abs(huber.alpha - LSTM.alpha) < abs(squares.alpha - LSTM.alpha)


def test_shared_E_and_shared_exponent_joint_fits():
  modern = law_points(MODERN, COMPUTE, 0.003, seed=3)
  lstm = law_points(LSTM, COMPUTE, 0.003, seed=4)
  table = table_of({"modern": (COMPUTE, modern), "lstm": (COMPUTE, lstm)})
  shared = fit.fit_frontiers(table, frontier="all",
                             options=fit.PowerLawOptions(irreducible="shared"))
  assert shared.law.E[0] == shared.law.E[1]
  assert shared.law.E[0] == pytest.approx(1.9, abs=0.2)
  assert shared.for_group("lstm").alpha == pytest.approx(-0.065, abs=0.008)
  assert shared.for_group("modern").alpha == pytest.approx(-0.094, abs=0.008)
  # Two variants differing only in the multiplier: one exponent, two multipliers.
  variant = laws.PowerLaw(MODERN.a * 1.2, MODERN.alpha, MODERN.E)
  table = table_of({"base": (COMPUTE, modern),
                    "variant": (COMPUTE, law_points(variant, COMPUTE, 0.003, seed=5))})
  tied = fit.fit_frontiers(table, frontier="all", options=fit.PowerLawOptions(
      irreducible=1.9, shared_exponent=True))
  assert tied.law.alpha[0] == tied.law.alpha[1]
  assert tied.law.a[1] / tied.law.a[0] == pytest.approx(1.2, rel=0.03)


def test_envelope_on_hand_made_curves():
  # Two runs: the small one is best until it flattens, then the big one takes over.
  compute = jnp.array([1.0, 2.0, 4.0, 8.0, 2.0, 4.0, 8.0, 16.0])
  loss = jnp.array([5.0, 4.0, 3.6, 3.5, 4.5, 3.6, 3.0, 2.5])
  present = jnp.ones(8, bool)
  on = fit.envelope_mask(compute, loss, present)
  # small: 1,2,4 on (4.0 < 4.5 at C=2; at C=4 tie 3.6: the first in compute order wins
  # only if strictly lower, so the big run's equal loss is off); 8: 3.5 > 3.0 off.
  np.testing.assert_array_equal(on, [1, 1, 1, 0, 0, 0, 1, 1])
  # Removing the small run (a bootstrap draw without it) hands its span to the big one.
  on = fit.envelope_mask(compute, loss, present.at[:4].set(False))
  np.testing.assert_array_equal(on, [0, 0, 0, 0, 1, 1, 1, 1])
  # Non-monotone curve: a noisy uptick is not on the envelope.
  on = fit.envelope_mask(jnp.array([1.0, 2.0, 3.0, 4.0]), jnp.array([5.0, 4.0, 4.2, 3.9]),
                         jnp.ones(4, bool))
  np.testing.assert_array_equal(on, [1, 1, 0, 1])


def test_frontier_is_taken_over_all_points_before_the_compute_range():
  # The small run reaches 3.9 at C=10; the big run's first point past C=11 (4.5 at C=12) is
  # worse, so it is on no frontier. Cutting at C >= 11 first would make it the first point
  # of the frontier (nothing below it any more), and it would pull the fit.
  table = runs.make_table(
      ["s"] * 5 + ["b"] * 5, ["g"] * 10,
      [1, 2, 4, 8, 10, 3, 12, 30, 60, 100],
      [6.0, 5.0, 4.4, 4.0, 3.9, 7.0, 4.5, 3.6, 3.3, 3.1])
  options = fit.PowerLawOptions(irreducible=1.0)
  in_range = table.compute >= 11
  result = fit.fit_frontiers(table, options=options, eligible=in_range)
  fitted = result.points_compute[0][result.points_weight[0] > 0]
  np.testing.assert_array_equal(np.sort(fitted), [30, 60, 100])
  cut_first = fit.fit_frontiers(table.select(in_range), options=options)
  assert 12 in cut_first.points_compute[0][cut_first.points_weight[0] > 0]  # the old order
  # The bootstrap recomputes the envelope over all points of the drawn runs, then cuts:
  # draws with both runs give the full fit, draws of the big run alone keep C=12.
  boot = fit.bootstrap_frontiers(table, result, num_samples=20, seed=0, eligible=in_range)
  big_alone = fit.fit_frontiers(table.only_groups(["g"]).select(table.run_id == "b"),
                                options=options, eligible=in_range[table.run_id == "b"])
  alphas = boot.for_group("g").alpha[np.isfinite(boot.for_group("g").alpha)]
  expected = [result.for_group("g").alpha, big_alone.for_group("g").alpha]
  assert np.isclose(alphas[:, None], expected, rtol=1e-6).any(1).all()
  assert np.isclose(alphas, expected[0], rtol=1e-6).any()


def test_frontier_fit_of_training_curves_from_a_chinchilla_law():
  # Curves of 12 model sizes; their lower envelope approaches the law's compute-optimal
  # frontier, which is itself an exact power law (chinchilla_frontier).
  rows = []
  for n in np.geomspace(3e6, 3e9, 12):
    tokens = np.geomspace(n * 0.5, n * 400, 30)
    loss = laws.chinchilla_loss(CHINCHILLA, n, tokens)
    rows += [(f"n{n:.0f}", "m", 6 * n * d, l, n, d) for d, l in zip(tokens, loss)]
  table = runs.make_table(*zip(*rows))
  result = fit.fit_frontiers(table, frontier="envelope")
  truth = laws.chinchilla_frontier(CHINCHILLA)
  assert result.for_group("m").alpha == pytest.approx(truth.alpha, abs=0.01)
  assert result.for_group("m").E == pytest.approx(truth.E, abs=0.1)
  # final points of each run are not the frontier: the envelope uses many more points.
  final = fit.fit_frontiers(table, frontier="final")
  assert final.points_weight.sum() == 12 < result.points_weight.sum()


def test_chinchilla_fit_recovers_truth_and_derived_quantities():
  rng = np.random.default_rng(0)
  n = np.repeat(np.geomspace(1e7, 3e9, 12), 6)
  d = n * np.tile(np.geomspace(2, 200, 6), 12)
  loss = laws.chinchilla_loss(CHINCHILLA, n, d) * np.exp(0.003 * rng.normal(size=n.size))
  result = fit.fit_chinchilla(n, d, loss, starts=SMALL_GRID)
  law = result.law
  assert law.alpha == pytest.approx(0.34, abs=0.03)
  assert law.beta == pytest.approx(0.28, abs=0.03)
  assert law.E == pytest.approx(1.69, abs=0.08)
  # Derived: the optimal allocation minimises L at fixed C = 6ND (brute force), and the
  # frontier law equals that minimum.
  compute = 1e21
  n_opt, d_opt = laws.chinchilla_optimal_allocation(CHINCHILLA, compute)
  grid = np.geomspace(n_opt / 10, n_opt * 10, 20001)
  brute = grid[np.argmin(laws.chinchilla_loss(CHINCHILLA, grid, compute / 6 / grid))]
  assert n_opt == pytest.approx(brute, rel=1e-3)
  assert 6 * n_opt * d_opt == pytest.approx(compute)
  frontier = laws.chinchilla_frontier(CHINCHILLA)
  assert laws.loss_at_compute(frontier, compute) == pytest.approx(
      laws.chinchilla_loss(CHINCHILLA, n_opt, d_opt), rel=1e-6)
  assert frontier.alpha == pytest.approx(-0.34 * 0.28 / 0.62)
  samples = fit.bootstrap_chinchilla(n, d, loss, result, num_samples=100)
  lower, upper = laws.confidence_interval(samples.alpha, 0.99)
  assert lower < law.alpha < upper and upper - lower < 0.1


def test_isoflop_minima_recover_the_optimal_allocation():
  # IsoFLOP sweep: at each budget, 9 model sizes around the optimum, final losses.
  rows = []
  for compute in np.geomspace(1e18, 1e21, 6):
    n_opt, _ = laws.chinchilla_optimal_allocation(CHINCHILLA, compute)
    for n in n_opt * np.geomspace(0.25, 4, 9):
      rows.append((f"{compute:.0e}-{n:.0f}", "m", compute,
                   laws.chinchilla_loss(CHINCHILLA, n, compute / 6 / n), n))
  table = runs.make_table(*zip(*rows))
  result = fit.fit_frontiers(table, frontier="isoflop",
                             options=fit.PowerLawOptions(irreducible=1.69))
  assert result.points_weight.sum() == 6
  exponent = CHINCHILLA.beta / (CHINCHILLA.alpha + CHINCHILLA.beta)
  assert fit.isoflop_allocation_exponent(result, "m") == pytest.approx(exponent, abs=0.02)
  assert result.for_group("m").alpha == pytest.approx(
      laws.chinchilla_frontier(CHINCHILLA).alpha, abs=0.01)


def test_bootstrap_interval_covers_the_truth_at_about_the_nominal_rate():
  # 16 independent data sets, 90% percentile intervals of alpha (E fixed: a well-posed
  # fit, so the percentile bootstrap is accurate). Expected 14.4 covered; binomial
  # P(covered <= 11) ~ 2%.
  compute = np.geomspace(1e13, 2e17, 25)
  covered = 0
  options = fit.PowerLawOptions(irreducible=1.9)
  for seed in range(16):
    table = table_of({"m": (compute, law_points(MODERN, compute, 0.01, seed))})
    result = fit.fit_frontiers(table, frontier="all", options=options)
    boot = fit.bootstrap_frontiers(table, result, num_samples=200, resample="points",
                                   seed=seed)
    lower, upper = laws.confidence_interval(boot.for_group("m").alpha, 0.9)
    covered += lower <= MODERN.alpha <= upper
  assert covered >= 12


def test_bootstrap_over_runs_recomputes_the_envelope_and_pairs_groups():
  rng = np.random.default_rng(0)
  rows = []
  for group, law in (("modern", MODERN), ("lstm", LSTM)):
    for r, start in enumerate(np.geomspace(1e13, 1e16, 8)):
      compute = np.geomspace(start, start * 30, 10)
      # each run flattens past its own budget: off the envelope there.
      loss = (law.E + law.a * compute**law.alpha) * (1 + 0.02 * np.log(compute / start)**2 / 10)
      loss *= np.exp(0.002 * rng.normal(size=10))
      rows += [(f"{group}{r}", group, c, l) for c, l in zip(compute, loss)]
  table = runs.make_table(*zip(*rows))
  result = fit.fit_frontiers(table, options=fit.PowerLawOptions(irreducible="shared"))
  boot = fit.bootstrap_frontiers(table, result, num_samples=100, seed=1)
  assert boot.samples.a.shape == (100, 2)
  # shared E: each sample's E is the same for both groups (paired samples).
  np.testing.assert_array_equal(boot.for_group("modern").E, boot.for_group("lstm").E)
  assert np.nanstd(boot.for_group("lstm").alpha) > 0


def test_degenerate_input_fails_clearly():
  c = np.geomspace(1e13, 1e16, 10)
  loss = law_points(MODERN, c, 0.0, 0)
  with pytest.raises(fit.FitError, match="3 fit point.*need at least 4"):
    fit.fit_power_law(c[:3], loss[:3])
  with pytest.raises(fit.FitError, match="span 1 compute value"):
    fit.fit_power_law(np.full(10, 1e15), loss)
  with pytest.raises(fit.FitError, match="non-finite"):
    fit.fit_power_law(c, np.where(np.arange(10) == 3, np.nan, loss))
  with pytest.raises(fit.FitError, match="positive"):
    fit.fit_power_law(-c, loss)
  with pytest.raises(fit.FitError, match="at or below the fixed irreducible loss 5"):
    fit.fit_power_law(c, loss, options=fit.PowerLawOptions(irreducible=5.0))
  with pytest.raises(fit.FitError, match="irreducible 'maybe'"):
    fit.PowerLawOptions(irreducible="maybe")
  with pytest.raises(fit.FitError, match="need at least 6"):
    fit.fit_chinchilla([1e6, 2e6], [1e8, 2e8], [3.0, 2.9])


def test_loss_below_fitted_E_warns():
  c = np.geomspace(1e13, 1e17, 16)
  loss = law_points(laws.PowerLaw(500.0, -0.2, 3.0), c, 0.0, 0)
  loss[-1] = 2.5  # one bad point below the plateau: Huber ignores it, E stays above it
  with pytest.warns(fit.FitWarning, match="1 fit point.*below the fitted irreducible"):
    fit.fit_power_law(c, loss, options=fit.PowerLawOptions(huber_delta=1e-3))


def test_fits_leave_the_process_in_float32():
  fit.fit_power_law(COMPUTE, law_points(MODERN, COMPUTE, 0.0, 0))
  assert jnp.ones(1).dtype == jnp.float32
