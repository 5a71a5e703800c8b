"""The benchmark commands: device_check's table, its peak table, bench_vs_torch's guard.

Each runs the script in a subprocess on one CPU device (the 8 simulated devices of
conftest.py would only slow it down); none needs torch.
"""

import math
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"


def _env(extra_path: str = "") -> dict:
  env = dict(os.environ)
  env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split()
                              if not f.startswith("--xla_force_host_platform_device_count"))
  env["JAX_PLATFORMS"] = "cpu"
  env["PYTHONPATH"] = os.pathsep.join(p for p in (extra_path, str(ROOT),
                                                  env.get("PYTHONPATH", "")) if p)
  return env


def _run(args: list[str], env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                        cwd=ROOT, timeout=timeout, check=False)


def test_device_check_quick_prints_every_row_with_a_finite_mfu_at_most_one(tmp_path):
  out = tmp_path / "table.md"
  done = _run([str(BENCHMARKS / "device_check.py"), "--quick", f"--out={out}"], _env())
  assert done.returncode == 0, done.stderr[-2000:]
  table = out.read_text()
  assert table in done.stdout  # The same markdown on stdout and in --out.
  header = next(line for line in table.splitlines() if line.startswith("| model |"))
  columns = [c.strip() for c in header.strip("|").split("|")]
  rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()
          if line.startswith(("| modern |", "| lstm |"))]
  assert [(r[0], r[1], r[2]) for r in rows] == [
      ("lstm", "16", "float32"), ("modern", "16", "float32"), ("modern", "16", "bfloat16")]
  for row in rows:
    cell = dict(zip(columns, row))
    mfu = float(cell["MFU"].rstrip("%")) / 100
    assert math.isfinite(mfu) and 0 < mfu <= 1, cell
    assert float(cell["tokens/s (median)"].split()[0].replace(",", "")) > 0
    assert float(cell["compile s"]) > 0
    assert cell["peak MiB"] == "n/a"  # XLA:CPU keeps no device memory stats.
    assert float(cell["XLA MiB"].replace(",", "")) > 0


def test_device_peak_table_matches_specific_device_names_first():
  code = ("import sys; sys.path.insert(0, 'benchmarks'); import device_check as d; "
          "print([d.table_peak_flops(k, t) for k, t in ["
          "('NVIDIA H100 80GB HBM3', 'bfloat16'), ('NVIDIA H100 PCIe', 'bfloat16'), "
          "('NVIDIA H200', 'float32'), ('TPU v5 lite', 'float32'), ('TPU v5', 'bfloat16'), "
          "('cpu', 'float32')]])")
  done = _run(["-c", code], _env())
  assert done.returncode == 0, done.stderr[-2000:]
  assert done.stdout.strip().splitlines()[-1] == str(
      [989.5e12, 756.0e12, 494.5e12, 197.0e12, 459.0e12, None])


def test_bench_vs_torch_skips_in_one_line_without_torch(tmp_path):
  shim = tmp_path / "shim" / "torch"  # Shadows an installed torch: importing it fails.
  shim.mkdir(parents=True)
  (shim / "__init__.py").write_text("raise ImportError('torch hidden by the test')\n")
  done = _run([str(BENCHMARKS / "bench_vs_torch.py"), "--widths=16"],
              _env(extra_path=str(tmp_path / "shim")))
  assert done.returncode == 0, done.stderr[-2000:]
  assert done.stdout.strip().splitlines() == [
      "bench_vs_torch: skipped: torch is not installed (pip install '.[bench]')"]


def test_bench_lstm_prints_a_row_per_variant_in_both_modes():
  for extra in (["--scan_only"], ["--vocab=64"]):
    done = _run([str(BENCHMARKS / "bench_lstm.py"), "--widths=16", "--steps=1",
                 "--unrolls=1,2", "--batch_size=4", *extra], _env(), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| 16 |")]
    assert [r.split("|")[2].strip() for r in rows] == [
        "autodiff (before)", "custom VJP, unroll 1", "custom VJP, unroll 2"]
