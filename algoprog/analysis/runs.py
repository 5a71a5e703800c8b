"""The table of runs every fit reads: one row per evaluation point of one training run.

A `RunTable` is columnar (one numpy array per column, one entry per point) and holds only
points that passed validation:

  run_id   which training curve the point belongs to (str)
  group    the run's label: architecture or variant, e.g. "modern", "lstm" (str)
  compute  cumulative training compute at the point (FLOPs, > 0, finite)
  loss     validation loss at the point (nats/token, finite)
  params   total parameter count of the run (optional; NaN where unknown)
  tokens   cumulative training tokens at the point (optional; NaN where unknown)

Points of one run are kept in the order they were written (step order for training runs),
and along them compute never decreases (`check_run_points`: a point written twice is
dropped with a warning; a decrease, or two losses at one compute, is an error naming the
run and rows). Runs that cannot be used (status "failed", no metrics, a NaN loss) are never
silently dropped: they are listed in `RunTable.excluded` with the reason.
`data_fingerprints` says which data a folder's runs were trained on.

Two sources (docs/fit.md):
  * a folder of training runs: any directory tree in which each run is a subdirectory with
    `run.json` and `metrics.jsonl`, as written by `launch.train`, read through
    algoprog.rundir's checked readers (a torn last metrics row is dropped with a warning;
    any other malformed row or run.json is an error naming the file and line);
  * a CSV or JSONL table with a user column mapping (`ColumnMapping`), e.g. published
    (compute, loss) points or final losses of an IsoFLOP sweep; UTF-8 (a leading
    byte-order mark is skipped), one JSON object per JSONL line.

This module is the only one in the fit stack that touches files (run directories only
through algoprog.rundir). Bad input is a one-line RunTableError naming the file, the
line or row and the column.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import pathlib
from typing import Iterable, Mapping

import numpy as np
from absl import logging

from algoprog import rundir

RUN_FILE = rundir.RUN_FILE
METRICS_FILE = rundir.METRICS_FILE
# Run statuses whose points are used; "running" and "interrupted" (SIGTERM, resumable)
# curves are valid so far (the envelope only needs the points that exist).
USABLE_STATUSES = ("completed", "running", "interrupted")
# Stages a sweep's runs record in run.json (algoprog.training.sweep): reduced-budget LR-sweep runs
# and the full runs. "" is a run outside a sweep (or older than the field).
STAGES = ("lr_sweep", "full", "")
FULL_STAGES = ("full", "")
LR_CHOICES_FILE = "lr_choices.json"  # algoprog.training.sweep's record of the LR choices
MANIFEST_FILE = "manifest.json"  # algoprog.training.sweep's record of every planned run


class RunTableError(ValueError):
  """A table of runs that cannot be fitted; the message is one line naming the place."""


@dataclasses.dataclass(frozen=True)
class ExcludedRun:
  """A run left out of the table and why (printed and written by launch.fit)."""
  run_id: str
  group: str
  reason: str


@dataclasses.dataclass(frozen=True)
class ColumnMapping:
  """Which column of a CSV/JSONL table holds each quantity.

  `compute` and `loss` are required unless compute can be derived: with `compute=None` and
  both `params` and `tokens` given, compute = 6 * params * tokens (FLOPs, the Kaplan
  convention). Without a `run` column every row is its own run (a table of final points);
  without a `group` column every row is in group "all".
  """
  compute: str | None = "compute"
  loss: str = "loss"
  run: str | None = None
  group: str | None = None
  params: str | None = None
  tokens: str | None = None

  @classmethod
  def parse(cls, text: str) -> "ColumnMapping":
    """Parses "compute=flops,loss=val_loss,group=arch" (fields not named keep defaults)."""
    fields = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, str | None] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
      key, sep, column = item.partition("=")
      if not sep or key.strip() not in fields:
        raise RunTableError(f"column mapping '{item}': expected FIELD=COLUMN with FIELD one "
                            f"of {', '.join(sorted(fields))}")
      values[key.strip()] = column.strip() or None
    return cls(**values)


@dataclasses.dataclass(frozen=True)
class RunTable:
  """Validated points of many runs (see the module docstring for the columns)."""
  run_id: np.ndarray
  group: np.ndarray
  compute: np.ndarray
  loss: np.ndarray
  params: np.ndarray
  tokens: np.ndarray
  excluded: tuple[ExcludedRun, ...] = ()
  source: str = ""
  # Runs of a folder left out because of their stage (not unusable: not asked for).
  other_stages: tuple[ExcludedRun, ...] = ()
  # run_id -> its run.json (folders of runs only), for diagnostics (seeds, LR, stage).
  run_info: Mapping[str, dict] = dataclasses.field(default_factory=dict)

  @property
  def groups(self) -> list[str]:
    """Group labels in order of first appearance."""
    return list(dict.fromkeys(self.group.tolist()))

  @property
  def run_ids(self) -> list[str]:
    """Run ids in order of first appearance."""
    return list(dict.fromkeys(self.run_id.tolist()))

  def select(self, mask: np.ndarray) -> "RunTable":
    """The points where `mask` is true (excluded runs are kept)."""
    return dataclasses.replace(
        self, **{name: getattr(self, name)[mask] for name in _POINT_COLUMNS})

  def merged(self, other: "RunTable") -> "RunTable":
    """This table's points followed by `other`'s (run ids must not repeat), with both
    tables' run records."""
    repeated = sorted(set(self.run_ids) & set(other.run_ids))
    if repeated:
      raise RunTableError(f"merged: run(s) {', '.join(repeated)} in both tables")
    return dataclasses.replace(
        self, run_info={**self.run_info, **other.run_info},
        **{name: np.concatenate([getattr(self, name), getattr(other, name)])
           for name in _POINT_COLUMNS})

  def only_groups(self, groups: Iterable[str]) -> "RunTable":
    groups = list(groups)
    missing = sorted(set(groups) - set(self.groups))
    if missing:
      raise RunTableError(f"group(s) {', '.join(missing)} not in the table (groups: "
                          f"{', '.join(self.groups)})")
    return self.select(np.isin(self.group, groups))


