"""The uncertainty methods wired into analyse_scaling, launch.fit's text and the report:
E-profile bands instead of "not determined", plateau points excluded and listed, the
raw-scale and rollout sections, the seed-noise interval, the planner's sentences."""

import dataclasses
import json
import os

import numpy as np
import pytest

from algoprog import rundir
from algoprog.analysis import diagnostics, laws, report, scaling
from algoprog.training import config as config_lib

import synthetic_study

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def at_bound():
  """Two groups on pure power laws (true E = 0): the shared E fit runs to its lower bound."""
  table = synthetic_study.study({"lstm": laws.PowerLaw(36.3, -0.065, 0.0),
                                 "modern": laws.PowerLaw(88.0, -0.094, 0.0)},
                                np.geomspace(1e13, 1e16, 5), 0.005, 0)
  options = scaling.ScalingOptions(
      reference="lstm", irreducible="shared", bootstrap=30, frontier="final",
      computes=(1e15,), e_profile="at_bound", e_profile_samples=30, raw_scale=True,
      raw_scale_samples=30, rollout=True, rollout_samples=10)
  evidence = scaling.Evidence(None, diagnostics.seed_noise(table.run_info.values()))
  return table, options, scaling.analyse_scaling(table, table.groups, options, evidence)


def test_e_at_a_bound_shows_the_profile_band_and_verdict_not_not_determined(at_bound):
  table, _, analysis = at_bound
  assert all(any(r.startswith("E at a bound") for r in d.reasons)
             for d in analysis.main.diagnostics.values())
  assert analysis.e_profile is not None
  text = report.fit_text(analysis, table, "envelope")
  assert "not determined:" not in text
  assert "E profile: " in text and "over the plausible E" in text
  assert "modern beats lstm at 1e+15 FLOPs for every plausible E" in text
  numbers = analysis.to_json()
  assert numbers["e_profile"]["derived"][1]["verdict"].startswith("modern beats lstm")
  # The numbers that existed keep their values and their reasons: only the text changes.
  (row,) = [r for r in numbers["ceg"] if r["quantity"] == "ceg_at_compute"]
  assert row["not_determined"].startswith("modern: E at a bound")


def test_raw_scale_rollout_and_seed_noise_sections_present(at_bound):
  table, _, analysis = at_bound
  text = report.fit_text(analysis, table, "envelope")
  assert "scale dependence without a law" in text and "d ln CEG / d ln C" in text
  assert "rollout (largest size(s) held out" in text and "curvature t" in text
  (raw,) = analysis.raw_scale
  assert raw.slope.estimate > 0  # modern's exponent is steeper: its gain grows
  assert {g.group for g in analysis.rollout.groups} == {"lstm", "modern"}
  assert len(analysis.curvature) == 2
  json.dumps(analysis.to_json(), default=float)  # every section serialises


def test_off_by_default_and_the_existing_numbers_do_not_move(at_bound):
  table, options, analysis = at_bound
  plain = scaling.analyse_scaling(
      table, table.groups, scaling.ScalingOptions(
          reference="lstm", irreducible="shared", bootstrap=30, frontier="final",
          computes=(1e15,)), analysis.evidence)
  assert plain.e_profile is None and not plain.raw_scale and plain.rollout is None
  for key in ("ceg", "laws", "exponent_pairs", "diagnostics"):  # (NaN != NaN: as JSON)
    assert (json.dumps(rundir.json_safe(plain.to_json()[key]))
            == json.dumps(rundir.json_safe(analysis.to_json()[key]))), key
  assert "not determined: modern: E at a bound" in report.fit_text(plain, table, "envelope")


def test_plateau_points_are_excluded_and_listed_not_fatal():
  table = synthetic_study.study({"lstm": synthetic_study.LSTM,
                                 "modern": synthetic_study.MODERN},
                                np.geomspace(1e13, 1e17, 6), 0.005, 0, num_points=10)
  entropy = 7.0  # the early points of every run lie above it
  options = scaling.ScalingOptions(reference="lstm", bootstrap=0, frontier="all",
                                   computes=(1e15,), exclude_plateau=True)
  evidence = scaling.Evidence(None, diagnostics.seed_noise(table.run_info.values()), entropy)
  analysis = scaling.analyse_scaling(table, table.groups, options, evidence)
  excluded = analysis.plateau.rows()
  assert excluded and all(r["reason"].startswith("unigram plateau") for r in excluded)
  assert sum(r["points"] for r in excluded) == int((table.loss > entropy - 0.1).sum())
  # Nothing on the plateau is fitted, and no group is vetoed for it.
  for g in range(len(analysis.fit.groups)):
    on = analysis.fit.points_weight[g] > 0
    assert (analysis.fit.points_loss[g][on] <= entropy - 0.1).all()
  assert not any(r.startswith("unigram plateau") for d in analysis.main.diagnostics.values()
                 for r in d.reasons)
  text = report.fit_text(analysis, table, "envelope")
  assert "excluded points on the unigram plateau" in text
  # Without the option, the old diagnostic still vetoes the groups.
  old = scaling.analyse_scaling(table, table.groups,
                                dataclasses.replace(options, exclude_plateau=False), evidence)
  assert any(r.startswith("unigram plateau") for d in old.main.diagnostics.values()
             for r in d.reasons)


