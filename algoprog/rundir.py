"""The run directory's machine-readable records: metrics.jsonl, config.json, run.json.

A run directory holds:
  config.json    the fully resolved config (every derived field filled in)
  run.json       identity and summary: label, status ("running", "interrupted" by SIGTERM,
                 "completed", "failed"), parameter counts, FLOP convention, data
                 fingerprint, failure reason (rewritten as the run progresses); MFU's
                 denominator once training starts (algoprog.hardware.device_peak):
                 peak_flops_per_s per device (null for a chip without a table entry),
                 peak_dtype, peak_source (the number's source, or why there is none),
                 devices (kept in RunRecord.extra)
  metrics.jsonl  one JSON object per evaluation, in step order: step, tokens, flops,
                 train_loss, validation_loss (nats/token), validation_tokens (scored),
                 wall_time_s, learning_rate, and the throughput of the train steps since
                 the previous row: tokens_per_s, model_flops_per_s (analytic FLOPs per
                 token x tokens/s, all devices), mfu (model_flops_per_s / (run.json's
                 peak_flops_per_s x devices); null without a peak). TIMING_FIELDS differ
                 between two runs of the same config; every other field repeats exactly.
  checkpoints/   orbax checkpoints
  events.out.tfevents.*  TensorBoard event files mirroring metrics.jsonl, when
                 train.trackers names tensorboard (algoprog.training.tracking)
  .lock          fcntl-locked by the trainer while it runs; names its pid and host
Writes are atomic (JSON files) or flushed row by row (metrics.jsonl), and readers drop a
torn row or an empty file with a warning rather than fail.
This is the format `algoprog.analysis.runs` reads (docs/fit.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import math
import os
import pathlib
import socket
from typing import Any, Callable, Iterator

from absl import logging

METRICS_FILE = "metrics.jsonl"
RUN_FILE = "run.json"
CONFIG_FILE = "config.json"
LAUNCHER_LOG = "launcher.log"  # A sweep's capture of the trainer's stdout/stderr.
TENSORBOARD_EVENTS = "events.out.tfevents.*"  # tensorboardX's file names (a glob).
# metrics.jsonl fields that measure time, not training: they differ between identical runs
# (and between a straight run and a resumed one), so comparisons of rows leave them out.
TIMING_FIELDS = ("wall_time_s", "tokens_per_s", "model_flops_per_s", "mfu")

# run.json's status: "running" while a trainer holds the run (or it died without a word),
# "interrupted" when a signal stopped it after a checkpoint (the same command resumes it),
# "completed" once the final evaluation is recorded, "failed" with a failure_reason.
STATUSES = ("running", "interrupted", "completed", "failed")


@dataclasses.dataclass(frozen=True)
class RunRecord:
  """run.json: one training run's identity, provenance and summary (the only schema of it).

  Written by the trainer as the run progresses (algoprog.training.train) and, for a run whose
  process died without recording why, by the sweep; read by sweeps (status, stale checks)
  and by the analysis (algoprog.analysis.runs). Fields of a newer or older writer that this
  version does not know are kept in `extra` and written back unchanged.
  """
  run_id: str
  label: str
  status: str  # One of STATUSES.
  stage: str = ""  # "lr_sweep" | "full" | "" (a run outside a sweep).
  failure_reason: str | None = None  # Why status is "failed" (one line).
  seed: int | None = None
  width: int | None = None
  learning_rate: float | None = None  # Peak learning rate.
  batch_size: int | None = None  # Sequences per step.
  sequence_length: int | None = None  # Tokens per sequence.
  params_total: int | None = None  # All parameters, embeddings included.
  params_nonembedding: int | None = None
  flops_per_token: float | None = None  # Training FLOPs per token (fwd + bwd).
  flops_convention: str | None = None  # What flops_per_token counts (algoprog.training.flops).
  flops_source: str | None = None  # "analytical" | "xla_cost_analysis".
  flops_warning: str | None = None  # Why the analytical count was not used, if it was not.
  tokens_planned: int | None = None
  steps_planned: int | None = None
  data_fingerprint: dict | None = None  # algoprog.training.data.Corpus.fingerprint.
  final_validation_loss: float | None = None  # nats/token on the whole validation set.
  wall_time_s: float | None = None
  interrupted_at_step: int | None = None
  extra: dict = dataclasses.field(default_factory=dict)

  @classmethod
  def from_dict(cls, payload: dict) -> "RunRecord":
    names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
    known = {k: v for k, v in payload.items() if k in names}
    extra = {k: v for k, v in payload.items() if k not in names}
    return cls(**{"run_id": "", "label": "", "status": "running", **known}, extra=extra)

  def to_dict(self) -> dict:
    payload = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name != "extra"}
    return {**self.extra, **payload}

  def replace(self, **changes) -> "RunRecord":
    return dataclasses.replace(self, **changes)


def read_record(run_dir: pathlib.Path) -> RunRecord | None:
  """The run's run.json; None when there is none yet (or it is empty or garbled, with a
  warning: a file torn by a full disk must not stop a sweep or a fit)."""
  payload = read_json(pathlib.Path(run_dir) / RUN_FILE)
  return None if payload is None else RunRecord.from_dict(payload)


def write_record(run_dir: pathlib.Path, record: RunRecord) -> RunRecord:
  """Writes run.json atomically and returns what was written. A completed run stays
  completed: a later "failed" (say, another process's view of the run) is not written, with
  a warning, and the completed record is returned."""
  if record.status not in STATUSES:
    raise ValueError(f"run.json status: expected one of {', '.join(STATUSES)}; got "
                     f"{record.status!r}")
  if record.status == "failed":
    current = read_record(run_dir)
    if current is not None and current.status == "completed":
      logging.warning("%s: completed; not marking it failed (%s)", run_dir,
                      record.failure_reason)
      return current
  write_json(pathlib.Path(run_dir) / RUN_FILE, record.to_dict())
  return record


def read_config(run_dir: pathlib.Path) -> dict | None:
  """The run's recorded, fully resolved config.json (None when absent or garbled)."""
  return read_json(pathlib.Path(run_dir) / CONFIG_FILE)


def write_config(run_dir: pathlib.Path, config: dict) -> None:
  write_json(pathlib.Path(run_dir) / CONFIG_FILE, config)


@contextlib.contextmanager
def exclusive_lock(path: pathlib.Path, busy: Callable[[str], Exception]) -> Iterator[None]:
  """Holds an exclusive fcntl lock on the file `path` for the block, the file naming the
  holder (pid and host); when another process holds it, raises busy(that holder's line)
  instead of waiting. A trainer locks its run directory, a sweep its sweep directory."""
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  with os.fdopen(fd, "r+") as f:
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      raise busy(f.read().strip() or "another process") from None
    f.truncate(0)
    f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    f.flush()
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def run_directories(folder: pathlib.Path) -> list[pathlib.Path]:
  """Every run directory (one holding a run.json) at or below `folder`, sorted."""
  return sorted(p.parent for p in pathlib.Path(folder).rglob(RUN_FILE))


def tensorboard_event_files(run_dir: pathlib.Path) -> list[pathlib.Path]:
  """The run's TensorBoard event files (written by algoprog.training.tracking), sorted."""
  return sorted(pathlib.Path(run_dir).glob(TENSORBOARD_EVENTS))


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


# ----------------------------------------------------------------------------------------
# Checked readers: for the analysis, where a malformed file is the user's to fix (one line
# naming the file and line) rather than something to skip as a sweep does.


class RunFileError(ValueError):
  """A run directory file that is not in its format; the message is one line naming the
  file (and line)."""


# What the analysis needs of every run.json (params_total only of runs it loads).
RECORD_FIELDS = ("run_id", "label", "status")


def read_record_checked(run_dir: pathlib.Path,
                        required: tuple[str, ...] = RECORD_FIELDS) -> RunRecord:
  """The run's run.json as a RunRecord, every field in `required` present.

  Raises:
    RunFileError: run.json missing, not valid JSON, not a JSON object, or lacking one of
      `required` (naming the file and the fields).
  """
  path = pathlib.Path(run_dir) / RUN_FILE
  try:
    payload = json.loads(path.read_text(errors="replace"))
  except OSError as e:
    raise RunFileError(f"{path}: cannot read ({e.strerror})") from None
  except ValueError as e:
    where = f" at line {e.lineno}" if isinstance(e, json.JSONDecodeError) else ""
    message = e.msg if isinstance(e, json.JSONDecodeError) else str(e)
    raise RunFileError(f"{path}: not valid JSON ({message}{where})") from None
  if not isinstance(payload, dict):
    raise RunFileError(f"{path}: expected a JSON object, got {type(payload).__name__}")
  missing = [f for f in required if f not in payload]
  if missing:
    raise RunFileError(f"{path}: missing field(s) {', '.join(missing)}; expected the "
                       "launcher's run.json (docs/fit.md)")
  return RunRecord.from_dict(payload)


def read_metrics_checked(run_dir: pathlib.Path,
                         required: tuple[str, ...] = ("step",)) -> list[dict]:
  """metrics.jsonl's rows, each a JSON object holding every field in `required`.

  The last line, when it is not JSON, is the row a killed writer tore: dropped with a
  warning, as `read_metrics` does. Anything else malformed is an error: a row that parses
  but is not what the trainer writes was not torn by a kill.

  Raises:
    RunFileError: naming the file and line: a line before the last that is not JSON, a
      line that is JSON but not an object, or a row lacking one of `required`.
  """
  path = pathlib.Path(run_dir) / METRICS_FILE
  if not path.exists():
    return []
  numbered = [(number, line) for number, line in
              enumerate(path.read_text(errors="replace").splitlines(), 1) if line.strip()]
  rows = []
  for position, (number, line) in enumerate(numbered):
    try:
      row = json.loads(line)
    except ValueError:
      if position == len(numbered) - 1:
        logging.warning("%s line %d: not a metrics row (torn by a kill?); dropped", path,
                        number)
        continue
      raise RunFileError(f"{path} line {number}: not valid JSON (only a torn last row is "
                         "dropped)") from None
    if not isinstance(row, dict):
      raise RunFileError(f"{path} line {number}: expected a JSON object, got "
                         f"{type(row).__name__}")
    missing = [f for f in required if f not in row]
    if missing:
      raise RunFileError(f"{path} line {number}: missing field(s) {', '.join(missing)}")
    rows.append(row)
  return rows
