r"""One command for the first GPU/TPU machine: throughput, MFU, compile time, memory.

  python benchmarks/device_check.py [--out=device_check.md]
  python benchmarks/device_check.py --quick        # CPU smoke run: 3 tiny rows, ~30 s

Rows: the modern Transformer at d = 64, 128, 192, 256 and the 1-layer LSTM at d = 64, 256,
each with matmuls in float32 and in bfloat16 (`model.matmul_dtype="bfloat16"`: bf16
operands, f32 accumulation; params, optimizer state and logits stay f32), at the study's
shapes (batch 64 x 128, GPT-2 vocabulary 50,257; the LSTM's truncated-BPTT window 32).
Each row compiles algoprog's real train step (the entry points of benchmarks/bench_train.py)
and times `--steps` steps after 2 warm-up steps on a fixed synthetic batch.

Columns:
  tokens/s      batch x sequence / the best step (the median step's in brackets).
  model TFLOP/s algoprog.training.flops.training_flops_per_token (the trainer's analytical
                count: per window for the LSTM, optimizer excluded) x tokens/s.
  MFU           model FLOP/s / (per-device peak x devices), the peak from PEAK_TFLOPS by
                `device_kind` for the row's matmul dtype; on CPU the measured peak of a
                jitted f32 2048^3 matmul (as bench_train.py measures it), for both dtypes.
  compile s     lowering + XLA compilation of the train step.
  XLA MiB       the compiled step's memory analysis: arguments + outputs - aliased + temps.
  peak MiB      the device's memory_stats()["peak_bytes_in_use"]: the process high-water
                mark after the row (rows run smallest first, so mostly the row's own
                peak); "n/a" where the backend has no memory stats (CPU).

The markdown goes to stdout (and --out), ready for docs/performance.md.
"""

from __future__ import annotations

import datetime
import math
import statistics

import jax
from absl import app, flags

from algoprog import hardware
from algoprog.training import aot, config as config_lib, console, flops, models, presets

_QUICK = flags.DEFINE_bool("quick", False, "Tiny widths, vocab and steps: a CPU smoke run.")
_WIDTHS = flags.DEFINE_list("widths", ["64", "128", "192", "256"], "Transformer widths.")
_LSTM_WIDTHS = flags.DEFINE_list("lstm_widths", ["64", "256"], "LSTM widths.")
_DTYPES = flags.DEFINE_list("dtypes", ["float32", "bfloat16"], "model.matmul_dtype values.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps per row (after 2 warm-up steps).")
_BATCH = flags.DEFINE_integer("batch", 64, "Sequences per step (global).")
_SEQUENCE_LENGTH = flags.DEFINE_integer("sequence_length", 128, "Tokens per sequence.")
_VOCAB = flags.DEFINE_integer("vocab", 50_257, "Vocabulary size (GPT-2's).")
_LOSS_VOCAB_BLOCK = flags.DEFINE_integer(
    "loss_vocab_block", None, "model.loss_vocab_block (default: the preset's; 0 = the "
    "whole vocabulary per fused block, no recomputed logits).")
_PEAK_TFLOPS = flags.DEFINE_float(
    "peak_tflops", 0.0, "Per-device peak TFLOP/s for MFU, overriding PEAK_TFLOPS (e.g. a "
    "device not in the table); 0 -> the table.")
_OUT = flags.DEFINE_string("out", "", "Also write the markdown table to this file.")

