"""Why a fitted law, and every number derived from it, may not be determined.

A frontier fit always returns numbers; these checks say when they measure the fitting
procedure or the LR sweep rather than how loss scales with compute. Each check maps a group
to reasons (short, one line each, naming what was seen):

  E at a bound        a fitted irreducible loss E below `E_LOWER_FRACTION` of the lowest
                      fit loss (it went to 0: the data do not bend, E and a trade off) or
                      above `E_UPPER_FRACTION` of it (the law is flat at the data). With a
                      shared E the lowest fit loss of all groups counts, and every group
                      gets the reason.
  iteration cap       the fit stopped at max_iter and continuing it moved this group's law
                      (algoprog.analysis.fit names those groups).
  frontier span       the fit points span less than `MIN_DECADES` decade(s) of compute: an
                      exponent fitted over less is mostly noise.
  LR at grid edge     the group's LR sweep (lr_choices.json, algoprog.training.sweep) chose an end of
                      its grid at some width: the optimum may lie outside it.
  LR within noise     the chosen LR beat the next best by less than `NOISE_MULTIPLE` x the
                      seed noise: the sweep could not tell those LRs apart. The seed noise
                      is the median, over configurations run with several seeds (same
                      label, width, LR, budget), of the standard deviation of their final
                      validation losses; without such runs `DEFAULT_SEED_NOISE`.
  unigram plateau     a run with fit points ends less than `PLATEAU_TOLERANCE` nats below
                      the unigram entropy of the training tokens (the loss of a model that
                      predicts token frequencies and nothing else), or above it: its points
                      measure the plateau, not scaling. Skipped (and said so) when the
                      entropy is unknown.

Each reason reads "label: details" (labels: "E at a bound", "iteration cap", "frontier
span", "LR at grid edge", "LR within seed noise", "no LR chosen", "unigram plateau").
Any reason on a group marks every derived number that uses its law (CEG, exponent
difference, accounting) "not determined: <reasons>" (`not_determined`). Intervals of zero
width (one run, or a parameter pinned at a bound in every resample) are flagged by
`zero_width`: they state no uncertainty, not certainty.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Mapping, Sequence

import numpy as np

from algoprog import lr_law
from algoprog.analysis import fit as fit_lib
from algoprog.analysis.runs import RunTable

E_LOWER_FRACTION = 1e-3
E_UPPER_FRACTION = 0.99
MIN_DECADES = 1.0
NOISE_MULTIPLE = lr_law.AMBIGUOUS_NOISE_MULTIPLE
DEFAULT_SEED_NOISE = lr_law.DEFAULT_SEED_NOISE  # nats; run several seeds to measure it.
PLATEAU_TOLERANCE = 0.1  # nats


@dataclasses.dataclass(frozen=True)
class GroupDiagnostics:
  """The reasons one group's law is not determined (none: it is), and checks skipped."""
  group: str
  reasons: tuple[str, ...] = ()
  skipped: tuple[str, ...] = ()

  @property
  def determined(self) -> bool:
    return not self.reasons


@dataclasses.dataclass(frozen=True)
class SeedNoise:
  """Seed-to-seed standard deviation of final validation loss (nats) and its source."""
  value: float
  configurations: int  # configurations with several seeds it was estimated from (0: default)

  @property
  def source(self) -> str:
    if not self.configurations:
      return "the default; no configuration ran with several seeds"
    return (f"median seed std of {self.configurations} configuration(s) run with several "
            f"seeds")


