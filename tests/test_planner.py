"""The study planner (algoprog.analysis.planner): its simulated runs realise the stated
laws, its power behaves like power (nominal false-positive rate, near 1 for large effects,
growing with seeds and decades), the cheapest-design choice, and laws and noise measured
from a table.

Simulated studies go through the real fit; each design shape compiles once per process,
so the power tests share two shapes (3 widths x 1 seed, 3 widths x 4 seeds) and cache
their results."""

import functools
import math

import numpy as np
import pytest

from algoprog.analysis import laws, planner, runs

REFERENCE = laws.PowerLaw(88.0, -0.094, 1.9)
NOISE = planner.Noise(seed=0.05, point=0.02)
SETTINGS = planner.SimulationSettings(bootstrap=50)
SIMULATIONS = 40


def assumptions(alpha_new: float) -> planner.Assumptions:
  return planner.Assumptions(
      (planner.GroupAssumption("ref", REFERENCE),
       planner.GroupAssumption("new", laws.PowerLaw(88.0, alpha_new, 1.9))), NOISE)


HYPOTHESIS = planner.Hypothesis("exponent_difference", "ref", "new")


@functools.lru_cache(maxsize=None)
def power(alpha_new: float, widths: tuple[int, ...], seeds: int) -> planner.DesignResult:
  return planner.evaluate_design(assumptions(alpha_new), HYPOTHESIS,
                                 planner.Design(widths, seeds, 20.0),
                                 simulations=SIMULATIONS, settings=SETTINGS)


def test_simulated_law_has_the_stated_frontier_and_optimum():
  chinchilla = planner.chinchilla_for_frontier(REFERENCE, 20.0)
  frontier = laws.chinchilla_frontier(chinchilla)
  np.testing.assert_allclose([frontier.a, frontier.alpha, frontier.E],
                             [REFERENCE.a, REFERENCE.alpha, REFERENCE.E], rtol=1e-12)
  n, d = laws.chinchilla_optimal_allocation(chinchilla, 1e18)
  assert d / n == pytest.approx(20.0)
  with pytest.raises(planner.PlanError, match="alpha"):
    planner.chinchilla_for_frontier(laws.PowerLaw(1.0, 0.1, 1.0), 20.0)


def test_closed_forms_follow_the_trainer():
  # docs/performance.md: width 32 and 256 at vocab 4096 have 168,096 and 17,838,336
  # parameters (norm gains, left out of the closed form, are < 0.1%).
  assert planner.params_for_width("transformer", 32, 4096) == pytest.approx(168_096, rel=1e-3)
  assert planner.params_for_width("transformer", 256, 4096) == pytest.approx(17_838_336,
                                                                             rel=1e-3)
  p = planner.params_for_width("lstm", 64, 4096)
  assert p == 8 * 64**2 + 4 * 64 + 4096 * 65
  assert planner.flops_per_token("lstm", 64) == 6 * p
  # 6N plus attention 12 * layers * L * d.
  assert planner.flops_per_token("transformer", 64, 4096, 128) == pytest.approx(
      6 * planner.params_for_width("transformer", 64, 4096) + 12 * 4 * 128 * 64)


def test_design_grid_rounds_dedupes_and_names_bad_fields():
  grid = planner.design_grid([3, 4], 32, [64, 256], [1, 2], [20])
  assert planner.Design((32, 48, 64), 1, 20.0) in grid
  assert planner.Design((32, 64, 128, 256), 2, 20.0) in grid
  assert planner.Design((32, 96, 256), 2, 20.0) in grid
  assert all(w % 16 == 0 for d in grid for w in d.widths)
  # 4 widths from 32 to 64 round to the 3 of the count-3 design: one design, not two.
  assert len(grid) == len(set(grid)) == 6
  with pytest.raises(planner.PlanError, match="^seeds"):
    planner.design_grid([3], 32, [64], [0], [20])
  with pytest.raises(planner.PlanError, match="^width_max 16"):
    planner.design_grid([3], 32, [16], [1], [20])


