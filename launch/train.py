r"""Trains one model: `python -m launch.train --config=configs/modern.py --workdir=DIR`.

Any config field can be overridden, e.g. `--config.model.width=32`. Rerunning the same
command on the same workdir resumes from its latest checkpoint (a finished run is left as
it is). Bad input, a busy workdir, a failed run (NaN or diverging loss) and an unwritable
workdir end with one `error:` line and a non-zero exit; SIGTERM checkpoints and exits 143.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from algoprog.training import checkpoints, config as config_lib, console, data, train

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (created; resumed if present).")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Call jax.distributed.initialize() first (multi-host TPU/GPU: run "
    "the same command on every host; coordinates are auto-detected on TPU pods).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  logging.set_verbosity(logging.INFO)
  console.quiet_libraries()
  if _DISTRIBUTED.value:
    import jax
    jax.distributed.initialize()
  try:
    info = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except (config_lib.ConfigError, data.DataError, train.RunError,
          checkpoints.CheckpointError) as e:
    sys.exit(f"error: {e}")
  except OSError as e:  # Read-only or full disk, permissions: nothing written is lost.
    sys.exit(console.os_error_line(e, _WORKDIR.value))
  if info["status"] == "interrupted":
    sys.exit(143)  # 128 + SIGTERM, as if killed, but checkpointed: rerun to resume.
  logging.info("finished %s: final validation loss %.4f nats/token",
               _WORKDIR.value, info.get("final_validation_loss", float("nan")))


if __name__ == "__main__":
  app.run(main, flags_parser=console.parse_flags_or_exit)