_POINT_COLUMNS = ("run_id", "group", "compute", "loss", "params", "tokens")


def make_table(run_id: Iterable, group: Iterable, compute: Iterable, loss: Iterable,
               params: Iterable | None = None, tokens: Iterable | None = None, *,
               excluded: Iterable[ExcludedRun] = (), source: str = "",
               row_names: Iterable[str] | None = None,
               column_names: Mapping[str, str] | None = None) -> RunTable:
  """Builds and validates a RunTable from per-point columns.

  `row_names` and `column_names` (field -> the source's column) name the place in errors.

  Raises:
    RunTableError: naming the first bad row and column: non-finite or non-positive
      compute, non-finite or non-positive loss, non-positive params/tokens, or no points.
  """
  compute = np.asarray(list(compute), dtype=np.float64)
  n = compute.size
  columns = {
      "run_id": np.asarray([str(r) for r in run_id], dtype=object),
      "group": np.asarray([str(g) for g in group], dtype=object),
      "compute": compute,
      "loss": np.asarray(list(loss), dtype=np.float64),
      "params": (np.full(n, np.nan) if params is None
                 else np.asarray(list(params), dtype=np.float64)),
      "tokens": (np.full(n, np.nan) if tokens is None
                 else np.asarray(list(tokens), dtype=np.float64)),
  }
  names = list(row_names) if row_names is not None else [f"row {i + 1}" for i in range(n)]
  column_names = column_names or {}
  label = lambda field: (f"{column_names[field]} ({field})" if column_names.get(field)
                         and column_names[field] != field else field)
  for name, values in columns.items():
    if values.shape != (n,):
      raise RunTableError(f"column {name}: {values.size} values, expected {n} (one per point)")
  if n == 0:
    raise RunTableError(f"{source or 'table'}: no usable points")
  _check_positive_finite(columns["compute"], label("compute"), names, "compute (FLOPs)")
  _check_positive_finite(columns["loss"], label("loss"), names,
                         "validation loss (nats/token)")
  for optional in ("params", "tokens"):
    values = columns[optional]
    known = ~np.isnan(values)
    if known.any() and not known.all():
      first = names[int(np.argmin(known))]
      raise RunTableError(f"{first}: column {label(optional)} is missing here but given elsewhere; "
                          "expected it on every row or on none")
    if known.all():
      _check_positive_finite(values, label(optional), names, optional)
  return RunTable(**columns, excluded=tuple(excluded), source=source)


def _check_positive_finite(values: np.ndarray, column: str, names: list[str],
                           what: str) -> None:
  bad = ~np.isfinite(values) | (values <= 0)
  if bad.any():
    i = int(np.argmax(bad))
    raise RunTableError(f"{names[i]}: column {column} is {float(values[i])!r}; expected a finite "
                        f"positive {what}")