# Dense (no sparsity) per-device peaks in TFLOP/s, by a lower-case substring of jax's
# device_kind (first match wins, so specific names come first), per model.matmul_dtype.
# Sources:
#   NVIDIA H100 Tensor Core GPU datasheet (nvidia.com/en-us/data-center/h100/): H100 SXM
#     BF16 1,979 and TF32 989 TFLOPS "with sparsity", i.e. 989.5 / 494.5 dense; H100 PCIe
#     1,513 / 756 with sparsity (756 / 378 dense); H100 NVL 1,671 / 835 (835.5 / 417.5).
#   NVIDIA H200 datasheet (nvidia.com/en-us/data-center/h200/): H200 SXM the H100 SXM's
#     1,979 / 989 with sparsity (989.5 / 494.5 dense); H200 NVL 1,671 / 835.
#   NVIDIA A100 datasheet: BF16 312, TF32 156 dense.
#   f32 on NVIDIA is rated at the TF32 tensor-core peak: XLA:GPU's default precision for
#     float32 matmuls (jax_default_matmul_precision unset) runs them as TF32 on Ampere and
#     later. (Plain FP32 CUDA cores: H100/H200 SXM 67, A100 19.5.)
#   Google Cloud TPU docs, system architecture pages (cloud.google.com/tpu/docs/v4, v5e,
#     v5p, v6e): bf16 peak per chip v4 275, v5e 197, v5p 459, v6e (Trillium) 918. On TPU,
#     float32 matmuls at JAX's default precision run as single bf16 passes, so f32 rows are
#     rated at the bf16 peak too.
# CPU: no table entry; the peak is measured in-process (cpu_matmul_flops_per_second).
PEAK_TFLOPS: list[tuple[str, dict[str, float]]] = [
    ("h100 pcie", {"bfloat16": 756.0, "float32": 378.0}),
    ("h100 nvl", {"bfloat16": 835.5, "float32": 417.5}),
    ("h200 nvl", {"bfloat16": 835.5, "float32": 417.5}),
    ("h100", {"bfloat16": 989.5, "float32": 494.5}),
    ("h200", {"bfloat16": 989.5, "float32": 494.5}),
    ("a100", {"bfloat16": 312.0, "float32": 156.0}),
    ("v5 lite", {"bfloat16": 197.0, "float32": 197.0}),
    ("v5e", {"bfloat16": 197.0, "float32": 197.0}),
    ("v6 lite", {"bfloat16": 918.0, "float32": 918.0}),
    ("v6e", {"bfloat16": 918.0, "float32": 918.0}),
    ("v5p", {"bfloat16": 459.0, "float32": 459.0}),
    ("tpu v5", {"bfloat16": 459.0, "float32": 459.0}),  # v5p reports "TPU v5".
    ("tpu v4", {"bfloat16": 275.0, "float32": 275.0}),
]


def table_peak_flops(device_kind: str, matmul_dtype: str) -> float | None:
  """Per-device dense peak FLOP/s of `device_kind` for `matmul_dtype`; None if unknown."""
  kind = device_kind.lower()
  for pattern, peaks in PEAK_TFLOPS:
    if pattern in kind:
      return peaks[matmul_dtype] * 1e12
  return None


def cpu_matmul_flops_per_second(n: int = 2048, repeats: int = 5, bursts: int = 3) -> float:
  """Best of `bursts` timings of `repeats` back-to-back jitted n^3 f32 matmuls (FLOP/s)."""
  return hardware.matmul_flops_per_second(n, repeats=repeats, bursts=bursts)


def row_config(kind: str, width: int, matmul_dtype: str, batch: int, sequence_length: int):
  c = presets.modern() if kind == "modern" else presets.lstm()
  c.model.width = width
  c.model.matmul_dtype = matmul_dtype
  c.data.batch_size = batch
  c.data.sequence_length = sequence_length
  if _LOSS_VOCAB_BLOCK.value is not None:
    c.model.loss_vocab_block = _LOSS_VOCAB_BLOCK.value
  return config_lib.resolve(c)


def flops_per_token(c, vocab: int) -> float:
  """The trainer's analytical count: per backprop window for the LSTM."""
  length = c.train.lstm_window if c.model.kind == "lstm" else c.data.sequence_length
  return float(flops.training_flops_per_token(c.model, vocab, length))


def peak_bytes_in_use() -> int | None:
  stats = jax.local_devices()[0].memory_stats()
  return None if not stats or "peak_bytes_in_use" not in stats else stats["peak_bytes_in_use"]


def bench_row(kind: str, width: int, matmul_dtype: str, steps: int, batch: int,
              sequence_length: int, vocab: int) -> dict:
  """Compiles and times one row; returns its measurements (seconds, FLOP/s, bytes)."""
  c = row_config(kind, width, matmul_dtype, batch, sequence_length)
  step = aot.compile_on_random_batch(c, vocab)
  seconds, loss = aot.time_steps(step, steps)
  compile_s, state = step.compile_s, step.state
  if not math.isfinite(float(loss)):
    raise RuntimeError(f"{kind} d={width} {matmul_dtype}: non-finite loss {float(loss)}")
  tokens = batch * sequence_length
  per_token = flops_per_token(c, vocab)
  return {"model": kind, "width": width, "dtype": matmul_dtype,
          "params": models.count_params(state.params), "compile_s": compile_s,
          "tokens_per_s": tokens / min(seconds),
          "median_tokens_per_s": tokens / statistics.median(seconds),
          "model_flops_per_s": per_token * tokens / min(seconds),
          "xla_bytes": aot.compiled_peak_bytes(step.compiled), "peak_bytes": peak_bytes_in_use()}


