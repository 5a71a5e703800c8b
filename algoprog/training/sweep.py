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
  lr_choices.json       per (label, width): the sweep curve (lr -> final validation loss)
                        and the learning rate chosen for the full runs (a record: planning
                        reads the runs themselves, through the manifest)
  failures.json         every failed run with its reason (never silently dropped)
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import math
import os
import pathlib
import queue
import shlex
import subprocess
import sys
import time
from typing import Any, Iterable

import ml_collections

from algoprog import rundir
from algoprog.training import config as config_lib
from algoprog.training.console import format_duration  # Progress lines; re-exported here.

MANIFEST_FILE = "manifest.json"
LR_CHOICES_FILE = "lr_choices.json"
FAILURES_FILE = "failures.json"


class SweepError(ValueError):
  """A sweep config field or sweep directory is unusable; the message names it."""


class StaleRunError(SweepError):
  """A finished run in the sweep directory was trained with a config the sweep no longer
  plans; the message names the run directory and the fields."""


@dataclasses.dataclass(frozen=True)
class RunSpec:
  """One training run of a sweep.

  Attributes:
    run_id: directory name under runs/, stable across invocations.
    stage: "lr_sweep" (reduced budget, picks the LR) or "full".
    label: group label recorded in run.json (the analyses group runs by it).
    config_file: the preset config file (path relative to the repository root, or absolute).
    overrides: dotted config field -> value, applied as --config.FIELD=VALUE.
  """
  run_id: str
  stage: str
  label: str
  config_file: str
  overrides: dict

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
            flops: float = 0.0) -> str:
  run_id = f"{label}_w{width}" + (f"_f{flops:.2g}".replace("+", "") if flops else "")
  if stage == "lr_sweep":
    return f"{run_id}_s{seed}_lrsweep{lr:.3g}"
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


def _budget(group: ml_collections.ConfigDict, flops: float, fraction: float = 1.0) -> dict:
  """The training-budget overrides of one run: a FLOP budget or tokens per parameter."""
  if flops:
    return {"train.flops": float(flops) * fraction}
  return {"train.tokens_per_param": float(group.tokens_per_param) * fraction}


def plan_runs(sweep: ml_collections.ConfigDict, lr_results: dict | None = None
              ) -> list[RunSpec]:
  """Every run the sweep needs, in execution order (LR sweeps first within each group).

  A group trains every width (x every FLOP budget in `flops_budgets`, if any, else at
  `tokens_per_param`) x seed. Its learning rates come from `lr_values` at `lr_widths`
  (log-log interpolated in width) or, with `lr_sweep=True`, from LR sweeps at the widths in
  `lr_sweep_widths` (default: every width; the others interpolate between the chosen LRs).
  LR sweeps run the first seed (and the largest FLOP budget) at a reduced budget, on a log
  grid centred on the anchors' interpolation, else on `lr_center`, else on
  `sweep.lr_sweep.center`, extended past an edge that wins (`lr_search`, at most
  `sweep.lr_sweep.max_extensions` points).

  Args:
    sweep: the sweep config (configs/reproduce_*.py document its fields).
    lr_results: {"label/width": {lr: final validation loss}} of the finished LR-sweep runs
      (`sweep_results`); full runs of a group with `lr_sweep=True` are planned only once all
      its swept widths have a choice.
  """
  lr_results = lr_results or {}
  max_extensions = int(sweep.lr_sweep.get("max_extensions", 0))
  common = flatten_overrides(sweep.overrides)
  runs = []
  for label, group in sweep.groups.items():
    _check_group(label, group)
    overrides = {**common, **flatten_overrides(group.get("overrides")), "label": label}
    anchors = dict(zip(group.lr_widths, group.lr_values))
    budgets = tuple(group.get("flops_budgets") or ()) or (0.0,)
    lrs = {}
    if group.lr_sweep:
      swept = tuple(group.get("lr_sweep_widths") or ()) or tuple(group.widths)
      chosen = {}
      for width in swept:
        center = (interpolate_lr(anchors, width) if anchors else
                  group.get("lr_center") or sweep.lr_sweep.center)
        # The study's reduced budget: max(16M tokens, 5% of the full budget).
        reduced = {**overrides, "model.width": int(width), "seed": int(group.seeds[0]),
                   **_budget(group, max(budgets), sweep.lr_sweep.budget_fraction),
                   "train.min_tokens": int(sweep.lr_sweep.min_tokens)}
        grid, choice = lr_search(
            lr_grid(center, sweep.lr_sweep.points, sweep.lr_sweep.spacing_decades),
            lr_results.get(f"{label}/{width}", {}), sweep.lr_sweep.spacing_decades,
            max_extensions)
        if choice is not None:
          chosen[width] = choice
        for lr in grid:
          runs.append(RunSpec(_run_id(label, width, group.seeds[0], "lr_sweep", lr,
                                      max(budgets) if budgets != (0.0,) else 0.0),
                              "lr_sweep", label, group.config,
                              {**reduced, "optim.learning_rate": lr, "stage": "lr_sweep"}))
      if len(chosen) < len(swept):
        continue
      lrs = {w: interpolate_lr(chosen, w) for w in group.widths}
    else:
      lrs = {w: interpolate_lr(anchors, w) for w in group.widths}
    for width in group.widths:
      for budget in budgets:
        for seed in group.seeds:
          runs.append(RunSpec(
              _run_id(label, width, seed, "full", None, budget), "full", label, group.config,
              {**overrides, "model.width": int(width), "seed": int(seed),
               "optim.learning_rate": lrs[width], **_budget(group, budget),
               "stage": "full"}))  # recorded in run.json: launch.fit fits "full" runs
  return runs


