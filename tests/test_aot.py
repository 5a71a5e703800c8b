"""Ahead-of-time compilation of the train step: the memory/FLOPs report and its command."""

import os
import pathlib
import subprocess
import sys

import jax

from algoprog.training import aot, config as config_lib, train

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_largest_runs_are_each_groups_biggest_width_by_params():
  config = config_lib.load_config_file(ROOT / "configs/reproduce_paper.py")
  runs = aot.largest_runs(config, 3)
  assert [c.model.width for _, c in runs] == [256, 256, 256]
  assert {c.data.tokenizer for _, c in runs} == {"gpt2"}
  sizes = [aot.param_count(c, aot.vocab_size(c.data)) for _, c in runs]
  assert sizes == sorted(sizes, reverse=True)
  # Width 256 with GPT-2's vocabulary: the 12.9M-entry embedding dominates.
  assert sizes[0] > 256 * aot.GPT2_VOCAB_SIZE


def test_step_report_on_a_sharded_mesh_scales_with_the_batch_shard():
  c = config_lib.base_config()
  c.model.width, c.data.sequence_length, c.data.tokenizer = 16, 32, "byte"
  c = config_lib.resolve(c)
  reports = {}
  for devices in (2, 8):
    mesh = train.make_mesh(jax.devices()[:devices])
    reports[devices] = aot.step_report("modern", c, mesh)
  two, eight = reports[2], reports[8]
  assert (two.batch_per_device, eight.batch_per_device) == (32, 8)
  params = aot.param_count(c, 257)
  # Replicated train state: params + AdamW's two moments (+ step counts) on every device.
  assert 3 * 4 * params <= eight.argument_bytes < 3 * 4 * params + 64 * 1024
  assert eight.alias_bytes >= 3 * 4 * params  # The donated state is updated in place.
  # A quarter of the batch per device: fewer activation bytes and fewer FLOPs per device.
  assert 0 < eight.temp_bytes < two.temp_bytes
  assert 0 < eight.flops < two.flops
  assert eight.peak_bytes >= eight.argument_bytes + eight.temp_bytes - eight.alias_bytes
  table = aot.table([two, eight]).splitlines()
  assert len(table) == 4 and table[0].startswith("| run | width | params")


def test_aot_command_prints_the_table_for_a_preset(tmp_path):
  env = dict(os.environ, XLA_FLAGS="")  # The command sets its own device count.
  result = subprocess.run(
      [sys.executable, "-m", "launch.aot", "--config=configs/reproduce_tiny.py",
       "--devices=4", "--runs=1"], cwd=ROOT, env=env, capture_output=True, text=True,
      timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  lines = [l for l in result.stdout.splitlines() if l.startswith("| ")]
  assert len(lines) == 2 and "on 4 x cpu" in result.stdout  # Header and one run.
  cells = [x.strip() for x in lines[1].strip("|").split("|")]
  assert cells[3] == "4" and float(cells[10].replace(",", "")) > 0
  bad = subprocess.run(
      [sys.executable, "-m", "launch.aot", "--config=configs/reproduce_tiny.py",
       "--devices=4", "--config.sweep.groups.modern.widths=(40,)"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert bad.returncode != 0
  assert bad.stderr.strip().splitlines()[-1].startswith("error: model.width")
