"""Fit diagnostics: each reason appears exactly when its condition holds."""

import numpy as np
import pytest

from algoprog.analysis import diagnostics, fit, laws, runs

COMPUTE = np.geomspace(1e12, 1e15, 12)


def table_of(groups: dict) -> runs.RunTable:
  """{group: (compute, loss)}: one single-point run per point."""
  rows = [(f"{g}{i}", g, c, l) for g, (cs, ls) in groups.items()
          for i, (c, l) in enumerate(zip(cs, ls))]
  return runs.make_table(*zip(*rows))


def loss_of(law, compute):
  return law.E + law.a * compute**law.alpha


def test_clean_fit_has_no_reasons_and_broken_ones_say_why():
  good = loss_of(laws.PowerLaw(88.0, -0.094, 1.9), COMPUTE)
  # No curvature at all (E = 0 truth): the fitted E runs to its lower bound.
  flat = loss_of(laws.PowerLaw(30.0, -0.05, 0.0), COMPUTE)
  short = loss_of(laws.PowerLaw(88.0, -0.094, 1.9), np.geomspace(1e12, 5e12, 6))
  table = table_of({"good": (COMPUTE, good), "flat": (COMPUTE, flat),
                    "short": (np.geomspace(1e12, 5e12, 6), short)})
  # Enough iterations for E to crawl to 0 (with the default cap the fit says it stopped).
  result = fit.fit_frontiers(table, frontier="all", options=fit.PowerLawOptions(max_iter=2000))
  reasons = diagnostics.fit_reasons(result)
  assert reasons["good"] == []
  assert len(reasons["flat"]) == 1
  assert reasons["flat"][0].startswith("E at a bound: fitted E at its lower bound 0")
  assert reasons["short"] == ["frontier span: 0.70 decades of compute (< 1)"]
  # A fixed E is not fitted, so never at a bound; the short span stays.
  fixed = fit.fit_frontiers(table, frontier="all", options=fit.PowerLawOptions(
      irreducible=0.5))
  assert diagnostics.fit_reasons(fixed)["flat"] == []
  assert diagnostics.fit_reasons(fixed)["short"] != []
  # Derived numbers of a pair are marked when either side has reasons.
  diags = diagnostics.diagnose(result)
  assert diagnostics.not_determined(diags, ["good"]) == ""
  text = diagnostics.not_determined(diags, ["good", "flat"])
  assert text.startswith("flat: E at a bound: fitted E at its lower bound")
  assert diagnostics.not_determined(diags, ["short", "flat"], short=True) == (
      "short: frontier span; flat: E at a bound")
  assert "unigram plateau (unigram entropy unknown)" in diags["good"].skipped


def test_capped_fit_names_the_group_that_had_not_converged():
  good = loss_of(laws.PowerLaw(88.0, -0.094, 1.9), COMPUTE)
  slow = loss_of(laws.PowerLaw(30.0, -0.2, 3.0), COMPUTE) * np.exp(
      0.01 * np.sin(np.arange(COMPUTE.size)))
  table = table_of({"good": (COMPUTE, good), "slow": (COMPUTE, slow)})
  options = fit.PowerLawOptions(max_iter=3)
  with pytest.warns(fit.FitWarning, match=r"max_iter=3 .*not converged: .*slow"):
    result = fit.fit_frontiers(table, frontier="all", options=options)
  assert "slow" in result.unconverged
  assert any(r.startswith("iteration cap: ") for r in diagnostics.fit_reasons(result)["slow"])


def test_seed_noise_from_replicates_and_lr_reasons():
  infos = [dict(label="m", width=16, learning_rate=1e-2, tokens_planned=100, stage="full",
                status="completed", seed=s, final_validation_loss=l)
           for s, l in ((1, 5.0), (2, 5.2))]
  infos += [dict(label="m", width=32, learning_rate=1e-2, tokens_planned=200, stage="full",
                 status="completed", seed=s, final_validation_loss=l)
            for s, l in ((1, 4.0), (2, 4.1), (3, None))]
  noise = diagnostics.seed_noise(infos)
  assert noise.configurations == 2
  assert noise.value == pytest.approx(np.median([np.std([5.0, 5.2], ddof=1),
                                                 np.std([4.0, 4.1], ddof=1)]))
  assert diagnostics.seed_noise(infos[:1]).value == diagnostics.DEFAULT_SEED_NOISE
  choices = {
      "m/16": {"chosen_learning_rate": 0.01, "chosen_at_grid_edge": False,
               "margin_to_next_best": 0.5},
      "m/32": {"chosen_learning_rate": 0.03, "chosen_at_grid_edge": True,
               "margin_to_next_best": 0.5},
      "lstm/16": {"chosen_learning_rate": 0.1, "chosen_at_grid_edge": False,
                  "margin_to_next_best": 0.1},
  }
  reasons = diagnostics.lr_reasons(choices, noise)  # noise ~0.106: 2x is 0.21 nats
  assert reasons["m"] == ["LR at grid edge: 0.03 at the edge of the sweep grid (m/32)"]
  assert len(reasons["lstm"]) == 1
  assert reasons["lstm"][0].startswith("LR within seed noise: the choice at lstm/16 won by 0.100")
  assert diagnostics.lr_reasons(choices, diagnostics.SeedNoise(0.01, 1))["lstm"] == []


def test_plateau_runs_with_fit_points_are_named():
  # Two curves; run "stuck" ends at 6.25, less than 0.1 below the unigram entropy 6.3.
  table = runs.make_table(
      ["stuck"] * 4 + ["fine"] * 4, ["g"] * 8,
      [1e10, 2e10, 4e10, 8e10, 5e10, 1e11, 1e12, 1e13],
      [7.0, 6.5, 6.3, 6.25, 6.4, 5.5, 4.5, 4.0])
  result = fit.fit_frontiers(table, options=fit.PowerLawOptions(irreducible=1.0))
  (reason,) = diagnostics.plateau_reasons(table, result, 6.3)["g"]
  assert reason.startswith("unigram plateau: 1 run(s)") and reason.endswith("(stuck)")
  # A run ending above the plateau never left it either; one 0.15 below it did.
  assert diagnostics.plateau_reasons(table, result, 6.0)["g"] != []
  assert diagnostics.plateau_reasons(table, result, 6.4)["g"] == []
  tokens = np.array([0, 0, 1, 1])
  assert diagnostics.unigram_entropy(tokens) == pytest.approx(np.log(2))


def test_zero_width_intervals():
  assert diagnostics.zero_width(1.5, 1.5)
  assert diagnostics.zero_width(7.28e-24, 7.28e-24 * (1 + 1e-12))
  assert not diagnostics.zero_width(1.5, 1.6)
  assert not diagnostics.zero_width(float("nan"), float("nan"))
  assert not diagnostics.zero_width(None, None)
