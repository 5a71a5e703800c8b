"""LR ambiguity end to end without training: the sweep plans the runner-up LR's full runs
exactly when a choice is ambiguous (and resumes them), the LR law centres sweeps and sets
unswept widths, and the analysis keeps runner-up runs out of the estimate but lets each
bootstrap resample choose them, which widens the intervals; reports show LR optima."""

import dataclasses
import math

import numpy as np
import pytest

from algoprog import lr_law, rundir
from algoprog.analysis import diagnostics, lr, report, scaling
from algoprog.training import config as config_lib, sweep
from test_lr_uncertainty import sweep as synthetic_sweep, two_lr_study
from test_sweep_safety import NoTrainer, as_trainer_records, finish, sweep_config


def ambiguous_config(tmp_path, train_runner_up=True, seed_noise=0.02, **group):
  c = sweep_config(tmp_path, tmp_path, lr_sweep=True, seeds=(1, 2),
                   train_runner_up=train_runner_up, **group)
  c.lr_sweep.seed_noise = seed_noise
  return c


def grid_of(runs, width=16):
  return [r.overrides["optim.learning_rate"] for r in runs
          if r.stage == "lr_sweep" and r.overrides["model.width"] == width]


def test_runner_up_full_runs_are_planned_exactly_when_the_choice_is_ambiguous(tmp_path):
  grid = grid_of(sweep.plan_runs(ambiguous_config(tmp_path)))
  for margin, train, planned in ((0.01, True, True), (0.1, True, False),
                                 (0.01, False, False)):
    results = {"modern/16": {grid[0]: 3.0, grid[1]: 2.0, grid[2]: 2.0 + margin}}
    full = [r for r in sweep.plan_runs(ambiguous_config(tmp_path, train), results)
            if r.stage == "full"]
    runner = [r for r in full if r.lr_role == "runner_up"]
    assert [r.lr_role for r in full if r not in runner] == ["chosen", "chosen"]
    assert all(r.overrides["optim.learning_rate"] == grid[1] for r in full if r not in runner)
    # P(runner-up better) = Phi(-margin / (sqrt 2 x 0.02)): 36% at 0.01, 0.02% at 0.1.
    assert bool(runner) == planned, (margin, train)
    if planned:
      assert [(r.overrides["seed"], r.overrides["optim.learning_rate"]) for r in runner] == [
          (1, grid[2]), (2, grid[2])]
      assert len({r.run_id for r in full}) == 4 and all(r.stage == "full" for r in runner)
  assert lr_law.runner_up_probability(0.01, 0.02) == pytest.approx(0.3618, abs=1e-3)


def preset():
  return config_lib.load_config_file("configs/modern.py")


def swept(tmp_path, losses):
  """(config, LR-sweep runs, planned full runs) of `ambiguous_config` once its three sweep
  points have finished with `losses`."""
  c = ambiguous_config(tmp_path)
  sweeps = sweep.plan_from_directory(c, tmp_path)
  for run, loss in zip(sweeps, losses):
    finish(tmp_path, run, as_trainer_records(run, preset()), loss=loss)
  return c, sweeps, [r for r in sweep.plan_from_directory(c, tmp_path) if r.stage == "full"]


def test_runner_up_runs_resume_and_are_recorded(tmp_path, monkeypatch):
  """A finished sweep with its runner-up runs trains nothing on a rerun (the planned configs
  match the recorded ones; the lock is taken and released), and lr_choices.json says what
  was chosen, the runner-up and whether its runs were trained."""
  monkeypatch.setattr(sweep.subprocess, "Popen", NoTrainer)
  c, sweeps, full = swept(tmp_path, (3.0, 2.0, 2.01))
  assert sorted(r.lr_role for r in full) == ["chosen", "chosen", "runner_up", "runner_up"]
  for run in full:
    finish(tmp_path, run, as_trainer_records(run, preset()))
  results = sweep.run_sweep(c, tmp_path, 1, log=None)
  assert {r.run_id for r in full} <= set(results)
  entry = sweep.read_lr_choices(tmp_path)["modern/16"]
  assert entry["runner_up_trained"] and entry["p_runner_up"] > 0.1
  assert entry["runner_up_learning_rate"] == sweeps[2].overrides["optim.learning_rate"]
  assert entry["center_from"] == "anchors"
  roles = {e["run_id"]: e.get("lr_role") for e in sweep.read_manifest(tmp_path)}
  assert sorted(v for v in roles.values() if v) == ["chosen", "chosen", "runner_up",
                                                    "runner_up"]
  # A smaller seed noise makes the choice decisive: the runner-up is no longer planned, and
  # its finished runs neither stop the sweep nor are retrained.
  c.lr_sweep.seed_noise = 0.001
  sweep.run_sweep(c, tmp_path, 1, log=None)
  assert all(r.lr_role != "runner_up" for r in sweep.plan_from_directory(c, tmp_path))
  assert not sweep.read_lr_choices(tmp_path)["modern/16"]["runner_up_trained"]


