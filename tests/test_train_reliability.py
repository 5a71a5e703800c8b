"""The training loop under bad luck: reruns, kills, damaged workdirs, NaN and divergence,
two trainers, changed data, SIGTERM; and its bounded evaluation and checkpoint cadence."""

import errno
import json
import logging
import math
import os
import re
import shutil
import signal

import jax.numpy as jnp
import pytest

from algoprog import rundir
from algoprog.training import checkpoints, config as config_lib, data, train
from test_train import tiny_config, without_wall_time


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def straight(small_corpus, cache, tmp_path_factory):
  """An uninterrupted run of tiny_config: 12 steps, checkpoints every 5, evals 1,2,4,8,12."""
  run_dir = tmp_path_factory.mktemp("straight")
  info = train.train_and_evaluate(tiny_config(small_corpus, cache), run_dir)
  return run_dir, info


def checkpoint_steps(run_dir):
  return sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit())


def test_rerunning_a_finished_run_changes_nothing(straight, small_corpus, cache, caplog):
  run_dir, info = straight
  before = {name: (run_dir / name).read_text()
            for name in (rundir.RUN_FILE, rundir.METRICS_FILE, rundir.CONFIG_FILE)}
  with caplog.at_level(logging.INFO):
    again = train.train_and_evaluate(tiny_config(small_corpus, cache), run_dir)
  assert "already complete" in caplog.text
  assert again["final_validation_loss"] == info["final_validation_loss"]
  assert math.isfinite(again["final_validation_loss"])
  for name, text in before.items():
    assert (run_dir / name).read_text() == text, name


def test_killed_after_the_last_checkpoint_completes_with_the_same_loss(
    straight, small_corpus, cache, tmp_path):
  """Killed between the final checkpoint and the final run.json: the rerun re-evaluates
  instead of recording a NaN final loss."""
  run_dir = tmp_path / "run"
  shutil.copytree(straight[0], run_dir)
  info = json.loads((run_dir / rundir.RUN_FILE).read_text())
  info["status"] = "running"
  del info["final_validation_loss"]
  rundir.write_json(run_dir / rundir.RUN_FILE, info)
  again = train.train_and_evaluate(tiny_config(small_corpus, cache), run_dir)
  assert again["status"] == "completed"
  assert again["final_validation_loss"] == pytest.approx(straight[1]["final_validation_loss"],
                                                         rel=1e-6)


# Orbax's failed restore of the corrupt checkpoint leaves tensorstore callbacks that print
# "Event loop is closed" from their threads: noise, not a failure of the resume.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("damage", ["torn_metrics_row", "corrupt_newest_checkpoint",
                                    "empty_run_json"])
def test_damaged_workdir_resumes_to_the_uninterrupted_result(damage, straight, small_corpus,
                                                             cache, tmp_path):
  run_dir = tmp_path / "run"
  config = tiny_config(small_corpus, cache)
  train.train_and_evaluate(config, run_dir, stop_after_steps=11)  # Checkpoints 5, 10, 11.
  if damage == "torn_metrics_row":  # A kill in the middle of a write.
    with open(run_dir / rundir.METRICS_FILE, "a") as f:
      f.write('{"step": 12, "tokens": 61')
  elif damage == "corrupt_newest_checkpoint":  # Its array files half written.
    for path in (run_dir / "checkpoints" / "11" / "state").rglob("*"):
      if path.is_file() and path.parent.name == "d":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
  else:
    (run_dir / rundir.RUN_FILE).write_text("")
    # Fields that change how a run is watched and saved, not its results, may change too.
    config.train.log_every_steps = 3
    config.train.checkpoint_every_steps = 7
    config.train.keep_checkpoints = 2
  info = train.train_and_evaluate(config, run_dir)
  assert info["status"] == "completed"
  assert without_wall_time(rundir.read_metrics(run_dir)) == without_wall_time(
      rundir.read_metrics(straight[0]))
  assert json.loads((run_dir / rundir.RUN_FILE).read_text())["final_validation_loss"] == (
      straight[1]["final_validation_loss"])
  if damage == "corrupt_newest_checkpoint":
    assert checkpoint_steps(run_dir) == [5, 10, 12]


def test_no_restorable_checkpoint_is_an_error_that_deletes_nothing(small_corpus, cache,
                                                                   tmp_path):
  config = tiny_config(small_corpus, cache)
  train.train_and_evaluate(config, tmp_path / "run", stop_after_steps=5)
  (tmp_path / "run" / "checkpoints" / "5" / "stream" / "metadata").write_text("{")
  rows = (tmp_path / "run" / rundir.METRICS_FILE).read_text()
  with pytest.raises(checkpoints.CheckpointError, match=r"checkpoints: none of the .*steps 5"):
    train.train_and_evaluate(config, tmp_path / "run")
  assert checkpoint_steps(tmp_path / "run") == [5]
  assert (tmp_path / "run" / rundir.METRICS_FILE).read_text() == rows


