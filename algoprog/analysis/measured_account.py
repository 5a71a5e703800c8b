"""The study's accounting redone with the laws and ablation CEGs measured here, next to the
published inputs (algoprog.analysis.account holds the accounting itself)."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from algoprog.analysis import account, diagnostics, laws, requirements
from algoprog.analysis.ablations import AblationAnalysis
from algoprog.analysis.e_profile import EProfile
from algoprog.analysis.scaling import ScalingAnalysis


def measured_vs_published(published: account.Study, years: Sequence[float],
                          scaling: ScalingAnalysis, ablations: AblationAnalysis,
                          study_laws: Mapping[str, str], direct_total: str,
                          level: float) -> dict:
  """Headline rows of the accounting with its `published` inputs and with ours: each law
  label of `study_laws` (label -> scaling group) replaced by the fitted law (bootstrap
  samples propagated), each published ablation by its measured CEG, the interaction
  normalised by the ablation `direct_total` (modern over retro measured directly).
  Inputs not measured here stay published (listed in published_inputs_kept); an
  accounting the measured laws cannot give is reported under "error". When E at a bound
  is the only reason the measured rows are not determined and the scaling analysis
  profiled E, "over_E" holds the accounting redone at every plausible E
  (`accounting_over_E`): a band instead of a veto."""
  years = list(years)
  out = {"published": account.headline_rows(published, years)}
  result, boot = scaling.fit, scaling.bootstrap
  law_map = {label: group for label, group in study_laws.items() if group in scaling.groups}
  # The measured rows use every mapped law: any law's reasons make them not determined.
  out["not_determined"] = diagnostics.not_determined(scaling.main.diagnostics,
                                                     list(law_map.values()))
  rows = ablations.rows
  cegs = {r["ablation"]: r["ceg"] for r in rows
          if r.get("status") == "ok" and r["ablation"] in published.ablations}
  missing = sorted(set(study_laws) - set(law_map)) + sorted(
      set(published.ablations) - set(cegs))
  fitted = account.FittedLaws(
      {label: result.for_group(g) for label, g in law_map.items()},
      {} if boot is None else {label: boot.for_group(g) for label, g in law_map.items()},
      cegs, {})
  direct = next((r["ceg"] for r in rows
                 if r["ablation"] == direct_total and r.get("status") == "ok"), None)
  try:
    measured, sampled = _measured_study(published, fitted, direct)
    out["measured"] = account.headline_rows(measured, years, (), sampled, level)
    out["measured_components"] = account.component_rows(measured, years[:1], sampled, level)
  except (account.AccountError, ValueError, FloatingPointError) as e:
    out["error"] = str(e)
  groups = list(law_map.values())
  if (out["not_determined"] and scaling.e_profile is not None
      and not requirements.remaining_reasons(scaling.main.diagnostics, groups)
      and set(groups) <= set(scaling.e_profile.groups)):
    try:
      out["over_E"] = accounting_over_E(published, years, scaling.e_profile, law_map, cegs,
                                        direct, level)
    except (account.AccountError, ValueError, FloatingPointError) as e:
      out["over_E_error"] = str(e)
  out["published_inputs_kept"] = missing
  return out


def _measured_study(published: account.Study, fitted: account.FittedLaws,
                    direct_total: float | None
                    ) -> tuple[account.Study, account.Study | None]:
  """(point study, study with samples or None) with the fitted laws and CEGs, the
  interaction normalised by the directly measured total when there is one."""
  measured, sampled = account.with_fitted_laws(published, fitted)
  if direct_total is not None:
    measured = account.with_value(measured, "interaction.measured_total", direct_total)
    if sampled is not None:
      sampled = account.with_value(sampled, "interaction.measured_total", direct_total)
  return measured, sampled


def accounting_over_E(published: account.Study, years: Sequence[float], profile: EProfile,
                      law_map: Mapping[str, str], cegs: Mapping[str, float],
                      direct_total: float | None, level: float) -> dict:
  """The measured headline at every plausible E of the shared-E `profile`: the laws of
  `law_map` (study law label -> group) refitted at that E (its bootstrap refits give the
  interval), the measured ablation `cegs` and `direct_total` as in the measured row.

  Returns {"by_E": one headline row per (plausible E, year) with its "E" (nats),
  "bands": per year the range of the total's estimate over the plausible E and the union
  of its intervals, with a verdict (below 1, above 1, or depends on E)}."""
  by_E = []
  index = {label: profile.groups.index(g) for label, g in law_map.items()}
  for k in np.flatnonzero(profile.plausible):
    E = float(profile.E[k])
    point = {label: laws.PowerLaw(float(profile.a[k, g]), float(profile.alpha[k, g]), E)
             for label, g in index.items()}
    samples = {label: laws.PowerLaw(profile.a_samples[k, :, g], profile.alpha_samples[k, :, g],
                                    np.full(profile.a_samples.shape[1], E))
               for label, g in index.items()} if profile.a_samples.shape[1] else {}
    measured, sampled = _measured_study(
        published, account.FittedLaws(point, samples, dict(cegs), {}), direct_total)
    by_E += [{"E": E, **row}
             for row in account.headline_rows(measured, years, (), sampled, level)]
  bands = []
  for year in years:
    rows = [r for r in by_E if r["year"] == year]
    est = np.array([r["total"] for r in rows], float)
    lower = np.array([r.get("total_lower", math.nan) for r in rows], float)
    upper = np.array([r.get("total_upper", math.nan) for r in rows], float)
    band = {"year": year, "compute": rows[0]["compute"] if rows else math.nan,
            "plausible_E": [min(r["E"] for r in rows), max(r["E"] for r in rows)] if rows
            else [], "estimate_low": _nanmin(est), "estimate_high": _nanmax(est),
            "lower": _nanmin(lower), "upper": _nanmax(upper),
            "undefined_at_E": [r["E"] for r in rows if not math.isfinite(r["total"])]}
    band["verdict"] = _total_verdict(band)
    bands.append(band)
  return {"by_E": by_E, "bands": bands, "level": level}


def _nanmin(x: np.ndarray) -> float:
  return float(np.nanmin(x)) if np.isfinite(x).any() else math.nan


def _nanmax(x: np.ndarray) -> float:
  return float(np.nanmax(x)) if np.isfinite(x).any() else math.nan


def _total_verdict(band: dict) -> str:
  """One phrase: whether the total is above 1 (a gain), below 1, or not settled, for every
  plausible E."""
  if band["undefined_at_E"]:
    return ("undefined at some plausible E (a law's loss falls below the other's E): "
            "not bounded")
  lower, upper = band["lower"], band["upper"]
  if not (math.isfinite(lower) and math.isfinite(upper)):
    return "no interval (no bootstrap)"
  if lower > 1:
    return "above 1x (a gain) for every plausible E"
  if upper < 1:
    return "below 1x (no gain) for every plausible E"
  return "the interval over the plausible E includes 1x: the sign is not settled"
