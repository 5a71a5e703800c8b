"""Algorithmic-progress accounting: the study's headlines from its published constants, the
closed forms against numerics, and the properties the accounting must keep."""

import dataclasses
import json
import math
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest
from scipy import optimize

from algoprog.analysis import account, laws
from algoprog.training import config as config_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "account_study.py"


def _config():
  return config_lib.load_config_file(CONFIG)


@pytest.fixture(scope="module")
def config_dict():
  return _config().to_dict()


@pytest.fixture(scope="module")
def study(config_dict):
  return account.study_from_dict(config_dict)


def _f(x) -> float:
  return float(np.asarray(x))


# ----------------------------------------------------------------------------------------
# Kaplan -> Chinchilla multiplier.


@pytest.mark.parametrize("compute, published", [(1e18, 1.07), (1.34e22, 3.71),
                                                (2.26e23, 9.84), (1e24, 17.6)])
def test_chinchilla_multiplier_reproduces_published_values(study, compute, published):
  m = _f(account.chinchilla_multiplier(study.chinchilla, study.kaplan, compute))
  digits = 2 if published < 10 else 1
  assert round(m, digits) == published


def test_chinchilla_multiplier_closed_form_matches_numeric_minimisation(study):
  law, kaplan = study.chinchilla, study.kaplan

  def best_loss(compute):  # min over N of L(N, C/(6N)), numerically.
    res = optimize.minimize_scalar(
        lambda log_n: law.A * np.exp(-law.alpha * log_n) + law.B * (
            compute / (6 * np.exp(log_n))) ** -law.beta, bounds=(0, 80), method="bounded",
        options={"xatol": 1e-10})
    return res.fun

  for compute in (1e16, 1e20, 1e24):
    n = kaplan.coefficient * compute ** kaplan.exponent
    target = law.A * n ** -law.alpha + law.B * (compute / (6 * n)) ** -law.beta
    log_needed = optimize.brentq(lambda lc: best_loss(math.exp(lc)) - target,
                                 math.log(compute) - 20, math.log(compute) + 1, xtol=1e-12)
    with jax.enable_x64(True):
      closed = _f(account.chinchilla_multiplier(law, kaplan, compute))
    assert closed == pytest.approx(compute / math.exp(log_needed), rel=1e-6)


def test_chinchilla_multiplier_is_at_least_one_and_touches_one(study):
  with jax.enable_x64(True):
    m = np.asarray(account.chinchilla_multiplier(study.chinchilla, study.kaplan,
                                                 np.logspace(12, 26, 2001)))
  assert m.min() >= 1 - 1e-9
  assert m.min() == pytest.approx(1.0, abs=1e-4)  # Kaplan's allocation is optimal once.


# ----------------------------------------------------------------------------------------
# Gains, normalisation, decomposition.


def test_law_gain_matches_closed_form(study):
  lstm, retro = study.laws["lstm"], study.laws["retro"]
  for compute in (1e15, 1e20, 1e24):
    expected = (retro.a / lstm.a) ** (1 / lstm.alpha) * compute ** (retro.alpha / lstm.alpha
                                                                    - 1)
    got = _f(account.gain_at(account.LawGain(lstm, retro), compute))
    assert got == pytest.approx(expected, rel=1e-4)


def test_modern_vs_lstm_at_loss_matches_published(study):
  lstm, modern = study.laws["lstm"], study.laws["modern"]
  at = lambda reducible: _f(laws.compute_equivalent_gain_at_loss(lstm, modern,
                                                                 1.9 + reducible))
  assert round(at(3.38), 1) == 6.3
  assert round(at(2.5)) in (26, 27)  # published "~26x": 26.5


def test_interaction_normalisation_makes_product_equal_measured_total(study):
  k = _f(account.study_interaction_exponent(study))
  assert round(k, 3) == 0.224
  product = math.prod(study.ablations[n] for n in study.interaction.components)
  assert round(product, 2) == 3.57
  assert math.prod(study.ablations[n] ** k for n in study.interaction.components) == (
      pytest.approx(1.33, rel=1e-6))


