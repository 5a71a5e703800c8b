r"""The whole study in one command:
`python -m launch.reproduce --config=configs/reproduce_cpu.py --workdir=DIR`.

LR sweeps, the LSTM / 2017 / modern Transformer scaling sweeps and the ablation suite
(each run its own `launch.train` process, --workers at a time), then the frontier fits with
bootstrap CIs, the CEG table, the ablation CEGs, the accounting on the measured laws next
to the published ones, and DIR/report.md with the figures. Rerun the same command after an
interruption: finished runs are skipped, interrupted ones resume from their checkpoints.
Presets: configs/reproduce_tiny.py (minutes), reproduce_cpu.py (about an hour on 2 CPU
cores), reproduce_paper.py (the study's protocol, for TPU/GPU).

--devices_per_worker=N gives each training process its own N accelerators (one machine,
several runs at once). --distributed (multi-host pod slices): run the same command on every
host; every run is trained by all hosts together (launch.train --distributed, one run at a
time), and the analysis is left to one `--analyse_only` call afterwards, so that hosts never
write the same report files at once.
"""

import pathlib
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from algoprog import reproduce, study
from algoprog.training import console, sweep
from algoprog.analysis import ceg, fit, report, runs

_CONFIG = config_flags.DEFINE_config_file("config", None, "Reproduce config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Study directory (created; reused to resume).")
_WORKERS = flags.DEFINE_integer("workers", 0, "Training processes at a time; 0 -> "
                                "config.sweep.workers.")
_DEVICES_PER_WORKER = flags.DEFINE_integer(
    "devices_per_worker", 0, "Accelerators each training process gets to itself (worker k: "
    "devices k*n .. k*n+n-1, via CUDA_VISIBLE_DEVICES / TPU_VISIBLE_CHIPS); 0 -> no pinning.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Multi-host: run this same command on every host; runs are trained "
    "by all hosts together (launch.train --distributed), one at a time; then run "
    "--analyse_only once for the report.")
_RETRY = flags.DEFINE_bool("retry_failed", False, "Run failed runs again.")
_ANALYSE_ONLY = flags.DEFINE_bool("analyse_only", False, "Redo the analysis and report from "
                                  "the finished runs without training anything.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  console.quiet_libraries()
  workdir = pathlib.Path(_WORKDIR.value)
  try:
    if _ANALYSE_ONLY.value:
      summary = reproduce.analyse(_CONFIG.value, workdir / "sweep", workdir / "analysis")
      path = workdir / reproduce.REPORT_FILE
      path.write_text(report.report_markdown(_CONFIG.value, summary))
      print(f"report: {path}")
      return
    if _DISTRIBUTED.value:
      sweep.run_sweep(_CONFIG.value.sweep, workdir / "sweep", _WORKERS.value or 1,
                      retry_failed=_RETRY.value, distributed=True,
                      devices_per_worker=_DEVICES_PER_WORKER.value)
      print(f"runs finished; write the report once (one host): python -m launch.reproduce "
            f"--config=... --workdir={workdir} --analyse_only")
      return
    reproduce.run(_CONFIG.value, workdir, workers=_WORKERS.value,
                  retry_failed=_RETRY.value, devices_per_worker=_DEVICES_PER_WORKER.value)
  except sweep.StaleRunError as e:  # Names a run directory, not a config field.
    sys.exit(f"error: {e}")
  except sweep.SweepError as e:  # Its fields are relative to the sweep config.
    sys.exit(f"error: sweep.{e}")
  except (reproduce.ReproduceError, study.StudyConfigError, runs.RunTableError, fit.FitError,
          ceg.TargetNotReached) as e:
    sys.exit(f"error: {e}")
  except OSError as e:  # Read-only or full disk: finished runs stay finished.
    sys.exit(console.os_error_line(e, workdir))


if __name__ == "__main__":
  app.run(main, flags_parser=console.parse_flags_or_exit)