def load_runs(path: str | pathlib.Path, columns: ColumnMapping | None = None, *,
              statuses: Iterable[str] = USABLE_STATUSES,
              stages: Iterable[str] | None = None) -> RunTable:
  """Loads a folder of training runs (only `stages`, default all), or a .csv/.jsonl table
  with `columns`."""
  path = pathlib.Path(path)
  if path.is_dir():
    if columns is not None:
      raise RunTableError(f"{path}: a folder of runs takes no column mapping (it has the "
                          "launcher's fixed format)")
    return load_run_folder(path, statuses=statuses, stages=stages)
  if not path.exists():
    raise RunTableError(f"{path}: no such file or folder")
  return load_table_file(path, columns or ColumnMapping())


def manifest_stages(folder: pathlib.Path) -> dict[str, str]:
  """{run_id: stage} from a sweep's manifest.json in `folder` or its parent (a sweep
  directory, or its runs/ folder); {} when there is none."""
  for place in (folder, folder.parent):
    path = place / MANIFEST_FILE
    if path.exists():
      try:
        entries = json.loads(path.read_text()).get("runs", [])
        return {str(e["run_id"]): str(e.get("stage", "")) for e in entries if "run_id" in e}
      except (json.JSONDecodeError, AttributeError, TypeError, KeyError):
        raise RunTableError(f"{path}: not a sweep manifest (expected {{\"runs\": [{{"
                            "\"run_id\", \"stage\", ...}]}})") from None
  return {}


def lr_choices_near(path: pathlib.Path) -> dict | None:
  """The sweep's LR-choice record (lr_choices.json) in a runs folder or its parent (a sweep
  directory or its runs/), or None."""
  for place in (path, path.parent):
    candidate = place / LR_CHOICES_FILE
    if path.is_dir() and candidate.exists():
      try:
        return json.loads(candidate.read_text())
      except json.JSONDecodeError as e:
        raise RunTableError(f"{candidate}: not valid JSON ({e.msg})") from None
  return None


def run_stage(info: Mapping, manifest: Mapping[str, str]) -> str:
  """A run's stage: run.json's `stage`; for runs that predate it, the sweep manifest's,
  else "lr_sweep" when the run id has the sweep's "_lrsweep" part, else "" (not a sweep
  run, counted as full)."""
  if info.get("stage"):
    return str(info["stage"])
  run_id = str(info.get("run_id", ""))
  if run_id in manifest:
    return manifest[run_id]
  return "lr_sweep" if "_lrsweep" in run_id else ""


