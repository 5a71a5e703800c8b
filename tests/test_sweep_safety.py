"""Sweeps you can trust: run identity (full config, data), the sweep lock, records that
never go from completed to failed, LR choices that wait for every grid point, and
interruptions (Ctrl-C, SIGTERM) that lose nothing."""

import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import ml_collections
import pytest

from algoprog import rundir
from algoprog.training import config as config_lib, data, sweep

ROOT = pathlib.Path(__file__).resolve().parents[1]


def sweep_config(corpus, cache, preset="configs/modern.py", **group) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.workers = 1
  c.overrides = ml_collections.ConfigDict({
      "data": {"source": "text", "path": str(corpus), "tokenizer": "byte",
               "cache_dir": str(cache), "validation_tokens": 2048, "batch_size": 8,
               "sequence_length": 32},
      "train": {"eval_every_steps": 4}})
  c.lr_sweep = ml_collections.ConfigDict(
      {"points": 3, "spacing_decades": 0.5, "budget_fraction": 0.5, "min_tokens": 0,
       "center": 3e-3})
  c.groups = ml_collections.ConfigDict({"modern": {
      "config": str(preset), "widths": (16,), "seeds": (123,), "tokens_per_param": 1.0,
      "lr_widths": (16,), "lr_values": (3e-3,), "lr_sweep": False, "overrides": {},
      **group}})
  return c


def as_trainer_records(run: sweep.RunSpec, preset: ml_collections.ConfigDict) -> dict:
  """config.json as launch.train writes it: the preset with the run's --config.* flags,
  resolved, plus what the trainer derives (vocabulary, whole-step token budget, steps)."""
  c = preset
  for dotted, value in run.overrides.items():
    *parents, leaf = dotted.split(".")
    node = c
    for part in parents:
      node = node[part]
    node[leaf] = value
  recorded = config_lib.resolve(c).to_dict()
  recorded["data"]["vocab_size"] = 257
  recorded["train"].update(tokens=4096, steps=16)
  return recorded


def finish(sweep_dir, run, recorded, fingerprint=None, loss=2.0):
  run_dir = sweep_dir / "runs" / run.run_id
  run_dir.mkdir(parents=True, exist_ok=True)
  rundir.write_config(run_dir, recorded)
  rundir.write_record(run_dir, rundir.RunRecord(run.run_id, run.label, "completed",
                                                stage=run.stage, final_validation_loss=loss,
                                                data_fingerprint=fingerprint))


class NoTrainer:
  def __init__(self, command, **kwargs):
    raise AssertionError(f"nothing should be trained; started {command}")


PRESET = '''from algoprog.training import presets


def get_config():
  c = presets.modern()
  c.model.ffn = {ffn!r}
  return c
'''


def test_a_preset_edit_or_swap_stops_the_sweep_naming_runs_and_fields(tmp_path, monkeypatch):
  monkeypatch.setattr(sweep.subprocess, "Popen", NoTrainer)
  swiglu, gelu = tmp_path / "swiglu.py", tmp_path / "gelu.py"
  swiglu.write_text(PRESET.format(ffn="swiglu"))
  gelu.write_text(PRESET.format(ffn="gelu"))
  c = sweep_config(tmp_path, tmp_path, preset=swiglu)
  (run,) = sweep.plan_runs(c)
  finish(tmp_path, run, as_trainer_records(run, config_lib.load_config_file(swiglu)))
  # Unchanged: the finished run is the planned one (trainer-derived fields and all).
  assert sweep.execute(tmp_path, [run], 1, log=None)[run.run_id]["status"] == "completed"

  swiglu.write_text(PRESET.format(ffn="swiglu").replace(
      "  return c", "  c.model.ffn_multiplier = 3\n  return c"))
  with pytest.raises(sweep.StaleRunError) as e:  # The preset's content was edited.
    sweep.execute(tmp_path, [run], 1, log=None)
  message = str(e.value)
  assert str(tmp_path / "runs" / run.run_id) in message and "\n" not in message
  assert "model.ffn_multiplier: ran 4, planned 3" in message

  swiglu.write_text(PRESET.format(ffn="swiglu"))
  (swapped,) = sweep.plan_runs(sweep_config(tmp_path, tmp_path, preset=gelu))
  assert swapped.run_id == run.run_id  # Same directory, other preset file.
  with pytest.raises(sweep.StaleRunError, match=r"model.ffn: ran 'swiglu', planned 'gelu'"):
    sweep.run_sweep(sweep_config(tmp_path, tmp_path, preset=gelu), tmp_path, 1, log=None)
  assert rundir.read_record(tmp_path / "runs" / run.run_id).status == "completed"


