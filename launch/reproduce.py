r"""The whole study in one command:
`python -m launch.reproduce --config=configs/reproduce_cpu.py --workdir=DIR`.

LR sweeps, the LSTM / 2017 / modern Transformer scaling sweeps and the ablation suite
(each run its own `launch.train` process, --workers at a time), then the frontier fits with
bootstrap CIs, the CEG table, the ablation CEGs, the accounting on the measured laws next
to the published ones, and DIR/report.md with the figures. Rerun the same command after an
interruption: finished runs are skipped, interrupted ones resume from their checkpoints.
Presets: configs/reproduce_tiny.py (minutes), reproduce_cpu.py (about an hour on 2 CPU
cores), reproduce_paper.py (the study's protocol, for TPU/GPU).
"""

import pathlib
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from algoprog import ceg, console, fit, reproduce, runs, sweep

_CONFIG = config_flags.DEFINE_config_file("config", None, "Reproduce config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Study directory (created; reused to resume).")
_WORKERS = flags.DEFINE_integer("workers", 0, "Training processes at a time; 0 -> "
                                "config.sweep.workers.")
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
      path.write_text(reproduce.report_markdown(_CONFIG.value, summary))
      print(f"report: {path}")
      return
    reproduce.run(_CONFIG.value, workdir, workers=_WORKERS.value,
                  retry_failed=_RETRY.value)
  except sweep.StaleRunError as e:  # Names a run directory, not a config field.
    sys.exit(f"error: {e}")
  except sweep.SweepError as e:  # Its fields are relative to the sweep config.
    sys.exit(f"error: sweep.{e}")
  except (reproduce.ReproduceError, runs.RunTableError, fit.FitError,
          ceg.TargetNotReached) as e:
    sys.exit(f"error: {e}")
  except OSError as e:  # Read-only or full disk: finished runs stay finished.
    sys.exit(console.os_error_line(e, workdir))


if __name__ == "__main__":
  app.run(main, flags_parser=console.parse_flags_or_exit)
