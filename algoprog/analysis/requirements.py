"""What it would take to determine the numbers a scaling analysis leaves undetermined.

For every exponent difference (group vs the reference) and fitted CEG whose interval
contains the null (0, or 1x), or which the diagnostics leave not determined for a reason the
E profile does not bound, this asks the planner (algoprog.analysis.planner) for the
cheapest design that determines it, and returns its sentence ("to determine X you need
..."). The assumptions are the laws and noise measured from the table itself
(`planner.assumptions_from_table`); the designs are `options.planner_designs` larger
versions of the study (4 widths from its smallest width up to 2x, 4x, 8x its largest, 2
seeds, 20 tokens/param), each simulated `options.planner_simulations` times with a small
bootstrap. The simulation is timed on one study first: when the whole plan would take more
than `options.planner_max_seconds`, the sentence states the assumptions instead of
simulating and says so.

It also holds which diagnostic reasons the E profile bounds (`bounded_by_profile`,
`remaining_reasons`; algoprog.analysis.scaling and report use them).
"""

from __future__ import annotations

import math
import time
from typing import Mapping, Sequence

from algoprog.analysis import diagnostics
from algoprog.analysis import fit as fit_lib
from algoprog.analysis import planner
from algoprog.analysis.runs import RunTable

PLANNER_BOOTSTRAP = 20  # refits per simulated study: enough for a power estimate, cheap
WIDTH_FACTORS = (2, 4, 8)  # the planned designs' largest width, x the study's largest
DEFAULT_WIDTHS = (32, 64)  # when the runs record no width (a CSV table)


def bounded_by_profile(reason: str) -> bool:
  """Whether a diagnostic reason is one the E profile bounds (E at a bound)."""
  return reason.startswith("E at a bound")


def remaining_reasons(diags: Mapping[str, diagnostics.GroupDiagnostics],
                      groups: Sequence[str]) -> str:
  """`diagnostics.not_determined` without the reasons the E profile bounds."""
  kept = {g: diagnostics.GroupDiagnostics(g, tuple(r for r in d.reasons
                                                   if not bounded_by_profile(r)), d.skipped)
          for g, d in diags.items()}
  return diagnostics.not_determined(kept, groups)


def _resolved_by_profile(analysis, group: str, quantity: str, at: float) -> bool:
  """Whether the E profile gives one definite verdict (not "not resolved") for the number."""
  if analysis.e_profile is None:
    return False
  for d in analysis.e_profile.derived:
    if (d.group, d.reference, d.quantity) == (group, analysis.reference, quantity) and (
        quantity == "exponent_difference" or math.isclose(d.at, at)):
      return ("for every plausible E" in d.verdict and "not resolved" not in d.verdict
              and "not distinguished" not in d.verdict)
  return False


def undetermined(analysis) -> list[planner.Hypothesis]:  # a scaling.ScalingAnalysis
  """The exponent differences and CEGs over the reference the analysis leaves open."""
  ref, diags = analysis.reference, analysis.main.diagnostics
  out = []
  for pair in analysis.main.exponent_pairs:
    if ref not in (pair.group, pair.reference):
      continue
    group = pair.group if pair.reference == ref else pair.reference
    # The profile settles a number only where E at a bound was its one reason.
    other = remaining_reasons(diags, [group, ref])
    if pair.distinguishable or (not other and _resolved_by_profile(
        analysis, group, "exponent_difference", math.nan)):
      continue
    out.append(planner.Hypothesis("exponent_difference", ref, group))
  for row in analysis.ceg:
    if row.quantity != "ceg_at_compute":
      continue
    contains_one = not (row.lower > 1 or row.upper < 1)
    other = remaining_reasons(diags, [row.group, ref])
    if (row.not_determined or contains_one) and (other or not _resolved_by_profile(
        analysis, row.group, "ceg_at_compute", row.at)):
      out.append(planner.Hypothesis("ceg", ref, row.group, row.at))
  return out


def _designs(table: RunTable, count: int) -> list[planner.Design]:
  widths = sorted({int(i["width"]) for i in table.run_info.values()
                   if isinstance(i.get("width"), (int, float))}) or list(DEFAULT_WIDTHS)
  low = max(planner.HEAD_DIM, widths[0] // planner.HEAD_DIM * planner.HEAD_DIM)
  grid = planner.design_grid([4], low, [widths[-1] * f for f in WIDTH_FACTORS], [2], [20])
  return grid[:count]


def requirement_sentences(table: RunTable, analysis) -> tuple[list[str], list[str]]:
  """(one "to determine X you need ..." sentence per undetermined number, notes)."""
  hypotheses = undetermined(analysis)
  if not hypotheses:
    return [], []
  options = analysis.options
  irreducible = (analysis.main.fit.options.irreducible
                 if analysis.main.fit.options.irreducible in ("shared", "fit") else "shared")
  try:
    assumptions = planner.assumptions_from_table(
        table, kinds=planner.kinds_from_runs(table), groups=list(analysis.groups),
        irreducible=irreducible)
  except fit_lib.FitError as e:
    return [], [f"planner: no assumptions from the table ({e})"]
  settings = planner.SimulationSettings(bootstrap=PLANNER_BOOTSTRAP, level=options.level,
                                        irreducible=irreducible)
  designs = _designs(table, options.planner_designs)
  # Time one simulated study of the largest design: the plan's cost is about that times
  # designs x simulations x hypotheses (smaller designs fit faster, so this is an upper end).
  start = time.perf_counter()
  planner.evaluate_design(assumptions, hypotheses[0], designs[-1], simulations=1,
                          settings=settings, seed=options.seed)
  estimate = ((time.perf_counter() - start) * len(designs) * options.planner_simulations
              * len(hypotheses))
  stated = ("assumed laws " + "; ".join(
      f"{g.name}: L = {g.law.E:.3g} + {g.law.a:.3g} C^{g.law.alpha:.4f}"
      for g in assumptions.groups) + f", seed noise {assumptions.noise.seed:.3g} nats, "
      f"point noise {assumptions.noise.point:.3g} nats ({assumptions.source}; "
      f"{assumptions.noise.source})")
  if estimate > options.planner_max_seconds:
    # The assumptions are stated once, on the first sentence.
    return [f"to determine {h.describe()}: not simulated here (about {estimate:.0f} s > "
            f"{options.planner_max_seconds:g} s); run `launch.plan` with the "
            + (stated if i == 0 else "assumed laws and noise above")
            for i, h in enumerate(hypotheses)], []
  sentences = []
  for h in hypotheses:
    results = planner.plan(assumptions, h, designs, simulations=options.planner_simulations,
                           settings=settings, seed=options.seed)
    sentences.append(planner.requirement_sentence(h.describe(), results, level=options.level)
                     + f" ({options.planner_simulations} simulated studies per design under "
                     f"the {stated})")
  return sentences, []
