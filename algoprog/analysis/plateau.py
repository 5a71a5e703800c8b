"""Fit points on the unigram plateau: excluded (with the reason), not fatal.

A model that has learned only the token frequencies scores the unigram entropy H of the
training tokens (nats/token; diagnostics.unigram_entropy). Points at or above H - margin
measure that plateau (or the climb down to it early in training), not how loss scales with
compute. diagnostics.plateau_reasons marks a whole group "not determined" when one of its
runs ends there; here such points are instead left out of the fit and listed (for
excluded.csv), and the group is fitted on the rest.

Modes (`by=`):
  "point"  (default) every point with loss > H - margin is excluded: the early part of
           every curve and whole runs that never get below the plateau.
  "run"    whole runs whose FINAL loss is above H - margin are excluded (what the
           diagnostic flags), other runs keep all their points.

The returned `eligible` mask goes to fit.fit_frontiers(eligible=...): the frontier is
still taken over all points and then restricted, so a plateau point never becomes a fit
point, and it still hides the points it dominates (as it does in the data).

Too little left (`GroupPlateau.too_little`): a group is marked only when, after exclusion,
fewer than `MIN_RUNS` runs contribute eligible points or its eligible points span fewer than
`MIN_DECADES` decades of compute or number fewer than `MIN_POINTS` (the power-law fit's own
minimum with E fitted is 4 points on 3 distinct computes).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from algoprog.analysis import diagnostics
from algoprog.analysis.runs import RunTable

MARGIN = diagnostics.PLATEAU_TOLERANCE  # nats below the entropy that still count as plateau
MIN_RUNS = 2
MIN_POINTS = 4
MIN_DECADES = 0.5
MODES = ("point", "run")


@dataclasses.dataclass(frozen=True)
class ExcludedPoints:
  """The excluded points of one run (a row of excluded.csv)."""
  run_id: str
  group: str
  points: int
  reason: str

  def row(self) -> dict:
    return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class GroupPlateau:
  """What is left of one group: runs and points still eligible, their compute span
  (decades), and whether that is too little to fit (module docstring)."""
  group: str
  runs_left: int
  points_left: int
  decades_left: float
  too_little: bool
  reason: str  # "" unless too_little: one line saying what is missing


@dataclasses.dataclass(frozen=True)
class PlateauExclusion:
  """eligible: one bool per table point (False: on the plateau). excluded: per run.
  groups: per group. entropy, margin: nats/token."""
  eligible: np.ndarray
  excluded: tuple[ExcludedPoints, ...]
  groups: tuple[GroupPlateau, ...]
  entropy: float
  margin: float
  by: str

  def rows(self) -> list[dict]:
    """excluded.csv rows: run_id, group, points, reason."""
    return [e.row() for e in self.excluded]

  def to_json(self) -> dict:
    return {"entropy": self.entropy, "margin": self.margin, "by": self.by,
            "excluded": self.rows(),
            "groups": [dataclasses.asdict(g) for g in self.groups]}


def exclude_plateau(table: RunTable, entropy: float, *, margin: float = MARGIN,
                    by: str = "point", eligible: np.ndarray | None = None
                    ) -> PlateauExclusion:
  """Marks the points on the unigram plateau (loss > entropy - margin) ineligible.

  Args:
    table: the runs. entropy: unigram entropy of the training tokens (nats/token).
    margin: nats below the entropy still counted as plateau. by: "point" or "run".
    eligible: points already ineligible for other reasons (a compute range); kept so.
  Raises:
    ValueError: a non-finite or non-positive entropy, negative margin, unknown mode.
  """
  if not (math.isfinite(entropy) and entropy > 0):
    raise ValueError(f"entropy {entropy}: expected the unigram entropy in nats/token (> 0)")
  if not margin >= 0:
    raise ValueError(f"margin {margin}: expected >= 0 nats")
  if by not in MODES:
    raise ValueError(f"by '{by}': expected one of {', '.join(MODES)}")
  base = (np.ones(table.loss.shape, bool) if eligible is None
          else np.asarray(eligible, bool))
  threshold = entropy - margin
  on_plateau = np.zeros(table.loss.shape, bool)
  excluded = []
  for run_id in table.run_ids:
    rows = table.run_id == run_id
    group = str(table.group[rows][0])
    if by == "point":
      hit = rows & (table.loss > threshold)
      reason = (f"unigram plateau: loss above the unigram entropy {entropy:.3f} - {margin:g} "
                f"nats")
    else:
      final = float(table.loss[rows][-1])
      hit = rows if final > threshold else np.zeros_like(rows)
      reason = (f"unigram plateau: the run ends at {final:.3f}, above the unigram entropy "
                f"{entropy:.3f} - {margin:g} nats")
    count = int((hit & base).sum())
    if count:
      if by == "point" and count == int((rows & base).sum()):
        reason += " at every point"
      excluded.append(ExcludedPoints(run_id, group, count, reason))
    on_plateau |= hit
  keep = base & ~on_plateau
  groups = tuple(_group_left(table, keep, g) for g in table.groups)
  return PlateauExclusion(keep, tuple(excluded), groups, float(entropy), float(margin), by)


def _group_left(table: RunTable, keep: np.ndarray, group: str) -> GroupPlateau:
  rows = (table.group == group) & keep
  runs_left = len(set(table.run_id[rows].tolist()))
  points_left = int(rows.sum())
  c = table.compute[rows]
  decades = float(math.log10(c.max() / c.min())) if c.size else 0.0
  missing = []
  if runs_left < MIN_RUNS:
    missing.append(f"{runs_left} run(s) below the plateau (need {MIN_RUNS})")
  if points_left < MIN_POINTS:
    missing.append(f"{points_left} point(s) left (need {MIN_POINTS})")
  if decades < MIN_DECADES:
    missing.append(f"{decades:.2f} decades of compute left (need {MIN_DECADES:g})")
  reason = ("too little below the unigram plateau: " + ", ".join(missing)) if missing else ""
  return GroupPlateau(group, runs_left, points_left, decades, bool(missing), reason)
