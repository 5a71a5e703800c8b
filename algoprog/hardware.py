"""Peak FLOP/s of named accelerators, and the measured matmul peak of this CPU.

Shared by both halves of the package (the planner's wall times in algoprog.analysis, MFU in
training progress lines), so it imports neither: it knows chips, not models.

`ACCELERATORS` maps a short name to an `Accelerator`: peak dense FLOP/s per chip per dtype
("bfloat16", "float32", and on NVIDIA GPUs "tfloat32") and the source of each number.
Conventions:
  * Dense peaks: NVIDIA datasheets print Tensor Core numbers "with sparsity"; the dense
    peak is half of that, and that is what a dense matmul can reach.
  * "float32" on NVIDIA is the CUDA-core FP32 peak (matmuls at precision HIGHEST);
    "tfloat32" is the TF32 Tensor Core peak, which XLA uses for float32 matmuls at JAX's
    default precision on Ampere and newer GPUs.
  * "float32" on TPUs is not in Google's tables: the MXU multiplies bfloat16, and a
    float32 matmul at precision HIGHEST takes 6 bfloat16 passes, so it is listed as the
    bfloat16 peak / 6 (derived; at JAX's default precision a float32 matmul is one
    bfloat16 pass and runs at the bfloat16 peak).
  * "cpu" has no table entry: its peak is measured (`measured_cpu_matmul_peak`), a timed
    jitted square matmul, cached per process and dtype.

Units: FLOP/s per chip (one multiply or add = 1 FLOP, a multiply-add = 2).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Mapping

DTYPES = ("float32", "tfloat32", "bfloat16")
CPU = "cpu"
_TERA = 1e12


@dataclasses.dataclass(frozen=True)
class Accelerator:
  """One chip: `peak_flops_per_s` {dtype: dense peak FLOP/s per chip}, and where the
  numbers come from (`source`: the vendor document, and how a number was derived)."""
  name: str
  peak_flops_per_s: Mapping[str, float]
  source: str

  def peak(self, dtype: str = "bfloat16") -> float:
    """Peak FLOP/s per chip in `dtype`.

    Raises:
      KeyError: a dtype this chip has no number for (one line naming the chip and the
        dtypes it has).
    """
    if dtype not in self.peak_flops_per_s:
      raise KeyError(f"accelerator {self.name}: no peak for dtype '{dtype}' (has: "
                     f"{', '.join(self.peak_flops_per_s)})")
    return float(self.peak_flops_per_s[dtype])


def _tpu(name: str, bf16_tflops: float, document: str) -> Accelerator:
  return Accelerator(name, {"bfloat16": bf16_tflops * _TERA,
                            "float32": bf16_tflops * _TERA / 6},
                     f"{document}: bfloat16 {bf16_tflops:g} TFLOP/s per chip; float32 "
                     "derived as bfloat16 / 6 (precision HIGHEST, 6 bfloat16 passes)")


def _nvidia(name: str, fp32: float, tf32_sparse: float, bf16_sparse: float,
            document: str) -> Accelerator:
  return Accelerator(name, {"float32": fp32 * _TERA, "tfloat32": tf32_sparse / 2 * _TERA,
                            "bfloat16": bf16_sparse / 2 * _TERA},
                     f"{document}: FP32 {fp32:g}, TF32 Tensor Core {tf32_sparse:g} and "
                     f"BF16 Tensor Core {bf16_sparse:g} TFLOP/s with sparsity (dense = half)")


ACCELERATORS: dict[str, Accelerator] = {
    "v4": _tpu("TPU v4", 275.0, "Google Cloud TPU documentation, 'TPU v4' system "
               "architecture page"),
    "v5e": _tpu("TPU v5e", 197.0, "Google Cloud TPU documentation, 'TPU v5e' page"),
    "v5p": _tpu("TPU v5p", 459.0, "Google Cloud TPU documentation, 'TPU v5p' page"),
    "v6e": _tpu("TPU v6e (Trillium)", 918.0, "Google Cloud TPU documentation, 'TPU v6e' "
                "page"),
    "a100": _nvidia("NVIDIA A100", 19.5, 312.0, 624.0, "NVIDIA A100 Tensor Core GPU "
                    "datasheet (SXM and PCIe alike)"),
    "h100": _nvidia("NVIDIA H100 SXM", 67.0, 989.0, 1979.0, "NVIDIA H100 Tensor Core GPU "
                    "datasheet, H100 SXM column"),
    "h200": _nvidia("NVIDIA H200 SXM", 67.0, 989.0, 1979.0, "NVIDIA H200 Tensor Core GPU "
                    "datasheet, H200 SXM column"),
    "l4": _nvidia("NVIDIA L4", 30.3, 120.0, 242.0, "NVIDIA L4 Tensor Core GPU datasheet"),
}

# jax `device_kind` (lower-cased) -> table name (device kinds as jax reports them: "TPU v4",
# "TPU v5 lite" (v5e), "TPU v5" (v5p), "TPU v6 lite" (v6e), "NVIDIA H100 80GB HBM3" (SXM5),
# "NVIDIA H200"). First match wins, so the more specific patterns come first ("tpu v5 lite"
# before "tpu v5"). Variants with other peaks map to None (TPU v4 lite, the inference v4i;
# H100/H200 NVL) or match nothing (H100 PCIe): no number beats a wrong one.
_DEVICE_KINDS: tuple[tuple[str, str | None], ...] = (
    ("tpu v4 lite", None),
    ("nvl", None),
    ("tpu v4", "v4"),
    ("tpu v5 lite", "v5e"),
    ("tpu v5e", "v5e"),
    ("tpu v5p", "v5p"),
    ("tpu v5", "v5p"),
    ("tpu v6 lite", "v6e"),
    ("tpu v6e", "v6e"),
    ("a100", "a100"),
    ("h100 80gb hbm3", "h100"),
    ("h100 sxm", "h100"),
    ("h200", "h200"),
    ("nvidia l4", "l4"),
)


def accelerator_named(name: str) -> Accelerator:
  """The table entry `name` ("v5e", "h100", ...), or for "cpu" an entry whose peaks are
  measured on this machine (`measured_cpu_matmul_peak`).

  Raises:
    KeyError: an unknown name (one line listing the known ones).
  """
  key = name.strip().lower()
  if key == CPU:
    return cpu_accelerator()
  if key not in ACCELERATORS:
    raise KeyError(f"accelerator '{name}': expected one of "
                   f"{', '.join([*ACCELERATORS, CPU])}")
  return ACCELERATORS[key]


def accelerator_for(device: Any) -> Accelerator | None:
  """The entry for a jax device (by its `device_kind`), the measured "cpu" entry for a
  CPU device, or None for a chip not in the table (then no MFU can be stated)."""
  kind = str(getattr(device, "device_kind", device)).lower()
  if getattr(device, "platform", None) == CPU or kind == CPU:
    return cpu_accelerator()
  for pattern, name in _DEVICE_KINDS:
    if pattern in kind:
      return ACCELERATORS[name] if name else None
  return None


def cpu_accelerator() -> Accelerator:
  """This machine's CPU as an Accelerator: measured float32 and bfloat16 matmul peaks."""
  return Accelerator("cpu (this machine, measured)",
                     {"float32": measured_cpu_matmul_peak("float32"),
                      "bfloat16": measured_cpu_matmul_peak("bfloat16")},
                     "measured: best of timed jitted square matmuls "
                     f"({_MATMUL_SIZE}x{_MATMUL_SIZE}, 2n^3 FLOPs) on the default jax "
                     "CPU device, once per process")


