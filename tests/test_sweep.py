"""Sweeps: planning, LR selection, resume after a kill, failed-run bookkeeping."""

import json
import math
import os
import pathlib
import shlex
import subprocess
import sys
import threading
import time

import ml_collections
import pytest

from algoprog import rundir
from algoprog.training import config as config_lib, sweep, train

ROOT = pathlib.Path(__file__).resolve().parents[1]


def sweep_config(corpus, cache, **group_overrides) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.workers = 1
  c.overrides = ml_collections.ConfigDict({
      "data": {"source": "text", "path": str(corpus), "tokenizer": "byte",
               "cache_dir": str(cache), "validation_tokens": 2048, "batch_size": 8,
               "sequence_length": 32},
      "train": {"eval_every_steps": 4, "checkpoint_every_steps": 3}})
  c.lr_sweep = ml_collections.ConfigDict(
      {"points": 3, "spacing_decades": 0.5, "budget_fraction": 0.5, "min_tokens": 0,
       "center": 3e-3})
  group = {"config": "configs/modern.py", "widths": (16,), "seeds": (123,),
           "tokens_per_param": 1.0, "lr_widths": (16,), "lr_values": (3e-3,),
           "lr_sweep": False, "overrides": {}}
  group.update(group_overrides)
  c.groups = ml_collections.ConfigDict({"modern": group})
  return c


def sweep_grid(runs, width):
  return [r.overrides["optim.learning_rate"] for r in runs
          if r.stage == "lr_sweep" and r.overrides["model.width"] == width]


def losses(grid, best):
  """Sweep results where grid[best] has the lowest final loss."""
  return {lr: 1.0 if i == best else 2.0 + i for i, lr in enumerate(grid)}


def test_plan_sweeps_lr_first_then_full_runs_at_the_choice(tmp_path):
  c = sweep_config(tmp_path, tmp_path, widths=(16, 32), seeds=(1, 2), lr_sweep=True)
  runs = sweep.plan_runs(c)
  assert [r.stage for r in runs] == ["lr_sweep"] * 6  # No choice yet: no full runs.
  grid = sweep_grid(runs, 16)
  assert grid == pytest.approx([3e-3 / 10**0.5, 3e-3, 3e-3 * 10**0.5], rel=1e-3)
  assert runs[0].overrides["train.tokens_per_param"] == 0.5
  half = {"modern/16": losses(grid, 1)}
  assert not [r for r in sweep.plan_runs(c, half) if r.stage == "full"]
  runs = sweep.plan_runs(c, {**half, "modern/32": losses(sweep_grid(runs, 32), 0)})
  full = [r for r in runs if r.stage == "full"]
  assert [(r.overrides["model.width"], r.overrides["seed"]) for r in full] == [
      (16, 1), (16, 2), (32, 1), (32, 2)]
  assert [r.overrides["optim.learning_rate"] for r in full] == [grid[1]] * 2 + [grid[0]] * 2
  assert full[0].overrides["data.tokenizer"] == "byte" and full[0].overrides["label"] == "modern"
  # Each run records its stage in run.json (launch.fit fits only full runs by default).
  assert [r.overrides["stage"] for r in runs] == [r.stage for r in runs]
  assert {r.stage for r in runs} == {"lr_sweep", "full"}
  assert len({r.run_id for r in runs}) == len(runs)


def test_lr_sweeps_at_some_widths_interpolate_the_others(tmp_path):
  c = sweep_config(tmp_path, tmp_path, widths=(16, 32, 64), lr_sweep=True,
                   lr_sweep_widths=(16, 64))
  runs = sweep.plan_runs(c)
  assert {r.overrides["model.width"] for r in runs} == {16, 64}
  grid = sweep_grid(runs, 16)
  full = [r for r in sweep.plan_runs(c, {"modern/16": losses(grid, 2),
                                         "modern/64": losses(grid, 0)})
          if r.stage == "full"]
  assert [r.overrides["optim.learning_rate"] for r in full] == pytest.approx(
      [grid[2], grid[1], grid[0]], rel=1e-3)  # 32 is the log-midpoint of 16 and 64.
  with pytest.raises(sweep.SweepError, match="groups.modern.lr_sweep_widths"):
    sweep.plan_runs(sweep_config(tmp_path, tmp_path, lr_sweep=True, lr_sweep_widths=(8,)))


