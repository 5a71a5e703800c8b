"""What `launch.account` produces from one study: its settings, tables, figures and text.

Three steps, so that bad input and failures lose nothing:
  1. `settings_from_dict` validates the config's output fields (everything
     `account.study_from_dict` leaves to the launcher) before any compute;
  2. `compute_report` computes every table (plain rows for CSV/JSON) and figure in memory;
  3. `write_report` writes them into a staging folder inside `out` and only then moves
     them into `out`, so a run that fails part-way (a full disk, a figure that cannot be
     saved) leaves the results of an earlier run in `out` as they were.
`format_headline` renders the headline rows as the printed text table.

Units: compute in FLOPs, CEGs as multipliers (> 1 is a gain), years calendar years.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import shutil
from typing import Any, Collection, Mapping, Sequence

import numpy as np

from algoprog import rundir
from algoprog.analysis import account, plots
from algoprog.analysis.report import multiple

# Tables written as <name>.csv (and all of them in summary.json), in this order.
TABLES = ("headline", "components", "progress", "references", "sensitivity", "multiplier")
# Metrics of the tornado figures and the sensitivity table (account.metric names).
SENSITIVITY_METRICS = ("total", "chinchilla")
_STAGING_PREFIX = ".partial-"


@dataclasses.dataclass(frozen=True)
class Settings:
  """The output fields of an accounting config (configs/account_study.py documents each).

  Attributes:
    headline_years: years of the headline table (non-empty; the first is the year of the
      sensitivity table and the per-innovation figure).
    end_year: last year of the by-year tables and figures.
    fixed_compute: FLOPs (> 0) at which progress by year is also accounted.
    confidence_level: coverage of the bootstrap intervals, in (0, 1).
    compute_range: (low, high) FLOPs of the figures' compute axis, 0 < low < high.
    figure_formats: file formats of the figures (each one matplotlib can save).
    sensitivity: dotted input path -> (low, high) value of one tornado row.
  """
  headline_years: tuple[int, ...]
  end_year: int
  fixed_compute: tuple[float, ...]
  confidence_level: float
  compute_range: tuple[float, float]
  figure_formats: tuple[str, ...]
  sensitivity: Mapping[str, tuple[float, float]]


def figure_formats_supported() -> dict[str, str]:
  """{format: description} of the file formats matplotlib's savefig writes."""
  from matplotlib.backend_bases import FigureCanvasBase
  return FigureCanvasBase.get_supported_filetypes()


def listed(value: Any, field: str, *, numbers: bool = False) -> tuple:
  """A multi-valued field as a tuple: a sequence, a single value, and comma-separated
  strings in either ("png,svg" or ("png,svg", "pdf") -> ("png", "svg", "pdf")), so a
  flag may be given as a comma list as well as repeated. With `numbers`, parts that spell
  a number become one ("2023" -> 2023, "1e18" -> 1e18); others are left for the field's
  check to name."""
  if isinstance(value, (str, int, float)) and not isinstance(value, bool):
    value = (value,)
  if not isinstance(value, (list, tuple)):
    raise account.AccountError(f"{field}: expected a list of values, got {value!r}")
  items = []
  for item in value:
    if isinstance(item, str):
      parts = [part.strip() for part in item.split(",") if part.strip()]
      items += [_number_or_text(part) for part in parts] if numbers else parts
    else:
      items.append(item)
  return tuple(items)


def _number_or_text(text: str) -> Any:
  for kind in (int, float):
    try:
      return kind(text)
    except ValueError:
      pass
  return text


def _flops(value: Any, field: str) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not (
      math.isfinite(value) and value > 0):
    raise account.AccountError(f"{field}: expected a finite compute > 0 FLOPs, got {value!r}")
  return float(value)


