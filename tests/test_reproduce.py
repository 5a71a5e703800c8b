"""The one-command study: ablation CEGs on synthetic curves, and the tiny preset end to end."""

import dataclasses
import json
import math
import os
import subprocess
import sys

import pytest

from algoprog import reproduce
from algoprog.analysis import ablations, diagnostics, report, runs
from algoprog.training import config as config_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def curve_table(curves: dict) -> runs.RunTable:
  """{(group, run_id): [(compute, loss), ...]} -> RunTable."""
  cols = {k: [] for k in ("run_id", "group", "compute", "loss", "params", "tokens")}
  for (group, run_id), points in curves.items():
    for c, l in points:
      for k, v in zip(cols, (run_id, group, c, l, 1e5, c / 6e5)):
        cols[k].append(v)
  return runs.make_table(**cols)


def manifest(*run_ids_and_seeds):
  """run id -> seed, as reproduce reads it from the sweep manifest."""
  return dict(run_ids_and_seeds)


def test_ablation_ceg_is_the_compute_ratio_at_the_target_with_seed_spread():
  # Reference crosses loss 3 at C = 100 (seed 1) and 400 (seed 2), variant at 200 and 1600:
  # geometric means 200 and sqrt(200 * 1600) = 565.7, seed-paired ratios 2 and 4.
  table = curve_table({
      ("ref", "r1"): [(10, 5.0), (100, 3.0), (1000, 2.5)],
      ("ref", "r2"): [(10, 5.0), (400, 3.0), (1000, 2.8)],
      ("var", "v1"): [(10, 5.0), (200, 3.0), (2000, 2.9)],
      ("var", "v2"): [(10, 5.0), (1600, 3.0), (2000, 2.95)],
  })
  full = manifest(("r1", 1), ("r2", 2), ("v1", 1), ("v2", 2))
  row = ablations.ablation_row(table, full, "x", "ref", "var", 3.0)
  assert row["status"] == "ok"
  assert row["ceg"] == pytest.approx(math.sqrt(200 * 1600) / 200)
  assert (row["seed_min"], row["seed_max"]) == pytest.approx((2.0, 4.0))


def test_runner_up_lr_runs_widen_an_ablation_instead_of_vetoing_it():
  # The variant's LR choice won by less than the seed noise, so its runner-up LR was trained
  # too (v3, v4: crossing at 800 and 3200, CEG 2x what the chosen runs give). The row keeps
  # the chosen runs' CEG, gains the runner-up's as an alternative and a band over both, and
  # is no longer "not determined" for that LR choice.
  chosen = curve_table({
      ("ref", "r1"): [(10, 5.0), (100, 3.0), (1000, 2.5)],
      ("ref", "r2"): [(10, 5.0), (400, 3.0), (1000, 2.8)],
      ("var", "v1"): [(10, 5.0), (200, 3.0), (4000, 2.9)],
      ("var", "v2"): [(10, 5.0), (1600, 3.0), (4000, 2.95)],
  })
  runner_up = dataclasses.replace(curve_table({
      ("var", "v3"): [(10, 5.0), (400, 3.0), (4000, 2.9)],
      ("var", "v4"): [(10, 5.0), (3200, 3.0), (4000, 2.95)],
  }), run_info={"v3": {"learning_rate": 0.03}, "v4": {"learning_rate": 0.03}})
  seeds = manifest(("r1", 1), ("r2", 2), ("v1", 1), ("v2", 2), ("v3", 1), ("v4", 2))
  lr_choices = {"var/32": {"chosen_learning_rate": 0.01, "chosen_at_grid_edge": False,
                           "margin_to_next_best": 0.001}}
  noise = diagnostics.SeedNoise(0.05, 3)
  kwargs = dict(seeds=seeds, ablations={"x": ("ref", "var")}, target_reference="ref",
                target_loss=3.0, margin=0.0, lr_choices=lr_choices, noise=noise)
  (vetoed,) = ablations.analyse_ablations(chosen, **kwargs).rows
  assert vetoed["not_determined"].startswith("var: LR within seed noise")
  (row,) = ablations.analyse_ablations(chosen, runner_up=runner_up, **kwargs).rows
  assert row["ceg"] == pytest.approx(math.sqrt(200 * 1600) / 200)
  assert row["not_determined"] == ""
  (alternative,) = row["lr_alternatives"]
  assert alternative["group"] == "var" and alternative["learning_rate"] == 0.03
  assert alternative["ceg"] == pytest.approx(2 * row["ceg"])
  band = row["lr_band"]
  assert (band["estimate_low"], band["estimate_high"]) == pytest.approx(
      (row["ceg"], alternative["ceg"]))
  assert not band["open_above"] and not band["open_below"]
  # A reference that misses the target at its runner-up LR leaves the band unbounded.
  missing = ablations.lr_band([row, {"status": "reference ref misses the target"}])
  assert missing["open_above"] and missing["open_below"]
  assert ablations.lr_band([row, {"status": "variant misses the target",
                                  "ceg_lower_bound": 9.0}])["estimate_high"] == 9.0