def test_flop_budgets_give_one_run_per_width_and_budget(tmp_path):
  c = sweep_config(tmp_path, tmp_path, widths=(16, 32), tokens_per_param=0.0,
                   flops_budgets=(1e9, 1e10), lr_sweep=True)
  sweeps = sweep.plan_runs(c)
  assert {r.overrides["train.flops"] for r in sweeps} == {1e10 * 0.5}  # Largest, reduced.
  results = {f"modern/{w}": losses(sweep_grid(sweeps, w), 1) for w in (16, 32)}
  full = [r for r in sweep.plan_runs(c, results) if r.stage == "full"]
  assert [(r.overrides["model.width"], r.overrides["train.flops"]) for r in full] == [
      (16, 1e9), (16, 1e10), (32, 1e9), (32, 1e10)]
  assert len({r.run_id for r in full}) == 4
  with pytest.raises(sweep.SweepError, match="groups.modern.flops_budgets"):
    sweep.plan_runs(sweep_config(tmp_path, tmp_path, flops_budgets=(-1.0,)))


def test_learning_rates_interpolate_log_linearly_in_width():
  anchors = {32: 9.95e-3, 64: 5.79e-3, 128: 3.37e-3, 256: 1.97e-3}
  assert sweep.interpolate_lr(anchors, 64) == pytest.approx(5.79e-3)
  middle = sweep.interpolate_lr(anchors, 96)
  assert 3.37e-3 < middle < 5.79e-3
  assert middle == pytest.approx((5.79e-3 * 3.37e-3) ** 0.5 * (96 / (64 * 128) ** 0.5)
                                 ** (-0.781), rel=0.02)
  assert sweep.interpolate_lr(anchors, 512) < 1.97e-3  # Extrapolates with the end slope.


def test_bad_sweep_configs_name_the_field(tmp_path):
  with pytest.raises(sweep.SweepError, match="groups.modern.lr_values"):
    sweep.plan_runs(sweep_config(tmp_path, tmp_path, lr_values=(1e-3, 2e-3)))
  with pytest.raises(sweep.SweepError, match="groups.modern.widths"):
    sweep.plan_runs(sweep_config(tmp_path, tmp_path, widths=()))


def write_run(sweep_dir, run, status, loss=None, reason=None):
  run_dir = sweep_dir / "runs" / run.run_id
  run_dir.mkdir(parents=True, exist_ok=True)
  rundir.write_record(run_dir, rundir.RunRecord(run.run_id, run.label, status,
                                                final_validation_loss=loss,
                                                failure_reason=reason))


def test_lr_choice_is_the_best_completed_final_loss(tmp_path):
  c = sweep_config(tmp_path, tmp_path, lr_sweep=True)
  runs = sweep.plan_runs(c)
  write_run(tmp_path, runs[0], "completed", 3.0)
  write_run(tmp_path, runs[1], "completed", 2.5)
  # A diverged grid point is a result of its rate (inf): the choice is among the rest.
  write_run(tmp_path, runs[2], "failed", reason="diverged: mean train loss 9.1 nats/token")
  curves = sweep.choose_learning_rates(tmp_path, runs)
  entry = curves["modern/16"]
  assert entry["chosen_learning_rate"] == runs[1].overrides["optim.learning_rate"]
  assert [p["status"] for p in entry["curve"]] == ["completed", "completed", "failed"]
  assert not entry["chosen_at_grid_edge"]
  assert entry["margin_to_next_best"] == pytest.approx(0.5)


def test_lr_search_grows_the_grid_past_a_winning_edge():
  base = [1e-3, 3.162e-3, 1e-2]
  low, high = 3.162e-4, 3.162e-2
  interior = {1e-3: 3.0, 3.162e-3: 2.0, 1e-2: 2.5}
  assert sweep.lr_search(base, interior, 0.5, 2) == (base, 3.162e-3)
  assert sweep.lr_search(base, {1e-3: 3.0, 3.162e-3: 2.0}, 0.5, 2) == (base, None)  # Pending.
  top = {1e-3: 3.0, 3.162e-3: 2.5, 1e-2: 2.0}
  assert sweep.lr_search(base, top, 0.5, 2) == (base + [high], None)
  assert sweep.lr_search(base, {**top, high: 2.2}, 0.5, 2) == (base + [high], 1e-2)
  # The new end wins again: one more point; it diverges, so the previous end is chosen.
  assert sweep.lr_search(base, {**top, high: 1.9}, 0.5, 2) == (base + [high, 0.1], None)
  assert sweep.lr_search(base, {**top, high: 1.9, 0.1: math.inf}, 0.5, 2) == (
      base + [high, 0.1], high)
  # Extensions used up: the edge is chosen.
  assert sweep.lr_search(base, {**top, high: 1.9}, 0.5, 1) == (base + [high], high)
  assert sweep.lr_search(base, top, 0.5, 0) == (base, 1e-2)
  bottom = {1e-3: 2.0, 3.162e-3: 2.5, 1e-2: 3.0}
  assert sweep.lr_search(base, {**bottom, low: 2.1}, 0.5, 2) == ([low] + base, 1e-3)
  assert sweep.lr_search(base, dict.fromkeys(base, math.inf), 0.5, 2) == (base, None)


