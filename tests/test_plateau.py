"""Plateau points are excluded with reasons and the group is fitted on the rest; a group is
marked only when too little remains."""

import json

import numpy as np
import pytest

from algoprog.analysis import fit, plateau, runs


def plateau_table():
  """Group "ok": 4 runs falling from ~6 to ~3.3 (the two smallest end on the plateau at
  entropy 4); group "stuck": one run that never gets below the plateau and one that does,
  briefly."""
  rows = []
  for i, final in enumerate([1e12, 1e13, 1e14, 1e15]):
    c = final * np.geomspace(0.01, 1, 6)
    loss = 2.0 + 39.8 * c**-0.1 * (1 + 0.02 * np.log(final / c)**2)
    rows += [(f"ok{i}", "ok", a, b) for a, b in zip(c, loss)]
  rows += [("stuck0", "stuck", c, l) for c, l in [(1e12, 5.0), (1e13, 4.2), (1e14, 4.05)]]
  rows += [("stuck1", "stuck", c, l) for c, l in [(1e12, 5.0), (1e13, 4.0), (1e14, 3.85)]]
  return runs.make_table(*zip(*rows))


def test_points_on_the_plateau_are_excluded_with_reasons():
  table = plateau_table()
  result = plateau.exclude_plateau(table, 4.0, margin=0.1)
  assert not result.eligible[table.loss > 3.9].any()
  assert result.eligible[table.loss <= 3.9].all()
  reasons = {e.run_id: e for e in result.excluded}
  assert reasons["stuck0"].points == 3 and reasons["stuck0"].reason.endswith("at every point")
  assert "unigram entropy 4.000 - 0.1 nats" in reasons["stuck1"].reason
  groups = {g.group: g for g in result.groups}
  assert not groups["ok"].too_little
  assert groups["stuck"].too_little and groups["stuck"].runs_left == 1
  assert "1 run(s) below the plateau (need 2)" in groups["stuck"].reason
  json.dumps(result.to_json())
  # The group is fitted on the rest, and no plateau point is a fit point.
  ok = table.group == "ok"
  fitted = fit.fit_frontiers(table.select(ok), frontier="envelope",
                             eligible=result.eligible[ok],
                             options=fit.PowerLawOptions(irreducible=2.0))
  on = fitted.points_weight[0] > 0
  assert fitted.points_loss[0][on].max() <= 3.9 and on.sum() >= 4


def test_run_mode_drops_whole_runs_that_end_on_the_plateau():
  table = plateau_table()
  result = plateau.exclude_plateau(table, 4.0, margin=0.1, by="run")
  assert not result.eligible[table.run_id == "stuck0"].any()
  assert result.eligible[table.run_id == "stuck1"].all()  # ends at 3.85 < 3.9
  assert [e.run_id for e in result.excluded] == ["ok0", "ok1", "stuck0"]
  assert "the run ends at 4.050" in result.excluded[-1].reason
  earlier = plateau.exclude_plateau(table, 4.0, eligible=table.compute > 1e12)
  assert not earlier.eligible[table.compute <= 1e12].any()
  with pytest.raises(ValueError, match="entropy nan"):
    plateau.exclude_plateau(table, float("nan"))
  with pytest.raises(ValueError, match="by 'x'"):
    plateau.exclude_plateau(table, 4.0, by="x")
