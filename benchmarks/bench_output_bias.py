r"""Benchmark: the output-bias gradient as a matmul (models.add_output_bias) against autodiff's
column sum, in the whole train step of the modern Transformer (batch 64 x 128, vocab 4096).

  python benchmarks/bench_output_bias.py [--widths=32,64,128] [--steps=10]

Both train steps are compiled in one process and timed alternately, step by step, so load
from other jobs on a shared CPU hits both alike; the table gives the best and the median
step of each and their ratios (> 1: the matmul is faster). The loss and gradients of the
two are the same (tests/test_models.py holds the gradient to the reference). A third step
that ignores the bias altogether is the floor: what the bias costs in all.
"""

import time

import numpy as np
from absl import app, flags

from algoprog.training import aot, config as config_lib, console, models

_WIDTHS = flags.DEFINE_list("widths", ["32", "64", "128"], "Widths.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps per variant and width.")
_VOCAB = flags.DEFINE_integer("vocab", 4096, "Vocabulary size (the default BPE's).")


def compiled_step(width: int, vocab: int, add_bias):
  """(compiled train step, state, batch) with `add_bias` as models.add_output_bias."""
  c = config_lib.base_config()
  c.model.width = width
  c = config_lib.resolve(c)
  library_version = models.add_output_bias
  models.add_output_bias = add_bias  # Read when unembed is traced, i.e. by lower().
  try:
    step = aot.compile_on_random_batch(c, vocab)
  finally:
    models.add_output_bias = library_version
  return step.compiled, step.state, step.batch


def main(argv):
  console.quiet_libraries()  # As the launchers: no jax backend-probing INFO lines.
  del argv
  variants = {"column sum (autodiff)": lambda logits, bias: logits + bias,
              "matmul (add_output_bias)": models.add_output_bias,
              "no bias (floor)": lambda logits, bias: logits}
  print("| width | variant | best step ms | median step ms |")
  print("|---:|---|---:|---:|")
  ratios = []
  for width in map(int, _WIDTHS.value):
    runs = {name: compiled_step(width, _VOCAB.value, f) for name, f in variants.items()}
    states = {name: run[1] for name, run in runs.items()}
    seconds = {name: [] for name in runs}
    for _ in range(2 + _STEPS.value):  # Two warm-up steps each, then alternate.
      for name, (step, _, batch) in runs.items():
        start = time.perf_counter()
        states[name], loss = step(states[name], *batch)
        loss.block_until_ready()
        seconds[name].append(time.perf_counter() - start)
    best = {n: min(s[2:]) for n, s in seconds.items()}
    median = {n: float(np.median(s[2:])) for n, s in seconds.items()}
    for name in runs:
      print(f"| {width} | {name} | {best[name] * 1e3:.0f} | {median[name] * 1e3:.0f} |",
            flush=True)
    old, new, _ = variants
    ratios.append((width, best[old] / best[new], median[old] / median[new]))
  print()
  print("| width | speed-up, best step | speed-up, median step |")
  print("|---:|---:|---:|")
  for width, best_ratio, median_ratio in ratios:
    print(f"| {width} | {best_ratio:.2f}x | {median_ratio:.2f}x |")


if __name__ == "__main__":
  app.run(main)