def test_only_ablation_innovations_are_normalised(study):
  raw = dataclasses.replace(study, interaction=study.interaction._replace(normalise=False))
  normalised = {i.name: i for i in account.resolve(study)}
  for spec, unnormalised in zip(raw.innovations, account.resolve(raw)):
    same = _f(account.gain_at(normalised[spec.name].gain, 1e20)) == pytest.approx(
        _f(account.gain_at(unnormalised.gain, 1e20)), rel=1e-6)
    assert same == (spec.kind != "ablation"), spec.name


def test_decomposition_is_consistent(study):
  innovations = account.active(account.resolve(study), 2023)
  d = account.decompose(innovations, 1e21)
  product = math.prod(_f(m) for m in d.components.values())
  assert _f(d.total) == pytest.approx(product, rel=1e-5)
  assert _f(d.scale_dependent) * _f(d.scale_invariant) == pytest.approx(_f(d.total),
                                                                        rel=1e-5)
  assert sum(_f(s) for s in d.log_shares.values()) == pytest.approx(1.0, abs=1e-6)
  dependent = sum(_f(d.log_shares[i.name]) for i in innovations if i.scale_dependent)
  assert _f(d.scale_dependent_share) == pytest.approx(dependent, abs=1e-6)


# ----------------------------------------------------------------------------------------
# The study's headlines.


def test_frontier_trend_gives_the_study_computes(study):
  assert round(_f(account.frontier_compute(study.trend, 2023)) / 1e22, 2) == 1.34
  assert round(_f(account.frontier_compute(study.trend, 2025)) / 1e23, 2) == 2.26


def test_headline_2023(study):
  h = account.headline(study, 2023)
  d = h.decomposition
  assert round(_f(d.total)) == 6926
  assert round(_f(d.components["kaplan_transformer"])) == 726
  assert round(_f(d.components["chinchilla"]), 2) == 3.71
  assert round(_f(d.scale_invariant), 2) == 2.57
  assert round(100 * _f(d.scale_dependent_share)) == 89
  assert round(_f(h.annual_growth), 2) == 2.23  # over 2012-2023, 11 years.


def test_headline_2025(study):
  d = account.headline(study, 2025).decomposition
  assert round(_f(d.total), -2) == 21400
  # Published ~846x; the constants give 848.3x (documented in docs/account.md).
  assert _f(d.components["kaplan_transformer"]) == pytest.approx(846, rel=0.005)
  # Published 9.84x is M at the rounded 2.26e23; the trend's 2.2563e23 gives 9.831.
  assert _f(d.components["chinchilla"]) == pytest.approx(9.84, rel=0.001)
  assert round(100 * _f(d.scale_dependent_share)) == 91


def test_fixed_1e18_gives_155x(study):
  d = account.headline(study, 2023, compute=1e18).decomposition
  assert round(_f(d.total)) == 155


def test_total_does_not_depend_on_the_chinchilla_law_only_its_split(study):
  # LSTM -> Kaplan is CEG(lstm -> retro) / M, so M cancels in the total.
  moved = account.with_value(study, "chinchilla.beta", 0.25)
  base, other = (account.headline(s, 2023).decomposition for s in (study, moved))
  assert _f(other.total) == pytest.approx(_f(base.total), rel=1e-5)
  assert _f(other.components["chinchilla"]) > 1.5 * _f(base.components["chinchilla"])


# ----------------------------------------------------------------------------------------
# By year, fixed compute, references.


