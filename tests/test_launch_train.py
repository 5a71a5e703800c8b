"""The training entry point end to end, as a user runs it."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def launch(workdir, corpus, cache, *extra):
  env = dict(os.environ, XLA_FLAGS="")  # One CPU device, as on a laptop.
  return subprocess.run(
      [sys.executable, "-m", "launch.train", "--config=configs/modern.py",
       f"--workdir={workdir}", "--config.data.source=text", f"--config.data.path={corpus}",
       "--config.data.tokenizer=byte", f"--config.data.cache_dir={cache}",
       "--config.data.validation_tokens=2048", "--config.data.batch_size=8",
       "--config.data.sequence_length=32", "--config.model.width=16",
       "--config.train.tokens=4096", "--config.train.eval_every_steps=8", *extra],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_train_launcher_runs_and_records(small_corpus, tmp_path):
  result = launch(tmp_path / "run", small_corpus, tmp_path / "cache")
  assert result.returncode == 0, result.stderr[-2000:]
  assert "validation" in result.stderr and "FLOPs" in result.stderr
  assert "steps/s  ETA 0s" in result.stderr  # The last progress line.
  rows = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows] == [1, 2, 4, 8, 16]
  assert set(rows[0]) == {"step", "tokens", "flops", "train_loss", "validation_loss",
                          "validation_tokens", "wall_time_s", "learning_rate",
                          "tokens_per_s", "model_flops_per_s", "mfu"}
  run = json.loads((tmp_path / "run" / "run.json").read_text())
  assert run["status"] == "completed" and run["flops_convention"]
  again = launch(tmp_path / "run", small_corpus, tmp_path / "cache")  # A finished run.
  assert again.returncode == 0 and "already complete" in again.stderr
  assert json.loads((tmp_path / "run" / "run.json").read_text()) == run


def test_bad_input_is_one_line_naming_the_field(small_corpus, tmp_path):
  cases = {
      "--config.model.widht=32": "widht",
      "--config.model.width=40": "model.width",
      "--config.model.max_sequence_length=16": "data.sequence_length",
      "--config.optim.schedule=cosinus": "optim.schedule",
  }
  (tmp_path / "broken.py").write_text("def get_config(:\n")
  (tmp_path / "raises.py").write_text("def get_config():\n  return undefined_name\n")
  (tmp_path / "file").write_text("not a folder")
  (tmp_path / "binary").mkdir()
  (tmp_path / "binary" / "data.txt").write_bytes(bytes(range(256)) * 64)
  cases.update({
      "--config.optim.learning_rate=inf": "optim.learning_rate: expected a finite number",
      f"--config={tmp_path / 'missing.py'}": "missing.py",
      f"--config={tmp_path / 'broken.py'}": "broken.py: cannot load it (SyntaxError",
      f"--config={tmp_path / 'raises.py'}": "raises.py: cannot load it (NameError",
      f"--config.data.path={tmp_path / 'binary'}": "data.txt looks binary",
  })
  for flag, field in cases.items():
    result = launch(tmp_path / "bad", small_corpus, tmp_path / "cache", flag)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and field in last, (flag, result.stderr[-1500:])
    assert "Traceback" not in result.stderr
  # An unwritable workdir (here: below a file; read-only and full disks raise the same
  # OSError) names the path.
  result = launch(tmp_path / "file" / "run", small_corpus, tmp_path / "cache")
  last = result.stderr.strip().splitlines()[-1]
  assert result.returncode != 0 and "Traceback" not in result.stderr
  assert last.startswith(f"error: {tmp_path / 'file' / 'run'}: Not a directory"), last


def test_failed_run_is_one_line_and_recorded(small_corpus, tmp_path):
  result = launch(tmp_path / "run", small_corpus, tmp_path / "cache",
                  "--config.optim.learning_rate=10")
  last = result.stderr.strip().splitlines()[-1]
  assert result.returncode != 0 and "Traceback" not in result.stderr
  assert last.startswith("error: diverged: mean train loss"), last
  run = json.loads((tmp_path / "run" / "run.json").read_text())
  assert run["status"] == "failed" and run["failure_reason"] == last[len("error: "):]


def test_sigterm_checkpoints_exits_143_and_the_rerun_finishes(small_corpus, tmp_path):
  """A scheduler's SIGTERM: the launcher checkpoints at the next step boundary, records
  status "interrupted" and exits 143; the same command then resumes and completes."""
  args = (tmp_path / "run", small_corpus, tmp_path / "cache", "--config.train.tokens=81920",
          "--config.train.eval_every_steps=1000")  # 320 steps.
  env = dict(os.environ, XLA_FLAGS="")
  process = subprocess.Popen(
      [sys.executable, "-m", "launch.train", "--config=configs/modern.py",
       f"--workdir={args[0]}", "--config.data.source=text", f"--config.data.path={args[1]}",
       "--config.data.tokenizer=byte", f"--config.data.cache_dir={args[2]}",
       "--config.data.validation_tokens=2048", "--config.data.batch_size=8",
       "--config.data.sequence_length=32", "--config.model.width=16", *args[3:]],
      cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  metrics_file = tmp_path / "run" / "metrics.jsonl"
  deadline = time.time() + 240
  while not (metrics_file.exists() and metrics_file.read_text()) and process.poll() is None:
    assert time.time() < deadline, "the run never started training"
    time.sleep(0.05)
  process.send_signal(signal.SIGTERM)  # Right after the step-1 evaluation: mid-run.
  stderr = process.communicate(timeout=240)[1]
  assert process.returncode == 143, stderr[-1500:]
  run = json.loads((tmp_path / "run" / "run.json").read_text())
  assert run["status"] == "interrupted" and 0 < run["interrupted_at_step"] < 320
  assert str(run["interrupted_at_step"]) in os.listdir(tmp_path / "run" / "checkpoints")
  result = launch(*args)
  assert result.returncode == 0, result.stderr[-1500:]
  assert f"resumed {tmp_path / 'run'} at step {run['interrupted_at_step']}" in result.stderr
  assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "completed"


def test_reproduce_names_an_unwritable_workdir(tmp_path):
  (tmp_path / "file").write_text("not a folder")
  result = subprocess.run(
      [sys.executable, "-m", "launch.reproduce", "--config=configs/reproduce_tiny.py",
       f"--workdir={tmp_path / 'file' / 'study'}"],
      cwd=ROOT, env=dict(os.environ, XLA_FLAGS=""), capture_output=True, text=True,
      timeout=300)
  last = result.stderr.strip().splitlines()[-1]
  assert result.returncode != 0 and "Traceback" not in result.stderr
  assert last.startswith(f"error: {tmp_path / 'file' / 'study'}: Not a directory"), last
