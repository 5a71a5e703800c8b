r"""Algorithmic-progress accounting:
`python -m launch.account --config=configs/account_study.py --out=DIR`.

Prints the headline table; writes to DIR the tables (CSV, and all of them in summary.json)
and the figures (PNG and SVG). Fitted laws from the fit module come in with
`--config.laws_json=FILE` (format in docs/account.md); their bootstrap samples give the
intervals. Every config field can be overridden by flag, e.g.
`--config.trend.growth_per_year=3.5`.
"""

import json
import pathlib
import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from algoprog import rundir
from algoprog.training import console
from algoprog.analysis import account, plots

_CONFIG = config_flags.DEFINE_config_file("config", None, "Accounting config file.",
                                          lock_config=True)
_OUT = flags.DEFINE_string("out", None, "Output folder (created) for tables and figures.")
flags.mark_flags_as_required(["config", "out"])

def _multiple(value: float) -> str:
  """A CEG as people write it: 6,926x, 726x, 3.71x."""
  return f"{value:,.0f}x" if abs(value) >= 100 else f"{value:.3g}x"


# Columns of the printed headline table: (row key, header, formatter of a value).
_PRINTED = (("year", "year", str), ("where", "where", str),
            ("compute", "FLOPs", "{:.3g}".format), ("total", "total", _multiple))
_PRINTED_TAIL = (("scale_invariant", "scale-invariant", _multiple),
                 ("scale_dependent_share", "scale-dep. share", "{:.1%}".format),
                 ("annual_growth", "growth", "{:.3g}x/yr".format))


def _cell(row: dict, key: str, fmt) -> str:
  text = fmt(row[key])
  if f"{key}_lower" in row:
    text += f" [{fmt(row[f'{key}_lower'])}, {fmt(row[f'{key}_upper'])}]"
  return text


def format_headline(rows: list[dict], labels: dict) -> str:
  """The headline rows as an aligned text table (intervals in brackets)."""
  components = [k for k in dict.fromkeys(k for r in rows for k in r) if k in labels]
  columns = list(_PRINTED) + [(k, labels[k], _multiple) for k in components] + list(
      _PRINTED_TAIL)
  table = [[header for _, header, _ in columns]]
  for row in rows:
    table.append([_cell(row, k, f) if k in row else "-" for k, _, f in columns])
  widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
  return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in table)


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
  """Computes everything, writes tables and figures under `out`; returns the printed text."""
  import numpy as np
  study, sampled = _load_study(config)
  level = config.confidence_level
  years = [account.check_year(y, study.start_year, "headline_years")
           for y in config.headline_years]
  end_year = account.check_year(config.end_year, study.start_year, "end_year")
  all_years = list(range(study.start_year, end_year + 1))
  innovations = account.resolve(study)
  sampled_innovations = account.resolve(sampled) if sampled is not None else None
  out.mkdir(parents=True, exist_ok=True)

  headline = account.headline_rows(study, years, config.fixed_compute, sampled, level)
  components = account.component_rows(study, years, sampled, level)
  frontier = account.progress_by_year(innovations, all_years, study.start_year,
                                      trend=study.trend)
  frontier_samples = None if sampled is None else account.progress_by_year(
      sampled_innovations, all_years, study.start_year, trend=sampled.trend)
  fixed = {c: account.progress_by_year(innovations, all_years, study.start_year, compute=c)
           for c in config.fixed_compute}
  references = {r.label: account.progress_by_year(
      account.relative_to(innovations, r.includes), all_years, study.start_year,
      trend=study.trend) for r in study.references}
  progress_rows = account.yearly_rows(frontier, frontier_samples, level, where="frontier")
  for c, p in fixed.items():
    progress_rows += account.yearly_rows(p, where="fixed")
  reference_rows = [r for label, p in references.items()
                    for r in account.yearly_rows(p, reference=label)]
  sensitivity_rows = []
  ranges = {row.path: (row.low, row.high) for row in config.sensitivity.values()}
  tornado_rows = {}
  for name in ("total", "chinchilla"):
    rows = account.sensitivity(
        study, lambda s: account.metric(account.headline(s, years[0]), name), ranges)
    tornado_rows[name] = rows
    sensitivity_rows += [{"metric": name, "year": years[0], **r._asdict()} for r in rows]
  marks = {f"{y} frontier": float(account.frontier_compute(study.trend, y)) for y in years}
  multiplier_rows = [
      {"compute": c, "multiplier": float(account.chinchilla_multiplier(
          study.chinchilla, study.kaplan, c)),
       "kaplan_reducible_loss": float(account.kaplan_reducible_loss(
           study.chinchilla, study.kaplan, c))}
      for c in sorted({1e18, 1e24, *marks.values()})]

  tables = {"headline": headline, "components": components, "progress": progress_rows,
            "references": reference_rows, "sensitivity": sensitivity_rows,
            "multiplier": multiplier_rows}
  for name, rows in tables.items():
    rundir.write_csv(out / f"{name}.csv", rows)
  k = float(account.study_interaction_exponent(study))
  (out / "summary.json").write_text(json.dumps(
      {"interaction_exponent": k, "samples": sampled is not None, **tables,
       "config": json.loads(config.to_json())}, indent=1, default=float))

  measured = {name: float(v) for name, v in account.unnormalised_cegs(study).items()}
  low, high = config.compute_range
  grid = np.logspace(np.log10(low), np.log10(high), 200)
  figures = {
      "innovation_bars": plots.innovation_bars(
          account.active(innovations, years[0]),
          account.headline(study, years[0]).decomposition, measured,
          title=f"CEG per innovation, {years[0]} frontier"),
      "gains_vs_compute": plots.gains_vs_compute(innovations, grid, marks,
                                                 sampled_innovations, level),
      "progress_by_year": plots.progress_by_year(innovations, frontier, fixed,
                                                 frontier_samples, level),
      "reference_dependence": plots.reference_dependence(references),
      "kaplan_vs_chinchilla": plots.kaplan_vs_chinchilla(
          study.chinchilla, study.kaplan, grid, {"1e18": 1e18, **marks, "1e24": 1e24}),
      "sensitivity_total": plots.tornado(tornado_rows["total"], f"{years[0]} total CEG"),
      "sensitivity_chinchilla": plots.tornado(tornado_rows["chinchilla"],
                                              f"{years[0]} Chinchilla multiplier"),
  }
  for name, figure in figures.items():
    plots.save_figure(figure, out / name, tuple(config.figure_formats))

  labels = {i.name: i.label for i in innovations}
  return (f"interaction normalisation k = {k:.4f}"
          f"{'' if sampled is None else f'; {level:.0%} intervals from bootstrap samples'}\n"
          + format_headline(headline, labels)
          + f"\nwrote {len(tables)} tables and {len(figures)} figures to {out}")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # jax's backend-probing INFO lines are noise here.
  console.quiet_libraries()
  try:
    with jax.enable_x64(True):  # FLOPs up to 1e25 and ratios of them, printed exactly.
      print(run(_CONFIG.value, pathlib.Path(_OUT.value)))
  except account.AccountError as e:
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  app.run(main, flags_parser=console.parse_flags_or_exit)