def test_diverging_finite_loss_is_recorded_as_failed(small_corpus, cache, tmp_path):
  config = tiny_config(small_corpus, cache, optim__learning_rate=10.0)
  with pytest.raises(train.TrainingFailed, match="diverged"):
    train.train_and_evaluate(config, tmp_path / "run")
  run = json.loads((tmp_path / "run" / rundir.RUN_FILE).read_text())
  assert run["status"] == "failed" and run["failure_reason"].startswith("diverged: mean train")
  assert "final_validation_loss" not in run


def test_nan_loss_fails_and_keeps_the_checkpoints_before_it(small_corpus, cache, tmp_path,
                                                            monkeypatch):
  make = train.make_train_step

  def nan_from_step_7(*args, **kwargs):
    step_fn = make(*args, **kwargs)

    def poisoned(state, inputs, targets):
      new_state, loss = step_fn(state, inputs, targets)
      return new_state, jnp.where(state.step >= 6, jnp.nan, loss)
    return poisoned

  monkeypatch.setattr(train, "make_train_step", nan_from_step_7)
  with pytest.raises(train.TrainingFailed, match="train loss is nan at step 7"):
    train.train_and_evaluate(tiny_config(small_corpus, cache), tmp_path / "run")
  run = json.loads((tmp_path / "run" / rundir.RUN_FILE).read_text())
  assert run["status"] == "failed" and run["failure_reason"] == "train loss is nan at step 7"
  # Fetched at step 8 (an evaluation): checkpoint 5 is kept, nothing after the NaN saved.
  assert checkpoint_steps(tmp_path / "run") == [5]
  assert [r["step"] for r in rundir.read_metrics(tmp_path / "run")] == [1, 2, 4]


@pytest.mark.parametrize("field", ["optim.learning_rate", "optim.b2", "model.init_std",
                                   "train.tokens_per_param"])
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_non_finite_config_values_are_refused(field, value):
  c = config_lib.base_config()
  section, name = field.split(".")
  c[section][name] = value
  with pytest.raises(config_lib.ConfigError, match=rf"^{field}: expected a finite number"):
    config_lib.validate(c)


def test_second_trainer_on_a_workdir_is_refused(small_corpus, cache, tmp_path):
  run_dir = tmp_path / "run"
  run_dir.mkdir()
  with train.workdir_lock(run_dir):  # As a first trainer holds it.
    with pytest.raises(train.RunError,
                       match=rf"workdir {re.escape(str(run_dir))} is in use .*pid {os.getpid()}"):
      train.train_and_evaluate(tiny_config(small_corpus, cache), run_dir)
  assert not (run_dir / rundir.RUN_FILE).exists()
  info = train.train_and_evaluate(tiny_config(small_corpus, cache), run_dir,
                                  stop_after_steps=1)  # Released: runs.
  assert info["status"] == "running"


def test_resuming_on_changed_data_is_refused(small_corpus, tmp_path):
  corpus = tmp_path / "corpus"
  shutil.copytree(small_corpus, corpus)
  config = tiny_config(corpus, tmp_path / "cache")
  train.train_and_evaluate(config, tmp_path / "run", stop_after_steps=1)
  first = sorted(corpus.iterdir())[0]
  first.write_text(first.read_text() + "\n\nA paragraph added after the run started.\n")
  with pytest.raises(data.DataError, match=r"was trained on different data \(data_fingerprint"):
    train.train_and_evaluate(config, tmp_path / "run")


def test_binary_corpus_file_is_refused(tmp_path):
  corpus = tmp_path / "corpus"
  corpus.mkdir()
  (corpus / "a.txt").write_text("Plain prose. " * 200)
  (corpus / "b.txt").write_bytes(bytes(range(256)) * 64)
  c = tiny_config(corpus, tmp_path / "cache")
  with pytest.raises(data.DataError, match=r"data.path: expected UTF-8 text; .*b.txt looks binary"):
    data.load_corpus(c.data)