def test_other_data_under_the_same_config_stops_the_sweep(small_corpus, tmp_path,
                                                          monkeypatch):
  monkeypatch.setattr(sweep.subprocess, "Popen", NoTrainer)
  text = tmp_path / "text"
  shutil.copytree(small_corpus, text)
  c = sweep_config(text, tmp_path / "cache")
  (run,) = sweep.plan_runs(c)
  recorded = as_trainer_records(run, config_lib.load_config_file("configs/modern.py"))
  fingerprint = data.load_corpus(ml_collections.ConfigDict(recorded["data"])).fingerprint
  finish(tmp_path / "sweep", run, recorded, fingerprint)
  assert sweep.execute(tmp_path / "sweep", [run], 1, log=None)[run.run_id]["status"] == (
      "completed")
  first = sorted(text.iterdir())[0]
  first.write_text(first.read_text().replace("the", "THE"))  # Same size: content counts.
  with pytest.raises(sweep.StaleRunError, match=r"data_fingerprint.source_sha256: ran '"):
    sweep.execute(tmp_path / "sweep", [run], 1, log=None)


def test_a_second_sweep_on_a_workdir_is_refused_naming_the_holder(tmp_path, monkeypatch):
  monkeypatch.setattr(sweep.subprocess, "Popen", NoTrainer)
  c = sweep_config(tmp_path, tmp_path)
  with sweep.sweep_lock(tmp_path):
    with pytest.raises(sweep.SweepBusy, match=rf"in use by another sweep \(pid {os.getpid()} "
                                              rf"on {re.escape(socket.gethostname())}\)"):
      sweep.run_sweep(c, tmp_path, 1, log=None)
  assert not (tmp_path / "runs").exists()


class FakeTrainer:
  """Stands in for launch.train: `behaviour(run_dir)` writes what the trainer would and
  returns the exit code."""
  started: list = []
  behaviour = None

  def __init__(self, command, **kwargs):
    self.run_dir = pathlib.Path(next(a for a in command if a.startswith("--workdir="))
                                .removeprefix("--workdir="))
    FakeTrainer.started.append(self.run_dir.name)

  def wait(self):
    return FakeTrainer.behaviour(self.run_dir)


def test_a_completed_run_is_never_recorded_failed(tmp_path, monkeypatch):
  (run,) = sweep.plan_runs(sweep_config(tmp_path, tmp_path))

  def completed_by_another_process(run_dir):  # Then this trainer found the workdir busy.
    rundir.write_record(run_dir, rundir.RunRecord(run.run_id, "modern", "completed",
                                                  final_validation_loss=2.0))
    print("error: workdir is in use by another trainer", file=open(
        run_dir / rundir.LAUNCHER_LOG, "a"))
    return 1

  FakeTrainer.started, FakeTrainer.behaviour = [], completed_by_another_process
  monkeypatch.setattr(sweep.subprocess, "Popen", FakeTrainer)
  info = sweep.execute(tmp_path, [run], 1, log=None)[run.run_id]
  assert info["status"] == "completed" and info["failure_reason"] is None
  assert rundir.read_record(tmp_path / "runs" / run.run_id).status == "completed"
  # And write_record itself refuses the transition.
  rundir.write_record(tmp_path / "runs" / run.run_id, rundir.RunRecord(
      run.run_id, "modern", "failed", failure_reason="late"))
  assert rundir.read_record(tmp_path / "runs" / run.run_id).status == "completed"


def test_an_lr_choice_needs_every_grid_point(tmp_path, monkeypatch):
  c = sweep_config(tmp_path, tmp_path, lr_sweep=True)
  runs = sweep.plan_from_directory(c, tmp_path)
  grid = [r for r in runs if r.stage == "lr_sweep"]
  losses = dict(zip((r.run_id for r in grid), (3.0, 2.5, 2.0)))

  def killed_once(run_dir):  # The last grid point is killed the first time it runs.
    if run_dir.name == grid[2].run_id and FakeTrainer.started.count(run_dir.name) == 1:
      return -9
    rundir.write_record(run_dir, rundir.RunRecord(run_dir.name, "modern", "completed",
                                                  final_validation_loss=losses.get(
                                                      run_dir.name, 1.0)))
    return 0

  FakeTrainer.started, FakeTrainer.behaviour = [], killed_once
  monkeypatch.setattr(sweep.subprocess, "Popen", FakeTrainer)
  with pytest.raises(sweep.LRSweepIncomplete) as e:
    sweep.run_sweep(c, tmp_path, 1, log=None)
  message = str(e.value)
  assert f"{grid[2].run_id} (killed by signal" in message and "\n" not in message
  assert "rerun the same command to retry" in message
  assert not any(r.stage == "full" for r in sweep.plan_from_directory(c, tmp_path))
  choice = rundir.read_json(tmp_path / sweep.LR_CHOICES_FILE)["modern/16"]
  assert "chosen_learning_rate" not in choice  # Not from the two surviving points.
  assert choice["failed_grid_runs"] == [grid[2].run_id]
  failures = rundir.read_json(tmp_path / sweep.FAILURES_FILE)["failures"]
  assert [f["run_id"] for f in failures] == [grid[2].run_id]

  results = sweep.run_sweep(c, tmp_path, 1, log=None)  # The rerun retries it, then goes on.
  assert FakeTrainer.started.count(grid[2].run_id) == 2
  assert FakeTrainer.started.count(grid[0].run_id) == 1
  (full,) = [r for r in sweep.plan_from_directory(c, tmp_path) if r.stage == "full"]
  assert full.overrides["optim.learning_rate"] == grid[2].overrides["optim.learning_rate"]
  assert results[full.run_id]["status"] == "completed"