def test_ablation_missing_the_target_gets_a_lower_bound_not_a_cap():
  table = curve_table({
      ("ref", "r1"): [(10, 5.0), (100, 3.0), (1000, 2.5)],
      ("var", "v1"): [(10, 5.0), (300, 3.5), (900, 3.2)],  # Never reaches 3.0.
  })
  row = ablations.ablation_row(table, manifest(("r1", 1), ("v1", 1)), "x", "ref", "var", 3.0)
  assert row["status"] == "variant misses the target"
  assert "ceg" not in row
  assert row["ceg_lower_bound"] == pytest.approx(9.0)  # Its last compute over 100.


def test_ablation_target_defaults_to_the_reference_worst_final_loss_plus_margin():
  config = config_lib.load_config_file(os.path.join(ROOT, "configs", "reproduce_tiny.py"))
  table = curve_table({
      ("ablation_reference", "r1"): [(10, 5.0), (100, 3.0)],
      ("ablation_reference", "r2"): [(10, 5.0), (100, 3.1)],
  })
  a = config.analysis
  assert ablations.ablation_target(table, a.ablation_reference, a.ablation_target_loss,
                                   a.ablation_target_margin) == pytest.approx(
      3.1 + a.ablation_target_margin)
  assert ablations.ablation_target(table, a.ablation_reference, 4.0,
                                   a.ablation_target_margin) == 4.0


def test_presets_plan_the_whole_study():
  from algoprog.training import sweep
  for name in ("tiny", "cpu", "paper"):
    config = config_lib.load_config_file(os.path.join(ROOT, "configs", f"reproduce_{name}.py"))
    planned = sweep.plan_runs(config.sweep)
    assert {r.label for r in planned} == set(config.sweep.groups)  # Every group LR-sweeps.
    for ablation in config.analysis.ablations.values():
      assert {ablation.reference, ablation.variant} <= set(config.sweep.groups)
    assert {"lstm", "modern"} <= set(config.analysis.scaling_groups) <= {"lstm", "retro",
                                                                        "modern"}


def test_report_shows_ceg_intervals_zero_width_marks_and_not_determined():
  # The CPU study's summary of 2026-12-02 (tests/data), as written before the diagnostics.
  config = config_lib.load_config_file(os.path.join(ROOT, "configs", "reproduce_cpu.py"))
  config.analysis.irreducible, config.analysis.sensitivity_irreducible = "fit", ""
  path = os.path.join(ROOT, "tests", "data", "cpu_summary_2026_12_02.json")
  with open(path) as f:
    summary = json.load(f)
  text = report.report_markdown(config, summary)
  # CEG rows carry lower/upper (not estimate_lower): their CIs were dropped before.
  assert "| retro | 3.51e+10 | 0.142 [0.00727, 2.06] |" in text
  # retro's E is pinned at ~0 in every resample: a zero-width interval, flagged.
  assert "0.000 [0.000, 0.000] (zero-width CI)" in text
  assert "group retro: the 95% interval of E has zero width" in text
  assert "lstm | 21 | 36.81 [25.81, 4.757e+04] | -0.0868 [-0.3882, -0.0617] | 1.327 [0.000, 3.665] |" in text
  # A group with reasons turns every number derived from its law into "not determined":
  # tables name each group's reason labels, the Diagnostics table and prose the details.
  at_zero = "E at a bound: fitted E at its lower bound 0 (E=7.3e-24)"
  scaling = summary["scaling"]
  scaling["diagnostics"] = {g: {"group": g, "reasons": [at_zero]
                                if g == "retro" else [], "skipped": []}
                            for g in scaling["groups"]}
  for row in scaling["ceg"]:
    row["not_determined"] = "retro: " + at_zero if row["group"] == "retro" else ""
  for row in scaling["exponent_pairs"]:
    involved = "retro" in (row["group"], row["reference"])
    row["not_determined"] = "retro: " + at_zero if involved else ""
    row["distinguishable"] = None if involved else row["distinguishable"]
  summary["accounting"]["not_determined"] = "retro: " + at_zero
  text = report.report_markdown(config, summary)
  assert "| retro | 3.51e+10 | not determined: retro: E at a bound |" in text
  assert "| modern | 3.51e+10 | 0.0847 [0.0134, 1.64] |" in text
  assert "| modern | lstm | -0.0191 [-0.0647, 0.2821] | no: not distinguishable" in text
  assert "| modern | retro | -0.0546 [-0.1009, 0.0412] | not determined: retro" in text
  assert "| measured | 2023 | 1.34e+22 | not determined (below) |" in text
  assert "26.6x" not in text
  assert f"| retro | {at_zero} | – |" in text
  assert f"Measured accounting not determined: retro: {at_zero}" in text