def test_progress_by_year_at_frontier_and_fixed_compute(study):
  innovations = account.resolve(study)
  years = list(range(2012, 2026))
  frontier = account.progress_by_year(innovations, years, 2012, trend=study.trend)
  fixed = account.progress_by_year(innovations, years, 2012, compute=1e18)
  t = years.index(2023)
  assert np.all(np.asarray(frontier.total)[:years.index(2017)] == 1.0)
  assert _f(frontier.total[t]) == pytest.approx(
      _f(account.headline(study, 2023).decomposition.total), rel=1e-5)
  assert round(_f(frontier.annual_growth[t]), 2) == 2.23
  assert math.isnan(_f(frontier.annual_growth[0]))
  assert round(_f(fixed.total[t])) == 155
  assert np.all(np.diff(np.asarray(fixed.total)) >= 0)  # gains at fixed compute only add.
  with pytest.raises(account.AccountError, match="exactly one"):
    account.progress_by_year(innovations, years, 2012)


def test_reference_dependence(study):
  total = {r.name: _f(account.headline(study, 2023, reference=r.name).decomposition.total)
           for r in study.references}
  d = account.headline(study, 2023).decomposition
  assert total["lstm"] == pytest.approx(_f(d.total), rel=1e-6)
  assert total["kaplan"] == pytest.approx(
      _f(d.components["chinchilla"]) * _f(d.scale_invariant), rel=1e-5)
  assert total["modern_dense"] == pytest.approx(2.0)  # only the MoE is left.
  with pytest.raises(account.AccountError, match="reference: unknown reference 'gpt'"):
    account.headline(study, 2023, reference="gpt")


# ----------------------------------------------------------------------------------------
# Uncertainty and sensitivity.


def _bootstrap(study, n=64, sd=0.002, seed=0):
  rng = np.random.default_rng(seed)
  return {label: laws.PowerLaw(np.full(n, law.a), law.alpha + sd * rng.standard_normal(n),
                               np.full(n, law.E))
          for label, law in study.laws.items() if label in ("lstm", "retro")}


def test_samples_propagate_through_the_whole_accounting(study):
  samples = _bootstrap(study)
  sampled = account.with_samples(study, samples)
  point = _f(account.headline(study, 2023).decomposition.total)
  totals = np.asarray(account.headline(sampled, 2023).decomposition.total)
  assert totals.shape == (64,)
  ci = laws.interval(point, totals, 0.95)
  assert ci.lower < point < ci.upper
  # Sample i is exactly the accounting of the study with sample i's laws.
  for i in (0, 17):
    one = account.with_value(
        account.with_value(study, "laws.lstm", laws.PowerLaw(*(v[i] for v in samples["lstm"]))),
        "laws.retro", laws.PowerLaw(*(v[i] for v in samples["retro"])))
    assert totals[i] == pytest.approx(_f(account.headline(one, 2023).decomposition.total),
                                      rel=1e-4)


def test_zero_spread_samples_reproduce_the_point_and_nan_samples_are_ignored(study):
  samples = _bootstrap(study, n=8, sd=0.0)
  samples["lstm"] = samples["lstm"]._replace(alpha=np.where(np.arange(8) == 3, np.nan,
                                                            samples["lstm"].alpha))
  sampled = account.with_samples(study, samples, {"swiglu_vs_gelu": np.full(8, 1.17)})
  totals = np.asarray(account.headline(sampled, 2023).decomposition.total)
  assert np.isnan(totals[3])
  ci = laws.interval(6926.33, totals)
  assert ci.lower == pytest.approx(6926.33, rel=1e-4)
  assert ci.upper == pytest.approx(6926.33, rel=1e-4)


def test_sample_lengths_must_agree(study):
  samples = _bootstrap(study, n=8)
  with pytest.raises(account.AccountError, match="same length"):
    account.with_samples(study, samples, {"swiglu_vs_gelu": np.ones(5)})
  with pytest.raises(account.AccountError, match="bootstrap.gpt: unknown law label"):
    account.with_samples(study, {"gpt": samples["lstm"]})


