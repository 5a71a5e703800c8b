"""Ablation CEGs from raw training curves at one target loss, per seed.

An ablation compares a reference group with a variant (one component switched): its CEG is
C_variant / C_reference at the target loss (how much more compute the variant needs), the
geometric mean over seeds, each crossing interpolated in ln C between evaluations
(algoprog.analysis.ceg.run_crossings). A variant that never reaches the target gets a lower
bound, never a capped value.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping

import numpy as np

from algoprog.analysis import ceg, diagnostics
from algoprog.analysis import noise as noise_lib
from algoprog.analysis.runs import RunTable


def ablation_target(table: RunTable, reference: str, target_loss: float = 0.0,
                    margin: float = 0.02) -> float:
  """`target_loss` (nats/token), or (0) the `reference` group's worst final validation loss
  over its seeds plus `margin`: a loss every reference seed reaches before its last
  evaluation, so the reference's crossings are interpolated, not extrapolated."""
  if target_loss:
    return float(target_loss)
  sub = table.only_groups([reference])
  finals = [float(sub.loss[sub.run_id == r][-1]) for r in sub.run_ids]
  return round(max(finals) + margin, 3)


def ablation_row(table: RunTable, seeds: Mapping[str, int | None], name: str,
                 reference: str, variant: str, target: float) -> dict:
  """CEG of `reference` over `variant` (C_variant / C_reference at `target`, nats/token):
  geometric means over seeds, the spread of seed-paired ratios (`seeds`: run id -> seed),
  and a lower bound when the variant misses. "status" says which ("ok" or why not)."""
  row = {"ablation": name, "reference": reference, "variant": variant, "target_loss": target}
  for group in (reference, variant):
    if group not in table.groups:
      return {**row, "status": f"no finished runs of {group}"}
  ref = ceg.run_crossings(table, reference, target, allow_unreached=True)
  new = ceg.run_crossings(table, variant, target, allow_unreached=True)
  if not np.isfinite(list(ref.values())).all():
    return {**row, "status": f"reference {reference} misses the target"}
  c_ref = float(np.exp(np.mean(np.log(list(ref.values())))))
  sub = table.only_groups([variant])
  finals = {r: float(sub.compute[sub.run_id == r][-1]) for r in sub.run_ids}
  reached = {r: c for r, c in new.items() if np.isfinite(c)}
  row.update({"runs_reference": len(ref), "runs_variant": len(new),
              "runs_variant_reaching": len(reached), "compute_reference": c_ref,
              "variant_best_loss": float(sub.loss.min())})
  if len(reached) < len(new):
    # Each missing run would reach the target, if ever, after its last evaluation.
    bound = np.exp(np.mean(np.log([reached.get(r, finals[r]) for r in new]))) / c_ref
    return {**row, "status": "variant misses the target", "ceg_lower_bound": float(bound)}
  by_seed_ref = {seeds.get(r): c for r, c in ref.items()}
  paired = [c / by_seed_ref[seeds.get(r)] for r, c in new.items()
            if seeds.get(r) in by_seed_ref]
  c_new = float(np.exp(np.mean(np.log(list(new.values())))))
  return {**row, "status": "ok", "compute_variant": c_new, "ceg": c_new / c_ref,
          "seed_min": float(min(paired)) if paired else math.nan,
          "seed_max": float(max(paired)) if paired else math.nan, "seed_pairs": len(paired)}


@dataclasses.dataclass(frozen=True)
class AblationAnalysis:
  """Every ablation's row (ablation_row, plus `not_determined`: the doubtful LR choices of
  its groups) at one target loss (nats/token); status "ok" or why nothing was analysed."""
  status: str
  target_loss: float | None = None
  rows: tuple[dict, ...] = ()

  def to_json(self) -> dict:
    if self.status != "ok":
      return {"rows": [], "status": self.status}
    return {"target_loss": self.target_loss, "rows": [dict(r) for r in self.rows],
            "status": self.status}


