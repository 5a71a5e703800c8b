"""Trackers: TensorBoard event files mirror metrics.jsonl (also across a resume), W&B gets
the same rows (a fake wandb module), only process 0 tracks, and train.trackers is checked."""

import importlib
import importlib.machinery
import importlib.util
import shutil
import struct
import sys
import types

import pytest

from algoprog import rundir
from algoprog.training import config as config_lib, presets, tracking, train
from test_train import tiny_config

pytest.importorskip("tensorboardX")  # The dev extra installs it.


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  return tmp_path_factory.mktemp("cache")


def read_events(path):
  """(tag, step, value) of every scalar in a TensorBoard event file (TFRecord framing:
  u64 length, u32 crc, payload, u32 crc)."""
  from tensorboardX.proto import event_pb2
  data, out, offset = path.read_bytes(), [], 0
  while offset < len(data):
    (length,) = struct.unpack("<Q", data[offset:offset + 8])
    event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
    offset += 12 + length + 4
    for value in event.summary.value:
      out.append((value.tag, event.step, value.simple_value))
  return out


def scalars_by_tag(run_dir):
  files = rundir.tensorboard_event_files(run_dir)
  assert len(files) == 1, files  # Rewritten on resume, never a second file beside it.
  by_tag = {}
  for tag, step, value in read_events(files[0]):
    by_tag.setdefault(tag, []).append((step, value))
  return by_tag


def metrics_by_tag(run_dir):
  rows = rundir.read_metrics(run_dir)
  return {tag: [(row["step"], row[tag]) for row in rows]
          for tag in tracking.scalars(rows[0])}


def assert_events_mirror_metrics(run_dir):
  events, metrics = scalars_by_tag(run_dir), metrics_by_tag(run_dir)
  assert set(events) == set(metrics) == {"tokens", "flops", "train_loss", "validation_loss",
                                         "validation_tokens", "wall_time_s", "learning_rate",
                                         "tokens_per_s", "model_flops_per_s", "mfu"}
  for tag, expected in metrics.items():
    assert [s for s, _ in events[tag]] == [s for s, _ in expected], tag
    assert [v for _, v in events[tag]] == pytest.approx([v for _, v in expected], rel=1e-6)


def test_tensorboard_events_mirror_metrics_and_a_resume_repeats_no_step(small_corpus, cache,
                                                                         tmp_path):
  config = tiny_config(small_corpus, cache, train__trackers="jsonl,tensorboard")
  run_dir = tmp_path / "sweep" / "run_a"
  train.train_and_evaluate(config, run_dir, stop_after_steps=9)  # Evals 1, 2, 4, 8.
  assert_events_mirror_metrics(run_dir)
  assert [s for s, _ in scalars_by_tag(run_dir)["train_loss"]] == [1, 2, 4, 8]
  # Killed after the step-8 evaluation but before checkpoint 9: the rerun resumes at 5 and
  # evaluates step 8 again, which must replace the first step-8 row, not add to it.
  shutil.rmtree(run_dir / "checkpoints" / "9")
  info = train.train_and_evaluate(config, run_dir)
  assert info["status"] == "completed"
  assert_events_mirror_metrics(run_dir)
  assert [s for s, _ in scalars_by_tag(run_dir)["validation_loss"]] == [1, 2, 4, 8, 12]
  # TensorBoard names a run by the folder of its events: the run directory itself.
  assert rundir.tensorboard_event_files(run_dir)[0].parent == run_dir


def test_a_process_that_writes_no_run_files_writes_no_events(small_corpus, cache, tmp_path,
                                                            monkeypatch):
  monkeypatch.setattr(train, "writes_run_files", lambda: False)  # As process 1 of 2.
  train.train_and_evaluate(tiny_config(small_corpus, cache, train__trackers="tensorboard"),
                           tmp_path / "run", stop_after_steps=2)
  assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoints"]


@pytest.fixture
def fake_wandb(monkeypatch):
  """A stand-in wandb module recording init arguments and logged rows."""
  module = types.ModuleType("wandb")
  module.__spec__ = importlib.machinery.ModuleSpec("wandb", None)
  module.runs = []

  class Run:

    def __init__(self, **kwargs):
      self.init, self.logged, self.finished = kwargs, [], False

    def log(self, values, step):
      self.logged.append((step, values))

    def finish(self):
      self.finished = True

  def init(**kwargs):
    module.runs.append(Run(**kwargs))
    return module.runs[-1]

  module.init = init
  monkeypatch.setitem(sys.modules, "wandb", module)
  return module


def test_wandb_gets_the_metrics_rows_and_a_resume_continues_its_run(small_corpus, cache,
                                                                    tmp_path, fake_wandb):
  config = tiny_config(small_corpus, cache, train__trackers="wandb")
  run_dir = tmp_path / "run"
  train.train_and_evaluate(config, run_dir, stop_after_steps=5)
  train.train_and_evaluate(config, run_dir)
  first, second = fake_wandb.runs
  assert first.finished and second.finished
  assert first.init["id"] == second.init["id"] == tracking.wandb_run_id(run_dir)
  assert first.init["resume"] == "allow" and first.init["config"]["train"]["trackers"] == "wandb"
  logged = first.logged + second.logged
  rows = rundir.read_metrics(run_dir)
  assert [step for step, _ in logged] == [r["step"] for r in rows] == [1, 2, 4, 8, 12]
  assert [values for _, values in logged] == [tracking.scalars(r) for r in rows]


def test_trackers_field_is_checked_and_named(monkeypatch):
  c = presets.modern()
  c.train.trackers = "jsonl,tensorbord"
  with pytest.raises(config_lib.ConfigError,
                     match=r"^train\.trackers: expected a comma list of jsonl, tensorboard, "
                           r"wandb; got 'tensorbord'"):
    config_lib.validate(c)
  real = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, "find_spec",
                      lambda name, *a: None if name == "tensorboardX" else real(name, *a))
  c.train.trackers = "tensorboard"
  with pytest.raises(config_lib.ConfigError, match=r"^train\.trackers: 'tensorboard' needs "
                     r"the tensorboardX package.*algoprog\[tensorboard\]"):
    config_lib.validate(c)


def test_parse_trackers_always_includes_jsonl():
  assert tracking.parse_trackers("") == ("jsonl",)
  assert tracking.parse_trackers("tensorboard, jsonl") == ("jsonl", "tensorboard")


def test_old_configs_and_resumes_may_differ_in_trackers():
  """A config.json from before train.trackers existed backfills it as "jsonl" (what those
  runs did), and the field is bookkeeping: a resume may add or drop trackers."""
  new = config_lib.resolve(presets.modern()).to_dict()
  old = {**new, "train": {k: v for k, v in new["train"].items() if k != "trackers"}}
  assert config_lib.backfill(old) == new
  changed = {**new, "train": {**new["train"], "trackers": "jsonl,tensorboard"}}
  assert train._config_differences(new, changed) == []