def fit_reasons(result: fit_lib.PowerLawFit) -> dict[str, list[str]]:
  """E at a bound, iteration cap, frontier span < MIN_DECADES, per group of `result`."""
  reasons: dict[str, list[str]] = {g: [] for g in result.groups}
  on = result.points_weight > 0
  lowest = [float(np.min(result.points_loss[g][on[g]])) for g in range(len(result.groups))]
  shared = result.options.irreducible == "shared"
  for g, group in enumerate(result.groups):
    if result.options.fixed_E is None:
      E = float(result.law.E[g])
      scale = min(lowest) if shared else lowest[g]
      which = "shared E" if shared else "E"
      if E < E_LOWER_FRACTION * scale:
        reasons[group].append(f"E at a bound: fitted {which} at its lower bound 0 "
                              f"(E={E:.2g})")
      elif E > E_UPPER_FRACTION * scale:
        reasons[group].append(f"E at a bound: fitted {which} at the lowest fit loss "
                              f"(E={E:.4g}, lowest {scale:.4g})")
    if group in result.unconverged:
      reasons[group].append(f"iteration cap: the fit stopped at max_iter="
                            f"{result.options.max_iter} before converging")
    c = result.points_compute[g][on[g]]
    decades = math.log10(c.max() / c.min())
    if decades < MIN_DECADES:
      reasons[group].append(f"frontier span: {decades:.2f} decades of compute "
                            f"(< {MIN_DECADES:g})")
  return reasons


def seed_noise(run_infos: Iterable[Mapping]) -> SeedNoise:
  """Seed noise from run.json records (completed runs with a final validation loss):
  lr_law.measured_seed_noise, the value the sweep judged its LR choices with."""
  measured = lr_law.measured_seed_noise(run_infos)
  return SeedNoise(DEFAULT_SEED_NOISE, 0) if measured is None else SeedNoise(*measured)


def lr_reasons(lr_choices: Mapping[str, Mapping], noise: SeedNoise, *,
               runner_up_in_interval: bool = False) -> dict[str, list[str]]:
  """{label: reasons} from an LR-sweep record {"label/width": entry} (algoprog.training.sweep).

  runner_up_in_interval: the caller's intervals choose between the chosen and runner-up
  LRs' runs in each resample (the frontier fits: algoprog.analysis.scaling.lr_choice_fit);
  then "LR within seed noise" is not a reason for a sweep whose runner-up full runs were
  trained (`runner_up_trained`): the ambiguity is in the interval. Off, it stays a
  reason (the ablations lift it themselves, per row, only for a group whose runner-up
  runs they computed an alternative with: ablations.analyse_ablations).
  """
  reasons: dict[str, list[str]] = {}
  for key, entry in sorted(lr_choices.items()):
    label = key.rsplit("/", 1)[0]
    out = reasons.setdefault(label, [])
    if entry.get("chosen_learning_rate") is None:
      out.append(f"no LR chosen: at {key}")
      continue
    if entry.get("chosen_at_grid_edge"):
      out.append(f"LR at grid edge: {entry['chosen_learning_rate']:.3g} at the edge of the "
                 f"sweep grid ({key})")
    margin = entry.get("margin_to_next_best")
    if runner_up_in_interval and entry.get("runner_up_trained"):
      continue
    if margin is None:
      out.append(f"LR within seed noise: the sweep at {key} had one usable point")
    elif margin < NOISE_MULTIPLE * noise.value:
      out.append(f"LR within seed noise: the choice at {key} won by {margin:.3f} < "
                 f"{NOISE_MULTIPLE:g} x {noise.value:.3f} nats")
  return reasons


def unigram_entropy(tokens: np.ndarray) -> float:
  """Entropy (nats/token) of the token frequencies: the loss of a model that predicts the
  unigram distribution and nothing else."""
  counts = np.bincount(np.asarray(tokens).ravel())
  p = counts[counts > 0] / counts.sum()
  return float(-np.sum(p * np.log(p)))


