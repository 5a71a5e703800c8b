r"""Training throughput of the modern Transformer against this machine's matmul peak.

  python benchmarks/bench_train.py [--widths=32,64,128,256] [--steps=10] [--vocab=4096]

For each width: compile time of the train step, steady-state tokens/s, and achieved model
FLOP/s (algoprog.training.flops' per-token training count x tokens/s) as a fraction of the dense f32
matmul throughput measured in the same process (a jitted 2048^3 matmul). Batch and sequence
are the study's (64 x 128). Synthetic tokens: the data pipeline is not what is timed.

The CPU this runs on is usually shared, so both sides are best-of: each train step is timed
on its own and the fastest counts; the matmul peak is the best of bursts taken before the
first width and after every width (docs/performance.md). "median" is the median step.
"""


import jax
import numpy as np
from absl import app, flags

from algoprog import hardware
from algoprog.training import aot, config as config_lib, console, flops, models

_WIDTHS = flags.DEFINE_list("widths", ["32", "64", "96", "128", "192", "256"], "Widths.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps per width (after 2 warm-up steps).")
_VOCAB = flags.DEFINE_integer("vocab", 4096, "Vocabulary size (the default BPE's).")


def matmul_flops_per_second() -> float:
  """Best of 3 bursts of 5 back-to-back jitted f32 2048^3 matmuls (FLOP/s)."""
  return hardware.matmul_flops_per_second(2048, repeats=5, bursts=3)


def bench_width(width: int, steps: int, vocab: int) -> dict:
  c = config_lib.base_config()
  c.model.width = width
  c = config_lib.resolve(c)
  step = aot.compile_on_random_batch(c, vocab)
  seconds, _ = aot.time_steps(step, steps)
  shape = (c.data.batch_size, c.data.sequence_length)
  compile_s, state = step.compile_s, step.state
  tokens_per_s = shape[0] * shape[1] / min(seconds)
  params = models.count_params(state.params)
  per_token = float(flops.training_flops_per_token(c.model, vocab, c.data.sequence_length))
  return {"width": width, "params": params, "compile_s": compile_s,
          "tokens_per_s": tokens_per_s,
          "median_tokens_per_s": shape[0] * shape[1] / float(np.median(seconds)),
          "model_flops_per_s": per_token * tokens_per_s}


def main(argv):
  console.quiet_libraries()  # As the launchers: no jax backend-probing INFO lines.
  del argv
  peak = matmul_flops_per_second()
  print(f"devices: {jax.devices()}")
  print(f"FLOP convention: {flops.CONVENTION}")
  rows = []
  for width in map(int, _WIDTHS.value):
    rows.append(bench_width(width, _STEPS.value, _VOCAB.value))
    peak = max(peak, matmul_flops_per_second())
    print(f"  width {width}: {rows[-1]['tokens_per_s']:,.0f} tokens/s (best step), "
          f"matmul peak so far {peak / 1e9:.1f} GFLOP/s", flush=True)
  print(f"matmul peak (f32 2048^3, jitted, best of bursts): {peak / 1e9:.1f} GFLOP/s")
  print("| width | params | compile s | tokens/s | median tokens/s | model GFLOP/s "
        "| % of matmul peak |")
  print("|---:|---:|---:|---:|---:|---:|---:|")
  for r in rows:
    print(f"| {r['width']} | {r['params']:,} | {r['compile_s']:.1f} | {r['tokens_per_s']:,.0f} | "
          f"{r['median_tokens_per_s']:,.0f} | {r['model_flops_per_s'] / 1e9:.1f} | "
          f"{100 * r['model_flops_per_s'] / peak:.0f}% |")


if __name__ == "__main__":
  app.run(main)
