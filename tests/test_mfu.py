"""Model FLOP/s and MFU in progress lines, metrics.jsonl and run.json (algoprog.training.train
with algoprog.hardware.device_peak)."""

import dataclasses
import json
import logging
import re

import jax
import pytest

from algoprog import hardware, rundir
from algoprog.analysis import runs
from algoprog.training import train

from test_train import tiny_config


@dataclasses.dataclass(frozen=True)
class FutureDevice:
  """A jax-like device of a chip the peak table has never heard of."""
  platform: str = "gpu"
  device_kind: str = "Quantum Matmul Engine 9000"


def assert_consistent(rows: list[dict], run: dict) -> None:
  """Each row's model FLOP/s and MFU follow from its own numbers and run.json's peak."""
  for row in rows:
    assert row["tokens_per_s"] > 0
    flops_per_token = row["flops"] / row["tokens"]
    assert row["model_flops_per_s"] == pytest.approx(flops_per_token * row["tokens_per_s"],
                                                     rel=1e-9)
    if run["peak_flops_per_s"] is None:
      assert row["mfu"] is None
    else:
      assert row["mfu"] == pytest.approx(
          row["model_flops_per_s"] / (run["peak_flops_per_s"] * run["devices"]), rel=1e-9)


def test_rows_and_progress_lines_report_model_flops_and_mfu(small_corpus, tmp_path, caplog):
  config = tiny_config(small_corpus, tmp_path / "cache")
  with caplog.at_level(logging.INFO):
    train.train_and_evaluate(config, tmp_path / "run")
  run = json.loads((tmp_path / "run" / rundir.RUN_FILE).read_text())
  assert run["devices"] == jax.device_count()
  assert run["peak_dtype"] == "float32" and run["peak_flops_per_s"] > 0
  assert run["peak_source"].startswith("measured")
  rows = rundir.read_metrics(tmp_path / "run")
  assert len(rows) > 1
  assert_consistent(rows, run)
  assert all(0 < row["mfu"] for row in rows)
  assert re.search(r"FLOP/s  MFU \d+\.\d%", caplog.text)


def test_a_chip_without_a_table_entry_gives_null_mfu_and_a_note(small_corpus, tmp_path,
                                                               caplog, monkeypatch):
  peak = hardware.device_peak(FutureDevice(), "float32")
  assert peak.flops_per_s is None and "Quantum Matmul Engine 9000" in peak.source
  real = hardware.device_peak
  monkeypatch.setattr(train.hardware, "device_peak",
                      lambda device, dtype: real(FutureDevice(), dtype))
  config = tiny_config(small_corpus, tmp_path / "cache", train__tokens=16 * 32 * 4)
  with caplog.at_level(logging.INFO):
    train.train_and_evaluate(config, tmp_path / "run")
  run = json.loads((tmp_path / "run" / rundir.RUN_FILE).read_text())
  assert run["status"] == "completed"
  assert run["peak_flops_per_s"] is None and "no entry" in run["peak_source"]
  rows = rundir.read_metrics(tmp_path / "run")
  assert_consistent(rows, run)
  assert "MFU n/a" in caplog.text and "no entry" in caplog.text
  table = runs.load_runs(tmp_path)  # The analysis reads rows with a null mfu as any.
  assert table.run_ids == ["run"] and table.loss.size == len(rows)


def test_table_peaks_follow_the_matmul_dtype():
  h100 = type("Device", (), {"platform": "gpu", "device_kind": "NVIDIA H100 80GB HBM3"})()
  assert hardware.device_peak(h100, "float32").dtype == "tfloat32"  # XLA's f32 default.
  assert hardware.device_peak(h100, "bfloat16").flops_per_s == pytest.approx(989.5e12)
  v5e = type("Device", (), {"platform": "tpu", "device_kind": "TPU v5 lite"})()
  assert hardware.device_peak(v5e, "float32").flops_per_s == pytest.approx(197e12)
  assert "Google Cloud" in hardware.device_peak(v5e, "bfloat16").source


def test_a_process_that_trains_nothing_measures_no_peak(small_corpus, tmp_path, monkeypatch):
  config = tiny_config(small_corpus, tmp_path / "cache", train__tokens=16 * 32 * 2)
  train.train_and_evaluate(config, tmp_path / "run")

  def measured(dtype="float32"):
    raise AssertionError("the CPU peak was measured")

  monkeypatch.setattr(hardware, "measured_cpu_matmul_peak", measured)
  info = train.train_and_evaluate(config, tmp_path / "run")  # Complete: nothing to train.
  assert info["status"] == "completed"
  train.plan_run(train.config_lib.resolve(config),
                 train.data.load_corpus(train.config_lib.resolve(config).data))
