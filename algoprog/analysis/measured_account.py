"""The study's accounting redone with the laws and ablation CEGs measured here, next to the
published inputs (algoprog.analysis.account holds the accounting itself)."""

from __future__ import annotations

from typing import Mapping, Sequence

from algoprog.analysis import account, diagnostics
from algoprog.analysis.ablations import AblationAnalysis
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
  accounting the measured laws cannot give is reported under "error"."""
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
  try:
    measured, sampled = account.with_fitted_laws(published, fitted)
    direct = next((r for r in rows
                   if r["ablation"] == direct_total and r.get("status") == "ok"), None)
    if direct is not None:
      measured = account.with_value(measured, "interaction.measured_total", direct["ceg"])
      if sampled is not None:
        sampled = account.with_value(sampled, "interaction.measured_total", direct["ceg"])
    out["measured"] = account.headline_rows(measured, years, (), sampled, level)
    out["measured_components"] = account.component_rows(measured, years[:1], sampled, level)
  except (account.AccountError, ValueError, FloatingPointError) as e:
    out["error"] = str(e)
  out["published_inputs_kept"] = missing
  return out
