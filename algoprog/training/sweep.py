"""Sweeps: many training runs from one config, run resumably by local worker processes.

A sweep config (see configs/sweep_*.py and configs/reproduce_*.py) lists groups; a group is
one preset config file trained at several widths and seeds, with either given learning rates
or a learning-rate sweep. Planning is pure: `plan_runs` turns the sweep config (and the LR
choices made so far) into `RunSpec`s with stable ids. Execution is at the edge: every run
is one `python -m launch.train` process in the run's own directory, so a crash or OOM is
confined to that run, a rerun after a kill resumes each unfinished run from its checkpoint,
and completed runs are skipped.

Sweep directory:
  manifest.json         every planned run: id, stage, label, config file, overrides, command
  runs/<run_id>/        one training run each (algoprog.rundir describes its files)
  runs/<run_id>/launcher.log  the run's console output
  lr_choices.json       per (label, width): the sweep curve (lr -> final validation loss),
                        the learning rate chosen for the full runs, the sweep's centre, the
                        runner-up and whether its full runs were trained, and the group's
                        LR law and full-run LRs (`GroupLrPlan.record`; a record: planning
                        reads the runs themselves, through the manifest)
  failures.json         every failed run with its reason (never silently dropped)
  .sweep.lock           fcntl-locked by the sweep while it runs; names its pid and host

Identity: a run already in the directory stands for the planned one only if its recorded
config.json is the planned run's fully resolved config (its preset file loaded now, plus
its overrides) and its data fingerprint matches the planned data's (`stale_runs`);
otherwise the sweep stops with StaleRunError naming the runs and the fields.

Interruptions: SIGINT (Ctrl-C), SIGTERM and SIGHUP stop the sweep: no new run starts, the
running trainers (each in its own session, so a terminal's Ctrl-C reaches only the sweep)
get SIGTERM, checkpoint and record "interrupted", and `run_sweep` raises SweepInterrupted
once they have exited; the same command resumes them. A second signal kills the trainers
without waiting for their checkpoints (they resume from their last one).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import json
import math
import os
import pathlib
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Iterable

import ml_collections

from algoprog import lr_law, rundir
from algoprog.training import config as config_lib
from algoprog.training.console import format_duration  # Progress lines; re-exported here.

MANIFEST_FILE = "manifest.json"
LR_CHOICES_FILE = "lr_choices.json"
SEED_NOISE_FILE = "lr_seed_noise.json"
FAILURES_FILE = "failures.json"
LOCK_FILE = ".sweep.lock"


class SweepError(ValueError):
  """A sweep config field or sweep directory is unusable; the message names it."""


class StaleRunError(SweepError):
  """A finished run in the sweep directory was trained with a config the sweep no longer
  plans; the message names the run directory and the fields."""


class SweepBusy(SweepError):
  """Another sweep holds the sweep directory; the message names its pid and host."""


class LRSweepIncomplete(SweepError):
  """LR-sweep grid points failed without a result (killed, crashed), so their group's
  learning rate cannot be chosen; the message names the runs (a rerun retries them)."""


class SweepInterrupted(SweepError):
  """A signal stopped the sweep after its running trainers checkpointed and recorded
  "interrupted"; rerunning the same command resumes them.

  Attributes:
    signal_number: the signal (signal.SIGINT, SIGTERM or SIGHUP).
    exit_code: 128 + signal_number, what a launcher exits with (130 for Ctrl-C).
  """

  def __init__(self, message: str, signal_number: int):
    super().__init__(message)
    self.signal_number = signal_number
    self.exit_code = 128 + signal_number


@dataclasses.dataclass(frozen=True)
class RunSpec:
  """One training run of a sweep.

  Attributes:
    run_id: directory name under runs/, stable across invocations.
    stage: "lr_sweep" (reduced budget, picks the LR) or "full".
    label: group label recorded in run.json (the analyses group runs by it).
    config_file: the preset config file (path relative to the repository root, or absolute).
    overrides: dotted config field -> value, applied as --config.FIELD=VALUE.
    lr_role: full runs of a swept group: "chosen" (the sweep's best LR) or "runner_up"
      (the second best, trained when the choice is ambiguous: `GroupLrPlan`); "" otherwise.
      Recorded in the manifest; run.json has the stage "full" and the LR of both.
  """
  run_id: str
  stage: str
  label: str
  config_file: str
  overrides: dict
  lr_role: str = ""

  def command(self, sweep_dir: pathlib.Path, python: str = sys.executable,
              distributed: bool = False) -> list[str]:
    """The launch.train command line; `distributed` adds --distributed (multi-host: every
    host runs the same command and they train the run together)."""
    args = [python, "-m", "launch.train", f"--config={self.config_file}",
            f"--workdir={sweep_dir / 'runs' / self.run_id}"]
    args += [f"--config.{k}={_flag_value(v)}" for k, v in sorted(self.overrides.items())]
    return args + (["--distributed"] if distributed else [])


def sweep_section(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The sweep config inside `config`: a reproduce config's `sweep`, else `config` itself,
  so launch.sweep takes both kinds of file."""
  if "groups" not in config and "sweep" in config:
    return config.sweep
  if "groups" not in config:
    raise SweepError("config: expected a sweep config (with groups) or a reproduce config "
                     f"(with sweep); got one with fields {sorted(config.keys())}")
  return config


def _flag_value(value: Any) -> str:
  if isinstance(value, bool):
    return str(value)
  if isinstance(value, float):
    return repr(value)
  return str(value)


def lr_grid(center: float, points: int, spacing_decades: float) -> list[float]:
  """`points` learning rates spaced `spacing_decades` apart in log10, centred on `center`."""
  offsets = [(i - (points - 1) / 2) * spacing_decades for i in range(points)]
  return [float(f"{center * 10**o:.4g}") for o in offsets]


def lr_search(grid: list[float], results: dict[float, float], spacing_decades: float,
              max_extensions: int) -> tuple[list[float], float | None]:
  """The LR grid to run and the chosen rate, given the sweep results so far.

  Starts from `grid`; while every point has a result and the best (lowest final validation
  loss; failed runs count as inf) sits at an end of the grid, adds one point
  `spacing_decades` beyond that end, at most `max_extensions` times: a choice at the edge
  means the optimum may lie outside. Pure in `results`, so a rerun or an export plans the
  same runs.

  Args:
    grid: the base learning rates.
    results: learning rate -> final validation loss (inf for a failed run) of the finished
      sweep runs; unfinished ones are absent.
  Returns:
    (every learning rate to run, ascending; the chosen one, or None while some point has no
    result or every point failed).
  """
  base = sorted(grid)
  above = below = 0  # Points added past each end; new points step from the base's ends.
  while True:
    grid = ([float(f"{base[0] * 10 ** (-k * spacing_decades):.4g}")
             for k in range(below, 0, -1)] + base +
            [float(f"{base[-1] * 10 ** (k * spacing_decades):.4g}")
             for k in range(1, above + 1)])
    if any(lr not in results for lr in grid):
      return grid, None
    best = min(grid, key=lambda lr: results[lr])
    if not math.isfinite(results[best]):
      return grid, None
    at_top, at_bottom = best == grid[-1], best == grid[0]
    if len(grid) == 1 or not (at_top or at_bottom) or above + below >= max_extensions:
      return grid, best
    above, below = above + at_top, below + (at_bottom and not at_top)


def interpolate_lr(anchors: dict, width: int) -> float:
  """Learning rate at `width` from {width: lr} anchors, log-log linear (clamped slope at the
  ends): the study tuned 32/64/128/256 and its optimum follows a power law in width."""
  points = sorted((int(w), float(lr)) for w, lr in anchors.items())
  if len(points) == 1:
    return points[0][1]
  for (w0, lr0), (w1, lr1) in zip(points, points[1:]):
    if width <= w1 or (w1, lr1) == points[-1]:
      slope = math.log(lr1 / lr0) / math.log(w1 / w0)
      return float(f"{lr0 * (width / w0) ** slope:.4g}")
  raise AssertionError("unreachable")


def _run_id(label: str, width: int, seed: int, stage: str, lr: float | None,
            flops: float = 0.0, lr_role: str = "") -> str:
  run_id = f"{label}_w{width}" + (f"_f{flops:.2g}".replace("+", "") if flops else "")
  if stage == "lr_sweep":
    return f"{run_id}_s{seed}_lrsweep{lr:.3g}"
  if lr_role == "runner_up":  # Its LR in the id: a moved runner-up is a new run, not stale.
    return f"{run_id}_s{seed}_runnerup{lr:.3g}"
  return f"{run_id}_s{seed}"


def flatten_overrides(overrides: Any, prefix: str = "") -> dict:
  """Nested {"data": {"tokenizer": "byte"}} -> {"data.tokenizer": "byte"}."""
  flat = {}
  for key, value in (overrides or {}).items():
    if isinstance(value, (dict, ml_collections.ConfigDict)):
      flat.update(flatten_overrides(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


_GROUP_FIELDS = ("config", "widths", "seeds", "tokens_per_param", "lr_widths", "lr_values",
                 "lr_sweep")


def _check_group(label: str, group: ml_collections.ConfigDict) -> None:
  for field in _GROUP_FIELDS:
    if field not in group:
      raise SweepError(f"groups.{label}.{field}: missing (expected in every group)")
  if not group.widths:
    raise SweepError(f"groups.{label}.widths: expected at least one width")
  if not group.seeds:
    raise SweepError(f"groups.{label}.seeds: expected at least one seed")
  if len(group.lr_widths) != len(group.lr_values):
    raise SweepError(f"groups.{label}.lr_values: expected one learning rate per lr_widths "
                     f"entry ({len(group.lr_widths)}); got {len(group.lr_values)}")
  if not group.lr_values and not group.lr_sweep:
    raise SweepError(f"groups.{label}.lr_values: expected learning rates (with lr_widths) "
                     "or lr_sweep=True")
  budgets = tuple(group.get("flops_budgets") or ())
  if any(not b > 0 for b in budgets):
    raise SweepError(f"groups.{label}.flops_budgets: expected positive FLOP budgets; got "
                     f"{budgets}")
  if not budgets and group.tokens_per_param <= 0:
    raise SweepError(f"groups.{label}.tokens_per_param: expected > 0 (or flops_budgets); "
                     f"got {group.tokens_per_param}")
  extra = set(group.get("lr_sweep_widths") or ()) - set(group.widths)
  if extra:
    raise SweepError(f"groups.{label}.lr_sweep_widths: {sorted(extra)} not among the "
                     f"group's widths {tuple(group.widths)}")
  swept = set(group.get("lr_sweep_widths") or ()) or set(group.widths)
  extra = set(group.get("lr_law_widths") or ()) - swept
  if extra:
    raise SweepError(f"groups.{label}.lr_law_widths: {sorted(extra)} not among the "
                     f"group's swept widths {tuple(sorted(swept))}")


def _budget(group: ml_collections.ConfigDict, flops: float, fraction: float = 1.0) -> dict:
  """The training-budget overrides of one run: a FLOP budget or tokens per parameter."""
  if flops:
    return {"train.flops": float(flops) * fraction}
  return {"train.tokens_per_param": float(group.tokens_per_param) * fraction}


@dataclasses.dataclass(frozen=True)
class SweepLaw:
  """lr* = c * width**b, as the sweep uses it: fitted by least squares in log-log space
  (algoprog.lr_law.fit_log_log) to the chosen LRs of two or more swept widths ("choices"),
  or, with one swept width, the slope of the anchors' law through its choice ("anchor
  slope"). c: learning rate at width 1; b: dimensionless. The analysis refits it with
  intervals (algoprog.analysis.lr.lr_laws)."""
  c: float
  b: float
  widths: tuple[int, ...]
  source: str

  def lr(self, width: int) -> float:
    """The law's learning rate at `width`, rounded to 4 significant digits (run ids and
    recorded configs stay readable)."""
    return float(f"{self.c * width ** self.b:.4g}")

  def to_json(self) -> dict:
    return {"c": self.c, "b": self.b, "widths": list(self.widths), "source": self.source}


def sweep_law(chosen: dict, anchors: dict) -> SweepLaw | None:
  """The LR law from {width: chosen lr} (`SweepLaw`); None without a choice, or with one
  choice and fewer than 2 anchors (then that choice holds for every width)."""
  widths = tuple(sorted(int(w) for w in chosen))
  if len(widths) >= 2:
    fit = lr_law.fit_log_log(widths, [chosen[w] for w in widths])
    return SweepLaw(math.exp(fit.ln_c), fit.b, widths, "choices")
  if len(widths) == 1 and len(anchors) >= 2:
    b = lr_law.fit_log_log(list(anchors), list(anchors.values())).b
    return SweepLaw(chosen[widths[0]] / widths[0] ** b, b, widths, "anchor slope")
  return None


@dataclasses.dataclass(frozen=True)
class GroupLrPlan:
  """How one group with `lr_sweep=True` gets its learning rates, given the results so far.

  centres: swept width -> (sweep centre, where it came from: "anchors", "lr_center",
    "lr_sweep.center" or "lr law"); a width waiting for the law widths' choices is absent.
  grids: swept width -> the grid to run (`lr_search`). chosen: swept width -> chosen LR.
  runner_up: swept width -> (runner-up LR, its loss margin over the chosen one in nats,
    P(runner-up truly better) under `lr_sweep.seed_noise`: algoprog.lr_law).
  train_runner_up: widths whose runner-up's full runs are planned (group field
    `train_runner_up` and P > lr_law.AMBIGUOUS_PROBABILITY).
  law: from the chosen LRs (`sweep_law`), None until one. full: width -> full-run LR, once
    every swept width has a choice (else None): the choice at swept widths, the law at the
    others.
  """
  centres: dict
  grids: dict
  chosen: dict
  runner_up: dict
  train_runner_up: tuple
  law: SweepLaw | None
  full: dict | None

  def record(self, width: int) -> dict:
    """What lr_choices.json adds to the entry of swept `width` (JSON-ready)."""
    centre = self.centres.get(width)
    runner = self.runner_up.get(width)
    return {"center": centre[0] if centre else None,
            "center_from": centre[1] if centre else None,
            "runner_up_learning_rate": runner[0] if runner else None,
            "p_runner_up": runner[2] if runner else None,
            "runner_up_trained": width in self.train_runner_up,
            "lr_law": self.law.to_json() if self.law else None,
            "full_learning_rates": ({str(w): lr for w, lr in self.full.items()}
                                    if self.full else None)}


def group_lr_plan(label: str, group: ml_collections.ConfigDict,
                  lr_sweep: ml_collections.ConfigDict, lr_results: dict) -> GroupLrPlan:
  """The LR sweeps and full-run LRs of one group with `lr_sweep=True` (pure in
  `lr_results`, {"label/width": {lr: final validation loss}}).

  Sweep centres: the anchors' interpolation, else `lr_center`, else `lr_sweep.center`;
  with `lr_law_widths`, only those widths are swept first and the group's other swept
  widths are centred on the law of their choices (`sweep_law`) once they all have one.
  Unswept widths train at the law of all the swept widths' choices (least squares in
  log-log; with a single swept width, the anchors' slope through its choice).
  Runner-up: the second-best finite grid point; its full runs are trained when the
  group's `train_runner_up` is set and the choice is ambiguous,
  margin < 2 x `lr_sweep.seed_noise` (nats), i.e. P = Phi(-margin / (sqrt 2 seed_noise))
  > lr_law.AMBIGUOUS_PROBABILITY, so the analysis can let LR ambiguity widen the intervals
  (plan_from_directory passes the larger of the configured and the measured seed noise). `train_runner_up` defaults to off (plain sweep configs); the study presets
  turn it on (algoprog.study).
  """
  anchors = dict(zip(group.lr_widths, group.lr_values))
  max_extensions = int(lr_sweep.get("max_extensions", 0))
  noise = float(lr_sweep.get("seed_noise", lr_law.DEFAULT_SEED_NOISE))
  swept = tuple(group.get("lr_sweep_widths") or ()) or tuple(group.widths)
  law_widths = tuple(group.get("lr_law_widths") or ())
  centres, grids, chosen, runner_up, train = {}, {}, {}, {}, []

  def sweep_width(width: int, centre: float, source: str) -> None:
    centres[width] = (centre, source)
    results = lr_results.get(f"{label}/{width}", {})
    grid, choice = lr_search(lr_grid(centre, lr_sweep.points, lr_sweep.spacing_decades),
                             results, lr_sweep.spacing_decades, max_extensions)
    grids[width] = grid
    if choice is None:
      return
    chosen[width] = choice
    finite = sorted((results[lr], lr) for lr in grid if math.isfinite(results[lr]))
    if len(finite) > 1:
      margin = finite[1][0] - finite[0][0]
      p = lr_law.runner_up_probability(margin, noise)
      runner_up[width] = (finite[1][1], margin, p)
      if group.get("train_runner_up", False) and p > lr_law.AMBIGUOUS_PROBABILITY:
        train.append(width)

  for width in swept:
    if width in law_widths or not law_widths:
      if anchors:
        sweep_width(width, interpolate_lr(anchors, width), "anchors")
      elif group.get("lr_center"):
        sweep_width(width, float(group.lr_center), "lr_center")
      else:
        sweep_width(width, float(lr_sweep.center), "lr_sweep.center")
  if law_widths and all(w in chosen for w in law_widths):
    first = sweep_law({w: chosen[w] for w in law_widths}, anchors)
    for width in swept:
      if width not in law_widths:
        sweep_width(width, first.lr(width) if first else chosen[law_widths[0]], "lr law")
  law = sweep_law(chosen, anchors)
  full = None
  if all(w in chosen for w in swept):
    full = {w: chosen[w] if w in chosen else (law.lr(w) if law else chosen[swept[0]])
            for w in group.widths}
  return GroupLrPlan(centres, grids, chosen, runner_up, tuple(train), law, full)


def plan_runs(sweep: ml_collections.ConfigDict, lr_results: dict | None = None
              ) -> list[RunSpec]:
  """Every run the sweep needs, in execution order (LR sweeps first within each group).

  A group trains every width (x every FLOP budget in `flops_budgets`, if any, else at
  `tokens_per_param`) x seed. Its learning rates come from `lr_values` at `lr_widths`
  (log-log interpolated in width) or, with `lr_sweep=True`, from LR sweeps at the widths in
  `lr_sweep_widths` (default: every width) and the LR law at the others (`group_lr_plan`).
  LR sweeps run the first seed (and the largest FLOP budget) at a reduced budget, on a log
  grid (`group_lr_plan` says where it is centred), extended past an edge that wins
  (`lr_search`, at most `sweep.lr_sweep.max_extensions` points). With `train_runner_up`, an
  ambiguous choice also gets full runs at the runner-up LR (lr_role "runner_up").

  Args:
    sweep: the sweep config (configs/reproduce_*.py document its fields).
    lr_results: {"label/width": {lr: final validation loss}} of the finished LR-sweep runs
      (`sweep_results`); full runs of a group with `lr_sweep=True` are planned only once all
      its swept widths have a choice.
  """
  lr_results = lr_results or {}
  common = flatten_overrides(sweep.overrides)
  runs = []
  for label, group in sweep.groups.items():
    _check_group(label, group)
    overrides = {**common, **flatten_overrides(group.get("overrides")), "label": label}
    anchors = dict(zip(group.lr_widths, group.lr_values))
    budgets = tuple(group.get("flops_budgets") or ()) or (0.0,)
    runner_up: dict = {}
    if group.lr_sweep:
      plan = group_lr_plan(label, group, sweep.lr_sweep, lr_results)
      for width, grid in plan.grids.items():
        # The study's reduced budget: max(16M tokens, 5% of the full budget).
        reduced = {**overrides, "model.width": int(width), "seed": int(group.seeds[0]),
                   **_budget(group, max(budgets), sweep.lr_sweep.budget_fraction),
                   "train.min_tokens": int(sweep.lr_sweep.min_tokens)}
        for lr in grid:
          runs.append(RunSpec(_run_id(label, width, group.seeds[0], "lr_sweep", lr,
                                      max(budgets) if budgets != (0.0,) else 0.0),
                              "lr_sweep", label, group.config,
                              {**reduced, "optim.learning_rate": lr, "stage": "lr_sweep"}))
      if plan.full is None:
        continue
      lrs = plan.full
      runner_up = {w: plan.runner_up[w][0] for w in plan.train_runner_up}
    else:
      lrs = {w: interpolate_lr(anchors, w) for w in group.widths}
    role = "chosen" if group.lr_sweep else ""
    for width in group.widths:
      for budget in budgets:
        for seed in group.seeds:
          for lr_role, lr in ((role, lrs[width]), ("runner_up", runner_up.get(width))):
            if lr is None:
              continue
            runs.append(RunSpec(
                _run_id(label, width, seed, "full", lr, budget, lr_role), "full", label,
                group.config,
                {**overrides, "model.width": int(width), "seed": int(seed),
                 "optim.learning_rate": lr, **_budget(group, budget),
                 "stage": "full"},  # recorded in run.json: launch.fit fits "full" runs
                lr_role))
  return runs


def run_directory(sweep_dir: pathlib.Path, run: RunSpec) -> pathlib.Path:
  return pathlib.Path(sweep_dir) / "runs" / run.run_id


def run_status(sweep_dir: pathlib.Path, run: RunSpec) -> dict:
  """{"status": "completed"|"failed"|"running"|"interrupted"|"pending", ...}: the run's
  run.json (algoprog.rundir.RunRecord) as a dict, or {"status": "pending"} if none."""
  record = rundir.read_record(run_directory(sweep_dir, run))
  return {"status": "pending"} if record is None else record.to_dict()


# The reasons the trainer records when training itself failed (algoprog.training.train
# raises TrainingFailed with them): a diverging or non-finite loss is a result of that
# learning rate. Any other failure (killed, out of memory, bad input, a crash) says nothing
# about the rate, so an LR choice waits for that grid point to be rerun.
_TRAINING_FAILURES = ("train loss is", "diverged:")


def lr_sweep_result(info: dict) -> float | None:
  """A grid point's final validation loss for the LR choice: its loss if completed (inf if
  not finite), inf if its training diverged, None while it has no result (pending, running,
  interrupted, or failed for a reason other than the loss)."""
  if info["status"] == "completed":
    loss = info.get("final_validation_loss")
    ok = isinstance(loss, (int, float)) and math.isfinite(loss)
    return float(loss) if ok else math.inf
  if info["status"] == "failed" and str(info.get("failure_reason") or "").startswith(
      _TRAINING_FAILURES):
    return math.inf
  return None


def failed_without_result(info: dict) -> bool:
  """A failed run whose failure is not a training outcome (`lr_sweep_result`)."""
  return info["status"] == "failed" and lr_sweep_result(info) is None


def choose_learning_rates(sweep_dir: pathlib.Path, runs: Iterable[RunSpec]) -> dict:
  """Per (label, width): the LR-sweep curve and the LR with the best final validation loss,
  whether it lies at an end of the grid, and its margin (nats) over the next best LR.

  A choice needs every grid point's result (`lr_sweep_result`: completed, or diverged);
  until then the entry has no chosen_learning_rate, and `failed_grid_runs` lists the points
  that failed without one (killed, crashed), which a rerun retries.
  """
  curves: dict[str, dict] = {}
  results: dict[str, list[float | None]] = {}
  for run in runs:
    if run.stage != "lr_sweep":
      continue
    key = f"{run.label}/{run.overrides['model.width']}"
    info = run_status(sweep_dir, run)
    curve = curves.setdefault(key, {"curve": []})
    curve["curve"].append({"learning_rate": run.overrides["optim.learning_rate"],
                           "status": info["status"],
                           "final_validation_loss": info.get("final_validation_loss")})
    results.setdefault(key, []).append(lr_sweep_result(info))
    if failed_without_result(info):
      curve.setdefault("failed_grid_runs", []).append(run.run_id)
  for key, entry in curves.items():
    if any(result is None for result in results[key]):
      continue
    done = [p for p in entry["curve"] if p["status"] == "completed"
            and p["final_validation_loss"] is not None
            and math.isfinite(p["final_validation_loss"])]
    if done:
      done.sort(key=lambda p: p["final_validation_loss"])
      best = done[0]
      entry["chosen_learning_rate"] = best["learning_rate"]
      # How decisive the choice is: a margin within seed noise means the sweep's budget was
      # too short to tell those LRs apart (then the choice need not transfer to full runs).
      entry["margin_to_next_best"] = (done[1]["final_validation_loss"]
                                      - best["final_validation_loss"]
                                      if len(done) > 1 else None)
      grid = sorted(p["learning_rate"] for p in entry["curve"])
      entry["chosen_at_grid_edge"] = best["learning_rate"] in (grid[0], grid[-1])
  return curves


def write_manifest(sweep_dir: pathlib.Path, runs: list[RunSpec]) -> None:
  rundir.write_json(sweep_dir / MANIFEST_FILE, {"runs": [
      {**dataclasses.asdict(r), "command": shlex.join(r.command(sweep_dir, "python"))}
      for r in runs]})


@dataclasses.dataclass(frozen=True)
class SlurmResources:
  """What every task of the exported Slurm array asks for (#SBATCH lines).

  Attributes:
    cpus_per_task: CPU cores per run (data loading, the host side of training).
    gpus_per_task: GPUs per run; 0 leaves the line out (CPU or TPU clusters).
    mem: host memory per run, Slurm's syntax ("32G").
    time: wall-clock limit per run, Slurm's syntax ("1-00:00:00"); a run cut off resumes
      from its checkpoint when its line runs again.
    partition: Slurm partition; "" leaves the line out (the cluster's default).
  """
  cpus_per_task: int = 8
  gpus_per_task: int = 0
  mem: str = "32G"
  time: str = "1-00:00:00"
  partition: str = ""

  def sbatch_lines(self) -> list[str]:
    if self.cpus_per_task < 1:
      raise SweepError(f"slurm cpus_per_task: expected >= 1; got {self.cpus_per_task}")
    if self.gpus_per_task < 0:
      raise SweepError(f"slurm gpus_per_task: expected >= 0; got {self.gpus_per_task}")
    lines = [f"#SBATCH --cpus-per-task={self.cpus_per_task}", f"#SBATCH --mem={self.mem}",
             f"#SBATCH --time={self.time}"]
    if self.gpus_per_task:
      lines.append(f"#SBATCH --gpus-per-task={self.gpus_per_task}")
    if self.partition:
      lines.append(f"#SBATCH --partition={self.partition}")
    return lines


def export_commands(sweep_dir: pathlib.Path, runs: list[RunSpec],
                    resources: SlurmResources = SlurmResources(), python: str | None = None,
                    distributed: bool = False) -> tuple[pathlib.Path, pathlib.Path]:
  """commands.txt (one launcher command a line) and slurm_array.sh (a SLURM array over
  those lines, asking for `resources` per task).

  Commands name the interpreter by absolute path (`python`, default this one's) and the
  sweep directory absolutely; they run from the repository root, where the script cd's.
  """
  sweep_dir = pathlib.Path(sweep_dir).resolve()
  python = python or str(pathlib.Path(sys.executable).absolute())
  root = config_lib.REPOSITORY_ROOT
  commands = sweep_dir / "commands.txt"
  commands.write_text("".join(shlex.join(r.command(sweep_dir, python, distributed)) + "\n"
                              for r in runs))
  slurm = sweep_dir / "slurm_array.sh"
  slurm.write_text("\n".join([
      "#!/bin/bash",
      f"#SBATCH --array=1-{len(runs)}",
      "#SBATCH --job-name=algoprog",
      f"#SBATCH --output={sweep_dir}/runs/slurm-%A_%a.log",
      *resources.sbatch_lines(),
      f"# Submit from anywhere: sbatch {slurm}",
      "# Each task runs one line of commands.txt; rerunning a finished run is a no-op",
      "# and an interrupted one resumes from its checkpoint.",
      f"cd {shlex.quote(str(root))}",
      f'eval "$(sed -n "${{SLURM_ARRAY_TASK_ID}}p" {shlex.quote(str(commands))})"', ""]))
  return commands, slurm


def _set_field(config: ml_collections.ConfigDict, dotted: str, value: Any) -> None:
  *parents, leaf = dotted.split(".")
  node = config
  for part in parents:
    node = node[part]
  if leaf not in node:
    raise KeyError(dotted)
  node[leaf] = value  # ConfigDict's type rules, as --config.FIELD=VALUE parsing applies them.


def planned_config(run: RunSpec, presets: dict | None = None) -> dict:
  """The fully resolved config `run` trains with, as its config.json records it before
  the trainer adds the data-dependent fields: the preset file loaded now
  (config.load_config_file), the run's overrides applied, config.resolve'd.

  Args:
    presets: a cache {config file: loaded preset}, so each file is read once per check.
  Raises:
    SweepError: the preset does not load, an override names no field, or the result does
      not resolve (the trainer would refuse it too); the message names the run.
  """
  presets = {} if presets is None else presets
  try:
    if run.config_file not in presets:
      presets[run.config_file] = config_lib.load_config_file(run.config_file,
                                                             f"groups.{run.label}.config")
    config = presets[run.config_file].copy_and_resolve_references()
    for dotted, value in sorted(run.overrides.items()):
      _set_field(config, dotted, value)
    resolved = config_lib.resolve(config)
  except KeyError as e:
    raise SweepError(f"run {run.run_id}: override {e.args[0]}: no such field in "
                     f"{run.config_file}") from None
  except (config_lib.ConfigError, TypeError, ValueError) as e:
    raise SweepError(f"run {run.run_id} ({run.config_file}): {e}") from None
  return json.loads(json.dumps(resolved.to_dict()))  # As config.json stores it.


# config.json fields only the trainer fills in (from the corpus and the parameter count):
# data.vocab_size and train.steps; train.tokens is the planned budget rounded to whole
# steps (`_recorded_tokens`). The data they depend on is compared through the fingerprint.
_TRAINER_DERIVED = ("data.vocab_size", "train.steps", "train.tokens")
# How a run is watched and saved, not what it computes: the trainer lets these change
# between a run and its resume, so a finished run stands whatever they are now.
_BOOKKEEPING = config_lib.BOOKKEEPING_FIELDS


def _recorded_tokens(planned: dict) -> int:
  """train.tokens as the trainer records it for a planned train.tokens > 0."""
  per_step = planned["data"]["batch_size"] * planned["data"]["sequence_length"]
  return max(1, round(planned["train"]["tokens"] / per_step)) * per_step


def config_differences(recorded: dict, planned: dict) -> list[str]:
  """The fields in which a run's recorded config.json differs from `planned_config`
  ("model.ffn: ran 'gelu', planned 'swiglu'"), after config.backfill of the record (fields
  newer than the run, as they resolve for it); trainer-derived and bookkeeping fields as
  described above."""
  ran = config_lib.backfill(recorded)
  diffs = []

  def walk(old: Any, new: Any, prefix: str) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
      for key in sorted(set(old) | set(new)):
        walk(old.get(key, "<missing>"), new.get(key, "<missing>"), f"{prefix}{key}.")
      return
    field = prefix[:-1]
    if field in _BOOKKEEPING or (field == "stage" and "stage" not in recorded):
      return  # (A run from before config.json recorded its stage: analysis infers it.)
    if field in _TRAINER_DERIVED:
      if field != "train.tokens" or not new or new == "<missing>":
        return
      new = _recorded_tokens(planned)
    if old != new:
      diffs.append(f"{field}: ran {old!r}, planned {new!r}")

  walk(ran, planned, "")
  return diffs


def stale_fields(sweep_dir: pathlib.Path, run: RunSpec, presets: dict | None = None
                 ) -> list[str]:
  """The fields of `run`'s resolved config that its run directory was trained with
  differently ("optim.learning_rate: ran 0.01, planned 0.03"); [] when it matches or has no
  config.json. The data fingerprint is compared by `stale_runs`."""
  recorded = rundir.read_config(run_directory(sweep_dir, run))
  if recorded is None:
    return []
  return config_differences(recorded, planned_config(run, presets))


def _planned_fingerprint(data_config: dict, fingerprints: dict) -> dict:
  """data.load_corpus(...).fingerprint of a resolved data section, once per distinct one."""
  key = json.dumps(data_config, sort_keys=True)
  if key not in fingerprints:
    from algoprog.training import data  # numpy and the tokenizers: only when needed.
    try:
      fingerprints[key] = data.load_corpus(ml_collections.ConfigDict(data_config)).fingerprint
    except data.DataError as e:
      raise SweepError(f"cannot check the data of the runs already in the sweep "
                       f"directory: {e}") from None
  return fingerprints[key]


def stale_runs(sweep_dir: pathlib.Path, runs: Iterable[RunSpec]) -> list[str]:
  """One entry per run directory of `runs` holding a run (any status) that is not the
  planned one: "DIR (field: ran X, planned Y; ...)", naming its config fields that differ
  (`stale_fields`) and the data-fingerprint fields (data.fingerprint_differences against
  the corpus the planned run would load now; text, vocabulary files and tokenizer settings
  are hashed by content). [] when every recorded run is the planned one."""
  from algoprog.training import data
  presets, fingerprints, stale = {}, {}, []
  # Relative preset, plug-in and data paths resolve as for the trainer, which runs in the
  # repository root (execute's cwd).
  sweep_dir = pathlib.Path(sweep_dir).absolute()
  with contextlib.chdir(config_lib.REPOSITORY_ROOT):
    for run in runs:
      record = rundir.read_record(run_directory(sweep_dir, run))
      recorded = rundir.read_config(run_directory(sweep_dir, run))
      if record is None and recorded is None:
        continue
      planned = planned_config(run, presets)
      fields = [] if recorded is None else config_differences(recorded, planned)
      if record is not None and record.data_fingerprint and not fields:
        fields = data.fingerprint_differences(
            record.data_fingerprint, _planned_fingerprint(planned["data"], fingerprints))
      if fields:
        shown = fields[:6] + ([f"and {len(fields) - 6} more"] if len(fields) > 6 else [])
        stale.append(f"{run_directory(sweep_dir, run)} ({'; '.join(shown)})")
  return stale


# Chips per process -> TPU_CHIPS_PER_PROCESS_BOUNDS (the shapes a TPU VM's chips split into).
_TPU_CHIP_BOUNDS = {1: "1,1,1", 2: "1,2,1", 4: "2,2,1", 8: "2,4,1"}
_TPU_FIRST_PORT = 8476  # Each worker's TPU runtime listens on its own port from here.


def worker_device_env(slot: int, devices_per_worker: int) -> dict[str, str]:
  """Environment variables that give worker `slot` (0-based) its own accelerators: devices
  slot * n .. slot * n + n - 1 of the machine, n = devices_per_worker.

  GPUs via CUDA_VISIBLE_DEVICES (ROCm: HIP_VISIBLE_DEVICES); TPU chips via
  TPU_VISIBLE_CHIPS plus the process bounds and a port of its own, which a TPU VM needs to
  run one process per chip group (n in 1, 2, 4, 8). {} for n = 0: no pinning.
  """
  if devices_per_worker == 0:
    return {}
  if devices_per_worker < 0 or slot < 0:
    raise SweepError(f"devices_per_worker: expected >= 0; got {devices_per_worker}")
  ids = ",".join(str(i) for i in range(slot * devices_per_worker,
                                       (slot + 1) * devices_per_worker))
  env = {"CUDA_VISIBLE_DEVICES": ids, "HIP_VISIBLE_DEVICES": ids, "TPU_VISIBLE_CHIPS": ids}
  if devices_per_worker in _TPU_CHIP_BOUNDS:
    env.update(TPU_CHIPS_PER_PROCESS_BOUNDS=_TPU_CHIP_BOUNDS[devices_per_worker],
               TPU_PROCESS_BOUNDS="1,1,1", TPU_PROCESS_PORT=str(_TPU_FIRST_PORT + slot))
  return env


class _Trainers:
  """The launch.train processes this process has running, and whether a signal asked the
  sweep to stop: then no new one starts and the running ones are told to checkpoint."""

  def __init__(self):
    self._lock = threading.RLock()  # Re-entrant: the signal handler runs in the main thread.
    self._running: set[subprocess.Popen] = set()
    self.stop_signal: int | None = None
    self.signals = 0  # Signals received since the stop began.

  def start(self, command: list[str], **kwargs) -> subprocess.Popen | None:
    """Popen(command) in its own session (a terminal's Ctrl-C reaches the sweep, which
    forwards SIGTERM, not the trainers directly); None once the sweep is stopping."""
    with self._lock:
      if self.stop_signal is not None:
        return None
      process = subprocess.Popen(command, start_new_session=True, **kwargs)
      self._running.add(process)
      return process

  def finished(self, process: subprocess.Popen) -> None:
    with self._lock:
      self._running.discard(process)

  def stop(self, signal_number: int) -> None:
    """First signal: SIGTERM to every running trainer (each checkpoints and exits);
    another: SIGKILL (they resume from their last checkpoint)."""
    with self._lock:
      self.stop_signal = self.stop_signal or signal_number
      self.signals += 1
      for process in list(self._running):
        with contextlib.suppress(ProcessLookupError):
          process.send_signal(signal.SIGTERM if self.signals == 1 else signal.SIGKILL)

  def reset(self) -> None:
    with self._lock:
      self.stop_signal, self.signals = None, 0


_TRAINERS = _Trainers()
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def stop_on_signals():
  """Within the block, SIGINT, SIGTERM and SIGHUP stop the sweep (`_Trainers.stop`)
  instead of killing this process. Re-entrant (run_sweep holds it across its `execute`
  calls); a no-op outside the main thread, where handlers cannot be set."""
  if (threading.current_thread() is not threading.main_thread()
      or signal.getsignal(signal.SIGINT) == _on_signal):
    yield
    return
  _TRAINERS.reset()
  previous = {s: signal.signal(s, _on_signal) for s in _STOP_SIGNALS}
  try:
    yield
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)


def _on_signal(signal_number, frame) -> None:
  del frame
  _TRAINERS.stop(signal_number)


def _check_not_stopping(sweep_dir: pathlib.Path, interrupted: list[str],
                        not_started: int) -> None:
  """Raises SweepInterrupted if a signal stopped the sweep."""
  signal_number = _TRAINERS.stop_signal
  if signal_number is None:
    return
  name = signal.Signals(signal_number).name
  runs = (f"{len(interrupted)} run(s) checkpointed and recorded interrupted "
          f"({', '.join(interrupted)})" if interrupted else "no run was training")
  raise SweepInterrupted(
      f"sweep {sweep_dir} stopped by {name}: {runs}"
      + (f", {not_started} not started" if not_started else "")
      + "; rerun the same command to resume", signal_number)


def _execute(sweep_dir: pathlib.Path, run: RunSpec, env: dict, distributed: bool = False
             ) -> dict | None:
  """Runs (or resumes) one run in its own process; returns its final run.json status, or
  None when the sweep is stopping and it was not started."""
  run_dir = run_directory(sweep_dir, run)
  run_dir.mkdir(parents=True, exist_ok=True)
  with open(run_dir / rundir.LAUNCHER_LOG, "a") as log:
    process = _TRAINERS.start(run.command(sweep_dir, distributed=distributed), stdout=log,
                              stderr=subprocess.STDOUT, env=env, cwd=env.get("ALGOPROG_ROOT"))
    if process is None:
      return None
    try:
      returncode = process.wait()
    finally:
      _TRAINERS.finished(process)
  record = rundir.read_record(run_dir)
  status = record.status if record is not None else "pending"
  if status in ("completed", "failed", "interrupted") or returncode == 0:
    return run_status(sweep_dir, run)
  if _TRAINERS.stop_signal is not None:
    # Stopped by the sweep before it recorded anything itself (SIGTERM during start-up, or
    # a second signal's SIGKILL): nothing failed, and the next sweep resumes it.
    record = record or rundir.RunRecord(run.run_id, run.label, "interrupted", stage=run.stage)
    return rundir.write_record(run_dir, record.replace(status="interrupted")).to_dict()
  tail = (run_dir / rundir.LAUNCHER_LOG).read_text(errors="replace").strip().splitlines()[-1:]
  tail = tail or [""]
  reason = f"exit code {returncode}: {tail[0][:300]}"
  if returncode < 0 or returncode == 137:
    reason = f"killed by signal (exit {returncode}; out of memory?): {tail[0][:200]}"
  record = record or rundir.RunRecord(run.run_id, run.label, "failed", stage=run.stage)
  # write_record keeps a run that another process completed meanwhile completed.
  return rundir.write_record(run_dir, record.replace(status="failed",
                                                     failure_reason=reason)).to_dict()


def eta_seconds(durations: list[float], remaining: int, workers: int) -> float | None:
  """Seconds until `remaining` runs finish, at the mean duration (s) of the runs finished so
  far, `workers` at a time; None before any run has finished."""
  if not durations:
    return None
  if remaining <= 0:
    return 0.0
  return remaining * (sum(durations) / len(durations)) / max(1, min(workers, remaining))


def execute(sweep_dir: pathlib.Path, runs: list[RunSpec], workers: int,
            retry_failed: bool = False, log=print, devices_per_worker: int = 0,
            distributed: bool = False) -> dict[str, dict]:
  """Runs every run not yet completed with `workers` processes; returns id -> run.json.

  Completed runs are skipped; failed runs are skipped unless `retry_failed` (LR-sweep runs
  that failed without a result, `failed_without_result`, are always retried: the LR choice
  needs them); pending and interrupted runs are (re)started, resuming from their
  checkpoints. Runs already in the directory must be the planned ones (`stale_runs`, else
  StaleRunError). With `devices_per_worker` > 0, each of the `workers` slots owns its own
  devices (`worker_device_env`) and a run uses the slot's. `distributed`: runs are launched
  with --distributed (multi-host: every host runs this sweep; needs workers == 1). One line
  per finished run: done/total of this call, the run's wall time and the ETA of the rest
  (eta_seconds). A signal stops it (`stop_on_signals`): SweepInterrupted once the running
  trainers have checkpointed.
  """
  if distributed and workers != 1:
    raise SweepError(f"workers: expected 1 with --distributed (every host must start the "
                     f"same run at the same time); got {workers}")
  log = log or (lambda *_: None)
  root = config_lib.REPOSITORY_ROOT
  env = dict(os.environ, ALGOPROG_ROOT=str(root))
  env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
  with stop_on_signals():
    # A run of an older plan (an LR choice that has since moved, an edited or swapped
    # preset, other data) must not stand in for the planned one.
    stale = stale_runs(sweep_dir, runs)
    if stale:
      raise StaleRunError(f"{len(stale)} run(s) in the sweep directory were trained with a "
                          f"different config or data than the sweep now plans: "
                          f"{', '.join(stale)}; move them away to rerun them, or use a new "
                          "workdir")
    results, todo = {}, []
    for run in runs:
      info = run_status(sweep_dir, run)
      retry = retry_failed or (run.stage == "lr_sweep" and failed_without_result(info))
      if info["status"] == "completed" or (info["status"] == "failed" and not retry):
        results[run.run_id] = info
      else:
        todo.append(run)
    _check_not_stopping(sweep_dir, [], len(todo))
    if todo:
      log(f"sweep {sweep_dir}: {len(todo)} runs to do, {len(results)} already finished, "
          f"{workers} worker(s)")
    _execute_all(sweep_dir, todo, workers, env, log, devices_per_worker, distributed, results)
  return results


def _execute_all(sweep_dir, todo, workers, env, log, devices_per_worker, distributed,
                 results) -> None:
  """`execute`'s pool: fills `results`; SweepInterrupted once a signal's stop is done."""
  slots = queue.SimpleQueue()  # Free device slots; each running run holds one.
  for slot in range(workers):
    slots.put(slot)

  def execute_on_a_slot(run: RunSpec) -> tuple[dict | None, float]:
    """(run.json or None if not started, wall seconds) of one run on a free device slot."""
    slot = slots.get()
    start = time.monotonic()
    try:
      slot_env = {**env, **worker_device_env(slot, devices_per_worker)}
      info = (_execute(sweep_dir, run, slot_env, distributed) if distributed
              else _execute(sweep_dir, run, slot_env))
      return info, time.monotonic() - start
    finally:
      slots.put(slot)

  interrupted, not_started = [], 0
  with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
    futures = {pool.submit(execute_on_a_slot, run): run for run in todo}
    pending, durations = set(futures), []
    while pending:
      # Polled, so that a signal's handler runs promptly in this (the main) thread.
      done, pending = concurrent.futures.wait(
          pending, timeout=0.5, return_when=concurrent.futures.FIRST_COMPLETED)
      if _TRAINERS.stop_signal is not None:
        for future in pending:
          if not future.cancelled() and future.cancel():
            not_started += 1
      for future in done:
        if future.cancelled():
          continue
        run = futures[future]
        info, seconds = future.result()
        if info is None:  # Not started: the sweep is stopping.
          not_started += 1
          continue
        if info["status"] == "interrupted" and _TRAINERS.stop_signal is not None:
          interrupted.append(run.run_id)
          continue
        results[run.run_id] = info
        durations.append(seconds)
        eta = eta_seconds(durations, len(todo) - len(durations), workers)
        loss = info.get("final_validation_loss")
        log(f"  [{len(durations)}/{len(todo)}] {info['status']:9s} {run.run_id}"
            + (f"  validation {loss:.4f}" if isinstance(loss, float) else "")
            + (f"  ({info.get('failure_reason')})" if info["status"] == "failed" else "")
            + f"  took {format_duration(seconds)}, ETA {format_duration(eta)}")
  _check_not_stopping(sweep_dir, sorted(interrupted), not_started)


def record_failures(sweep_dir: pathlib.Path, results: dict[str, dict]) -> list[dict]:
  failures = [{"run_id": run_id, "label": info.get("label"),
               "reason": info.get("failure_reason")}
              for run_id, info in sorted(results.items()) if info["status"] == "failed"]
  rundir.write_json(sweep_dir / FAILURES_FILE, {"failures": failures})
  return failures


def read_manifest(sweep_dir: pathlib.Path) -> list[dict]:
  """The manifest's entries (one dict per planned run, RunSpec's fields); [] when there is
  none yet."""
  payload = rundir.read_json(pathlib.Path(sweep_dir) / MANIFEST_FILE)
  return list((payload or {}).get("runs", []))


def read_lr_choices(sweep_dir: pathlib.Path) -> dict:
  """The LR-choice record ({"label/width": {chosen_learning_rate, curve, ...}}); {} when
  the sweep has none."""
  return rundir.read_json(pathlib.Path(sweep_dir) / LR_CHOICES_FILE) or {}


def read_failures(sweep_dir: pathlib.Path) -> list[dict]:
  """The failed runs recorded by the last sweep session (run_id, label, reason)."""
  return list((rundir.read_json(pathlib.Path(sweep_dir) / FAILURES_FILE) or {}).get(
      "failures", []))


def _manifest_runs(sweep_dir: pathlib.Path) -> list[RunSpec]:
  return [RunSpec(**{f.name: entry[f.name] for f in dataclasses.fields(RunSpec)
                     if f.name in entry})  # (Manifests before lr_role lack it.)
          for entry in read_manifest(sweep_dir)]


def sweep_results(sweep_dir: pathlib.Path) -> dict[str, dict[float, float]]:
  """{"label/width": {lr: final validation loss}} of the LR-sweep runs in the manifest that
  have a result (`lr_sweep_result`: inf for a diverged run or a non-finite loss); runs
  without one (unfinished, or failed by a kill or a crash) are left out, so the grid point
  stays open and no LR is chosen without it."""
  results: dict[str, dict[float, float]] = {}
  for run in _manifest_runs(sweep_dir):
    if run.stage != "lr_sweep":
      continue
    result = lr_sweep_result(run_status(sweep_dir, run))
    if result is None:
      continue
    key = f"{run.label}/{run.overrides['model.width']}"
    results.setdefault(key, {})[run.overrides["optim.learning_rate"]] = result
  return results


def failed_grid_runs(sweep_dir: pathlib.Path, runs: Iterable[RunSpec]) -> dict[str, str]:
  """{run_id: failure reason} of the LR-sweep runs among `runs` that failed without a
  result (`failed_without_result`): their group's LR cannot be chosen yet."""
  failed = {}
  for run in runs:
    info = run_status(sweep_dir, run)
    if run.stage == "lr_sweep" and failed_without_result(info):
      failed[run.run_id] = str(info.get("failure_reason"))
  return failed


def planning_seed_noise(sweep: ml_collections.ConfigDict, sweep_dir: pathlib.Path
                        ) -> tuple[float, str, dict | None]:
  """(nats, where it came from, the measurement to record): the seed noise the sweep
  judges its LR choices with, the larger of `lr_sweep.seed_noise` (a guess made before any
  run) and the seed noise measured from the finished runs with several seeds
  (lr_law.measured_seed_noise: what the analysis will judge them with). The measurement
  only grows: the largest one so far is kept in SEED_NOISE_FILE, so that runs finishing
  later never drop runner-up runs already planned."""
  configured = float(sweep.lr_sweep.get("seed_noise", lr_law.DEFAULT_SEED_NOISE))
  measurements = []
  recorded = rundir.read_json(pathlib.Path(sweep_dir) / SEED_NOISE_FILE)
  if recorded and isinstance(recorded.get("measured_seed_noise"), (int, float)):
    measurements.append((float(recorded["measured_seed_noise"]), str(recorded["source"])))
  records = [rundir.read_record(d) for d in rundir.run_directories(
      pathlib.Path(sweep_dir) / "runs")]
  measured = lr_law.measured_seed_noise(r.to_dict() for r in records if r)
  if measured is not None:
    measurements.append((measured[0], f"measured: median seed standard deviation of "
                                      f"{measured[1]} configuration(s) run with several "
                                      "seeds"))
  if not measurements:
    return configured, "sweep.lr_sweep.seed_noise", None
  value, source = max(measurements, key=lambda m: m[0])
  record = {"measured_seed_noise": value, "source": source}
  if value > configured:
    return value, source, record
  return configured, "sweep.lr_sweep.seed_noise", record


def plan_from_directory(sweep: ml_collections.ConfigDict, sweep_dir: pathlib.Path
                        ) -> list[RunSpec]:
  """The runs to do given what has finished in `sweep_dir`, with LR choices judged at the
  `planning_seed_noise` (recorded in SEED_NOISE_FILE); writes the manifest and the
  LR-choice record."""
  noise, _, measurement = planning_seed_noise(sweep, sweep_dir)
  if measurement is not None:
    rundir.write_json(pathlib.Path(sweep_dir) / SEED_NOISE_FILE, measurement)
  sweep = ml_collections.ConfigDict(sweep.to_dict())
  sweep.lr_sweep.seed_noise = noise
  results = sweep_results(sweep_dir)
  runs = plan_runs(sweep, results)
  write_manifest(sweep_dir, runs)
  choices = choose_learning_rates(sweep_dir, runs)
  for label, group in sweep.groups.items():
    if group.lr_sweep:
      plan = group_lr_plan(label, group, sweep.lr_sweep, results)
      for width in plan.grids:
        choices.setdefault(f"{label}/{width}", {"curve": []}).update(plan.record(width))
  rundir.write_json(sweep_dir / LR_CHOICES_FILE, choices)
  return runs


def sweep_lock(sweep_dir: pathlib.Path) -> contextlib.AbstractContextManager:
  """Holds an exclusive lock on sweep_dir/.sweep.lock (which names the holder) for the
  block: a second sweep on the same directory gets SweepBusy instead of racing the first
  (starting its runs a second time, rewriting their records)."""
  sweep_dir = pathlib.Path(sweep_dir)
  return rundir.exclusive_lock(
      sweep_dir / LOCK_FILE,
      lambda holder: SweepBusy(f"workdir {sweep_dir} is in use by another sweep "
                               f"({holder}); wait for it to finish or use another --workdir"))


def run_sweep(sweep: ml_collections.ConfigDict, sweep_dir: pathlib.Path, workers: int,
              retry_failed: bool = False, log=print, devices_per_worker: int = 0,
              distributed: bool = False) -> dict[str, dict]:
  """LR sweeps, then the full runs with the chosen LRs; resumable at any point.

  Holds `sweep_lock` (SweepBusy if another sweep has the directory; not with `distributed`,
  where every host runs this same sweep on shared storage) and `stop_on_signals`
  (SweepInterrupted). An LR-sweep grid point that failed without a result (killed,
  crashed) stops the sweep before the full runs with LRSweepIncomplete naming those runs;
  a rerun retries them. `devices_per_worker` and `distributed` as in `execute`.
  """
  options = dict(devices_per_worker=devices_per_worker, distributed=distributed)
  sweep_dir = pathlib.Path(sweep_dir)
  sweep_dir.mkdir(parents=True, exist_ok=True)
  results: dict[str, dict] = {}
  with contextlib.ExitStack() as held:
    if not distributed:
      held.enter_context(sweep_lock(sweep_dir))
    held.enter_context(stop_on_signals())
    while True:  # LR sweeps, in rounds while a grid extends past a winning edge.
      runs = plan_from_directory(sweep, sweep_dir)
      todo = [r for r in runs if r.stage == "lr_sweep" and r.run_id not in results]
      if not todo:
        break
      results.update(execute(sweep_dir, todo, workers, retry_failed, log, **options))
    failed = failed_grid_runs(sweep_dir, runs)
    if failed:
      record_failures(sweep_dir, results)
      raise LRSweepIncomplete(
          f"{len(failed)} LR-sweep run(s) failed, so their group's learning rate cannot be "
          f"chosen: {'; '.join(f'{k} ({v})' for k, v in sorted(failed.items()))}; rerun "
          "the same command to retry them (launcher.log in each run directory says why)")
    # The full runs; then again while the seed noise measured from finished runs with
    # several seeds makes more LR choices ambiguous (their runner-up LRs' full runs join).
    for _ in range(MAX_FULL_ROUNDS):
      todo = [r for r in runs if r.stage == "full" and r.run_id not in results]
      if not todo:
        break
      results.update(execute(sweep_dir, todo, workers, retry_failed, log, **options))
      runs = plan_from_directory(sweep, sweep_dir)
    record_failures(sweep_dir, results)
  return results


# Rounds of full runs at most: the planned ones, then runner-ups the measured seed noise
# adds (the noise only grows, so this ends; the cap keeps a pathological case finite).
MAX_FULL_ROUNDS = 3