def test_sigterm_checkpoints_and_the_resumed_run_matches(straight, small_corpus, cache,
                                                         tmp_path, monkeypatch):
  batch = data.TokenStream.batch

  def sigterm_at_step_7(self, step, rows=slice(None)):
    if step == 6:  # The 7th step: the handler lets it finish, then the loop stops.
      os.kill(os.getpid(), signal.SIGTERM)
    return batch(self, step, rows)

  monkeypatch.setattr(data.TokenStream, "batch", sigterm_at_step_7)
  handler = signal.getsignal(signal.SIGTERM)
  config = tiny_config(small_corpus, cache)
  info = train.train_and_evaluate(config, tmp_path / "run")
  assert info["status"] == "interrupted" and info["interrupted_at_step"] == 7
  assert checkpoint_steps(tmp_path / "run") == [5, 7]
  assert signal.getsignal(signal.SIGTERM) == handler  # Ours removed again.
  monkeypatch.setattr(data.TokenStream, "batch", batch)
  info = train.train_and_evaluate(config, tmp_path / "run")
  assert info["status"] == "completed"
  assert without_wall_time(rundir.read_metrics(tmp_path / "run")) == without_wall_time(
      rundir.read_metrics(straight[0]))


def test_full_disk_stops_with_the_path_and_loses_nothing(straight, small_corpus, cache,
                                                         tmp_path, monkeypatch):
  save = checkpoints.save

  def disk_full_at_step_10(mngr, step, state, stream_state):
    if step == 10:
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(mngr.directory / "10"))
    save(mngr, step, state, stream_state)

  monkeypatch.setattr(checkpoints, "save", disk_full_at_step_10)
  config = tiny_config(small_corpus, cache)
  with pytest.raises(OSError, match="No space left") as raised:
    train.train_and_evaluate(config, tmp_path / "run")
  assert raised.value.filename.endswith("checkpoints/10")
  assert checkpoint_steps(tmp_path / "run") == [5]
  assert json.loads((tmp_path / "run" / rundir.RUN_FILE).read_text())["status"] == "running"
  monkeypatch.setattr(checkpoints, "save", save)
  train.train_and_evaluate(config, tmp_path / "run")
  assert without_wall_time(rundir.read_metrics(tmp_path / "run")) == without_wall_time(
      rundir.read_metrics(straight[0]))


def test_evaluation_cost_and_checkpoint_cadence_are_bounded(small_corpus, cache, tmp_path,
                                                            caplog):
  # validation_tokens beyond what the corpus holds out is capped, said and recorded.
  config = tiny_config(small_corpus, cache, data__validation_tokens=10**7,
                       train__checkpoint_every_steps=0, train__eval_tokens=8192,
                       train__log_every_steps=5, train__tokens=16 * 32 * 24)
  with caplog.at_level(logging.INFO):
    info = train.train_and_evaluate(config, tmp_path / "run", stop_after_steps=20)
  fingerprint = info["data_fingerprint"]
  assert fingerprint["validation_tokens"] < fingerprint["validation_tokens_requested"] == 10**7
  assert "data.validation_tokens: the corpus holds out only" in caplog.text
  assert re.search(r"steps/s  ETA \d+(s|m \d\ds)", caplog.text)
  # Every ceil(24 / 10) = 3 steps: the newest 3 of 3, 6, ..., 18, and 20 (the stop).
  assert checkpoint_steps(tmp_path / "run") == [15, 18, 20]
  rows = rundir.read_metrics(tmp_path / "run")
  assert [r["step"] for r in rows] == [1, 2, 4, 8, 12, 16, 20]
  assert {r["validation_tokens"] for r in rows} == {8192}  # 16 batches of 16 x 32.
  info = train.train_and_evaluate(config, tmp_path / "run")
  last = rundir.read_metrics(tmp_path / "run")[-1]
  whole = (fingerprint["validation_tokens"] - 1) // 32 * 32  # Every target of the set.
  assert last["step"] == 24 and last["validation_tokens"] == whole
  assert info["final_validation_loss"] == last["validation_loss"]


def test_derived_eval_tokens_bound_the_intermediate_evaluations():
  # The README's single-model run: 410 steps of 8,192 tokens, 12 evaluations.
  assert train.derived_eval_tokens(410 * 8192, 12, 500_000) == 410 * 8192 // 44
  assert train.derived_eval_tokens(1000, 12, 500_000) == train.MIN_EVAL_TOKENS
  assert train.derived_eval_tokens(10**9, 12, 500_000) == 500_000
  assert train.derived_eval_tokens(10**6, 1, 4096) == 4096


def test_only_process_0_writes_the_run_files(small_corpus, cache, tmp_path, monkeypatch):
  monkeypatch.setattr(train, "writes_run_files", lambda: False)  # As process 1 of 2.
  info = train.train_and_evaluate(tiny_config(small_corpus, cache), tmp_path / "run",
                                  stop_after_steps=5)
  assert info["status"] == "running"
  assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoints"]