def small_study(corpus, cache):
  """The tiny preset on the test corpus (~100 KB): budgets cut to fit one epoch."""
  config = config_lib.load_config_file(os.path.join(ROOT, "configs", "reproduce_tiny.py"))
  data = config.sweep.overrides.data
  data.source, data.path, data.cache_dir = "text", str(corpus), str(cache)
  data.validation_tokens = 8192
  for group in config.sweep.groups.values():
    group.tokens_per_param = 1.0
  config.analysis.bootstrap = 50
  return config


def test_tiny_study_end_to_end_and_rerun_redoes_nothing(small_corpus, tmp_path, monkeypatch):
  monkeypatch.setenv("XLA_FLAGS", "")  # The runs' own processes: one CPU device each.
  config = small_study(small_corpus, tmp_path / "cache")
  lines = []
  report = reproduce.run(config, tmp_path / "study", log=lines.append)
  text = report.read_text()
  for section in ("## Compute covered", "## Frontier fits", "## CEG over lstm",
                  "## Ablations", "## Accounting", "## Learning-rate sweeps"):
    assert section in text
  summary = json.loads((tmp_path / "study" / "analysis" / "summary.json").read_text())
  assert not summary["failures"], summary["failures"]
  assert [r["group"] for r in summary["scaling"]["laws"]] == ["lstm", "retro", "modern"]
  assert all(r["alpha"] < 0 for r in summary["scaling"]["laws"])
  assert {r["ablation"] for r in summary["ablations"]["rows"]} == {"swiglu_vs_gelu",
                                                                  "modern_vs_retro"}
  assert all(k in summary["lr_choices"] for k in ("lstm/32", "retro/32", "modern/32"))
  # One E shared by the architectures, per-group E as the sensitivity row; every derived
  # number is marked exactly when a group it uses has reasons.
  scaling = summary["scaling"]
  assert scaling["irreducible"] == "shared" and scaling["sensitivity"]["irreducible"] == "fit"
  assert len({r["E"] for r in scaling["laws"]}) == 1
  reasons = {g: d["reasons"] for g, d in scaling["diagnostics"].items()}
  for row in scaling["ceg"] + scaling["exponent_pairs"]:
    assert bool(row["not_determined"]) == bool(reasons[row["group"]] + reasons[row["reference"]])
  assert summary["evidence"]["unigram_entropy"] > 0
  assert ("not determined:" in text) == any(reasons.values())
  run_json = tmp_path / "study" / "sweep" / "runs" / "modern_w32_s123" / "run.json"
  assert json.loads(run_json.read_text())["stage"] == "full"
  for name in ("loss_vs_compute", "ceg_vs_compute", "ablation_cegs", "lr_sweeps"):
    assert (tmp_path / "study" / "analysis" / f"{name}.png").exists()
  # Every planned run finished; a second invocation trains nothing and reports the same.
  metrics_before = {p: p.read_bytes() for p in (tmp_path / "study").rglob("metrics.jsonl")}
  again = []
  reproduce.run(config, tmp_path / "study", log=again.append)
  assert not [l for l in again if "runs to do" in l], again
  assert {p: p.read_bytes() for p in metrics_before} == metrics_before
  rerun = json.loads((tmp_path / "study" / "analysis" / "summary.json").read_text())
  assert rerun["scaling"]["laws"] == summary["scaling"]["laws"]


def test_launcher_errors_are_one_line(tmp_path):
  process = subprocess.run(
      [sys.executable, "-m", "launch.reproduce", "--config=configs/reproduce_tiny.py",
       f"--workdir={tmp_path}", "--config.sweep.groups.modern.widths=()"],
      cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert process.returncode != 0
  assert process.stderr.strip().splitlines()[-1] == (
      "error: sweep.groups.modern.widths: expected at least one width")