def settings_from_dict(config: Mapping, study: account.Study,
                       supported_formats: Collection[str] | None = None) -> Settings:
  """Validated output fields of an accounting config (a plain mapping, e.g.
  ConfigDict.to_dict()); `supported_formats` defaults to matplotlib's.

  Raises:
    account.AccountError: one line naming the field: headline_years empty or a year
      outside [start_year, MAX_YEAR], end_year likewise, fixed_compute not > 0,
      confidence_level outside (0, 1), compute_range not two FLOPs with low < high,
      figure_formats empty or one matplotlib cannot write, a sensitivity row naming no
      input or with non-finite values.
  """
  for key in ("headline_years", "end_year", "fixed_compute", "confidence_level",
              "compute_range", "figure_formats"):
    if key not in config:
      raise account.AccountError(f"{key}: missing from the accounting config")
  years = tuple(account.check_year(y, study.start_year, "headline_years")
                for y in listed(config["headline_years"], "headline_years", numbers=True))
  if not years:
    raise account.AccountError("headline_years: expected at least one year")
  end_year = account.check_year(config["end_year"], study.start_year, "end_year")
  fixed = tuple(_flops(c, f"fixed_compute[{i}]")
                for i, c in enumerate(listed(config["fixed_compute"], "fixed_compute",
                                            numbers=True)))
  level = config["confidence_level"]
  if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
    raise account.AccountError(f"confidence_level: expected a coverage in (0, 1), e.g. "
                               f"0.95, got {level!r}")
  compute_range = listed(config["compute_range"], "compute_range", numbers=True)
  if len(compute_range) != 2:
    raise account.AccountError(f"compute_range: expected (low, high) FLOPs, got "
                               f"{compute_range!r}")
  low, high = (_flops(c, f"compute_range[{i}]") for i, c in enumerate(compute_range))
  if not low < high:
    raise account.AccountError(f"compute_range: expected low < high FLOPs, got ({low:g}, "
                               f"{high:g})")
  formats = listed(config["figure_formats"], "figure_formats")
  supported = (figure_formats_supported() if supported_formats is None
               else supported_formats)
  if not formats:
    raise account.AccountError("figure_formats: expected at least one format, e.g. png")
  for fmt in formats:
    if not isinstance(fmt, str) or fmt.lower() not in supported:
      raise account.AccountError(f"figure_formats: {fmt!r} is not a format matplotlib "
                                 f"writes (supported: {', '.join(sorted(supported))})")
  sensitivity = {}
  for name, row in dict(config.get("sensitivity") or {}).items():
    field = f"sensitivity.{name}"
    if not isinstance(row, Mapping) or not all(k in row for k in ("path", "low", "high")):
      raise account.AccountError(f"{field}: expected {{path, low, high}}, got {row!r}")
    account.get_value(study, str(row["path"]))  # AccountError naming an unknown input.
    for key in ("low", "high"):
      value = row[key]
      if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
          math.isfinite(value)):
        raise account.AccountError(f"{field}.{key}: expected a finite number, got "
                                   f"{value!r}")
    sensitivity[str(row["path"])] = (float(row["low"]), float(row["high"]))
  return Settings(years, end_year, fixed, float(level), (low, high), formats, sensitivity)


@dataclasses.dataclass(frozen=True)
class Report:
  """Everything one accounting writes, computed.

  Attributes:
    tables: table name (TABLES) -> rows (dicts of numbers and strings).
    summary: summary.json's contents (the tables, the interaction exponent k, whether
      intervals come from samples, the config).
    figures: file stem -> matplotlib Figure.
    text: what the launcher prints (k, the headline table).
  """
  tables: Mapping[str, list[dict]]
  summary: Mapping[str, Any]
  figures: Mapping[str, Any]
  text: str


def compute_report(study: account.Study, sampled: account.Study | None, settings: Settings,
                   config_json: Mapping | None = None) -> Report:
  """Every table and figure of the accounting of `study` (intervals from `sampled`, the
  study carrying bootstrap samples, when given); `config_json` is recorded in summary.json.
  Writes nothing."""
  level = settings.confidence_level
  years = list(settings.headline_years)
  all_years = list(range(study.start_year, settings.end_year + 1))
  innovations = account.resolve(study)
  sampled_innovations = account.resolve(sampled) if sampled is not None else None

  headline = account.headline_rows(study, years, settings.fixed_compute, sampled, level)
  components = account.component_rows(study, years, sampled, level)
  frontier = account.progress_by_year(innovations, all_years, study.start_year,
                                      trend=study.trend)
  frontier_samples = None if sampled is None else account.progress_by_year(
      sampled_innovations, all_years, study.start_year, trend=sampled.trend)
  fixed = {c: account.progress_by_year(innovations, all_years, study.start_year, compute=c)
           for c in settings.fixed_compute}
  references = {r.label: account.progress_by_year(
      account.relative_to(innovations, r.includes), all_years, study.start_year,
      trend=study.trend) for r in study.references}
  progress_rows = account.yearly_rows(frontier, frontier_samples, level, where="frontier")
  for c, p in fixed.items():
    progress_rows += account.yearly_rows(p, where="fixed")
  reference_rows = [r for label, p in references.items()
                    for r in account.yearly_rows(p, reference=label)]
  sensitivity_rows = []
  tornado_rows = {}
  for name in SENSITIVITY_METRICS:
    rows = account.sensitivity(
        study, lambda s: account.metric(account.headline(s, years[0]), name),
        settings.sensitivity)
    tornado_rows[name] = rows
    sensitivity_rows += [{"metric": name, "year": years[0], **r._asdict()} for r in rows]
  marks = {f"{y} frontier": float(account.frontier_compute(study.trend, y)) for y in years}
  multiplier_rows = [
      {"compute": c, "multiplier": float(account.chinchilla_multiplier(
          study.chinchilla, study.kaplan, c)),
       "kaplan_reducible_loss": float(account.kaplan_reducible_loss(
           study.chinchilla, study.kaplan, c))}
      for c in sorted({1e18, 1e24, *marks.values()})]

  tables = dict(zip(TABLES, (headline, components, progress_rows, reference_rows,
                             sensitivity_rows, multiplier_rows)))
  k = float(account.study_interaction_exponent(study))
  summary = {"interaction_exponent": k, "samples": sampled is not None, **tables,
             "config": dict(config_json or {})}

  measured = {name: float(v) for name, v in account.unnormalised_cegs(study).items()}
  low, high = settings.compute_range
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
  labels = {i.name: i.label for i in innovations}
  text = (f"interaction normalisation k = {k:.4f}"
          f"{'' if sampled is None else f'; {level:.0%} intervals from bootstrap samples'}\n"
          + format_headline(headline, labels))
  return Report(tables, summary, figures, text)