def test_a_group_with_too_little_below_the_plateau_keeps_its_points_and_is_marked():
  table = synthetic_study.study({"lstm": synthetic_study.LSTM,
                                 "modern": synthetic_study.MODERN},
                                np.geomspace(1e13, 1e17, 6), 0.005, 0)
  options = scaling.ScalingOptions(reference="lstm", bootstrap=0, frontier="final",
                                   exclude_plateau=True)
  evidence = scaling.Evidence(None, diagnostics.seed_noise(table.run_info.values()), 4.0)
  analysis = scaling.analyse_scaling(table, table.groups, options, evidence)
  lstm = analysis.main.diagnostics["lstm"]
  assert any(r.startswith("unigram plateau: too little") for r in lstm.reasons)
  assert not [r for r in analysis.plateau.rows() if r["group"] == "lstm"]


def test_report_renders_profile_bands_and_new_sections(at_bound):
  _, _, analysis = at_bound
  config = config_lib.load_config_file(os.path.join(ROOT, "configs", "reproduce_cpu.py"))
  config.analysis.irreducible, config.analysis.sensitivity_irreducible = "fit", ""
  with open(os.path.join(ROOT, "tests", "data", "cpu_summary_2026_12_02.json")) as f:
    summary = json.load(f)
  s = summary["scaling"]
  at_zero = "E at a bound: fitted E at its lower bound 0 (E=7.3e-24)"
  s["diagnostics"] = {g: {"group": g, "reasons": [at_zero] if g == "retro" else [],
                          "skipped": []} for g in s["groups"]}
  for row in s["ceg"]:
    row["not_determined"] = "retro: " + at_zero if row["group"] == "retro" else ""
  numbers = analysis.to_json()
  profile = numbers["e_profile"]
  # The synthetic profile's numbers, relabelled as retro over the study's reference lstm.
  for d in profile["derived"]:
    d["group"], d["at"] = "retro", 3.51e10 if d["quantity"] == "ceg_at_compute" else None
  s.update({k: numbers[k] for k in ("e_profile", "raw_scale", "rollout", "curvature",
                                    "seed_noise_interval")})
  s["plateau"] = {"excluded": [{"run_id": "lstm_w16", "group": "lstm", "points": 3,
                                "reason": "unigram plateau: loss above 7"}]}
  s["requirements"] = ["to determine the exponent difference you need widths 32-512"]
  text = report.report_markdown(config, summary)
  assert "| retro | 3.51e+10 | E profile: " in text
  assert "| retro | 3.51e+10 | not determined" not in text  # (other computes: no profile)
  assert "### E profile" in text and "## Scale dependence without a law" in text
  assert "## Rollout: the largest runs predicted from the rest" in text
  assert "## Excluded points (unigram plateau, not fitted)" in text
  assert "| lstm_w16 | lstm | 3 | unigram plateau: loss above 7 |" in text
  assert "## What it would take to determine the rest" in text
  assert "- To determine the exponent difference you need widths 32-512." in text


def test_planner_sentence_or_stated_assumptions_for_undetermined_numbers(at_bound):
  table, options, analysis = at_bound
  # A budget of 0 s: the plan is not simulated, the sentence states the assumptions.
  quick = scaling.analyse_scaling(
      table, table.groups, dataclasses.replace(
          options, e_profile="off", raw_scale=False, rollout=False, planner_simulations=2,
          planner_designs=1, planner_max_seconds=0.0), analysis.evidence)
  assert quick.requirements
  assert all(s.startswith("to determine ") and "not simulated here" in s
             for s in quick.requirements)
  assert "assumed laws" in quick.requirements[0]