def test_a_winning_edge_runs_one_more_sweep_point_before_the_full_runs(tmp_path):
  c = sweep_config(tmp_path, tmp_path, lr_sweep=True)
  with c.unlocked():
    c.lr_sweep.max_extensions = 1
  runs = sweep.plan_from_directory(c, tmp_path)
  grid = sweep_grid(runs, 16)
  for run, loss in zip(runs, (3.0, 2.5, 2.0)):  # The largest rate wins.
    write_run(tmp_path, run, "completed", loss)
  runs = sweep.plan_from_directory(c, tmp_path)
  assert sweep_grid(runs, 16) == pytest.approx(grid + [grid[-1] * 10**0.5], rel=1e-3)
  assert not [r for r in runs if r.stage == "full"]
  manifest = json.loads((tmp_path / sweep.MANIFEST_FILE).read_text())["runs"]
  assert len(manifest) == 4  # The export sees the new point too.
  write_run(tmp_path, runs[-1], "completed", 2.2)
  runs = sweep.plan_from_directory(c, tmp_path)
  full = [r for r in runs if r.stage == "full"]
  assert [r.overrides["optim.learning_rate"] for r in full] == [grid[-1]]
  record = json.loads((tmp_path / sweep.LR_CHOICES_FILE).read_text())["modern/16"]
  assert record["chosen_learning_rate"] == grid[-1] and not record["chosen_at_grid_edge"]
  assert len(record["curve"]) == 4


def test_sweep_resumes_after_a_kill_and_keeps_failures(small_corpus, tmp_path):
  c = sweep_config(small_corpus, tmp_path / "cache", widths=(16, 32))
  with c.unlocked():
    c.groups.diverges = dict(c.groups.modern.to_dict(), widths=(16,), lr_values=(1e30,),
                             overrides={"optim": {"grad_clip_norm": 0.0}})
  runs = sweep.plan_runs(c)
  by_id = {r.run_id: r for r in runs}
  finished, killed = by_id["modern_w16_s123"], by_id["modern_w32_s123"]

  def run_config(run):  # The same config the launcher would build.
    cfg = config_lib.base_config()
    for dotted, value in run.overrides.items():
      node = cfg
      *parents, leaf = dotted.split(".")
      for p in parents:
        node = node[p]
      node[leaf] = value
    return cfg

  old_cwd = os.getcwd()
  os.chdir(sweep.__file__.rsplit("/algoprog/", 1)[0])
  try:
    train.train_and_evaluate(run_config(finished), tmp_path / "sweep/runs" / finished.run_id,
                             mesh=train.make_mesh(train.jax.devices()[:1]))
    # A kill after step 4: checkpoint at step 3, status still "running".
    train.train_and_evaluate(run_config(killed), tmp_path / "sweep/runs" / killed.run_id,
                             mesh=train.make_mesh(train.jax.devices()[:1]),
                             stop_after_steps=4)
  finally:
    os.chdir(old_cwd)
  finished_metrics = (tmp_path / "sweep/runs" / finished.run_id / "metrics.jsonl").read_text()
  assert sweep.run_status(tmp_path / "sweep", killed)["status"] == "running"

  results = sweep.run_sweep(c, tmp_path / "sweep", workers=2, log=lambda *_: None)
  assert results[finished.run_id]["status"] == "completed"
  assert results[killed.run_id]["status"] == "completed"
  assert "resumed" in (tmp_path / "sweep/runs" / killed.run_id / "launcher.log").read_text()
  assert not (tmp_path / "sweep/runs" / finished.run_id / "launcher.log").exists()
  assert (tmp_path / "sweep/runs" / finished.run_id / "metrics.jsonl").read_text() == \
      finished_metrics
  failures = json.loads((tmp_path / "sweep" / sweep.FAILURES_FILE).read_text())["failures"]
  assert [f["run_id"] for f in failures] == ["diverges_w16_s123"]
  assert "train loss" in failures[0]["reason"]
  manifest = json.loads((tmp_path / "sweep" / sweep.MANIFEST_FILE).read_text())
  assert {r["run_id"] for r in manifest["runs"]} == set(by_id)

  # Rerunning finds nothing to do and does not retry the failure.
  again = sweep.run_sweep(c, tmp_path / "sweep", workers=1, log=lambda *_: None)
  assert again["diverges_w16_s123"]["status"] == "failed"