def plateau_reasons(table: RunTable, result: fit_lib.PowerLawFit, entropy: float,
                    tolerance: float = PLATEAU_TOLERANCE) -> dict[str, list[str]]:
  """Groups with a run that contributes fit points and ends within `tolerance` of
  `entropy` (nats/token). `table` must hold the points `result` was fitted to."""
  reasons: dict[str, list[str]] = {g: [] for g in result.groups}
  for g, group in enumerate(result.groups):
    fitted = set(result.points_compute[g][result.points_weight[g] > 0].tolist())
    sub = table.only_groups([group])
    stuck = []
    for run_id in sub.run_ids:
      rows = sub.run_id == run_id
      if fitted & set(sub.compute[rows].tolist()) and sub.loss[rows][-1] > entropy - tolerance:
        stuck.append(run_id)
    if stuck:
      reasons[group].append(f"unigram plateau: {len(stuck)} run(s) with fit points end above "
                            f"the unigram entropy {entropy:.3f} - {tolerance:g} nats "
                            f"({', '.join(stuck)})")
  return reasons


def diagnose(result: fit_lib.PowerLawFit, table: RunTable | None = None, *,
             lr_choices: Mapping[str, Mapping] | None = None,
             noise: SeedNoise | None = None,
             entropy: float | None = None) -> dict[str, GroupDiagnostics]:
  """Every check that its inputs allow, per fitted group (checks skipped are listed)."""
  reasons = fit_reasons(result)
  skipped: dict[str, list[str]] = {g: [] for g in result.groups}
  if lr_choices is None:
    for g in result.groups:
      skipped[g].append("LR choice (no LR-sweep record)")
  else:
    # The frontier bootstrap chooses between runner-up and chosen runs (scaling.lr_choice_fit).
    by_label = lr_reasons(lr_choices, noise or SeedNoise(DEFAULT_SEED_NOISE, 0),
                          runner_up_in_interval=True)
    for g in result.groups:
      reasons[g] += by_label.get(g, [])
  if entropy is None or table is None or result.frontier == "isoflop":
    for g in result.groups:
      skipped[g].append("unigram plateau (unigram entropy unknown)")
  else:
    for g, r in plateau_reasons(table, result, entropy).items():
      reasons[g] += r
  return {g: GroupDiagnostics(g, tuple(reasons[g]), tuple(skipped[g])) for g in result.groups}


def not_determined(diagnostics: Mapping[str, GroupDiagnostics], groups: Sequence[str],
                   short: bool = False) -> str:
  """"" when every group in `groups` is determined, else "group: reason; ..." for those
  that are not (the text after "not determined: "). `short`: only each reason's label (the
  text before its first ":"), e.g. "retro: E at a bound, unigram plateau" (for tables)."""
  if short:
    parts = [f"{g}: " + ", ".join(dict.fromkeys(r.split(":", 1)[0]
                                                for r in diagnostics[g].reasons))
             for g in dict.fromkeys(groups) if g in diagnostics and diagnostics[g].reasons]
  else:
    parts = [f"{g}: {r}" for g in dict.fromkeys(groups) if g in diagnostics
             for r in diagnostics[g].reasons]
  return "; ".join(parts)


def zero_width(lower: float | None, upper: float | None, estimate: float | None = None
               ) -> bool:
  """An interval whose bounds coincide (relative 1e-9): every resample gave the same value,
  e.g. a single run, or a parameter pinned at a bound."""
  if lower is None or upper is None or not (math.isfinite(lower) and math.isfinite(upper)):
    return False
  scale = max(abs(lower), abs(upper), abs(estimate or 0.0), 1e-300)
  return abs(upper - lower) <= 1e-9 * scale


ZERO_WIDTH_MARK = "(zero-width CI)"


def zero_width_warnings(law_rows: Sequence[Mapping], level: float) -> list[str]:
  """One warning per law parameter (a, alpha, E rows of algoprog.analysis.fit.law_rows) whose
  bootstrap interval has zero width."""
  out = []
  for row in law_rows:
    for name in ("a", "alpha", "E"):
      if zero_width(row.get(f"{name}_lower"), row.get(f"{name}_upper"), row.get(name)):
        out.append(f"group {row['group']}: the {level:.0%} interval of {name} has zero width "
                   f"([{row[f'{name}_lower']:.4g}, {row[f'{name}_upper']:.4g}]): every "
                   "resample gave the same value (a single run, or a parameter pinned at a "
                   "bound); it states no uncertainty, not certainty")
  return out