def test_simulated_table_has_every_run_and_its_costs():
  design = planner.Design((32, 64), 2, 20.0)
  a = assumptions(-0.1)
  table = planner.simulate_table(a, design, np.random.default_rng(0), SETTINGS)
  assert len(table.run_ids) == 2 * 2 * 2
  assert table.loss.size == 8 * SETTINGS.points_per_run
  flops = planner.design_flops(design, a)
  final = [table.compute[table.run_id == r][-1] for r in table.run_ids]
  assert sum(final) == pytest.approx(flops)
  assert planner.design_decades(design, a) == pytest.approx(
      math.log10(max(final) / min(final)))


def test_zero_effect_gives_the_nominal_false_positive_rate():
  result = power(-0.094, (32, 96, 256), 4)
  assert result.failed == 0
  # 1 - level = 0.05; 40 studies and a 50-refit bootstrap: a loose band.
  assert result.power <= 0.15
  assert result.coverage >= 0.8
  assert abs(result.mean_estimate) < 0.005


def test_large_effect_gives_power_near_one():
  assert power(-0.134, (32, 96, 256), 4).power >= 0.9


def test_power_grows_with_seeds_and_decades():
  one_seed = power(-0.104, (32, 96, 256), 1)
  four_seeds = power(-0.104, (32, 96, 256), 4)
  narrow = power(-0.104, (32, 48, 64), 4)
  assert four_seeds.power > one_seed.power + 0.2
  assert four_seeds.interval_width < one_seed.interval_width
  assert narrow.decades < 1.5 < 4 < four_seeds.decades
  assert four_seeds.power > narrow.power
  assert four_seeds.interval_width < narrow.interval_width


def test_ceg_hypothesis_tests_ln_ceg():
  a = planner.Assumptions((planner.GroupAssumption("ref", REFERENCE),
                           planner.GroupAssumption("new", REFERENCE._replace(a=0.9 * 88.0))),
                          NOISE)
  hypothesis = planner.Hypothesis("ceg", "ref", "new", 1e14)
  assert hypothesis.true_value(a) == pytest.approx((1 / 0.9)**(1 / 0.094))
  result = planner.evaluate_design(a, hypothesis, planner.Design((32, 96, 256), 4, 20.0),
                                   simulations=10, settings=SETTINGS)
  assert result.power >= 0.8
  assert abs(result.mean_estimate - math.log(hypothesis.true_value(a))) < 0.5
  with pytest.raises(planner.PlanError, match="compute"):
    planner.Hypothesis("ceg", "ref", "new")


def test_a_study_without_a_ceg_leaves_the_mean_and_width_of_the_others(monkeypatch):
  # A fitted study whose laws never meet has a NaN CEG: it must not turn the design's mean
  # estimate and interval width into NaN (it still counts as not excluding 1).
  outcomes = iter([planner.StudyOutcome(0.5, 0.2, 0.8, True, False),
                   planner.StudyOutcome(math.nan, math.nan, math.nan, False, False),
                   planner.StudyOutcome(0.7, 0.5, 1.1, True, False)])
  monkeypatch.setattr(planner, "simulate_table", lambda *args, **kwargs: None)
  monkeypatch.setattr(planner, "analyse_study", lambda *args, **kwargs: next(outcomes))
  result = planner.evaluate_design(assumptions(-0.1), HYPOTHESIS,
                                   planner.Design((32, 64), 1, 20.0), simulations=3)
  assert result.mean_estimate == pytest.approx(0.6)
  assert result.interval_width == pytest.approx(0.6)
  assert result.power == pytest.approx(2 / 3)


def _result(widths, seeds, power_, flops, coverage=0.95) -> planner.DesignResult:
  return planner.DesignResult(planner.Design(widths, seeds, 20.0), power_, -0.01, 0.01,
                              coverage, 0.0, 0.0, flops, 2.0, 10)