def test_export_writes_commands_and_a_slurm_array(tmp_path):
  c = sweep_config(tmp_path, tmp_path, widths=(16, 32))
  runs = sweep.plan_runs(c)
  commands, slurm = sweep.export_commands(tmp_path, runs)
  lines = commands.read_text().splitlines()
  assert len(lines) == 2
  assert lines[0].startswith(f"{pathlib.Path(sys.executable).absolute()} -m launch.train "
                             "--config=configs/")
  assert "--config.model.width=16" in lines[0] and "--distributed" not in lines[0]
  script = slurm.read_text()
  assert "#SBATCH --array=1-2" in script and "#SBATCH --cpus-per-task=8" in script
  assert "--gpus-per-task" not in script  # 0 GPUs: no line.


def test_every_shipped_reproduce_preset_exports(tmp_path):
  # Reproduce configs nest their sweep under `sweep` (launch.sweep used to fail on them).
  presets = sorted(ROOT.glob("configs/reproduce_*.py"))
  assert len(presets) >= 3
  resources = sweep.SlurmResources(cpus_per_task=4, gpus_per_task=1, mem="64G",
                                   time="12:00:00", partition="gpu")
  for preset in presets:
    out = tmp_path / preset.stem
    out.mkdir()
    config = sweep.sweep_section(config_lib.load_config_file(preset))
    runs = sweep.plan_from_directory(config, out)
    commands, slurm = sweep.export_commands(out, runs, resources, distributed=True)
    lines = commands.read_text().splitlines()
    assert len(lines) == len(runs) > 0, preset
    for line in lines:
      args = shlex.split(line)
      assert pathlib.Path(args[0]).is_absolute() and args[1:3] == ["-m", "launch.train"]
      assert (ROOT / args[3].removeprefix("--config=")).exists(), args[3]
      assert args[-1] == "--distributed"
    script = slurm.read_text()
    for line in (f"#SBATCH --array=1-{len(runs)}", "#SBATCH --cpus-per-task=4",
                 "#SBATCH --gpus-per-task=1", "#SBATCH --mem=64G", "#SBATCH --time=12:00:00",
                 "#SBATCH --partition=gpu", f"cd {ROOT}"):
      assert line in script.splitlines(), (preset, line)


