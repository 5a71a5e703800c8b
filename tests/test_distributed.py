"""Multi-host data parallelism proven on one machine: 2 processes x 2 CPU devices, joined by
jax.distributed over localhost with gloo CPU collectives, train and evaluate exactly as 1
process x 4 devices does."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

from algoprog.training import config as config_lib, data

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "distributed_worker.py"
STEPS = 3


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def run_processes(out: pathlib.Path, configs: list[dict], num_processes: int,
                  local_devices: int) -> dict:
  # Each child sets its own device count; the suite's 8 simulated devices must not leak in.
  env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu",
             PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
  port = free_port()
  children = [subprocess.Popen(
      [sys.executable, str(WORKER), str(out), json.dumps([json.dumps(c) for c in configs]), str(i), str(num_processes),
       str(local_devices), str(port), str(STEPS)],
      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
      for i in range(num_processes)]
  logs = []
  for child in children:
    try:
      logs.append(child.communicate(timeout=240)[0])
    except subprocess.TimeoutExpired:
      for c in children:
        c.kill()
      raise
  if any(c.returncode for c in children):
    log = "\n".join(logs)
    if "gloo" in log.lower() and ("not" in log.lower() and "support" in log.lower()):
      pytest.skip("this jaxlib has no gloo CPU collectives: " + log.strip().splitlines()[-1])
    raise AssertionError(f"worker failed:\n{log[-4000:]}")
  return json.loads(out.read_text())


def test_two_processes_train_and_evaluate_like_one(small_corpus, tmp_path):
  configs = []
  # The LSTM's carry is sharded like the batch. Block 0: the logits path, whose first-step
  # loss is bit-equal across process layouts; the fused output layer (the default block)
  # agrees to float32 rounding from the first step on.
  for kind, block in (("transformer", 0), ("transformer", 512), ("lstm", 512)):
    c = config_lib.base_config()
    c.data.source, c.data.path, c.data.tokenizer = "text", str(small_corpus), "byte"
    c.data.cache_dir = str(tmp_path / "cache")
    c.data.validation_tokens, c.data.batch_size, c.data.sequence_length = 2048, 8, 32
    c.model.kind, c.model.width, c.model.loss_block_tokens = kind, 16, block
    c.train.lstm_window = 16
    configs.append(c.to_dict())
  data.load_corpus(c.data)  # Once, here: the workers read the cache.
  one = run_processes(tmp_path / "one.json", configs, 1, 4)
  two = run_processes(tmp_path / "two.json", configs, 2, 2)
  assert (one["devices"], one["processes"]) == (4, 1)
  assert (two["devices"], two["processes"]) == (4, 2)
  for config, run_one, run_two in zip(configs, one["runs"], two["runs"]):
    # Same global batch, same shards per device: the results agree to float32 rounding, not
    # bit for bit, because gloo's all-reduce adds the two processes' partial sums in another
    # order than XLA's in-process all-reduce. On the logits path the first step's loss
    # precedes any all-reduce.
    if config["model"]["loss_block_tokens"] == 0:
      assert run_two["train_losses"][0] == run_one["train_losses"][0]
    np.testing.assert_allclose(run_two["train_losses"], run_one["train_losses"], rtol=1e-6)
    np.testing.assert_allclose(run_two["validation_loss"], run_one["validation_loss"],
                               rtol=1e-6)
    # Adam divides by sqrt(v): a rounding-level gradient difference where the gradient is
    # near 0 moves a parameter by a rounding-level fraction of a step (lr), no more.
    for a, b in zip(run_one["params"], run_two["params"]):
      np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-6,
                                 atol=1e-3 * c.optim.learning_rate)