def test_cheapest_design_reaching_the_target_and_the_sentence():
  results = [_result((32, 64), 1, 0.5, 1e12), _result((32, 64), 4, 0.85, 4e12),
             _result((32, 128), 1, 0.81, 3e12), _result((32, 256), 4, 0.99, 9e13)]
  assert planner.cheapest(results).flops == 3e12
  assert planner.cheapest(results, 0.9).flops == 9e13
  assert planner.cheapest(results, 0.999) is None
  # A design that excludes zero through its bias (its intervals miss the truth) is skipped.
  biased = [_result((32, 48), 1, 0.95, 5e11, coverage=0.5)] + results
  assert planner.cheapest(biased).flops == 5e11
  assert planner.cheapest(biased, min_coverage=0.8).flops == 3e12
  chip = planner.Chip("h100", planner.hardware.ACCELERATORS["h100"], "bfloat16", 0.5)
  sentence = planner.requirement_sentence("the gap", results, chip=chip)
  assert sentence.startswith("to determine the gap you need widths 32-128 (2 widths), "
                             "1 seed, 20 tokens/param")
  assert "3e+12 training FLOPs" in sentence and "on one h100 at 50% MFU" in sentence
  missing = planner.requirement_sentence("the gap", results, target_power=0.999)
  assert "more than any planned design" in missing and "0.99" in missing
  table = planner.results_table(results, [chip])
  assert table.splitlines()[0].split()[:5] == ["widths", "seeds", "tok/param", "decades",
                                                "power"]
  assert len(table.splitlines()) == 5


def test_assumptions_from_a_table_recover_laws_and_seed_noise():
  truth = planner.Assumptions(
      (planner.GroupAssumption("ref", REFERENCE),
       planner.GroupAssumption("new", laws.PowerLaw(88.0, -0.11, 1.9))),
      planner.Noise(seed=0.03, point=0.0))
  table = planner.simulate_table(truth, planner.Design((32, 64, 128, 256), 4, 20.0),
                                 np.random.default_rng(1),
                                 planner.SimulationSettings(points_per_run=12))
  measured = planner.assumptions_from_table(table, kinds={})
  # Runs of one group with the same params and tokens differ only in seed.
  assert 0.015 < measured.noise.seed < 0.06
  assert "4 configuration" in measured.noise.source or "configuration" in measured.noise.source
  gap = measured.group("new").law.alpha - measured.group("ref").law.alpha
  assert gap == pytest.approx(-0.016, abs=0.01)
  assert measured.noise.point > 0
  stated = planner.assumptions_from_table(table, kinds={"new": "lstm"}, seed_noise=0.1,
                                          point_noise=0.0)
  assert stated.noise.seed == 0.1 and stated.group("new").kind == "lstm"


def test_parse_group_and_its_errors():
  g = planner.parse_group("lstm:a=36.3,alpha=-0.065,E=1.9,kind=lstm")
  assert g == planner.GroupAssumption("lstm", laws.PowerLaw(36.3, -0.065, 1.9), "lstm")
  for bad, match in (("lstm", "NAME:"), ("x:a=1,alpha=-0.1", "missing E"),
                     ("x:a=1,alpha=0.1,E=1", "alpha < 0"), ("x:a=1,alpha=-1,E=1,b=2", "'b=2'"),
                     ("x:a=one,alpha=-1,E=1", "numbers"),
                     ("x:a=1,alpha=-1,E=1,kind=rnn", "kind 'rnn'")):
    with pytest.raises(planner.PlanError, match=match):
      planner.parse_group(bad)


def test_past_fraction_keeps_points_after_warmup():
  table = runs.make_table(["a"] * 4 + ["b"] * 2, ["g"] * 6, [1, 2, 3, 4, 5, 6],
                          [5, 4, 3, 2, 2, 1], params=[1] * 6,
                          tokens=[1, 5, 10, 100, 40, 500])
  assert planner.past_fraction(table, 0.1).tolist() == [False, False, True, True,
                                                         False, True]


def test_kinds_from_a_folders_recorded_configs():
  import dataclasses
  table = runs.make_table(["a", "b", "c"], ["lstm", "modern", "odd"], [1, 2, 3], [3, 2, 1])
  info = lambda label, kind: {"label": label, "config": {"model": {"kind": kind}}}
  table = dataclasses.replace(table, run_info={
      "a": info("lstm", "lstm"), "b": info("modern", "transformer"),
      "c": info("odd", "plugin_rnn")})
  assert planner.kinds_from_runs(table) == {"lstm": "lstm", "modern": "transformer"}