def run_status(sweep_dir: pathlib.Path, run: RunSpec) -> dict:
  """{"status": "completed"|"failed"|"running"|"pending", ...} from the run's run.json."""
  info = rundir.read_json(sweep_dir / "runs" / run.run_id / rundir.RUN_FILE)
  return {"status": "pending"} if info is None else info


def choose_learning_rates(sweep_dir: pathlib.Path, runs: Iterable[RunSpec]) -> dict:
  """Per (label, width): the LR-sweep curve and the LR with the best final validation loss,
  whether it lies at an end of the grid, and its margin (nats) over the next best LR.

  Only completed sweep runs count; a group whose sweep runs all failed gets no choice (its
  full runs are not planned, and the failures are reported).
  """
  curves: dict[str, dict] = {}
  for run in runs:
    if run.stage != "lr_sweep":
      continue
    key = f"{run.label}/{run.overrides['model.width']}"
    info = run_status(sweep_dir, run)
    curve = curves.setdefault(key, {"curve": []})
    curve["curve"].append({"learning_rate": run.overrides["optim.learning_rate"],
                           "status": info["status"],
                           "final_validation_loss": info.get("final_validation_loss")})
  for key, entry in curves.items():
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


def stale_fields(sweep_dir: pathlib.Path, run: RunSpec) -> list[str]:
  """The fields of `run` that its finished run directory was trained with differently
  ("optim.learning_rate: ran 0.01, planned 0.03"); [] when it matches or has no config."""
  path = sweep_dir / "runs" / run.run_id / rundir.CONFIG_FILE
  if not path.exists():
    return []
  recorded = json.loads(path.read_text())
  ran = config_lib.backfill(recorded)  # Fields newer than the run, as they resolve for it.
  stale = []
  for dotted, planned in run.overrides.items():
    if dotted == "stage" and "stage" not in recorded:
      continue  # A run from before run.json recorded its stage; algoprog.analysis.runs infers it.
    node = ran
    for part in dotted.split("."):
      node = node.get(part) if isinstance(node, dict) else None
    if isinstance(planned, tuple):
      planned = list(planned)
    if node != planned:
      stale.append(f"{dotted}: ran {node!r}, planned {planned!r}")
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


