r"""Per-device memory and FLOPs of the biggest train steps, compiled ahead of time:

  python -m launch.aot --config=configs/reproduce_paper.py             # 8 simulated CPUs
  python -m launch.aot --config=configs/reproduce_paper.py --devices=4 --runs=1
  python -m launch.aot --config=configs/reproduce_paper.py --platform=  # this machine's

For the --runs largest models of a sweep/reproduce config (each group at its largest
width), lowers the real train step (parameters and optimizer state replicated, the batch
sharded over a --devices mesh) on abstract inputs, compiles it, and prints XLA's memory
analysis of the per-device program (arguments, outputs, aliased donations, temporaries,
generated code) and its FLOPs. Nothing is trained or allocated. With --platform=cpu (the
default) the devices are simulated CPUs and the numbers are XLA:CPU's estimate; on a TPU/GPU
machine pass --platform= to compile for its own devices.
"""

import sys

from absl import app, flags
from ml_collections import config_flags

from algoprog.training import config as config_lib, console, data, sweep

_CONFIG = config_flags.DEFINE_config_file("config", None, "Sweep or reproduce config file.",
                                          lock_config=True)
_DEVICES = flags.DEFINE_integer("devices", 8, "Devices of the data-parallel mesh.")
_RUNS = flags.DEFINE_integer("runs", 3, "How many of the largest models to compile.")
_PLATFORM = flags.DEFINE_string("platform", "cpu", "cpu: --devices simulated CPU devices; "
                                "'': the machine's default backend (its real devices).")
flags.mark_flags_as_required(["config"])


def main(argv):
  del argv
  console.quiet_libraries()
  import jax  # Backends start on first use: the device count must be set before.
  if _PLATFORM.value == "cpu":
    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_num_cpu_devices", _DEVICES.value)
  from algoprog import study
  from algoprog.training import aot, train
  devices = jax.devices()
  if len(devices) < _DEVICES.value:
    sys.exit(f"error: --devices: expected at most the {len(devices)} devices of this "
             f"machine; got {_DEVICES.value}")
  mesh = train.make_mesh(devices[:_DEVICES.value])
  try:
    runs = aot.largest_runs(_CONFIG.value, _RUNS.value)
    reports = [aot.step_report(label, config, mesh) for label, config in runs]
  except (sweep.SweepError, config_lib.ConfigError, data.DataError,
          study.StudyConfigError) as e:
    sys.exit(f"error: {e}")
  print(f"train step per device on {mesh.size} x {devices[0].platform} "
        f"({devices[0].device_kind}), XLA's estimate:")
  print(aot.table(reports))


if __name__ == "__main__":
  app.run(main, flags_parser=console.parse_flags_or_exit)