def load_run_folder(folder: str | pathlib.Path, *,
                    statuses: Iterable[str] = USABLE_STATUSES,
                    stages: Iterable[str] | None = None) -> RunTable:
  """Reads every run below `folder` (any depth) written by launch.train.

  Each run is a directory holding run.json and metrics.jsonl (algoprog/rundir.py). The
  point columns come from metrics.jsonl (flops -> compute, validation_loss -> loss, tokens)
  and run.json (params_total -> params, label -> group). A run whose run_id is also used
  by another directory is identified by its path relative to `folder` instead.

  `stages` (default all) keeps only runs of those stages (`run_stage`); the others are
  listed in `other_stages`.

  Excluded, with the reason, rather than loaded: runs whose status is not in `statuses`
  (e.g. "failed", with run.json's failure_reason), runs with no evaluation yet, and runs
  with a non-finite validation loss or FLOPs at some step.

  Raises:
    RunTableError: no run.json below `folder`; a run.json that is not a JSON object or
      lacks run_id, label or status (params_total, for a run that is loaded); a
      metrics.jsonl line, other than a torn last one, that is not a JSON object with step,
      tokens, flops and validation_loss; compute that decreases along a run; no usable
      run at all.
  """
  folder = pathlib.Path(folder)
  statuses = tuple(statuses)
  run_dirs = rundir.run_directories(folder)
  if not run_dirs:
    raise RunTableError(f"{folder}: no runs found (expected subdirectories holding "
                        f"{RUN_FILE} and {METRICS_FILE})")
  records = [_read_record(d) for d in run_dirs]
  stages = None if stages is None else tuple(stages)
  manifest = manifest_stages(folder)
  id_counts: dict[str, int] = {}
  for record in records:
    id_counts[record.run_id] = id_counts.get(record.run_id, 0) + 1
  points: dict[str, list] = {name: [] for name in _POINT_COLUMNS}
  row_names: list[str] = []
  excluded: list[ExcludedRun] = []
  other_stages: list[ExcludedRun] = []
  run_info: dict[str, dict] = {}
  for run_dir, record in zip(run_dirs, records):
    run_id = record.run_id
    if id_counts[run_id] > 1:
      run_id = run_dir.relative_to(folder).as_posix()
    group = str(record.label)
    info = record.to_dict()
    stage = run_stage(info, manifest)
    if stages is not None and stage not in stages:
      other_stages.append(ExcludedRun(run_id, group, f"stage {stage or 'unknown'}"))
      continue
    run_info[run_id] = {**info, "stage": stage}
    if record.status not in statuses:
      reason = f"status {record.status}"
      if record.failure_reason:
        reason += f": {record.failure_reason}"
      excluded.append(ExcludedRun(run_id, group, reason))
      continue
    if record.params_total is None:
      raise RunTableError(f"{run_dir / RUN_FILE}: missing field(s) params_total; expected "
                          "the launcher's run.json (docs/fit.md)")
    rows = _read_metrics(run_dir)
    if not rows:
      excluded.append(ExcludedRun(run_id, group, "no evaluations in metrics.jsonl yet"))
      continue
    bad = next((r for r in rows if not (_finite(r["validation_loss"]) and _finite(r["flops"]))),
               None)
    if bad is not None:
      excluded.append(ExcludedRun(
          run_id, group, f"validation_loss {bad['validation_loss']} / flops {bad['flops']} "
          f"at step {bad['step']}"))
      continue
    for r in rows:
      name = f"{run_dir / METRICS_FILE} step {r['step']}"
      points["run_id"].append(run_id)
      points["group"].append(group)
      points["compute"].append(float(r["flops"]))
      points["loss"].append(float(r["validation_loss"]))
      points["params"].append(_as_number(record.params_total, f"{run_dir / RUN_FILE}",
                                         "params_total"))
      points["tokens"].append(_as_number(r["tokens"], name, "tokens"))
      row_names.append(name)
  if not points["run_id"]:
    reasons = "; ".join(f"{e.run_id}: {e.reason}" for e in (excluded + other_stages)[:3])
    raise RunTableError(f"{folder}: no usable runs ({len(excluded)} excluded, "
                        f"{len(other_stages)} of other stages: {reasons})")
  table = make_table(**points, excluded=excluded, source=str(folder), row_names=row_names)
  table = check_run_points(table, row_names,
                           column_names={"compute": "flops", "loss": "validation_loss"})
  return dataclasses.replace(table, other_stages=tuple(other_stages), run_info=run_info)


# What identifies the data a run saw: the token arrays themselves (their SHA-256) and how
# they were made. Bookkeeping fields (cache keys, document counts, fields added to the
# fingerprint by later versions) are left out, so an older run and a newer run on the same
# tokens agree.
DATA_IDENTITY_FIELDS = ("train_sha256", "validation_sha256", "tokenizer", "vocab_size")


def fingerprint_key(fingerprint: Mapping | None) -> str:
  """A data fingerprint (run.json's data_fingerprint) reduced to DATA_IDENTITY_FIELDS, as
  canonical JSON (sorted keys): two runs trained on the same tokens have equal keys; "null"
  for a run that recorded none (a fingerprint without any of those fields counts whole)."""
  if not isinstance(fingerprint, Mapping):
    return json.dumps(fingerprint, sort_keys=True)
  identity = {k: fingerprint[k] for k in DATA_IDENTITY_FIELDS if k in fingerprint}
  return json.dumps(identity or dict(fingerprint), sort_keys=True)


