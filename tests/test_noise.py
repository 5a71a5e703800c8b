"""Seed noise with its chi-square interval, ablation CEG from seed pairs, and the smallest
detectable CEG, on synthetic truth."""

import json
import math

import numpy as np
import pytest

from algoprog.analysis import noise, runs


def test_chi_square_interval_widths_and_coverage():
  lo, hi = noise.chi_square_factors(1)
  assert lo == pytest.approx(0.446, abs=1e-3) and hi == pytest.approx(31.9, abs=0.1)
  rng = np.random.default_rng(0)
  sigma, hits = 0.05, []
  for _ in range(400):  # 5 configurations x 2 seeds: 5 dof
    s = noise.pooled_seed_noise({k: 4 + sigma * rng.normal(size=2) for k in range(5)},
                                level=0.9)
    hits.append(s.lower <= sigma <= s.upper)
    assert s.dof == 5 and s.configurations == 5 and s.seeds == (2, 2)
  assert 0.82 <= np.mean(hits) <= 0.96, np.mean(hits)  # exact: 0.90 (binomial SE 0.015)
  assert "5 dof from 5 configuration(s) of 2 seeds" in s.summary()


def test_seed_noise_from_run_records():
  infos = [{"label": "m", "width": 32, "learning_rate": 1e-3, "tokens_planned": 1,
            "stage": "full", "status": "completed", "seed": s, "final_validation_loss": v}
           for s, v in ((1, 4.0), (2, 4.2), (3, 4.1))]
  infos.append({**infos[0], "width": 64, "final_validation_loss": 3.0})  # one seed: no dof
  infos.append({**infos[0], "seed": 9, "status": "failed"})
  s = noise.seed_noise_from_runs(infos)
  assert s.dof == 2 and s.sd == pytest.approx(0.1)
  none = noise.seed_noise_from_runs(infos[3:])
  assert math.isnan(none.sd) and "not measured" in none.summary()
  json.dumps(none.to_json())


def ablation_table(gain, seeds, sigma, rng):
  """base and ablated curves L = 2 + 30 C**-0.1 (plus a per-run vertical offset of `sigma`
  nats); the ablated model needs `gain` x the compute for every loss."""
  rows = []
  c = np.geomspace(1e12, 1e15, 40)
  for s in range(seeds):
    for group, factor in (("base", 1.0), ("ablated", gain)):
      loss = 2 + 30 * (c / factor)**-0.1 + sigma * rng.normal()
      rows += [(f"{group}_s{s}", group, ci, li) for ci, li in zip(c, loss)]
  return runs.make_table(*zip(*rows))


def test_ablation_ceg_from_seed_pairs():
  rng = np.random.default_rng(1)
  exact = noise.ablation_ceg(ablation_table(1.5, 2, 0.0, rng), "base", "ablated", 3.2,
                             seeds={f"{g}_s{s}": s for g in ("base", "ablated")
                                    for s in range(2)})
  assert exact.ceg == pytest.approx(1.5, rel=1e-3) and exact.pairs == 2
  assert "t = 12.7 with 2 seeds" in exact.summary()
  # Noisy seeds: the seed-noise interval covers the truth at about the nominal rate, and
  # the smallest detectable CEG follows (z + z_power) sd / sqrt(n).
  sigma = 0.01
  known = noise.SeedNoiseInterval(sigma, sigma * 0.7, sigma * 1.6, 20, 20, (2, 2), 0.95)
  hits = []
  for _ in range(40):
    table = ablation_table(1.5, 2, sigma, rng)
    seeds = {r: r.rsplit("_s", 1)[1] for r in table.run_ids}
    a = noise.ablation_ceg(table, "base", "ablated", 3.2, noise=known, seeds=seeds)
    hits.append(a.noise_lower <= 1.5 <= a.noise_upper)
    assert a.paired_lower < a.ceg < a.paired_upper
  assert np.mean(hits) >= 0.8
  unit = math.sqrt(1 / a.slope_base**2 + 1 / a.slope_ablated**2)
  z = 1.959964 + 0.841621
  assert a.detectable_ceg == pytest.approx(math.exp(z * sigma * unit / math.sqrt(2)), rel=1e-4)
  assert a.detectable_ceg_conservative > a.detectable_ceg > 1
  json.dumps(a.to_json())


def test_unreached_targets_are_named():
  rng = np.random.default_rng(2)
  table = ablation_table(1.5, 2, 0.0, rng)
  seeds = {r: r.rsplit("_s", 1)[1] for r in table.run_ids}
  with pytest.raises(noise.ceg.TargetNotReached, match="base vs ablated: no seed pair"):
    noise.ablation_ceg(table, "base", "ablated", 1.0, seeds=seeds)


def test_a_run_that_never_reaches_the_target_gives_a_bound():
  rng = np.random.default_rng(3)
  table = ablation_table(1.5, 2, 0.0, rng)
  # Cut the ablated seed-1 run before it reaches loss 3.2: the CEG becomes a lower bound.
  cut = ~((table.run_id == "ablated_s1") & (table.loss < 3.3))
  short = table.select(cut)
  seeds = {r: r.rsplit("_s", 1)[1] for r in short.run_ids}
  a = noise.ablation_ceg(short, "base", "ablated", 3.2, seeds=seeds)
  assert a.bound == "lower" and a.ceg < 1.5 and a.pair_cegs[0] == pytest.approx(1.5, rel=1e-3)
  assert a.summary().startswith("base over ablated at loss 3.2: CEG >= ")
  assert "ablated_s1" in a.summary() and math.isnan(a.paired_lower)
  json.dumps(a.to_json())
  with pytest.raises(ValueError, match="share seed 0"):
    noise.ablation_ceg(table, "base", "ablated", 3.2, seeds={r: 0 for r in table.run_ids})