_MATMUL_SIZE = 1024
_MATMUL_REPEATS = 5


def matmul_flops_per_second(n: int = _MATMUL_SIZE, *, repeats: int = 1,
                            bursts: int = _MATMUL_REPEATS, dtype: str = "float32",
                            device=None) -> float:
  """FLOP/s of jitted n x n matmuls in `dtype` on `device` (default: jax's default device):
  the best of `bursts` timings of `repeats` back-to-back matmuls, 2n^3 FLOPs each, after a
  warm-up call (so compile time is excluded). Not cached: on a shared machine each call
  reads the share it got (benchmarks take the best of several calls)."""
  import jax
  import jax.numpy as jnp
  x = jnp.ones((n, n), dtype)
  x = jax.device_put(x, device) if device is not None else x
  matmul = jax.jit(lambda a, b: a @ b)
  out = matmul(x, x)
  out.block_until_ready()
  best = 0.0
  for _ in range(bursts):
    start = time.perf_counter()
    for _ in range(repeats):
      out = matmul(x, x)
    out.block_until_ready()
    best = max(best, 2.0 * n**3 * repeats / (time.perf_counter() - start))
  return best


@functools.lru_cache(maxsize=None)
def measured_cpu_matmul_peak(dtype: str = "float32") -> float:
  """FLOP/s of a jitted n x n matmul (n = 1024) in `dtype` on the default CPU device, best
  of a few single timed runs (`matmul_flops_per_second`). Cached per process and dtype; on
  a shared machine it reads the share it got.

  Raises:
    KeyError: a dtype other than float32 or bfloat16.
  """
  import jax
  if dtype not in ("float32", "bfloat16"):
    raise KeyError(f"dtype '{dtype}': expected float32 or bfloat16 for the CPU")
  return matmul_flops_per_second(dtype=dtype, device=jax.devices(CPU)[0])