def _execute(sweep_dir: pathlib.Path, run: RunSpec, env: dict, distributed: bool = False
             ) -> dict:
  """Runs (or resumes) one run in its own process; returns its final run.json status."""
  run_dir = sweep_dir / "runs" / run.run_id
  run_dir.mkdir(parents=True, exist_ok=True)
  with open(run_dir / "launcher.log", "a") as log:
    process = subprocess.run(run.command(sweep_dir, distributed=distributed), stdout=log,
                             stderr=subprocess.STDOUT, env=env, cwd=env.get("ALGOPROG_ROOT"))
  info = run_status(sweep_dir, run)
  if process.returncode != 0 and info.get("status") not in ("failed", "interrupted"):
    tail = (run_dir / "launcher.log").read_text().strip().splitlines()[-1:] or [""]
    reason = f"exit code {process.returncode}: {tail[0][:300]}"
    if process.returncode < 0 or process.returncode == 137:
      reason = f"killed by signal (exit {process.returncode}; out of memory?): {tail[0][:200]}"
    info = {"run_id": run.run_id, "label": run.label, **info, "status": "failed",
            "failure_reason": reason}
    rundir.write_json(run_dir / rundir.RUN_FILE, info)
  return info


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

  Completed runs are skipped; failed runs are skipped unless `retry_failed`; pending and
  interrupted runs are (re)started, resuming from their checkpoints. With
  `devices_per_worker` > 0, each of the `workers` slots owns its own devices
  (`worker_device_env`) and a run uses the slot's. `distributed`: runs are launched with
  --distributed (multi-host: every host runs this sweep; needs workers == 1). One line per
  finished run: done/total of this call, the run's wall time and the ETA of the rest
  (eta_seconds).
  """
  if distributed and workers != 1:
    raise SweepError(f"workers: expected 1 with --distributed (every host must start the "
                     f"same run at the same time); got {workers}")
  root = config_lib.REPOSITORY_ROOT
  env = dict(os.environ, ALGOPROG_ROOT=str(root))
  env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
  # A finished run of an older plan (say, an LR choice that has since moved) must not
  # stand in for the planned one.
  stale = [f"{sweep_dir / 'runs' / run.run_id} ({'; '.join(fields)})" for run in runs
           if run_status(sweep_dir, run)["status"] in ("completed", "failed")
           and (fields := stale_fields(sweep_dir, run))]
  if stale:
    raise StaleRunError(f"{len(stale)} finished run(s) were trained with a different config "
                        f"than the sweep now plans: {', '.join(stale)}; move them away to "
                        "rerun them, or use a new workdir")
  results, todo = {}, []
  for run in runs:
    info = run_status(sweep_dir, run)
    if info["status"] == "completed" or (info["status"] == "failed" and not retry_failed):
      results[run.run_id] = info
    else:
      todo.append(run)
  if todo:
    log(f"sweep {sweep_dir}: {len(todo)} runs to do, {len(results)} already finished, "
        f"{workers} worker(s)")
  slots = queue.SimpleQueue()  # Free device slots; each running run holds one.
  for slot in range(workers):
    slots.put(slot)

  def execute_on_a_slot(run: RunSpec) -> tuple[dict, float]:
    """(run.json, wall seconds) of one run on a free device slot."""
    slot = slots.get()
    start = time.monotonic()
    try:
      slot_env = {**env, **worker_device_env(slot, devices_per_worker)}
      info = (_execute(sweep_dir, run, slot_env, distributed) if distributed
              else _execute(sweep_dir, run, slot_env))
      return info, time.monotonic() - start
    finally:
      slots.put(slot)

  with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
    futures = {pool.submit(execute_on_a_slot, run): run for run in todo}
    durations = []
    for future in concurrent.futures.as_completed(futures):
      run = futures[future]
      info, seconds = future.result()
      results[run.run_id] = info
      durations.append(seconds)
      eta = eta_seconds(durations, len(todo) - len(durations), workers)
      loss = info.get("final_validation_loss")
      log(f"  [{len(durations)}/{len(todo)}] {info['status']:9s} {run.run_id}"
          + (f"  validation {loss:.4f}" if isinstance(loss, float) else "")
          + (f"  ({info.get('failure_reason')})" if info["status"] == "failed" else "")
          + f"  took {format_duration(seconds)}, ETA {format_duration(eta)}")
  return results


def record_failures(sweep_dir: pathlib.Path, results: dict[str, dict]) -> list[dict]:
  failures = [{"run_id": run_id, "label": info.get("label"),
               "reason": info.get("failure_reason")}
              for run_id, info in sorted(results.items()) if info["status"] == "failed"]
  rundir.write_json(sweep_dir / FAILURES_FILE, {"failures": failures})
  return failures


def sweep_results(sweep_dir: pathlib.Path) -> dict[str, dict[float, float]]:
  """{"label/width": {lr: final validation loss}} of the finished LR-sweep runs in the
  manifest (inf for a failed run or a non-finite loss; unfinished runs are left out)."""
  path = sweep_dir / MANIFEST_FILE
  if not path.exists():
    return {}
  results: dict[str, dict[float, float]] = {}
  for entry in json.loads(path.read_text())["runs"]:
    if entry["stage"] != "lr_sweep":
      continue
    run = RunSpec(**{f.name: entry[f.name] for f in dataclasses.fields(RunSpec)})
    info = run_status(sweep_dir, run)
    if info["status"] not in ("completed", "failed"):
      continue
    loss = info.get("final_validation_loss")
    ok = info["status"] == "completed" and isinstance(loss, (int, float)) and math.isfinite(loss)
    key = f"{run.label}/{run.overrides['model.width']}"
    results.setdefault(key, {})[run.overrides["optim.learning_rate"]] = (
        float(loss) if ok else math.inf)
  return results


def plan_from_directory(sweep: ml_collections.ConfigDict, sweep_dir: pathlib.Path
                        ) -> list[RunSpec]:
  """The runs to do given what has finished in `sweep_dir`; writes the manifest and the
  LR-choice record."""
  runs = plan_runs(sweep, sweep_results(sweep_dir))
  write_manifest(sweep_dir, runs)
  rundir.write_json(sweep_dir / LR_CHOICES_FILE, choose_learning_rates(sweep_dir, runs))
  return runs


def run_sweep(sweep: ml_collections.ConfigDict, sweep_dir: pathlib.Path, workers: int,
              retry_failed: bool = False, log=print, devices_per_worker: int = 0,
              distributed: bool = False) -> dict[str, dict]:
  """LR sweeps, then the full runs with the chosen LRs; resumable at any point.

  `devices_per_worker` and `distributed` as in `execute`.
  """
  options = dict(devices_per_worker=devices_per_worker, distributed=distributed)
  sweep_dir = pathlib.Path(sweep_dir)
  sweep_dir.mkdir(parents=True, exist_ok=True)
  results: dict[str, dict] = {}
  while True:  # LR sweeps, in rounds while a grid extends past a winning edge.
    runs = plan_from_directory(sweep, sweep_dir)
    todo = [r for r in runs if r.stage == "lr_sweep" and r.run_id not in results]
    if not todo:
      break
    results.update(execute(sweep_dir, todo, workers, retry_failed, log, **options))
  results.update(execute(sweep_dir, [r for r in runs if r.stage == "full"], workers,
                         retry_failed, log, **options))
  record_failures(sweep_dir, results)
  return results