def test_lr_law_centres_later_sweeps_and_sets_unswept_widths(tmp_path):
  # Synthetic choices on lr* = 0.3 * width^-0.5: the law through them is recovered.
  law = sweep.sweep_law({16: 0.3 * 16**-0.5, 64: 0.3 * 64**-0.5}, {})
  assert (law.c, law.b, law.source) == (pytest.approx(0.3), pytest.approx(-0.5), "choices")
  assert law.lr(256) == pytest.approx(0.3 / 16, rel=1e-3)
  # One swept width: the anchors' slope through its choice.
  one = sweep.sweep_law({32: 0.01}, {32: 9.95e-3, 64: 5.79e-3, 128: 3.37e-3})
  assert one.source == "anchor slope" and one.lr(32) == pytest.approx(0.01, rel=1e-3)
  assert one.b == pytest.approx(math.log(3.37e-3 / 9.95e-3) / math.log(4), rel=0.02)
  assert sweep.sweep_law({32: 0.01}, {}) is None

  c = sweep_config(tmp_path, tmp_path, lr_sweep=True, widths=(16, 32, 64, 128, 256),
                   lr_sweep_widths=(16, 64, 256), lr_law_widths=(16, 64))
  first = sweep.plan_runs(c)
  assert {r.overrides["model.width"] for r in first} == {16, 64}  # Law widths first.
  best = {16: 1, 64: 2}  # Chosen: the centre at 16, one step above it at 64.
  results = {f"modern/{w}": {lr: (1.0 if i == b else 2.0) for i, lr in
                             enumerate(grid_of(first, w))} for w, b in best.items()}
  chosen = {w: grid_of(first, w)[b] for w, b in best.items()}
  plan = sweep.group_lr_plan("modern", c.groups.modern, c.lr_sweep, results)
  centre, source = plan.centres[256]
  fitted = sweep.sweep_law(chosen, {})
  assert source == "lr law" and centre == pytest.approx(fitted.lr(256), rel=1e-3)
  assert grid_of(sweep.plan_runs(c, results), 256)[1] == pytest.approx(centre, rel=1e-3)
  assert plan.full is None  # 256 not swept yet.
  results["modern/256"] = {lr: (1.0 if i == 1 else 2.0)
                           for i, lr in enumerate(plan.grids[256])}
  plan = sweep.group_lr_plan("modern", c.groups.modern, c.lr_sweep, results)
  law = sweep.sweep_law({**chosen, 256: plan.grids[256][1]}, {})
  assert plan.full[32] == pytest.approx(law.lr(32), rel=1e-3)  # Unswept: the law.
  assert plan.full[16] == chosen[16] and plan.record(16)["lr_law"]["widths"] == [16, 64, 256]
  with pytest.raises(sweep.SweepError, match="groups.modern.lr_law_widths"):
    sweep.plan_runs(sweep_config(tmp_path, tmp_path, lr_sweep=True, widths=(16, 32),
                                 lr_sweep_widths=(16,), lr_law_widths=(32,)))


def analyse(table, choices, noise):
  options = scaling.ScalingOptions(reference="lstm", irreducible=1.9, frontier="final",
                                   bootstrap=150, lr_optima=True)
  evidence = scaling.Evidence(choices, diagnostics.SeedNoise(noise, 3))
  return scaling.analyse_scaling(table, ["lstm", "modern"], options, evidence)