def check_out(out: pathlib.Path) -> None:
  """AccountError unless `out` is a folder or can be created as one (before compute)."""
  out = pathlib.Path(out)
  if out.exists() and not out.is_dir():
    raise account.AccountError(f"--out: {out} is a file; expected a folder for the tables "
                               "and figures")
  parent = next((p for p in out.parents if p.exists()), None)
  if not out.exists() and parent is not None and not parent.is_dir():
    raise account.AccountError(f"--out: {parent} is a file; expected a folder")


def write_report(report: Report, out: pathlib.Path,
                 figure_formats: Sequence[str]) -> list[pathlib.Path]:
  """Writes the report's CSV tables, summary.json and figures into `out` (created);
  returns the paths written.

  Everything is first written to a staging folder inside `out` and moved into place only
  when all of it is written: a failure part-way leaves `out` as it was (files of an
  earlier run stay) and removes the staging folder.
  """
  out = pathlib.Path(out)
  check_out(out)
  out.mkdir(parents=True, exist_ok=True)
  staging = out / f"{_STAGING_PREFIX}{os.getpid()}"
  shutil.rmtree(staging, ignore_errors=True)  # A leftover of a killed run of this pid.
  staging.mkdir()
  try:
    for name, rows in report.tables.items():
      rundir.write_csv(staging / f"{name}.csv", rows)
    (staging / "summary.json").write_text(json.dumps(report.summary, indent=1,
                                                     default=float))
    for name, figure in report.figures.items():
      plots.save_figure(figure, staging / name, tuple(figure_formats))
    written = []
    for path in sorted(staging.iterdir()):
      os.replace(path, out / path.name)
      written.append(out / path.name)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return written


# ----------------------------------------------------------------------------------------
# The printed headline table.


# Columns of the printed headline table: (row key, header, formatter of a value).
_PRINTED = (("year", "year", str), ("where", "where", str),
            ("compute", "FLOPs", "{:.3g}".format), ("total", "total", multiple))
_PRINTED_TAIL = (("scale_invariant", "scale-invariant", multiple),
                 ("scale_dependent_share", "scale-dep. share", "{:.1%}".format),
                 ("annual_growth", "growth", "{:.3g}x/yr".format))


def _cell(row: dict, key: str, fmt) -> str:
  text = fmt(row[key])
  if f"{key}_lower" in row:
    text += f" [{fmt(row[f'{key}_lower'])}, {fmt(row[f'{key}_upper'])}]"
  return text


def format_headline(rows: list[dict], labels: dict) -> str:
  """The headline rows (account.headline_rows) as an aligned text table, intervals in
  brackets; `labels` maps innovation names to column headers."""
  components = [k for k in dict.fromkeys(k for r in rows for k in r) if k in labels]
  columns = list(_PRINTED) + [(k, labels[k], multiple) for k in components] + list(
      _PRINTED_TAIL)
  table = [[header for _, header, _ in columns]]
  for row in rows:
    table.append([_cell(row, k, f) if k in row else "-" for k, _, f in columns])
  widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
  return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in table)
