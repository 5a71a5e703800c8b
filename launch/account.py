r"""Algorithmic-progress accounting:
`python -m launch.account --config=configs/account_study.py --out=DIR`.

Prints the headline table; writes to DIR the tables (CSV, and all of them in summary.json)
and the figures (PNG and SVG). Fitted laws from the fit module come in with
`--config.laws_json=FILE` (format in docs/account.md); their bootstrap samples give the
intervals. Every config field can be overridden by flag, e.g.
`--config.trend.growth_per_year=3.5`; multi-valued fields take a comma list or repeats
(`--config.figure_formats=png,pdf`, `--config.headline_years=2023 --config.headline_years=2025`).
Bad input stops the command with one `error:` line before anything is computed or written;
DIR keeps an earlier run's files unless this run completes (algoprog.analysis.account_report).
"""

import json
import pathlib
import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from algoprog.training import console
from algoprog.analysis import account, account_report

_CONFIG = config_flags.DEFINE_config_file("config", None, "Accounting config file.",
                                          lock_config=True)
_OUT = flags.DEFINE_string("out", None, "Output folder (created) for tables and figures.")
flags.mark_flags_as_required(["config", "out"])


def _load_study(config):
  study = account.study_from_dict(config.to_dict())
  if not config.laws_json:
    return study, None
  path = pathlib.Path(config.laws_json)
  try:
    data = json.loads(path.read_text())
  except OSError as e:
    raise account.AccountError(f"laws_json: cannot read {path}: {e.strerror}") from None
  except json.JSONDecodeError as e:
    raise account.AccountError(f"laws_json: {path} is not JSON ({e.msg}, line {e.lineno})"
                               ) from None
  return account.with_fitted_laws(study, account.fitted_laws_from_dict(data))


def run(config, out: pathlib.Path) -> str:
  """Validates, computes everything, then writes tables and figures under `out`; returns
  the printed text."""
  account_report.check_out(out)
  study, sampled = _load_study(config)
  settings = account_report.settings_from_dict(config.to_dict(), study)
  report = account_report.compute_report(study, sampled, settings,
                                         json.loads(config.to_json()))
  account_report.write_report(report, out, settings.figure_formats)
  return (report.text + f"\nwrote {len(report.tables)} tables and {len(report.figures)} "
          f"figures to {out}")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # jax's backend-probing INFO lines are noise here.
  console.quiet_libraries()
  out = pathlib.Path(_OUT.value)
  try:
    with jax.enable_x64(True):  # FLOPs up to 1e25 and ratios of them, printed exactly.
      print(run(_CONFIG.value, out))
  except account.AccountError as e:
    sys.exit(f"error: {e}")
  except OSError as e:  # A full disk or an unwritable --out: out keeps what it had.
    sys.exit(f"error: --out: cannot write {e.filename or out}: {e.strerror}")


if __name__ == "__main__":
  app.run(main, flags_parser=console.parse_flags_or_exit)