def test_pairs_without_the_reference_get_profile_bands_too():
  # Three groups at E = 0: the exponent difference of retro vs modern (neither is the
  # reference) is bounded by the profile as well, not "not determined".
  table = synthetic_study.study({"lstm": laws.PowerLaw(36.3, -0.065, 0.0),
                                 "modern": laws.PowerLaw(88.0, -0.094, 0.0),
                                 "retro": laws.PowerLaw(60.0, -0.08, 0.0)},
                                np.geomspace(1e13, 1e16, 5), 0.005, 0)
  options = scaling.ScalingOptions(
      reference="lstm", irreducible="shared", bootstrap=20, frontier="final",
      computes=(1e15,), e_profile="always", e_profile_samples=20)
  evidence = scaling.Evidence(None, diagnostics.seed_noise(table.run_info.values()))
  analysis = scaling.analyse_scaling(table, ("lstm", "modern", "retro"), options, evidence)
  derived = {(d.group, d.reference, d.quantity) for d in analysis.e_profile.derived}
  assert ("retro", "modern", "exponent_difference") in derived
  assert ("retro", "lstm", "exponent_difference") in derived
  text = report.fit_text(analysis, table, "envelope")
  (row,) = [line for line in text.splitlines() if line.split()[:2] == ["retro", "modern"]]
  assert "E profile: " in row and "shrinks with scale) for every plausible E" in row


def test_measured_accounting_is_a_band_over_the_plausible_E(at_bound):
  # E at a bound is the measured row's only reason: instead of a veto, the accounting is
  # redone at every plausible E; at the main fit's own E (on the grid) it is the measured row.
  from algoprog.analysis import account, measured_account
  from algoprog.analysis.ablations import AblationAnalysis
  _, _, analysis = at_bound
  study_config = config_lib.load_config_file(os.path.join(ROOT, "configs", "account_study.py"))
  published = account.study_from_dict(study_config.to_dict())
  years = list(study_config.headline_years)
  out = measured_account.measured_vs_published(
      published, years, analysis, AblationAnalysis("ok", 4.0, ()),
      {"lstm": "lstm", "modern": "modern"}, "modern_vs_retro", 0.95)
  assert out["not_determined"].startswith("lstm: E at a bound")
  over = out["over_E"]
  assert [b["year"] for b in over["bands"]] == years
  profile = analysis.e_profile
  assert {r["E"] for r in over["by_E"]} == set(profile.E[profile.plausible].tolist())
  main_E = float(analysis.fit.law.E[0])
  for measured, band in zip(out["measured"], over["bands"]):
    at_main = min((r for r in over["by_E"] if r["year"] == measured["year"]),
                  key=lambda r: abs(r["E"] - main_E))
    assert at_main["E"] == main_E
    assert at_main["total"] == pytest.approx(measured["total"], rel=1e-3)
    assert band["estimate_low"] <= at_main["total"] <= band["estimate_high"]
    assert band["lower"] <= band["estimate_low"] and band["estimate_high"] <= band["upper"]
  # The report shows the band, not "not determined".
  summary = {"accounting": rundir.json_safe(out)}
  text = "\n".join(line for line in report_accounting(summary).splitlines())
  assert "redone at every plausible shared E" in text
  assert "Measured accounting not determined" not in text


def report_accounting(summary: dict) -> str:
  """The report's accounting section alone (report_markdown with the other sections
  empty)."""
  config = config_lib.load_config_file(os.path.join(ROOT, "configs", "reproduce_tiny.py"))
  with open(os.path.join(ROOT, "tests", "data", "cpu_summary_2026_12_02.json")) as f:
    base = json.load(f)
  base["accounting"] = {**base["accounting"], **summary["accounting"]}
  text = report.report_markdown(config, base)
  return text[text.index("## Accounting"):]


def test_raw_scale_reads_no_target_on_the_unigram_plateau(at_bound):
  # With plateau points excluded from the fits, the model-free CEG is read only at losses
  # below the plateau's edge too (both groups still near unigram predictions above it).
  table, options, _ = at_bound
  entropy = 5.1  # the edge 5.0 lies inside the losses both groups reach (3.3 to 5.5)
  evidence = scaling.Evidence(None, diagnostics.seed_noise(table.run_info.values()), entropy)
  analysis = scaling.analyse_scaling(
      table, table.groups, dataclasses.replace(options, exclude_plateau=True,
                                               e_profile="off", rollout=False), evidence)
  (raw,) = analysis.raw_scale
  edge = entropy - analysis.options.plateau_margin
  assert raw.target_loss.max() < edge
  (everything,) = scaling.analyse_scaling(
      table, table.groups, dataclasses.replace(options, e_profile="off", rollout=False),
      evidence).raw_scale
  assert everything.target_loss.max() > edge