def data_fingerprints(source: "RunTable | str | pathlib.Path",
                      groups: Iterable[str] | None = None) -> dict[str, list[str]]:
  """Which data the loaded runs were trained on: {fingerprint_key: [run ids]}.

  Args:
    source: a RunTable, or a folder of runs (loaded with load_runs' defaults).
    groups: only runs of these groups (default all).

  Returns:
    Keys in order of first appearance, run ids in table order; more than one key means
    the runs were trained on different corpora, vocabularies or splits. Only runs with
    points in the table count (excluded runs do not). {} for a CSV/JSONL table, which
    records no data; the key "null" holds runs of a folder whose run.json has no
    fingerprint (written before the field).
  """
  table = source if isinstance(source, RunTable) else load_runs(source)
  wanted = None if groups is None else set(groups)
  group_of = dict(zip(table.run_id.tolist(), table.group.tolist()))
  keys: dict[str, list[str]] = {}
  for run_id in table.run_ids:
    if run_id not in table.run_info or (wanted is not None and group_of[run_id] not in wanted):
      continue
    key = fingerprint_key(table.run_info[run_id].get("data_fingerprint"))
    keys.setdefault(key, []).append(run_id)
  return keys


# params_total is required only of runs that are loaded (a run that failed before it
# counted its parameters, e.g. on a config error, is excluded with its reason).
_RUN_FIELDS = rundir.RECORD_FIELDS
_METRIC_FIELDS = ("step", "tokens", "flops", "validation_loss")


def _read_record(run_dir: pathlib.Path) -> rundir.RunRecord:
  try:
    return rundir.read_record_checked(run_dir, _RUN_FIELDS)
  except rundir.RunFileError as e:
    raise RunTableError(str(e)) from None


def _read_metrics(run_dir: pathlib.Path) -> list[dict]:
  """metrics.jsonl's rows (a torn last row dropped with a warning; any other malformed
  row an error naming the file and line)."""
  try:
    return rundir.read_metrics_checked(run_dir, _METRIC_FIELDS)
  except rundir.RunFileError as e:
    raise RunTableError(str(e)) from None


def check_run_points(table: RunTable, row_names: list[str], *,
                     column_names: Mapping[str, str] | None = None,
                     rows_are_runs: bool = False) -> RunTable:
  """`table` with exact duplicate points dropped (with a warning), after checking that
  compute never decreases along each run's points (their step/row order).

  A duplicate is a point of the same run with the same compute and loss as the one before
  it (a row written twice); with `rows_are_runs` (a table without a run column, one final
  point per row) one with the same group, compute, loss, params and tokens as an earlier
  row. `row_names` names each point of `table`; `column_names` (field -> the source's
  column) names the columns in errors.

  Raises:
    RunTableError: naming the run, both rows and the column: compute that decreases along
      a run, or one run with two different losses at the same compute.
  """
  column_names = column_names or {}
  label = lambda field: (f"{column_names[field]} ({field})" if column_names.get(field)
                         and column_names[field] != field else field)
  keep = np.ones(table.compute.size, dtype=bool)
  if rows_are_runs:
    seen: set[tuple] = set()
    for i in range(table.compute.size):
      key = (table.group[i], table.compute[i], table.loss[i], str(table.params[i]),
             str(table.tokens[i]))  # str: NaN (no such column) equals itself.
      keep[i] = key not in seen
      seen.add(key)
  else:
    for run in table.run_ids:
      index = np.flatnonzero(table.run_id == run)
      for previous, current in zip(index[:-1], index[1:]):
        before, after = table.compute[previous], table.compute[current]
        where = f"{row_names[previous]} and {_row_tail(row_names[previous], row_names[current])}"
        if after < before:
          raise RunTableError(
              f"run {run}: column {label('compute')} decreases from {before:.6g} to "
              f"{after:.6g} ({where}); expected compute that never decreases along a run's "
              "points (step/row order)")
        if after == before:
          if table.loss[current] != table.loss[previous]:
            raise RunTableError(
                f"run {run}: two losses at column {label('compute')} = {after:.6g} "
                f"({where}: {label('loss')} {table.loss[previous]:.6g} and "
                f"{table.loss[current]:.6g}); expected one loss per compute of a run")
          keep[current] = False
  dropped = int((~keep).sum())
  if dropped:
    first = row_names[int(np.argmin(keep))]
    logging.warning("%s: dropped %d duplicate row(s) (same run, compute and loss as another "
                    "row; the first: %s)", table.source or "table", dropped, first)
    return table.select(keep)
  return table


def _row_tail(first: str, second: str) -> str:
  """`second` without the source it shares with `first` ("t.csv row 5" -> "row 5")."""
  head = first.rsplit(" ", 2)[0]  # Names end "<kind> <number>": row 5, step 300.
  return second[len(head) + 1:] if head != first and second.startswith(head + " ") else second


def _as_number(value, place: str, column: str) -> float:
  try:
    return float(value)
  except (TypeError, ValueError):
    raise RunTableError(f"{place}: column {column} is {value!r}; expected a number") from None