def test_sensitivity_table(study):
  total = lambda s: account.headline(s, 2023).decomposition.total
  rows = account.sensitivity(study, total, {"laws.retro.alpha": (-0.096, -0.086),
                                            "trend.growth_per_year": (3.5, 4.7),
                                            "chinchilla.alpha": (0.30, 0.38)})
  assert [r.parameter for r in rows] == ["laws.retro.alpha", "trend.growth_per_year",
                                         "chinchilla.alpha"]
  retro = rows[0]
  assert retro.base == pytest.approx(6926.3, rel=1e-4) and retro.base_value == -0.091
  assert retro.at_low > retro.base > retro.at_high  # steeper Transformer exponent, more gain.
  assert rows[2].at_low == pytest.approx(rows[2].base, rel=1e-5)
  with pytest.raises(account.AccountError, match="laws.gpt.alpha: no input named 'gpt'"):
    account.get_value(study, "laws.gpt.alpha")


# ----------------------------------------------------------------------------------------
# Plain-data inputs: configs and the JSON law format.


def test_fitted_laws_json_round_trip(study):
  samples = _bootstrap(study, n=5)
  samples["lstm"] = samples["lstm"]._replace(E=np.array([1.9, np.nan, 1.9, 1.9, 1.9]))
  data = account.fitted_laws_to_dict({"lstm": study.laws["lstm"], "retro": study.laws["retro"]},
                                     samples, {"moe": 2.0}, {"moe": [1.9, 2.0, 2.1, 2.0, 2.0]})
  text = json.dumps(data)
  assert "NaN" not in text and "null" in text
  fitted = account.fitted_laws_from_dict(json.loads(text))
  point, sampled = account.with_fitted_laws(study, fitted)
  assert _f(account.headline(point, 2023).decomposition.total) == pytest.approx(6926.3,
                                                                               rel=1e-4)
  totals = np.asarray(account.headline(sampled, 2023).decomposition.total)
  assert totals.shape == (5,) and np.isnan(totals[1]) and np.isfinite(totals[0])


def test_fitted_laws_from_fit_results(study):
  class FakeFit:  # the attributes of algoprog.analysis.fit.PowerLawFit / PowerLawBootstrap we use.
    groups = ("lstm", "retro")

    def __init__(self, table):
      self.table = table

    def for_group(self, group):
      return self.table[group]

  samples = _bootstrap(study, n=4)
  fitted = account.fitted_laws_from_fit(FakeFit({g: study.laws[g] for g in FakeFit.groups}),
                                        FakeFit(samples))
  _, sampled = account.with_fitted_laws(study, fitted)
  assert np.asarray(account.headline(sampled, 2023).decomposition.total).shape == (4,)


@pytest.mark.parametrize("data, message", [
    ({"laws": {"lstm": {"a": 36.3, "alpha": 0.065, "E": 1.9}}},
     "laws.lstm.alpha: expected a negative exponent"),
    ({"laws": {"lstm": {"a": 36.3, "E": 1.9}}}, "laws.lstm.alpha: missing"),
    ({"laws": {"lstm": {"a": "big", "alpha": -0.06, "E": 1.9}}},
     "laws.lstm.a: expected a finite number"),
    ({"laws": {}, "bootstrap": {"lstm": {}}}, "bootstrap.lstm: no point law"),
    ({"laws": {"lstm": {"a": 1, "alpha": -0.1, "E": 1}},
      "bootstrap": {"lstm": {"a": [1], "alpha": "x", "E": [1]}}},
     "bootstrap.lstm.alpha: expected a non-empty list of numbers"),
    ({"law": {}}, "unknown key"),
    ([1, 2], "laws JSON: expected a mapping"),
])
def test_malformed_law_json_is_a_one_line_error(data, message):
  with pytest.raises(account.AccountError, match=message) as error:
    account.fitted_laws_from_dict(data)
  assert "\n" not in str(error.value)


