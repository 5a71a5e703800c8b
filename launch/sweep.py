r"""Runs a sweep: `python -m launch.sweep --config=configs/reproduce_tiny.py --workdir=DIR`.

LR sweeps first, then the full runs at the chosen learning rates, each run in its own
process (--workers at a time; --devices_per_worker pins each to its own accelerators).
Rerunning the same command skips finished runs and resumes interrupted ones. Ctrl-C or
SIGTERM stops it: the running runs checkpoint and are recorded interrupted, one line says
which, and it exits 130 / 143 (rerun to resume). A second sweep on the same --workdir is
refused, naming the first one's pid and host. `--config`
takes a sweep config or a reproduce config (its `sweep` part). `--export` writes
commands.txt and slurm_array.sh instead of running (--slurm_* set the array's resources;
for LR-swept groups, export again once the sweep runs are done: the grid extensions past a
winning edge, then the full runs). `--distributed`: multi-host, run the same command on
every host; each run is then trained by all hosts together (launch.train --distributed).
"""

import pathlib
import sys

from absl import app, flags
from ml_collections import config_flags

from algoprog.training import console, sweep

_CONFIG = config_flags.DEFINE_config_file("config", None, "Sweep or reproduce config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Sweep directory.")
_WORKERS = flags.DEFINE_integer("workers", 0, "Worker processes; 0 -> config.workers.")
_DEVICES_PER_WORKER = flags.DEFINE_integer(
    "devices_per_worker", 0, "Accelerators each worker process gets to itself (worker k: "
    "devices k*n .. k*n+n-1, via CUDA_VISIBLE_DEVICES / TPU_VISIBLE_CHIPS); 0 -> no pinning.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Multi-host: every host runs this same command; each run is "
    "launched with launch.train --distributed. Needs --workers=1.")
_RETRY = flags.DEFINE_bool("retry_failed", False, "Run failed runs again.")
_EXPORT = flags.DEFINE_bool("export", False, "Write commands.txt and slurm_array.sh only.")
_SLURM_CPUS = flags.DEFINE_integer("slurm_cpus_per_task", 8, "--export: CPUs per run.")
_SLURM_GPUS = flags.DEFINE_integer("slurm_gpus_per_task", 0, "--export: GPUs per run "
                                   "(0: no --gpus-per-task line).")
_SLURM_MEM = flags.DEFINE_string("slurm_mem", "32G", "--export: host memory per run.")
_SLURM_TIME = flags.DEFINE_string("slurm_time", "1-00:00:00", "--export: time limit per run "
                                  "(a run cut off resumes when its line runs again).")
_SLURM_PARTITION = flags.DEFINE_string("slurm_partition", "", "--export: partition ('' "
                                       "-> the cluster's default).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  sweep_dir = pathlib.Path(_WORKDIR.value)
  try:
    config = sweep.sweep_section(_CONFIG.value)
    if _EXPORT.value:
      sweep_dir.mkdir(parents=True, exist_ok=True)
      runs = sweep.plan_from_directory(config, sweep_dir)
      resources = sweep.SlurmResources(_SLURM_CPUS.value, _SLURM_GPUS.value, _SLURM_MEM.value,
                                       _SLURM_TIME.value, _SLURM_PARTITION.value)
      commands, slurm = sweep.export_commands(sweep_dir, runs, resources,
                                              distributed=_DISTRIBUTED.value)
      print(f"{len(runs)} runs: {commands} (one command a line), {slurm} (sbatch it)")
      return
    results = sweep.run_sweep(config, sweep_dir, _WORKERS.value or config.workers,
                              retry_failed=_RETRY.value,
                              devices_per_worker=_DEVICES_PER_WORKER.value,
                              distributed=_DISTRIBUTED.value)
  except sweep.SweepInterrupted as e:  # Ctrl-C / SIGTERM: checkpointed, resumable.
    print(e, file=sys.stderr)
    sys.exit(e.exit_code)
  except sweep.SweepError as e:
    sys.exit(f"error: {e}")
  except OSError as e:  # Read-only or full disk: finished runs stay finished.
    sys.exit(console.os_error_line(e, sweep_dir))
  failed = [r for r in results.values() if r["status"] == "failed"]
  print(f"{len(results) - len(failed)} runs completed, {len(failed)} failed "
        f"(listed in {sweep_dir / sweep.FAILURES_FILE})")


if __name__ == "__main__":
  app.run(main, flags_parser=console.parse_flags_or_exit)
