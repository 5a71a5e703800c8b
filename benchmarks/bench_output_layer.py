r"""Benchmark: the fused output layer + cross-entropy (algoprog.training.output_layer) against
the logits path, in the whole train step of the modern Transformer (or, --kind=lstm, the
LSTM) at the study's vocabulary (50,257).

  PYTHONPATH=. python benchmarks/bench_output_layer.py [--widths=64,128]
      [--blocks=0,512x0,2048x2048] [--batch=32] [--steps=5] [--kind=transformer]

Every variant's train step (each of --blocks: model.loss_block_tokens, or TOKENSxVOCAB for
model.loss_block_tokens x model.loss_vocab_block; 0 is the unfused path, a vocabulary tile
of 0 the whole vocabulary) is compiled in one process and the steps are timed
alternately, step by step, so load from other jobs on a shared CPU hits all alike. The
table gives the best and median step of each, the ratio to the first variant's step (> 1:
faster than it; the unfused path by default) and XLA's per-device memory of the compiled
step (temporaries and peak, as launch.aot reports them). The loss and gradients of all
variants agree (tests/test_output_layer.py).
"""

import time

import jax
import numpy as np
from absl import app, flags

from algoprog.training import aot, config as config_lib, console, train

_WIDTHS = flags.DEFINE_list("widths", ["64", "128"], "Widths.")
_BLOCKS = flags.DEFINE_list(
    "blocks", ["0", "512x0", "2048x2048"],
    "Variants: model.loss_block_tokens (0 = unfused), optionally xmodel.loss_vocab_block "
    "(0 = the whole vocabulary; without it, the default).")
_BATCH = flags.DEFINE_integer("batch", 32, "Sequences per step (of 128 tokens).")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps per variant and width.")
_VOCAB = flags.DEFINE_integer("vocab", 50_257, "Vocabulary size (GPT-2's).")
_MATMUL_DTYPE = flags.DEFINE_string("matmul_dtype", "float32", "model.matmul_dtype.")
_KIND = flags.DEFINE_enum("kind", "transformer", ["transformer", "lstm"],
                          "model.kind (the LSTM: truncated BPTT, windows of 32).")


def compiled_step(width: int, block: str):
  """(compiled train step, state, batch, temporaries bytes, peak bytes) of one --blocks
  variant."""
  c = config_lib.base_config()
  tokens, _, vocab = block.partition("x")
  c.model.kind, c.model.width, c.model.loss_block_tokens = _KIND.value, width, int(tokens)
  if vocab:
    c.model.loss_vocab_block = int(vocab)
  c.model.matmul_dtype = _MATMUL_DTYPE.value
  c.data.batch_size = _BATCH.value
  c = config_lib.resolve(c)
  step = aot.compile_on_random_batch(c, _VOCAB.value, mesh=train.make_mesh(jax.devices()[:1]))
  peak = aot.compiled_peak_bytes(step.compiled)
  temporaries = step.compiled.memory_analysis().temp_size_in_bytes
  return step.compiled, step.state, step.batch, temporaries, peak


def main(argv):
  console.quiet_libraries()  # As the launchers: no jax backend-probing INFO lines.
  del argv
  print(f"{'modern Transformer' if _KIND.value == 'transformer' else 'LSTM'}, vocab {_VOCAB.value:,}, batch {_BATCH.value} x 128, "
        f"{_MATMUL_DTYPE.value} matmuls, {jax.devices()[0].device_kind}; "
        f"{_STEPS.value} timed steps each, alternating")
  print("| width | loss_block_tokens x loss_vocab_block | best step ms | median step ms | "
        "speed-up (best) | speed-up (median) | temporaries MiB | peak MiB |")
  print("|---:|---:|---:|---:|---:|---:|---:|---:|")
  for width in map(int, _WIDTHS.value):
    blocks = list(_BLOCKS.value)
    runs = {block: compiled_step(width, block) for block in blocks}
    states = {block: run[1] for block, run in runs.items()}
    seconds = {block: [] for block in runs}
    for _ in range(1 + _STEPS.value):  # One warm-up step each, then alternate.
      for block, (step, _, batch, _, _) in runs.items():
        start = time.perf_counter()
        states[block], loss = step(states[block], *batch)
        loss.block_until_ready()
        seconds[block].append(time.perf_counter() - start)
    best = {b: min(s[1:]) for b, s in seconds.items()}
    median = {b: float(np.median(s[1:])) for b, s in seconds.items()}
    base = blocks[0]
    for block, run in runs.items():
      print(f"| {width} | {block} | {best[block] * 1e3:.0f} | {median[block] * 1e3:.0f} | "
            f"{best[base] / best[block]:.2f}x | {median[base] / median[block]:.2f}x | "
            f"{run[3] / 2**20:,.0f} | {run[4] / 2**20:,.0f} |", flush=True)


if __name__ == "__main__":
  app.run(main)