def rows_to_run(quick: bool) -> list[tuple[str, int, str]]:
  """(model, width, dtype), smallest memory first (the device peak is cumulative)."""
  if quick:
    # Three rows, both models and both dtypes: compilation dominates the smoke run's time.
    return [("lstm", 16, "float32"), ("modern", 16, "float32"), ("modern", 16, "bfloat16")]
  order = {"bfloat16": 0, "float32": 1}
  rows = [("lstm", int(w), d) for w in _LSTM_WIDTHS.value for d in _DTYPES.value]
  rows += [("modern", int(w), d) for w in _WIDTHS.value for d in _DTYPES.value]
  return sorted(rows, key=lambda r: (r[0] != "lstm", r[1], order.get(r[2], 2)))


def mib(n: int | None) -> str:
  return "n/a" if n is None else f"{n / 2**20:,.0f}"


def markdown(rows: list[dict], header: list[str]) -> str:
  lines = header + [
      "",
      "| model | d | matmul dtype | params | compile s | tokens/s (median) | model TFLOP/s "
      "| peak TFLOP/s | MFU | XLA MiB | peak MiB |",
      "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
  for r in rows:
    mfu = "n/a" if r["mfu"] is None else f"{100 * r['mfu']:.3g}%"
    peak = "n/a" if r["peak_flops"] is None else f"{r['peak_flops'] / 1e12:,.2f}"
    lines.append(
        f"| {r['model']} | {r['width']} | {r['dtype']} | {r['params']:,} "
        f"| {r['compile_s']:.1f} | {r['tokens_per_s']:,.0f} ({r['median_tokens_per_s']:,.0f}) "
        f"| {r['model_flops_per_s'] / 1e12:,.3f} | {peak} | {mfu} | {mib(r['xla_bytes'])} "
        f"| {mib(r['peak_bytes'])} |")
  return "\n".join(lines) + "\n"


def main(argv):
  console.quiet_libraries()  # As the launchers: no jax backend-probing INFO lines.
  del argv
  quick = _QUICK.value
  steps = 2 if quick else _STEPS.value
  batch, sequence_length, vocab = ((8, 64, 512) if quick else
                                   (_BATCH.value, _SEQUENCE_LENGTH.value, _VOCAB.value))
  devices = jax.devices()
  kind = devices[0].device_kind
  platform = devices[0].platform
  if platform == "cpu":
    # Smaller matmuls in --quick: the smoke run's budget; still far above tiny models.
    per_device = cpu_matmul_flops_per_second(*((1024, 3, 2) if quick else (2048, 5, 3)))
    peak_source = ""  # Set after the rows, when the best burst is known.
  else:
    per_device = None
    peak_source = "PEAK_TFLOPS (dense, per device, by matmul dtype; sources in the script)"
  if _PEAK_TFLOPS.value:
    per_device, peak_source = _PEAK_TFLOPS.value * 1e12, "--peak_tflops"
  measured_cpu_peak = platform == "cpu" and not _PEAK_TFLOPS.value
  results = []
  for model_kind, width, dtype in rows_to_run(quick):
    r = bench_row(model_kind, width, dtype, steps, batch, sequence_length, vocab)
    if measured_cpu_peak:  # Re-measured after every row: the CPU is shared; best counts.
      per_device = max(per_device, cpu_matmul_flops_per_second(
          *((1024, 3, 1) if quick else (2048, 5, 3))))
    print(f"  {model_kind} d={width} {dtype}: {r['tokens_per_s']:,.0f} tokens/s, compile "
          f"{r['compile_s']:.1f} s", flush=True)
    results.append(r)
  for r in results:
    peak = per_device if per_device is not None else table_peak_flops(kind, r["dtype"])
    r["peak_flops"] = None if peak is None else peak * len(devices)
    r["mfu"] = None if peak is None else r["model_flops_per_s"] / r["peak_flops"]
  if measured_cpu_peak:
    peak_source = (f"measured jitted f32 {1024 if quick else 2048}^3 matmul, best of bursts "
                   f"before the first row and after each, {per_device / 1e9:,.1f} GFLOP/s "
                   "(both dtypes)")
  header = [
      f"device_check {'--quick ' if quick else ''}on "
      f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC: "
      f"{len(devices)} x {kind} ({platform}), jax {jax.__version__}",
      "",
      f"batch {batch} x {sequence_length}, vocab {vocab:,}, best of {steps} steps after 2 "
      f"warm-up; FLOPs: {flops.CONVENTION}; peak: {peak_source}"]
  table = markdown(results, header)
  print(table)
  if _OUT.value:
    with open(_OUT.value, "w", encoding="utf-8") as f:
      f.write(table)


if __name__ == "__main__":
  app.run(main)
