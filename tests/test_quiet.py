"""What a person sees on stderr, as a user runs things (not a terminal, no test-only JAX
settings): our lines, not the libraries' chatter."""

import os
import pathlib
import subprocess
import sys

from algoprog.training import flops

import conftest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOISE = ("Unable to initialize backend", "Downloading and preparing dataset",
         "downloaded and prepared", "Using custom data configuration", "Generating splits",
         "Shuffling", "Event loop is closed", "Task exception was never retrieved",
         "Traceback", "\x1b[", "\r")


def user_environment() -> dict:
  env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
  return dict(env, XLA_FLAGS="")  # One CPU device, as on a laptop.


def assert_quiet(stderr: str) -> None:
  for noise in NOISE:
    assert noise not in stderr, (noise, stderr[-3000:])


def test_training_startup_is_quiet_and_names_the_flop_convention_once(small_corpus,
                                                                      tmp_path):
  """A first run on local text (the tfds builder prepares it) with progress lines every 4
  steps: no backend probing, no tfds preparation chatter or progress bars off a terminal,
  and the FLOP convention once, in the run's first line, not on every progress line."""
  result = subprocess.run(
      conftest.tiny_train_command(sys.executable, tmp_path / "run", small_corpus,
                                  tmp_path / "cache", 4096,
                                  "--config.train.log_every_steps=4"),
      cwd=ROOT, env=user_environment(), capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert_quiet(result.stderr + result.stdout)
  assert result.stderr.count(flops.CONVENTION) == 1, result.stderr
  assert result.stderr.count("step ") >= 4  # Progress lines 4, 8, 12, 16.


FALLBACK = """
import pathlib, sys
sys.path.insert(0, "tests")
from absl import logging
from algoprog.training import console, train
from test_train import tiny_config
logging.set_verbosity(logging.INFO)
console.quiet_libraries()
corpus, cache, run_dir = map(pathlib.Path, sys.argv[1:])
config = tiny_config(corpus, cache)
train.train_and_evaluate(config, run_dir, stop_after_steps=11)  # Checkpoints 5, 10, 11.
for path in (run_dir / "checkpoints" / "11" / "state").rglob("*"):
  if path.is_file() and path.parent.name == "d":  # Its array files half written.
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
print(train.train_and_evaluate(config, run_dir)["status"])
"""


def test_falling_back_from_a_corrupt_checkpoint_prints_no_tracebacks(small_corpus, tmp_path):
  """Orbax's failed restore leaves tensorstore reads that report into its closed event loop
  (dozens of "Event loop is closed" tracebacks when the race goes that way): the one
  warning naming the unreadable step is what the user sees."""
  result = subprocess.run(
      [sys.executable, "-c", FALLBACK, str(small_corpus), str(tmp_path / "cache"),
       str(tmp_path / "run")],
      cwd=ROOT, env=user_environment(), capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.split() == ["completed"]
  assert "checkpoints/11 cannot be restored" in result.stderr
  assert "deleting unreadable checkpoint" in result.stderr
  assert_quiet(result.stderr)