def _finite(value) -> bool:
  # metrics.jsonl writes non-finite floats as the strings "nan"/"inf".
  try:
    return math.isfinite(float(value))
  except (TypeError, ValueError):
    return False


def load_table_file(path: str | pathlib.Path, columns: ColumnMapping) -> RunTable:
  """Reads a .csv (header row) or .jsonl (one object per line) table of points, UTF-8 (a
  byte-order mark, as spreadsheet programs write, is skipped).

  Raises:
    RunTableError: an unknown extension, text that is not UTF-8, a JSONL line that is not
      a JSON object, a mapped column absent from the file, or a value that is not a number
      (naming the row and column), plus make_table's and check_run_points' checks.
  """
  path = pathlib.Path(path)
  suffix = path.suffix.lower()
  if suffix not in (".csv", ".jsonl", ".ndjson"):
    raise RunTableError(f"{path}: expected a folder of runs, a .csv or a .jsonl file")
  try:
    # utf-8-sig: a BOM before the header would otherwise stick to the first column's name.
    text = path.read_text(encoding="utf-8-sig")
  except UnicodeDecodeError as e:
    raise RunTableError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason}); expected a "
                        "UTF-8 .csv or .jsonl file") from None
  except OSError as e:
    raise RunTableError(f"{path}: cannot read ({e.strerror})") from None
  if suffix == ".csv":
    records = list(csv.DictReader(io.StringIO(text, newline="")))
    header = list(records[0].keys()) if records else []
  else:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
      if not line.strip():
        continue
      try:
        record = json.loads(line)
      except json.JSONDecodeError:
        raise RunTableError(f"{path} line {number}: not valid JSON") from None
      if not isinstance(record, dict):
        raise RunTableError(f"{path} line {number}: expected a JSON object (one point, "
                            f"{{\"column\": value, ...}}), got {type(record).__name__}")
      records.append(record)
    header = sorted({k for r in records for k in r})
  if not records:
    raise RunTableError(f"{path}: no rows")
  return table_from_records(records, columns, source=str(path), header=header)


def table_from_records(records: list[Mapping], columns: ColumnMapping, *, source: str = "",
                       header: list[str] | None = None) -> RunTable:
  """Builds a RunTable from dict rows (CSV/JSONL lines, or rows built in memory)."""
  header = header if header is not None else sorted({k for r in records for k in r})
  if columns.compute is None and not (columns.params and columns.tokens):
    raise RunTableError("column mapping: give compute=COLUMN, or params= and tokens= to "
                        "derive compute = 6 * params * tokens")
  mapped = {f.name: getattr(columns, f.name) for f in dataclasses.fields(columns)}
  for field, column in mapped.items():
    if column is not None and column not in header:
      raise RunTableError(f"{source}: column '{column}' (mapped to {field}) not found; "
                          f"columns are: {', '.join(header)}")

  offset = 2 if source.endswith(".csv") else 1  # CSV row 1 is the header.

  def numbers(column: str | None) -> list[float] | None:
    if column is None:
      return None
    values = []
    for i, record in enumerate(records):
      raw = record.get(column)
      try:
        values.append(float(raw))
      except (TypeError, ValueError):
        raise RunTableError(f"{source} row {i + offset}: column {column} is {raw!r}; "
                            "expected a number") from None
    return values

  def names(column: str) -> list[str]:
    values = []
    for i, record in enumerate(records):
      raw = record.get(column)
      if raw is None or raw == "":
        raise RunTableError(f"{source} row {i + offset}: column {column} is empty; "
                            "expected a name on every row")
      values.append(raw)
    return values

  params, tokens = numbers(columns.params), numbers(columns.tokens)
  compute = numbers(columns.compute)
  if compute is None:
    compute = [6.0 * n * d for n, d in zip(params, tokens)]
  run_id = (names(columns.run) if columns.run
            else [f"row{i + offset}" for i in range(len(records))])
  group = names(columns.group) if columns.group else ["all"] * len(records)
  row_names = [f"{source} row {i + offset}" for i in range(len(records))]
  table = make_table(run_id, group, compute, numbers(columns.loss), params, tokens,
                     source=source, row_names=row_names, column_names=mapped)
  return check_run_points(table, row_names, column_names=mapped,
                          rows_are_runs=columns.run is None)
