"""Where a run's metrics rows go: metrics.jsonl always, TensorBoard and W&B on request.

`train.trackers` (algoprog.training.config) names them as a comma list:

  jsonl        metrics.jsonl (algoprog.rundir.MetricsWriter): the record every analysis
               reads. Always written, named or not.
  tensorboard  TensorBoard event files in the run directory (tensorboardX, no TensorFlow:
               `pip install 'algoprog[tensorboard]'`), one scalar per numeric field of each
               row at its step, so `tensorboard --logdir SWEEP_OR_STUDY_DIR` shows every run
               under its run directory's name.
  wandb        a Weights & Biases run (`pip install 'algoprog[wandb]'`; the project, entity
               and mode come from WANDB_PROJECT / WANDB_ENTITY / WANDB_MODE as wandb reads
               them), named after the run directory, with the resolved config; a resumed
               run continues the same W&B run.

Every tracker gets the same rows, in step order. On resume, metrics.jsonl keeps the rows up
to the restored step and the event files are rewritten from them, so neither shows a step
twice; W&B, whose history cannot be cut, drops re-logged steps it already has. Only the
process that writes the run files (process 0) tracks anything.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import pathlib
from typing import Any, Protocol

from algoprog import rundir

# Tracker name -> the package it needs (None: nothing beyond algoprog's dependencies).
TRACKERS = {"jsonl": None, "tensorboard": "tensorboardX", "wandb": "wandb"}
_INSTALL = {"tensorboard": "pip install 'algoprog[tensorboard]'",
            "wandb": "pip install 'algoprog[wandb]'"}


class TrackerError(ValueError):
  """train.trackers names an unknown tracker or one whose package is not installed."""


def parse_trackers(value: str) -> tuple[str, ...]:
  """The trackers of a train.trackers comma list, "jsonl" first and always included.

  Raises:
    TrackerError: an unknown name, or a tracker whose package cannot be imported (the
      message says what to install).
  """
  names = [n.strip() for n in str(value).split(",") if n.strip()]
  for name in names:
    if name not in TRACKERS:
      raise TrackerError(f"expected a comma list of {', '.join(TRACKERS)}; got {name!r} "
                         f"in {value!r}")
    package = TRACKERS[name]
    if package and importlib.util.find_spec(package) is None:
      raise TrackerError(f"{name!r} needs the {package} package, which is not installed "
                         f"({_INSTALL[name]})")
  return tuple(dict.fromkeys(["jsonl", *names]))


class Tracker(Protocol):
  """Receives a run's metrics rows (dicts with an int "step" and numbers) in step order."""

  def write(self, row: dict[str, Any]) -> None:
    ...

  def close(self) -> None:
    ...


def scalars(row: dict[str, Any]) -> dict[str, float]:
  """The row's numeric fields other than the step: what is plotted against the step."""
  return {k: float(v) for k, v in row.items()
          if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)}


class TensorBoardTracker:
  """Event files in the run directory mirroring metrics.jsonl (tensorboardX)."""

  def __init__(self, run_dir: pathlib.Path, kept_rows: list[dict]):
    """Starts the run's event files over and writes `kept_rows` (metrics.jsonl's rows
    after a resume cut it back), so steps past the restored one never show twice."""
    from tensorboardX import SummaryWriter
    for old in rundir.tensorboard_event_files(run_dir):
      old.unlink()
    # One file per writer in the run directory itself: TensorBoard names each run by the
    # folder holding its events, i.e. by the run directory relative to --logdir.
    self._writer = SummaryWriter(logdir=str(run_dir), flush_secs=30)
    for row in kept_rows:
      self.write(row)

  def write(self, row: dict[str, Any]) -> None:
    for tag, value in scalars(row).items():
      self._writer.add_scalar(tag, value, global_step=int(row["step"]))
    self._writer.flush()  # A row per evaluation: rare enough to flush each time.

  def close(self) -> None:
    self._writer.close()


def wandb_run_id(run_dir: pathlib.Path) -> str:
  """A stable W&B run id of a run directory (its name and absolute path), so a resumed
  run logs into the run it started."""
  path = str(pathlib.Path(run_dir).absolute())
  return f"{pathlib.Path(run_dir).name[:40]}-{hashlib.sha256(path.encode()).hexdigest()[:12]}"


class WandbTracker:
  """A Weights & Biases run of the run directory (imported only when asked for)."""

  def __init__(self, run_dir: pathlib.Path, config: dict):
    wandb = importlib.import_module("wandb")
    self._run = wandb.init(id=wandb_run_id(run_dir), name=pathlib.Path(run_dir).name,
                           group=config.get("label") or None, config=config,
                           dir=str(run_dir), resume="allow")

  def write(self, row: dict[str, Any]) -> None:
    self._run.log(scalars(row), step=int(row["step"]))

  def close(self) -> None:
    self._run.finish()


class Trackers:
  """All of a run's trackers behind one write/close; metrics.jsonl first."""

  def __init__(self, run_dir: pathlib.Path, resume_step: int, enabled: bool = True,
               names: str | tuple[str, ...] = "jsonl", config: dict | None = None):
    """Opens the trackers `names` (a train.trackers value) for a run resumed at
    `resume_step` (0: a new run); enabled=False (every process but 0) opens none but the
    inert MetricsWriter.

    Raises:
      TrackerError: see parse_trackers.
    """
    names = parse_trackers(",".join(names) if isinstance(names, tuple) else names)
    self.metrics = rundir.MetricsWriter(run_dir, resume_step=resume_step, enabled=enabled)
    self._others: list[Tracker] = []
    if not enabled:
      return
    try:
      if "tensorboard" in names:
        self._others.append(TensorBoardTracker(run_dir, rundir.read_metrics(run_dir)))
      if "wandb" in names:
        self._others.append(WandbTracker(run_dir, config or {}))
    except BaseException:
      self.close()
      raise

  def write(self, row: dict[str, Any]) -> None:
    self.metrics.write(row)  # The record first: a tracker's failure must not lose it.
    for tracker in self._others:
      tracker.write(row)

  def close(self) -> None:
    self.metrics.close()
    for tracker in self._others:
      tracker.close()