@pytest.mark.parametrize("path, value, message", [
    (("innovations", "kaplan_transformer", "reference"), "gru",
     "innovations.kaplan_transformer.reference: unknown law 'gru'"),
    (("innovations", "moe", "ceg"), -2.0, "innovations.moe.ceg: expected a number > 0"),
    (("ablations", "swiglu_vs_gelu"), -1.17, "ablations.swiglu_vs_gelu: expected a number > 0"),
    (("innovations", "rotary", "year"), 1999,
     r"innovations.rotary.year: expected an integer year in \[2013, 2100\]"),
    (("innovations", "rotary", "kind"), "magic", "innovations.rotary.kind: expected one of"),
    (("innovations", "rotary", "ablation"), "rotary_vs_nothing",
     "innovations.rotary.ablation: unknown ablation 'rotary_vs_nothing'"),
    (("innovations", "rotary", "ablation"), "rotary_vs_learned //", "expected ablation names"),
    (("references", "kaplan", "includes"), "transformer",
     "references.kaplan.includes: unknown innovation 'transformer'"),
    (("interaction", "components"), "swiglu_vs_gelu,nope",
     "interaction.components: unknown ablation 'nope'"),
    (("trend", "growth_per_year"), 0.0, "trend.growth_per_year: expected a number > 0"),
])
def test_bad_study_inputs_are_one_line_errors(config_dict, path, value, message):
  bad = json.loads(json.dumps(config_dict))
  node = bad
  for key in path[:-1]:
    node = node[key]
  node[path[-1]] = value
  with pytest.raises(account.AccountError, match=message) as error:
    account.study_from_dict(bad)
  assert "\n" not in str(error.value)


def test_query_year_out_of_range(study):
  with pytest.raises(account.AccountError, match=r"year: expected an integer year in \[2012"):
    account.headline(study, 2005)


# ----------------------------------------------------------------------------------------
# The command.


def test_launcher_writes_tables_and_figures(tmp_path, study):
  samples = _bootstrap(study, n=16)
  laws_json = tmp_path / "fits.json"
  laws_json.write_text(json.dumps(account.fitted_laws_to_dict(
      {g: study.laws[g] for g in samples}, samples)))
  out = tmp_path / "out"
  # A subprocess: the launcher defines absl flags, which one process can define only once.
  result = subprocess.run(
      [sys.executable, "-m", "launch.account", f"--config={CONFIG}", f"--out={out}",
       f"--config.laws_json={laws_json}",
       "--config.figure_formats=('png',)"],  # SVG is tested below; each format costs seconds.
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "6,926x [" in result.stdout  # the 2023 total with its interval.
  for name in ("innovation_bars", "gains_vs_compute", "progress_by_year",
               "reference_dependence", "kaplan_vs_chinchilla", "sensitivity_total"):
    assert (out / f"{name}.png").stat().st_size > 10_000
  summary = json.loads((out / "summary.json").read_text())
  first = summary["headline"][0]
  assert first["year"] == 2023 and round(first["total"]) == 6926
  assert first["total_lower"] < first["total"] < first["total_upper"]
  assert (out / "headline.csv").read_text().startswith("year,where,compute,total,")


def test_figures_save_as_png_and_svg(tmp_path, study):
  from algoprog.analysis import plots
  figure = plots.innovation_bars(account.active(account.resolve(study), 2023),
                                 account.headline(study, 2023).decomposition)
  png, svg = plots.save_figure(figure, tmp_path / "bars")
  assert png.read_bytes()[:4] == b"\x89PNG"
  assert svg.read_text().lstrip().startswith("<?xml")


def test_command_line_error_is_one_line(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "launch.account", f"--config={CONFIG}",
       f"--out={tmp_path}", "--config.innovations.moe.ceg=-1"],
      cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode != 0
  assert result.stderr.strip().splitlines()[-1] == (
      "error: innovations.moe.ceg: expected a number > 0, got -1.0")
