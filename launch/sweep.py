r"""Runs a sweep: `python -m launch.sweep --config=configs/reproduce_tiny.py --workdir=DIR`.

LR sweeps first, then the full runs at the chosen learning rates, each run in its own
process (--workers at a time). Rerunning the same command skips finished runs and resumes
interrupted ones. `--export` writes commands.txt and slurm_array.sh instead of running (for
LR-swept groups, export again once the sweep runs are done: the grid extensions past a
winning edge, then the full runs).
"""

import pathlib
import sys

from absl import app, flags
from ml_collections import config_flags

from algoprog import console, sweep

_CONFIG = config_flags.DEFINE_config_file("config", None, "Sweep config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Sweep directory.")
_WORKERS = flags.DEFINE_integer("workers", 0, "Worker processes; 0 -> config.workers.")
_RETRY = flags.DEFINE_bool("retry_failed", False, "Run failed runs again.")
_EXPORT = flags.DEFINE_bool("export", False, "Write commands.txt and slurm_array.sh only.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  sweep_dir = pathlib.Path(_WORKDIR.value)
  try:
    if _EXPORT.value:
      sweep_dir.mkdir(parents=True, exist_ok=True)
      runs = sweep.plan_from_directory(_CONFIG.value, sweep_dir)
      commands, slurm = sweep.export_commands(sweep_dir, runs)
      print(f"{len(runs)} runs: {commands} (one command a line), {slurm} (sbatch it)")
      return
    results = sweep.run_sweep(_CONFIG.value, sweep_dir, _WORKERS.value or _CONFIG.value.workers,
                              retry_failed=_RETRY.value)
  except sweep.SweepError as e:
    sys.exit(f"error: {e}")
  except OSError as e:  # Read-only or full disk: finished runs stay finished.
    sys.exit(console.os_error_line(e, sweep_dir))
  failed = [r for r in results.values() if r["status"] == "failed"]
  print(f"{len(results) - len(failed)} runs completed, {len(failed)} failed "
        f"(listed in {sweep_dir / sweep.FAILURES_FILE})")


if __name__ == "__main__":
  app.run(main, flags_parser=console.parse_flags_or_exit)
