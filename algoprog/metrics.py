"""The run directory's machine-readable records: metrics.jsonl, config.json, run.json.

A run directory holds:
  config.json    the fully resolved config (every derived field filled in)
  run.json       identity and summary: label, status ("running", "interrupted" by SIGTERM,
                 "completed", "failed"), parameter counts, FLOP convention, data
                 fingerprint, failure reason (rewritten as the run progresses)
  metrics.jsonl  one JSON object per evaluation, in step order: step, tokens, flops,
                 train_loss, validation_loss (nats/token), validation_tokens (scored),
                 wall_time_s, learning_rate
  checkpoints/   orbax checkpoints
  .lock          fcntl-locked by the trainer while it runs; names its pid and host
Writes are atomic (JSON files) or flushed row by row (metrics.jsonl), and readers drop a
torn row or an empty file with a warning rather than fail.
This is the format `algoprog.runs` reads (docs/fit.md).
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import socket
from typing import Any

from absl import logging

METRICS_FILE = "metrics.jsonl"
RUN_FILE = "run.json"
CONFIG_FILE = "config.json"


def _jsonable(value: Any) -> Any:
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)  # JSON has no NaN/inf; keep them visible rather than crash.
  if hasattr(value, "item"):
    return _jsonable(value.item())
  return value


def write_json(path: pathlib.Path, payload: dict) -> None:
  """Atomic write: a kill mid-write leaves the old file, never half of a new one."""
  # A temporary file per writer: with --distributed every host's sweep writes the same
  # bookkeeping files on shared storage, and a shared name would be renamed from under one.
  tmp = path.with_name(f"{path.name}.{socket.gethostname()}.{os.getpid()}.tmp")
  tmp.write_text(json.dumps(payload, indent=1, sort_keys=True, default=_jsonable))
  os.replace(tmp, path)


def json_safe(value: Any) -> Any:
  """A copy fit for tables: NaN/inf -> None (null; CSV empty), numpy scalars -> floats."""
  if isinstance(value, dict):
    return {k: json_safe(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [json_safe(v) for v in value]
  if isinstance(value, (bool, str, int)) or value is None:
    return value
  value = float(value)
  return value if math.isfinite(value) else None


def write_csv(path: pathlib.Path, rows: list[dict]) -> None:
  """Rows (dicts) as CSV, columns in order of first appearance; non-finite cells empty."""
  import csv
  columns = list(dict.fromkeys(k for r in rows for k in r)) or ["empty"]
  with path.open("w", newline="") as f:
    writer = csv.DictWriter(f, columns)
    writer.writeheader()
    writer.writerows(json_safe(rows))


def read_json(path: pathlib.Path) -> dict | None:
  """A JSON object file's contents; None (with a warning) when missing, empty or garbled,
  e.g. a run.json truncated by a full disk or written by something else."""
  path = pathlib.Path(path)
  if not path.exists():
    return None
  try:
    payload = json.loads(path.read_text())
  except (ValueError, UnicodeDecodeError) as e:
    logging.warning("%s: not valid JSON (%s); ignoring it", path, e)
    return None
  if not isinstance(payload, dict):
    logging.warning("%s: expected a JSON object; ignoring it", path)
    return None
  return payload


def read_metrics(run_dir: pathlib.Path) -> list[dict]:
  """metrics.jsonl's rows; a line that is not a JSON object with a step (the torn last row
  of a killed writer) is dropped with a warning."""
  path = pathlib.Path(run_dir) / METRICS_FILE
  if not path.exists():
    return []
  rows = []
  for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
    if not line.strip():
      continue
    try:
      row = json.loads(line)
    except ValueError:
      row = None
    if not isinstance(row, dict) or not isinstance(row.get("step"), int):
      logging.warning("%s line %d: not a metrics row (torn by a kill?); dropped", path, number)
      continue
    rows.append(row)
  return rows


class MetricsWriter:
  """Appends one row per evaluation to metrics.jsonl, flushed as written.

  enabled=False (every process but 0 of a multi-host run) writes nothing.
  """

  def __init__(self, run_dir: pathlib.Path, resume_step: int, enabled: bool = True):
    """Keeps rows with step <= resume_step (those the restored state had seen)."""
    self.path = pathlib.Path(run_dir) / METRICS_FILE
    self._file = None
    if not enabled:
      return
    kept = [r for r in read_metrics(run_dir) if r["step"] <= resume_step]
    tmp = self.path.with_name(self.path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
    os.replace(tmp, self.path)
    self._file = open(self.path, "a")

  def write(self, row: dict) -> None:
    if self._file is None:
      return
    self._file.write(json.dumps({k: _jsonable(v) for k, v in row.items()}) + "\n")
    self._file.flush()

  def close(self) -> None:
    if self._file is not None:
      self._file.close()