def test_sweep_launcher_exports_a_reproduce_preset(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "launch.sweep", "--config=configs/reproduce_paper.py",
       f"--workdir={tmp_path}", "--export", "--slurm_gpus_per_task=1", "--slurm_mem=80G"],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "#SBATCH --gpus-per-task=1" in (tmp_path / "slurm_array.sh").read_text()
  assert "#SBATCH --mem=80G" in (tmp_path / "slurm_array.sh").read_text()
  result = subprocess.run(
      [sys.executable, "-m", "launch.sweep", "--config=configs/account_study.py",
       f"--workdir={tmp_path / 'x'}", "--export"],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode != 0
  assert result.stderr.strip().splitlines()[-1].startswith("error: config: expected a sweep")


def test_worker_device_env_gives_each_worker_its_own_devices():
  assert sweep.worker_device_env(0, 0) == {}  # No pinning.
  seen = set()
  for slot in range(4):
    env = sweep.worker_device_env(slot, 2)
    ids = env["CUDA_VISIBLE_DEVICES"].split(",")
    assert ids == [str(2 * slot), str(2 * slot + 1)]
    assert env["TPU_VISIBLE_CHIPS"] == env["HIP_VISIBLE_DEVICES"] == env["CUDA_VISIBLE_DEVICES"]
    assert env["TPU_CHIPS_PER_PROCESS_BOUNDS"] == "1,2,1"
    assert not seen & set(ids)
    seen |= set(ids)
  ports = {sweep.worker_device_env(slot, 1)["TPU_PROCESS_PORT"] for slot in range(4)}
  assert len(ports) == 4
  assert "TPU_CHIPS_PER_PROCESS_BOUNDS" not in sweep.worker_device_env(0, 3)
  with pytest.raises(sweep.SweepError, match="devices_per_worker"):
    sweep.worker_device_env(0, -1)


def test_concurrent_workers_run_on_disjoint_devices(tmp_path, monkeypatch):
  c = sweep_config(tmp_path, tmp_path, widths=(16, 32, 48, 64), seeds=(1, 2))
  runs = sweep.plan_runs(c)
  lock = threading.Lock()
  running, overlaps, seen = {}, [], []

  class FakeTrainer:  # Stands in for one launch.train process.
    def __init__(self, command, env, **kwargs):
      self.devices = set(env["CUDA_VISIBLE_DEVICES"].split(","))
      with lock:
        overlaps.extend(d for other in running.values() for d in self.devices & other)
        running[id(self)] = self.devices
        seen.append((self.devices, "--distributed" in command))

    def wait(self):
      time.sleep(0.05)
      with lock:
        del running[id(self)]
      return 1

  monkeypatch.setattr(sweep.subprocess, "Popen", FakeTrainer)
  sweep.execute(tmp_path, runs, workers=3, log=lambda *_: None, devices_per_worker=2)
  assert len(seen) == len(runs) == 8 and not overlaps
  assert {d for devices, _ in seen for d in devices} <= {str(i) for i in range(6)}
  assert not any(distributed for _, distributed in seen)
  with pytest.raises(sweep.SweepError, match="workers: expected 1 with --distributed"):
    sweep.execute(tmp_path, runs, workers=2, distributed=True)
  seen.clear()  # Multi-host: every run is launched as `launch.train ... --distributed`.
  sweep.execute(tmp_path, runs, workers=1, log=lambda *_: None, retry_failed=True,
                devices_per_worker=1, distributed=True)
  assert len(seen) == 8 and all(distributed for _, distributed in seen)
  assert {d for devices, _ in seen for d in devices} == {"0"}


def test_a_finished_run_of_an_older_plan_is_not_taken_for_the_planned_one(tmp_path):
  (run,) = sweep.plan_runs(sweep_config(tmp_path, tmp_path))
  write_run(tmp_path, run, "completed", 2.0)

  def write_config(learning_rate):
    ran = {}
    for dotted, value in {**run.overrides, "optim.learning_rate": learning_rate}.items():
      *parents, leaf = dotted.split(".")
      node = ran
      for part in parents:
        node = node.setdefault(part, {})
      node[leaf] = list(value) if isinstance(value, tuple) else value
    rundir.write_json(tmp_path / "runs" / run.run_id / rundir.CONFIG_FILE, ran)

  write_config(run.overrides["optim.learning_rate"])  # As planned: skipped, not rerun.
  assert sweep.execute(tmp_path, [run], workers=1, log=None)[run.run_id]["status"] == "completed"
  write_config(0.5)
  with pytest.raises(sweep.StaleRunError, match=r"optim.learning_rate: ran 0.5, planned 0.003"):
    sweep.execute(tmp_path, [run], workers=1, log=None)


def test_eta_is_the_mean_run_time_times_the_runs_left_per_worker():
  assert sweep.eta_seconds([], 5, 2) is None
  assert sweep.eta_seconds([10.0, 30.0], 4, 1) == 80.0
  assert sweep.eta_seconds([10.0, 30.0], 4, 2) == 40.0
  assert sweep.eta_seconds([10.0, 30.0], 1, 4) == 20.0  # One run left: one worker busy.
  assert sweep.eta_seconds([10.0], 0, 2) == 0.0
  assert [sweep.format_duration(s) for s in (None, 42.4, 185, 3720)] == [
      "?", "42s", "3m 05s", "1h 02m"]


def test_execute_prints_progress_with_an_eta(tmp_path, monkeypatch):
  runs = sweep.plan_runs(sweep_config(tmp_path, tmp_path, seeds=(1, 2, 3)))
  assert len(runs) == 3
  monkeypatch.setattr(sweep, "_execute", lambda sweep_dir, run, env: {
      "status": "completed", "final_validation_loss": 2.5})
  lines = []
  results = sweep.execute(tmp_path, runs, workers=1, log=lines.append)
  assert {info["status"] for info in results.values()} == {"completed"}
  progress = [l for l in lines if "ETA" in l]
  assert [l.split()[0] for l in progress] == ["[1/3]", "[2/3]", "[3/3]"]
  assert progress[-1].endswith("ETA 0s") and "validation 2.5000" in progress[0]
