"""algoprog.hardware: the peak table, device lookup, the measured CPU peak, wall time."""

import types

import pytest

from algoprog import hardware


def test_table_has_every_named_chip_with_sources_and_dense_peaks():
  assert set(hardware.ACCELERATORS) == {"v4", "v5e", "v5p", "v6e", "a100", "h100", "h200",
                                        "l4"}
  for chip in hardware.ACCELERATORS.values():
    assert chip.source and {"float32", "bfloat16"} <= set(chip.peak_flops_per_s)
    assert chip.peak("bfloat16") > chip.peak("float32") > 0
  assert hardware.ACCELERATORS["h100"].peak("bfloat16") == pytest.approx(989.5e12)
  assert hardware.ACCELERATORS["a100"].peak("bfloat16") == pytest.approx(312e12)
  assert hardware.ACCELERATORS["a100"].peak("tfloat32") == pytest.approx(156e12)
  assert hardware.ACCELERATORS["v5e"].peak("bfloat16") == pytest.approx(197e12)
  assert hardware.ACCELERATORS["v6e"].peak("float32") == pytest.approx(918e12 / 6)
  with pytest.raises(KeyError, match="TPU v4: no peak for dtype 'tfloat32'"):
    hardware.ACCELERATORS["v4"].peak("tfloat32")


@pytest.mark.parametrize("kind, name", [
    ("TPU v4", "v4"), ("TPU v5 lite", "v5e"), ("TPU v5e", "v5e"), ("TPU v5", "v5p"),
    ("TPU v5p", "v5p"), ("TPU v6 lite", "v6e"), ("NVIDIA A100-SXM4-80GB", "a100"),
    ("NVIDIA A100-PCIE-40GB", "a100"), ("NVIDIA H100 80GB HBM3", "h100"),
    ("NVIDIA H200", "h200"), ("NVIDIA L4", "l4")])
def test_device_kind_maps_to_its_entry(kind, name):
  device = types.SimpleNamespace(device_kind=kind, platform="gpu")
  assert hardware.accelerator_for(device) is hardware.ACCELERATORS[name]


def test_unknown_devices_and_names():
  for kind in ("NVIDIA H100 PCIe", "NVIDIA H100 NVL", "NVIDIA H200 NVL", "TPU v4 lite",
               "TPU7x"):
    assert hardware.accelerator_for(types.SimpleNamespace(device_kind=kind,
                                                          platform="gpu")) is None, kind
  with pytest.raises(KeyError, match="accelerator 'b200': expected one of v4, v5e"):
    hardware.accelerator_named("b200")
  assert hardware.accelerator_named(" H100 ") is hardware.ACCELERATORS["h100"]


def test_cpu_peak_is_measured_once_and_used_for_cpu_devices():
  import jax
  peak = hardware.measured_cpu_matmul_peak("float32")
  assert 1e8 < peak < 1e14
  assert hardware.measured_cpu_matmul_peak("float32") == peak  # Cached per process.
  chip = hardware.accelerator_for(jax.devices("cpu")[0])
  assert chip.peak("float32") == peak and "measured" in chip.source
  with pytest.raises(KeyError, match="float16"):
    hardware.measured_cpu_matmul_peak("float16")


def test_wall_seconds_is_flops_over_peak_times_mfu():
  chip = hardware.ACCELERATORS["h100"]
  assert hardware.wall_seconds(989.5e12, chip, mfu=0.5) == pytest.approx(2.0)
  assert hardware.wall_seconds(989.5e12, chip, mfu=0.5, chips=2) == pytest.approx(1.0)