def analyse_ablations(table: RunTable, seeds: Mapping[str, int | None],
                      ablations: Mapping[str, tuple[str, str]], target_reference: str,
                      target_loss: float, margin: float,
                      lr_choices: Mapping[str, Mapping], noise: diagnostics.SeedNoise,
                      seed_noise: noise_lib.SeedNoiseInterval | None = None,
                      level: float = 0.95,
                      runner_up: RunTable | None = None) -> AblationAnalysis:
  """Every ablation (name -> (reference group, variant group)) at the target set from
  `target_reference` (ablation_target); rows whose reference or variant LR choice is
  doubtful (at the grid edge, within seed noise) get `not_determined` with the reasons.
  With `seed_noise` (the pooled seed noise and its interval), each row gains "seed_pair":
  algoprog.analysis.noise.ablation_ceg's JSON (seed-pair t interval, interval from the seed
  noise, smallest detectable CEG at `level`), or "seed_pair_error" when no pair crosses.

  `runner_up`: the full runs trained at a group's runner-up LR (the sweep trains them when
  its choice is ambiguous; `table` holds the chosen-LR runs). A row with such a group
  gains "lr_alternatives" (the row again with that group's runs at its runner-up LR, same
  target) and "lr_band" (the lowest and highest CEG and seed-pair bound over the chosen
  and the alternatives): the LR ambiguity widens the answer, and that group's "LR within
  seed noise" no longer makes the row not determined."""
  if target_reference not in table.groups:
    return AblationAnalysis(f"no finished runs of {target_reference}")
  target = ablation_target(table, target_reference, target_loss, margin)
  lr = diagnostics.lr_reasons(lr_choices, noise)
  alternative_groups = set(runner_up.groups) if runner_up is not None else set()
  pair_seeds = {r: s for r, s in seeds.items() if s is not None} or None

  def row_with_seed_pairs(runs: RunTable, name: str, reference: str, variant: str) -> dict:
    row = ablation_row(runs, seeds, name, reference, variant, target)
    if seed_noise is not None and {reference, variant} <= set(runs.groups):
      try:
        row["seed_pair"] = noise_lib.ablation_ceg(
            runs, reference, variant, target, noise=seed_noise, seeds=pair_seeds,
            level=level).to_json()
      except ValueError as e:  # no crossing pair (TargetNotReached), or two runs per seed
        row["seed_pair_error"] = str(e)
    return row

  rows = []
  for name, (reference, variant) in ablations.items():
    row = row_with_seed_pairs(table, name, reference, variant)
    swapped = [g for g in (reference, variant) if g in alternative_groups]
    alternatives = []
    for group in swapped:
      runs = table.select(table.group != group).merged(runner_up.only_groups([group]))
      alternative = row_with_seed_pairs(runs, name, reference, variant)
      lrs = {float(runner_up.run_info[r].get("learning_rate", math.nan))
             for r in runner_up.only_groups([group]).run_ids}
      alternatives.append({"group": group, "learning_rate": min(lrs) if lrs else math.nan,
                           **{k: v for k, v in alternative.items()
                              if k not in ("ablation", "reference", "variant")}})
    if alternatives:
      row["lr_alternatives"] = alternatives
      row["lr_band"] = lr_band([row] + alternatives)
    row["not_determined"] = "; ".join(f"{g}: {r}" for g in (reference, variant)
                                      for r in lr.get(g, [])
                                      if not (g in swapped and r.startswith("LR within")))
    rows.append(row)
  return AblationAnalysis("ok", target, tuple(rows))


def lr_band(rows: list[dict]) -> dict:
  """Over an ablation row and its runner-up-LR alternatives: the lowest and highest CEG
  estimate (a lower bound counts as its bound) and seed-pair interval bound (NaN where
  none is finite); "open_above" when any of them is only a lower bound (a variant missed
  the target), "open_below" when any has no value at all (e.g. the reference at its
  runner-up LR misses the target: the CEG could be anything below what the variant
  needs), so the band has no upper or no lower end."""
  estimates = [r["ceg"] if r.get("status") == "ok" else r.get("ceg_lower_bound", math.nan)
               for r in rows]
  open_below = any(r.get("status") != "ok" and "ceg_lower_bound" not in r for r in rows)
  lowers = [r.get("seed_pair", {}).get("paired_lower", math.nan) for r in rows]
  uppers = [r.get("seed_pair", {}).get("paired_upper", math.nan) for r in rows]
  finite = lambda values: [float(v) for v in values if v is not None and math.isfinite(v)]
  return {"estimate_low": min(finite(estimates), default=math.nan),
          "estimate_high": max(finite(estimates), default=math.nan),
          "lower": min(finite(lowers), default=math.nan),
          "upper": max(finite(uppers), default=math.nan),
          "open_above": any(r.get("status") != "ok" for r in rows),
          "open_below": open_below}