SIGNAL_SWEEP = '''import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.workers = 1
  c.overrides = {{
      "data": {{"source": "text", "path": {text!r}, "tokenizer": "byte",
               "cache_dir": {cache!r}, "validation_tokens": 2048, "batch_size": 8,
               "sequence_length": 32}},
      "train": {{"eval_every_steps": 1000, "log_every_steps": 1000, "tokens": 1_500_000}}}}
  c.lr_sweep = {{"points": 1, "spacing_decades": 0.5, "budget_fraction": 0.5,
                "min_tokens": 0, "center": 3e-3}}
  c.groups = {{"modern": {{
      "config": "configs/modern.py", "widths": (16,), "seeds": (1, 2),
      "tokens_per_param": 1.0, "lr_widths": (16,), "lr_values": (3e-3,), "lr_sweep": False,
      "overrides": {{}}}}}}
  return c
'''


def start_sweep(config, workdir):
  return subprocess.Popen(
      [sys.executable, "-m", "launch.sweep", f"--config={config}", f"--workdir={workdir}"],
      cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      start_new_session=True)  # Its own process group, as a terminal's foreground job.


def wait_for_training(run_dir, sweep_process, timeout=300):
  """Until the run's trainer has saved its first metrics row (it is in the loop)."""
  deadline = time.time() + timeout
  while time.time() < deadline:
    if (run_dir / rundir.METRICS_FILE).exists() and rundir.read_metrics(run_dir):
      return
    assert sweep_process.poll() is None, sweep_process.communicate()
    time.sleep(0.2)
  raise AssertionError(f"{run_dir} did not start training in {timeout}s")


def test_ctrl_c_and_sigterm_stop_the_sweep_and_the_rerun_resumes(small_corpus, tmp_path):
  text = tmp_path / "text"  # ~2 MB: the run lasts far longer than the test waits.
  text.mkdir()
  prose = "\n\n".join(f.read_text() for f in sorted(small_corpus.iterdir()))
  (text / "a.txt").write_text("\n\n".join([prose] * 20))
  config = tmp_path / "sweep_config.py"
  config.write_text(SIGNAL_SWEEP.format(text=str(text), cache=str(tmp_path / "cache")))
  workdir = tmp_path / "sweep"
  first, second = workdir / "runs" / "modern_w16_s1", workdir / "runs" / "modern_w16_s2"

  process = start_sweep(config, workdir)
  wait_for_training(first, process)
  os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole group.
  out, err = process.communicate(timeout=120)
  assert process.returncode == 130, (out, err)
  assert "Traceback" not in out + err
  last = (out + err).strip().splitlines()[-1]
  assert last.startswith(f"sweep {workdir} stopped by SIGINT: 1 run(s) checkpointed and "
                         "recorded interrupted (modern_w16_s1), 1 not started"), last
  record = rundir.read_record(first)
  assert record.status == "interrupted" and record.failure_reason is None
  assert rundir.read_record(second) is None  # No new run was started.
  assert (first / "checkpoints").exists()

  process = start_sweep(config, workdir)  # The same command resumes it...
  deadline = time.time() + 300
  while "resumed" not in (first / rundir.LAUNCHER_LOG).read_text() and time.time() < deadline:
    assert process.poll() is None, process.communicate()
    time.sleep(0.2)
  os.kill(process.pid, signal.SIGTERM)  # ...and SIGTERM (to the sweep only) stops it too.
  out, err = process.communicate(timeout=120)
  assert process.returncode == 143, (out, err)
  assert "Traceback" not in out + err and "stopped by SIGTERM" in (out + err)
  assert rundir.read_record(first).status == "interrupted"
  assert not (workdir / sweep.FAILURES_FILE).exists() or not rundir.read_json(
      workdir / sweep.FAILURES_FILE)["failures"]