def wall_seconds(flops: float, accelerator: Accelerator, *, dtype: str = "bfloat16",
                 mfu: float = 0.4, chips: int = 1) -> float:
  """Seconds to execute `flops` FLOPs on `chips` chips at model-FLOP utilisation `mfu`:
  flops / (peak * mfu * chips)."""
  return flops / (accelerator.peak(dtype) * mfu * chips)


@dataclasses.dataclass(frozen=True)
class DevicePeak:
  """The peak a training run's MFU is stated against (`device_peak`).

  `flops_per_s`: dense peak FLOP/s per device, None for a chip without a table entry;
  `dtype`: the table column it was read from; `source`: where the number comes from, or
  for None why there is none.
  """
  flops_per_s: float | None
  dtype: str
  source: str


def peak_dtype(accelerator: Accelerator, matmul_dtype: str) -> str:
  """The column of `accelerator`'s peaks that a model whose matmuls run in `matmul_dtype`
  (config model.matmul_dtype) at JAX's default precision can reach: "float32" is
  "tfloat32" where the chip has it (NVIDIA: XLA's default for f32 matmuls) and "bfloat16"
  on TPUs (one bfloat16 MXU pass at default precision); otherwise `matmul_dtype`."""
  if matmul_dtype == "float32":
    if "tfloat32" in accelerator.peak_flops_per_s:
      return "tfloat32"
    if accelerator.name.startswith("TPU"):
      return "bfloat16"
  return matmul_dtype


def device_peak(device: Any, matmul_dtype: str) -> DevicePeak:
  """The per-device peak for MFU of a run on jax `device` with `matmul_dtype` matmuls.

  CPU: the measured matmul peak in that dtype only (`measured_cpu_matmul_peak`, cached per
  process), so call it only in a process that trains. A chip not in the table: None, with
  a note naming its device_kind.
  """
  kind = str(getattr(device, "device_kind", device))
  if getattr(device, "platform", None) == CPU or kind.lower() == CPU:
    return DevicePeak(measured_cpu_matmul_peak(matmul_dtype), matmul_dtype,
                      f"measured: best of {_MATMUL_REPEATS} timed jitted {_MATMUL_SIZE}x"
                      f"{_MATMUL_SIZE} {matmul_dtype} matmuls (2n^3 FLOPs) on this CPU, "
                      "once per process")
  accelerator = accelerator_for(device)
  if accelerator is None:
    return DevicePeak(None, matmul_dtype,
                      f"device_kind '{kind}' has no entry in algoprog.hardware.ACCELERATORS:"
                      " no MFU")
  dtype = peak_dtype(accelerator, matmul_dtype)
  return DevicePeak(accelerator.peak(dtype), dtype, f"{accelerator.name}, {dtype}: "
                    f"{accelerator.source}")
