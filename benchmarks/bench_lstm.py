r"""Benchmark: the LSTM recurrence's written-out gradient (models.lstm_scan, a custom VJP)
against JAX's scan autodiff (models.lstm_scan_autodiff), and scan unroll factors, in the
whole train step of the LSTM preset (configs/lstm.py: 1 layer, truncated BPTT over windows
of 32, batch 64 x 128).

  python benchmarks/bench_lstm.py [--widths=64,128,256] [--steps=10] [--vocab=4096]
      [--unrolls=1,2,4,8] [--batch_size=64] [--scan_only]

--scan_only times the recurrence alone instead: the jitted gradient of one 32-token window
(models.lstm_scan on a given input projection, batch 64), i.e. what the variants change,
without the embedding, input projection, unembedding and cross-entropy around it.

Every variant's train step is compiled in one process and they are timed alternately, step
by step, so load from other jobs on a shared CPU hits all alike; the table gives the best
and the median step of each and the ratio of the best to the autodiff one's (> 1: faster).
Synthetic tokens: the data pipeline is not what is timed. The gradients are the same within
f32 rounding (tests/test_models.py). The load average is printed: the CPU is usually shared.
"""

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from algoprog.training import aot, config as config_lib, console, models, presets

_WIDTHS = flags.DEFINE_list("widths", ["64", "128", "256"], "Widths.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps per variant and width.")
_VOCAB = flags.DEFINE_integer("vocab", 4096, "Vocabulary size (the default BPE's).")
_UNROLLS = flags.DEFINE_list("unrolls", ["1", "2", "4", "8"],
                             "Scan unroll factors of the custom-VJP variant.")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Global batch (sequences of 128 tokens).")
_SCAN_ONLY = flags.DEFINE_bool("scan_only", False, "Time the recurrence's gradient alone.")


def compiled_step(width: int, vocab: int, batch_size: int, scan, unroll: int):
  """(compiled train step, state, batch) with `scan` as models.lstm_scan and `unroll` as
  models.LSTM_UNROLL (both read when the step is traced, i.e. by lower())."""
  c = presets.lstm()
  c.model.width = width
  c.data.batch_size = batch_size
  c = config_lib.resolve(c)
  library = models.lstm_scan, models.LSTM_UNROLL
  models.lstm_scan, models.LSTM_UNROLL = scan, unroll
  try:
    step = aot.compile_on_random_batch(c, vocab)
  finally:
    models.lstm_scan, models.LSTM_UNROLL = library
  return step.compiled, step.state, step.batch


def compiled_scan_gradient(width: int, batch_size: int, scan, unroll: int):
  """(compiled gradient of sum(hidden^2) over one 32-step window, its arguments)."""
  keys = jax.random.split(jax.random.key(0), 2)
  args = (jax.random.normal(keys[0], (batch_size, 32, 4 * width)),
          jax.random.normal(keys[1], (width, 4 * width)) * width**-0.5,
          jnp.zeros((batch_size, 2, width)))
  library = models.LSTM_UNROLL
  models.LSTM_UNROLL = unroll
  try:
    gradient = jax.jit(jax.grad(lambda x, w, c: jnp.sum(scan(x, w, c)[0]**2), argnums=(0, 1)))
    return gradient.lower(*args).compile(), args
  finally:
    models.LSTM_UNROLL = library


def time_alternately(runs: dict, steps: int) -> dict:
  """{name: [seconds per call]}: each compiled (function, state, args) called in turn,
  two warm-up rounds, then `steps` timed rounds; a state-carrying run is a train step."""
  states = {name: run[1] for name, run in runs.items()}
  seconds = {name: [] for name in runs}
  for i in range(2 + steps):
    for name, (fn, _, args) in runs.items():
      start = time.perf_counter()
      if states[name] is None:
        jax.block_until_ready(fn(*args))
      else:
        states[name], loss = fn(states[name], *args)
        loss.block_until_ready()
      if i >= 2:
        seconds[name].append(time.perf_counter() - start)
  return seconds


def main(argv):
  console.quiet_libraries()  # As the launchers: no jax backend-probing INFO lines.
  del argv
  variants = {"autodiff (before)": (models.lstm_scan_autodiff, 1)}
  for unroll in map(int, _UNROLLS.value):
    variants[f"custom VJP, unroll {unroll}"] = (models.lstm_scan, unroll)
  what = ("the recurrence's gradient, one 32-step window" if _SCAN_ONLY.value else
          f"the train step, vocab {_VOCAB.value}, 128 tokens per row")
  print(f"devices: {jax.devices()}; {what}; batch {_BATCH.value}; "
        f"load average before: {os.getloadavg()}")
  print("| width | variant | best ms | median ms | best vs autodiff |")
  print("|---:|---|---:|---:|---:|")
  for width in map(int, _WIDTHS.value):
    if _SCAN_ONLY.value:
      runs = {name: (fn, None, args) for name, (fn, args) in (
          (name, compiled_scan_gradient(width, _BATCH.value, scan, unroll))
          for name, (scan, unroll) in variants.items())}
    else:
      runs = {name: compiled_step(width, _VOCAB.value, _BATCH.value, scan, unroll)
              for name, (scan, unroll) in variants.items()}
    seconds = time_alternately(runs, _STEPS.value)
    base = min(seconds["autodiff (before)"])
    for name, times in seconds.items():
      print(f"| {width} | {name} | {1e3 * min(times):.1f} | {1e3 * np.median(times):.1f} | "
            f"{base / min(times):.2f}x |", flush=True)
  print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
  app.run(main)