def test_runner_up_runs_widen_the_bootstrap_but_not_the_estimate():
  table, choices = two_lr_study(0.03)
  for entry in choices.values():
    entry.update(margin_to_next_best=0.02, runner_up_trained=True)
  ambiguous, decisive = analyse(table, choices, 0.2), analyse(table, choices, 1e-4)
  chosen_only = analyse(table.select(lr.chosen_runs_mask(table, choices)), choices, 0.2)
  alpha = lambda a: a.main.laws[0]["alpha"]
  assert alpha(ambiguous) == pytest.approx(alpha(chosen_only))  # Estimate: chosen runs.
  assert alpha(decisive) == pytest.approx(alpha(chosen_only))
  width = lambda a: a.main.laws[0]["alpha_upper"] - a.main.laws[0]["alpha_lower"]
  assert width(ambiguous) > 1.2 * width(decisive)
  assert width(chosen_only) < width(ambiguous)
  assert ambiguous.coverage[0].runs == 6  # Runner-up runs only in the intervals.
  # A table loaded from a sweep folder also describes runs it holds no points of (the LR
  # sweep's, in run_info): the runner-up runs are still left out of the estimate.
  described = dataclasses.replace(table, run_info={**table.run_info,
                                                   "a_sweep_run": {"stage": "lr_sweep"}})
  evidence = scaling.Evidence(choices, diagnostics.SeedNoise(0.2, 3))
  assert np.array_equal(scaling.chosen_lr_mask(described, evidence),
                        lr.chosen_runs_mask(table, choices))
  # The runner-up was trained: its ambiguity is in the interval, not a veto.
  assert not any("seed noise" in r for d in ambiguous.main.diagnostics.values()
                 for r in d.reasons)
  assert ambiguous.lr.runner_up_sweeps == tuple(sorted(choices))
  assert ambiguous.to_json()["lr"]["optima"][0]["method"] == "best point"
  # Without runner_up_in_interval (the ablations lift it per row, for groups with an
  # alternative computed) it stays a reason, as it does when the runner-up was not trained.
  noise = diagnostics.SeedNoise(0.2, 3)
  assert all("LR within seed noise" in r[0]
             for r in diagnostics.lr_reasons(choices, noise).values())
  assert not any(diagnostics.lr_reasons(choices, noise, runner_up_in_interval=True).values())
  for entry in choices.values():
    entry["runner_up_trained"] = False
  reasons = diagnostics.lr_reasons(choices, noise, runner_up_in_interval=True)
  assert all("LR within seed noise" in r[0] for r in reasons.values())


def test_reports_show_lr_optima_and_laws():
  choices = {}
  for width in (32, 64, 128, 256):
    grid, loss, _ = synthetic_sweep(width, seed=width)
    choices[f"modern/{width}"] = {"curve": [
        {"learning_rate": float(a), "final_validation_loss": float(b), "status": "completed"}
        for a, b in zip(grid, loss)], "chosen_learning_rate": float(grid[np.argmin(loss)])}
  optima = lr.sweep_optima(choices, 0.01)
  section = scaling.LrSection(tuple(optima), lr.lr_laws(optima), ("modern/64",))
  text = report.lr_uncertainty_text(section.to_json())
  assert "LR optima per sweep" in text and "modern/128" in text and "in the CI" in text
  assert "LR laws" in text and "modern" in text.split("LR laws")[1]
  markdown = report.lr_uncertainty_markdown(section.to_json())
  assert "| sweep | chosen LR | optimum LR [CI] | p_runner_up |" in markdown
  assert "lr_laws.png" in markdown
  table, two = two_lr_study(0.03)
  assert "LR optima per sweep" in report.fit_text(analyse(table, two, 0.2), table, "median")


def test_seed_noise_measured_by_finished_runs_adds_runner_ups_and_never_drops_them(tmp_path):
  # At the configured 0.02 nats a margin of 0.1 is decisive; the chosen LR's two seeds then
  # end 0.3 nats apart (SD 0.21), which makes the same margin ambiguous: the next plan adds
  # the runner-up's full runs and records the measurement, and a later, quieter pair of
  # runs does not take them away.
  c, _, full = swept(tmp_path, (3.0, 2.0, 2.1))
  assert [r.lr_role for r in full] == ["chosen", "chosen"]

  def finish_with_identity(run, loss):
    run_dir = tmp_path / "runs" / run.run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    rundir.write_config(run_dir, as_trainer_records(run, preset()))
    rundir.write_record(run_dir, rundir.RunRecord(
        run.run_id, run.label, "completed", stage="full", seed=run.overrides["seed"],
        width=run.overrides["model.width"], learning_rate=run.overrides["optim.learning_rate"],
        tokens_planned=1000, final_validation_loss=loss))

  for run, loss in zip(full, (2.0, 2.3)):
    finish_with_identity(run, loss)
  planned = sweep.plan_from_directory(c, tmp_path)
  runner = [r for r in planned if r.lr_role == "runner_up"]
  assert len(runner) == 2
  recorded = rundir.read_json(tmp_path / sweep.SEED_NOISE_FILE)
  assert recorded["measured_seed_noise"] == pytest.approx(0.3 / math.sqrt(2))
  assert lr_law.runner_up_probability(0.1, recorded["measured_seed_noise"]) > (
      lr_law.AMBIGUOUS_PROBABILITY)
  # Every run now without spread (the chosen ones rewritten): measured noise 0, yet the
  # recorded 0.21 keeps the runner-up runs planned.
  for run, loss in zip(full + runner, (2.0, 2.0, 2.1, 2.1)):
    finish_with_identity(run, loss)
  assert lr_law.measured_seed_noise(
      rundir.read_record(tmp_path / "runs" / r.run_id).to_dict() for r in full + runner
  ) == (0.0, 2)
  again = sweep.plan_from_directory(c, tmp_path)
  assert sorted(r.run_id for r in again if r.lr_role == "runner_up") == sorted(
      r.run_id for r in runner)
