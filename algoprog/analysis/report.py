"""Every text and markdown table of the analysis: the study's report (report.md, from the
summary.json dict `algoprog.reproduce.analyse` writes, so stored summaries re-render) and
the aligned text tables `launch.fit` prints (from an algoprog.analysis.scaling result).

Numbers are written one way everywhere: `interval_text` ("estimate [lower, upper]", marked
when the interval has zero width), `multiple` (a CEG: 6,926x, 726x, 3.71x), `number_text`
("–" for a missing or non-finite value).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

from algoprog.analysis import diagnostics
from algoprog.analysis import scaling as scaling_lib
from algoprog.analysis.runs import RunTable
from algoprog.analysis.scaling import ScalingAnalysis


# ----------------------------------------------------------------------------------------
# Numbers and tables.


def number_text(value: Any, fmt: str = "{:.4g}") -> str:
  """`value` formatted, or "–" when it is missing or not finite."""
  if value is None or (isinstance(value, float) and not math.isfinite(value)):
    return "–"
  return fmt.format(value)


def _ci(row: dict, name: str, fmt: str = "{:.4g}") -> str:
  """`name` with its interval from `name_lower`/`name_upper` (law and pair rows)."""
  return interval_text(row.get(name), row.get(f"{name}_lower"), row.get(f"{name}_upper"),
                        fmt)


def _band_ci(row: dict, fmt: str = "{:.4g}") -> str:
  """A long-format CEG row's estimate with its interval (keys estimate, lower, upper)."""
  return interval_text(row.get("estimate"), row.get("lower"), row.get("upper"), fmt)


def interval_text(estimate: float | None, lower: float | None, upper: float | None,
                  fmt: str = "{:.4g}") -> str:
  """"estimate [lower, upper]" (the interval only when both ends are finite), marked when
  the interval has zero width (algoprog.analysis.diagnostics.zero_width)."""
  text = number_text(estimate, fmt)
  if lower is not None and upper is not None and math.isfinite(lower) and math.isfinite(upper):
    text += f" [{fmt.format(lower)}, {fmt.format(upper)}]"
    if diagnostics.zero_width(lower, upper, estimate):
      text += f" {diagnostics.ZERO_WIDTH_MARK}"
  return text


def profile_cell(profile: Mapping | None, group: str, reference: str, quantity: str,
                 at: float | None = None) -> str | None:
  """The E profile's band of one derived number (its summary.json dict, `e_profile`):
  "low to high [lower, upper] over the plausible E: verdict", or None when the profile
  has no such number. An exponent difference asked the other way round is negated."""
  if not profile:
    return None
  for d in profile.get("derived", []):
    if d["quantity"] != quantity or (quantity == "ceg_at_compute" and not (
        d["at"] is not None and at is not None and math.isclose(d["at"], at, rel_tol=1e-6))):
      continue
    b = dict(d["band"])
    if (d["group"], d["reference"]) == (group, reference):
      pass
    elif (d["group"], d["reference"]) == (reference, group) and quantity == "exponent_difference":
      b = {"estimate_low": _neg(b["estimate_high"]), "estimate_high": _neg(b["estimate_low"]),
           "lower": _neg(b["upper"]), "upper": _neg(b["lower"])}
    else:
      continue
    fmt = "{:.4f}" if quantity == "exponent_difference" else "{:.3g}"
    band = f"{number_text(b['estimate_low'], fmt)} to {number_text(b['estimate_high'], fmt)}"
    if _finite(b["lower"]) and _finite(b["upper"]):
      band += f" [{fmt.format(b['lower'])}, {fmt.format(b['upper'])}]"
    return f"{band} over the plausible E: {d['verdict']}"
  return None


def _neg(value: float | None) -> float | None:
  return None if value is None else -value


def _bounded_only(diags: Mapping[str, diagnostics.GroupDiagnostics] | None,
                  groups: Sequence[str]) -> bool:
  """Whether every reason of `groups` is one the E profile bounds (E at a bound)."""
  return bool(diags) and not scaling_lib.remaining_reasons(diags, groups)


def _or_not_determined(row: dict, text: str, diags: dict | None = None,
                       profile: Mapping | None = None) -> str:
  """`text`, or "not determined: <reasons>" when the row's inputs have reasons: with the
  groups' `diags`, each group's reason labels (the Diagnostics table has the details).
  When E at a bound is the only reason and the E `profile` bounds the number, its band
  over the plausible E and verdict instead."""
  if not row.get("not_determined"):
    return text
  if profile and _bounded_only(diags, [row["group"], row["reference"]]):
    quantity = row.get("quantity", "exponent_difference")
    cell = profile_cell(profile, row["group"], row["reference"], quantity, row.get("at"))
    if cell:
      return f"E profile: {cell}"
  if diags:
    return "not determined: " + diagnostics.not_determined(
        diags, [row["group"], row["reference"]], short=True)
  return f"not determined: {row['not_determined']}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
  """A markdown table (each cell already text), with a trailing newline."""
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(r) + " |" for r in rows]
  return "\n".join(lines) + "\n"


def _finite(value: Any) -> bool:
  return isinstance(value, (int, float)) and math.isfinite(value)


def multiple(value: float | None) -> str:
  """A CEG as people write it: 6,926x, 726x, 3.71x; "–" when missing or not finite."""
  if value is None or not math.isfinite(value):
    return "–"
  return f"{value:,.0f}x" if abs(value) >= 100 else f"{value:.3g}x"


def diagnostics_from_json(fitted: Mapping) -> dict[str, diagnostics.GroupDiagnostics]:
  """The GroupDiagnostics of a fit's JSON (its "diagnostics": {group: {reasons, ...}})."""
  return {g: diagnostics.GroupDiagnostics(d["group"], tuple(d["reasons"]),
                                          tuple(d["skipped"]))
          for g, d in fitted["diagnostics"].items()}


def aligned_table(rows: list[list[str]]) -> str:
  """Rows of text cells (the first the header) as left-aligned columns."""
  widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
  return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)



# ----------------------------------------------------------------------------------------
# The uncertainty sections, as (header, rows) both renderings share: from the summary.json
# dict of algoprog.analysis.scaling (ScalingAnalysis.to_json()).

RAW_SCALE_TARGETS = 3  # target losses shown per pair (highest, middle, lowest reached)


def raw_scale_rows(raw_scale: Sequence[Mapping]) -> tuple[list[str], list[list[str]]]:
  """Per pair: CEG at a few target losses with bands, the slope of ln CEG vs ln C_ref
  with its interval, and the verdict."""
  header = ["group", "reference", "CEG at target loss [band]", "slope d ln CEG / d ln C",
            "verdict"]
  rows = []
  for r in raw_scale:
    by = [t for t in r["by_target"] if _finite(t["ceg"])]
    # The highest, middle and lowest target reached (indices deduplicated for short lists).
    picks = sorted({round(i * (len(by) - 1) / max(1, RAW_SCALE_TARGETS - 1))
                    for i in range(RAW_SCALE_TARGETS)}) if by else []
    cegs = "; ".join(
        f"{by[i]['target_loss']:.3g}: "
        + interval_text(by[i]["ceg"], by[i]["lower"], by[i]["upper"], "{:.3g}")
        for i in picks) or "–"
    slope = r["slope"]
    rows.append([r["group"], r["reference"], cegs,
                 interval_text(slope["estimate"], slope["lower"], slope["upper"], "{:.3f}"),
                 r["verdict"].split(":", 1)[0]])
  return header, rows


def rollout_rows(rollout: Mapping | None, curvature: Sequence[Mapping]
                 ) -> tuple[list[str], list[list[str]]]:
  """Per group: held-out runs, how far past the fit, prediction error (nats) at the largest
  compute and on average, points inside the predictive interval, residual curvature t."""
  header = ["group", "held out", "decades past fit", "error at largest (nats)",
            "mean error (nats)", "inside interval", "curvature t (bend)"]
  curv = {c["group"]: c for c in curvature}
  groups = {g["group"]: g for g in (rollout or {}).get("groups", [])}
  rows = []
  for group in dict.fromkeys(list(groups) + list(curv)):
    g, c = groups.get(group), curv.get(group)
    bend = (f"{number_text(c['t'], '{:.2f}')} ({number_text(c['bend'], '{:+.4f}')}"
            + (", significant)" if c["significant"] else ")")) if c else "–"
    if g is None:
      rows.append([group, "–", "–", "–", "–", "–", bend])
      continue
    rows.append([group, ", ".join(g["held_out"]) or "–",
                 number_text(g["extrapolation_decades"], "{:.2f}"),
                 number_text(g["error_at_largest"], "{:+.4f}"),
                 number_text(g["mean_error"], "{:+.4f}"),
                 f"{g['inside']}/{g['points']}" + (" yes" if g["points"] and
                                                   g["inside"] == g["points"] else ""),
                 bend])
  return header, rows


def plateau_rows(plateau: Mapping | None) -> tuple[list[str], list[list[str]]]:
  """Points excluded as on the unigram plateau: run, group, points, reason."""
  header = ["run", "group", "points", "reason"]
  return header, [[e["run_id"], e["group"], str(e["points"]), e["reason"]]
                  for e in (plateau or {}).get("excluded", [])]


def seed_noise_text(scaling: Mapping) -> str:
  """The seed noise the diagnostics use, with its own interval when measured."""
  interval = scaling.get("seed_noise_interval")
  return interval["summary"] if interval else ""


# ----------------------------------------------------------------------------------------
# The study's report (report.md).


def _laws_table(law_rows: list[dict]) -> str:
  return markdown_table(["architecture", "fit points", "a", "alpha", "E"], [
      [r["group"], str(r["fit_points"]), _ci(r, "a"), _ci(r, "alpha", "{:.4f}"),
       _ci(r, "E", "{:.3f}")] for r in law_rows])


def _distinguishable_text(pair: Mapping) -> str:
  if pair["distinguishable"] is None:  # Determined groups, but no bootstrap: no interval.
    return "– (no bootstrap)"
  return ("yes: distinguishable" if pair["distinguishable"] else
          "no: not distinguishable at this scale")


def _pairs_table(pairs: list[dict], level: str, diags: dict | None = None,
                 profile: Mapping | None = None) -> str:
  return markdown_table(["group", "reference", "difference", f"{level} CI excludes 0?"], [
      [r["group"], r["reference"], _ci(r, "exponent_difference", "{:.4f}"),
       _or_not_determined(r, _distinguishable_text(r), diags, profile)] for r in pairs])


def _diagnostics_section(scaling: dict, evidence: dict) -> str:
  """Per group: the reasons its law is not determined, and the checks that could not run."""
  text = ["### Diagnostics\n",
          "A group with a reason below makes every number derived from its law (CEG, exponent "
          "difference, accounting) *not determined* (algoprog.analysis.diagnostics).\n"]
  if evidence:
    entropy = evidence.get("unigram_entropy")
    text.append(f"Seed noise {evidence['seed_noise']:.3f} nats "
                f"({evidence['seed_noise_source']}); unigram entropy "
                + (f"{entropy:.3f} nats/token ({evidence['unigram_entropy_source']})"
                   if entropy is not None else evidence["unigram_entropy_source"]) + ".\n")
  if seed_noise_text(scaling):
    text.append(f"Pooled over seeds: {seed_noise_text(scaling)}.\n")
  if scaling.get("plateau"):
    text.append("Points on the unigram plateau are not fitted (listed under Excluded points); "
                "a group is marked only when too little remains below the plateau.\n")
  if scaling.get("e_profile"):
    text.append("E at a bound no longer makes a number not determined where the E profile "
                "below bounds it: such cells show the band over every plausible E and its "
                "verdict.\n")
  text.append(markdown_table(["group", "not determined because", "checks skipped"], [
      [g, "; ".join(d["reasons"]) or "– (determined)", "; ".join(d["skipped"]) or "–"]
      for g, d in scaling["diagnostics"].items()]))
  return "\n".join(text)


def report_markdown(config: Any, s: dict) -> str:
  """The report: what ran, what it covered, the fits, CEGs, ablations and accounting."""
  a = config.analysis
  scaling, ablations, accounting = s["scaling"], s["ablations"], s["accounting"]
  level = f"{a.level:.0%}"
  parts = [f"# algoprog study report: {config.name}\n",
           f"{config.description}\n",
           f"{s['runs']} full runs analysed"
           + (f" (and {s['runner_up_runs']} at runner-up learning rates, in the intervals "
              "only)" if s.get("runner_up_runs") else "")
           + f"; {len(s['failures'])} failed runs; training wall "
           f"time {s['train_seconds'] / 60:.1f} min summed over all runs (LR sweeps included)"
           + (f"; the last `reproduce` session took {s['session_seconds'] / 60:.1f} min"
              if "session_seconds" in s else "")
           + ". Every number below is computed from these runs by `algoprog.reproduce`; none "
           "is set to match the study.\n"]
  for fp in s["data_fingerprints"]:
    shown = {k: (v[:16] if k.endswith("sha256") and isinstance(v, str) else v)
             for k, v in fp.items()}
    parts.append("Data: " + ", ".join(f"{k} `{v}`" for k, v in sorted(shown.items())) + "\n")
  if s["failures"]:
    parts.append("## Failed runs (kept out of the fits, listed here)\n")
    parts.append(markdown_table(["run", "group", "reason"], [
        [f["run_id"], str(f["label"]), str(f["reason"])[:200]] for f in s["failures"]]))

  parts.append("## Compute covered\n")
  parts.append(markdown_table(
      ["architecture", "runs", "all points, FLOPs", "frontier points", "frontier, FLOPs",
       "decades", "best loss"],
      [[r["group"], str(r["runs"]), f"{r['min_compute']:.3g} – {r['max_compute']:.3g}",
        str(r["frontier_points"]),
        f"{r['frontier_min_compute']:.3g} – {r['frontier_max_compute']:.3g}",
        f"{r['frontier_decades']:.2f}", f"{r['best_loss']:.4f}"]
       for r in scaling["coverage"]]))
  if scaling["missing_groups"]:
    parts.append(f"No finished runs (not fitted): {', '.join(scaling['missing_groups'])}.\n")

  parts.append(f"## Frontier fits  L(C) = E + a·C^alpha  ({level} bootstrap CIs over runs)\n")
  parts.append(f"Frontier: {a.frontier} of each run's points from {a.skip_fraction:.0%} of its "
               f"tokens on; E: {a.irreducible}; {a.bootstrap} bootstrap refits resampling "
               f"{a.resample}. C in FLOPs (algoprog.training.flops), L in nats/token.\n")
  parts.append(_laws_table(scaling["laws"]))
  parts.append("![loss vs compute](analysis/loss_vs_compute.png)\n")
  for w in scaling["warnings"] + diagnostics.zero_width_warnings(scaling["laws"], a.level):
    parts.append(f"> fit warning: {w}\n")
  diags = None
  profile = scaling.get("e_profile")
  if "diagnostics" in scaling:  # (summaries written before the diagnostics have none)
    parts.append(_diagnostics_section(scaling, s.get("evidence", {})))
    diags = diagnostics_from_json(scaling)
  if scaling["exponent_pairs"]:
    parts.append("### Exponent differences (alpha_group − alpha_reference)\n")
    parts.append(_pairs_table(scaling["exponent_pairs"], level, diags, profile))
  if profile:
    parts.append("### E profile: derived numbers over every plausible irreducible loss\n")
    parts.append("One E shared by the groups, each law refitted with E fixed on a grid "
                 "(algoprog.analysis.e_profile); plausible E by the likelihood ratio or the "
                 "bootstrap optimum. Band: range of the estimates over the plausible E "
                 "[union of their intervals].\n")
    parts += [f"- {line}" for line in profile["summary"]]
    parts.append("")
    if "e_profile" in scaling["figures"]:
      parts.append("![E profile](analysis/e_profile.png)\n")
  sensitivity = scaling.get("sensitivity")
  if sensitivity:
    parts.append(f"### Sensitivity: E {sensitivity['irreducible']} instead of "
                 f"{scaling.get('irreducible', a.irreducible)}\n")
    parts.append("The same frontiers refitted with the other choice of the irreducible loss; "
                 "a conclusion that holds only under one of them is not a finding.\n")
    parts.append(_laws_table(sensitivity["laws"]))
    reasons = [f"{g}: {r}" for g, d in sensitivity["diagnostics"].items()
               for r in d["reasons"]]
    if reasons:
      parts.append("Diagnostics of this fit: " + "; ".join(reasons) + ".\n")
    if sensitivity["exponent_pairs"]:
      parts.append(_pairs_table(sensitivity["exponent_pairs"], level,
                                diagnostics_from_json(sensitivity)))

  parts.append(f"## CEG over {a.reference} from the fitted laws\n")
  parts.append("CEG(C) = C_reference(L_group(C)) / C: compute the reference needs for the "
               "loss the group reaches with C. Computes beyond the frontier points are "
               "extrapolations.\n")
  rows = [r for r in scaling["ceg"] if r["quantity"] == "ceg_at_compute"]
  parts.append(markdown_table(["group", "at C (FLOPs)", f"CEG [{level} CI]"], [
      [r["group"], f"{r['at']:.3g}",
       _or_not_determined(r, _band_ci(r, "{:.3g}"), diags, profile)]
      for r in rows]))
  if "ceg_vs_compute" in scaling["figures"]:
    parts.append("![CEG vs compute](analysis/ceg_vs_compute.png)\n")
  if scaling.get("raw_scale"):
    parts.append(f"## Scale dependence without a law (raw curves, over {a.reference})\n")
    parts.append("CEG = C_reference(L) / C_group(L) along the raw envelopes at every loss both "
                 "reach, bands from resampling whole runs; the slope of ln CEG against ln "
                 "C_reference says whether the gain grows with scale "
                 "(algoprog.analysis.raw_scale).\n")
    parts.append(markdown_table(*raw_scale_rows(scaling["raw_scale"])))
    parts += [f"- {r['group']}: {r['verdict']}" for r in scaling["raw_scale"]]
    parts.append("")
    if "raw_scale" in scaling["figures"]:
      parts.append("![raw-curve CEG vs compute](analysis/raw_scale.png)\n")
  if scaling.get("rollout") or scaling.get("curvature"):
    parts.append("## Rollout: the largest runs predicted from the rest\n")
    parts.append("Each group refitted without its largest size(s) and extrapolated to them; "
                 "error = observed − predicted loss (nats) on the frontier; inside: within the "
                 f"{level} predictive interval (bootstrap laws plus seed noise). Curvature: t "
                 "of the top polynomial term of the main fit's log-log residuals, and its bend "
                 "(ln-loss at the range's ends); points of one curve are correlated, so t is "
                 "optimistic (algoprog.analysis.rollout).\n")
    parts.append(markdown_table(*rollout_rows(scaling.get("rollout"),
                                              scaling.get("curvature", []))))
    if "rollout" in scaling["figures"]:
      parts.append("![rollout](analysis/rollout.png)\n")

  parts.append("## Ablations (raw curves at one target loss)\n")
  if ablations.get("status") != "ok":
    parts.append(f"Not analysed: {ablations.get('status')}.\n")
  else:
    published = dict(a.published_ablations)
    target_source = ("configured" if a.ablation_target_loss else
                     f"the reference worst seed final loss + {a.ablation_target_margin}")
    parts.append(
        f"Target loss {ablations['target_loss']:g} nats/token ({target_source}). "
        "CEG = C_variant / C_reference at the target (how much more compute the variant "
        "needs), geometric mean over seeds; spread = min–max of seed-paired ratios; each "
        "crossing interpolated in ln C between evaluations. A variant that never reaches the "
        "target gets a lower bound.\n")
    table_rows = []
    paired = any("seed_pair" in r for r in ablations["rows"])
    alternatives = any(r.get("lr_alternatives") for r in ablations["rows"])
    for r in ablations["rows"]:
      if r.get("status") == "ok":
        value = f"{r['ceg']:.3g}x"
        spread = f"{r['seed_min']:.3g}–{r['seed_max']:.3g} ({r['seed_pairs']} pairs)"
      elif "ceg_lower_bound" in r:
        value, spread = f"≥ {r['ceg_lower_bound']:.3g}x (target not reached)", "–"
      else:
        value, spread = r.get("status", "?"), "–"
      row = [r["ablation"], f"{r['reference']} vs {r['variant']}",
             _or_not_determined(r, value), spread]
      if paired:
        row += _seed_pair_cells(r.get("seed_pair"), level)
      if alternatives:
        row.append(_lr_alternative_cell(r))
      table_rows.append(row + [multiple(published.get(r["ablation"]))])
    head = ["ablation", "runs", "CEG", "seed spread"]
    if paired:
      head += [f"seed-pair {level} interval", "from seed noise", "smallest detectable"]
    if alternatives:
      head.append("with a runner-up LR (LR band)")
    parts.append(markdown_table(head + ["study (64d, GPT-2 BPE)"], table_rows))
    if alternatives:
      parts.append("With a runner-up LR: where a group's LR choice was ambiguous, the sweep "
                   "also trained its full runs at the runner-up LR; the row is recomputed "
                   "with those runs (same target) and the LR band spans the CEG estimates "
                   f"and seed-pair {level} bounds of the chosen and the runner-up runs. Such "
                   "a group's \"LR within seed noise\" no longer makes the row not "
                   "determined: its ambiguity is in the band.\n")
    if paired:
      parts.append(_two_seed_sentence(ablations["rows"], level))
    parts.append("![ablation CEGs](analysis/ablation_cegs.png)\n")
    parts.append("![ablation curves](analysis/ablation_curves.png)\n")

  parts.append("## Accounting: the study's published inputs vs this study's measurements\n")
  parts.append("The measured row replaces the study's frontier laws and ablation CEGs by the "
               "ones fitted here and extrapolates them to the frontier compute of each year: "
               "many decades beyond the data, so read it as what these small runs imply, "
               "not as a measurement at that scale.\n")
  if accounting.get("published_inputs_kept"):
    parts.append(f"Published values kept (not measured here): "
                 f"{', '.join(accounting['published_inputs_kept'])}.\n")
  head = ["inputs", "year", "FLOPs", "total", "scale-invariant", "scale-dep. share"]
  rows = []
  for name in ("published", "measured"):
    for r in accounting.get(name, []):
      if name == "measured" and accounting.get("not_determined"):
        rows.append([name, str(r["year"]), f"{r['compute']:.3g}", "not determined (below)",
                     "–", "–"])
        continue
      rows.append([name, str(r["year"]), f"{r['compute']:.3g}", multiple(r["total"]) + (
          f" [{multiple(r['total_lower'])}, {multiple(r['total_upper'])}]"
          if "total_lower" in r else ""), multiple(r["scale_invariant"]),
          number_text(r["scale_dependent_share"], "{:.1%}")])
  parts.append(markdown_table(head, rows))
  if accounting.get("not_determined") and accounting.get("over_E"):
    over = accounting["over_E"]
    parts.append(f"The measured row's only reason to be not determined is E at a bound "
                 f"({accounting['not_determined']}), so it is redone at every plausible "
                 f"shared E of the E profile (laws refitted at that E, {over['level']:.0%} "
                 f"bootstrap intervals; every row in analysis/accounting_over_E.csv):\n")
    parts.append(markdown_table(
        ["year", "FLOPs", "plausible E (nats)", "total over the plausible E", "interval",
         "verdict"],
        [[str(b["year"]), f"{b['compute']:.3g}",
          " – ".join(f"{e:.3g}" for e in b["plausible_E"]) or "–",
          f"{multiple(b['estimate_low'])} to {multiple(b['estimate_high'])}",
          f"[{multiple(b['lower'])}, {multiple(b['upper'])}]", b["verdict"]]
         for b in over["bands"]]))
  elif accounting.get("not_determined"):
    parts.append(f"Measured accounting not determined: {accounting['not_determined']} "
                 "(its numbers are in analysis/summary.json and headline_measured.csv).\n")
  if accounting.get("over_E_error"):
    parts.append(f"Measured accounting over E not computed: {accounting['over_E_error']}\n")
  if any(not _finite(r.get("total")) for r in accounting.get("measured", [])):
    parts.append("A measured total shown as – is undefined: extrapolated that far, one fitted "
                 "law's loss falls below the other's irreducible loss E, so the other never "
                 "reaches it and the CEG (compute ratio) does not exist. The fitted E values "
                 "above say which.\n")
  if "error" in accounting:
    parts.append(f"Measured accounting not computed: {accounting['error']}\n")

  if s["lr_choices"]:
    parts.append("## Learning-rate sweeps\n")
    rows = []
    for key, entry in sorted(s["lr_choices"].items()):
      curve = ", ".join(f"{p['learning_rate']:.3g}: {number_text(p['final_validation_loss'])}"
                        for p in sorted(entry["curve"], key=lambda p: p["learning_rate"]))
      rows.append([key, number_text(entry.get("chosen_learning_rate"), "{:.3g}"),
                   "yes" if entry.get("chosen_at_grid_edge") else "no",
                   number_text(entry.get("margin_to_next_best"), "{:.3f}"), curve])
    parts.append("Margin: final loss of the next best LR minus the chosen one's (nats). A "
                 "margin below the seed spread means the sweep's budget could not tell "
                 "those LRs apart; lengthen `lr_budget_fraction`.\n")
    parts.append(markdown_table(
        ["group/width", "chosen LR", "at grid edge", "margin", "LR: final loss"], rows))
    parts.append("![LR sweeps](analysis/lr_sweeps.png)\n")
  if scaling.get("lr"):
    parts.append(lr_uncertainty_markdown(scaling["lr"]))
  if s["excluded"]:
    parts.append("## Excluded runs\n")
    parts.append(markdown_table(["run", "group", "reason"], [
        [e["run_id"], e["group"], e["reason"][:200]] for e in s["excluded"]]))
  header, rows = plateau_rows(scaling.get("plateau"))
  if rows:
    parts.append("## Excluded points (unigram plateau, not fitted)\n")
    parts.append(markdown_table(header, rows))
  if scaling.get("notes"):
    parts += [f"> note: {n}\n" for n in scaling["notes"]]
  if scaling.get("requirements"):
    parts.append("## What it would take to determine the rest\n")
    parts.append("For each number above still undetermined, the cheapest design the planner "
                 "(algoprog.analysis.planner) finds that determines it, from the laws and "
                 "noise measured here:\n")
    parts += [f"- {sentence[0].upper()}{sentence[1:]}." for sentence in scaling["requirements"]]
    parts.append("")
  parts.append("Files: `analysis/` holds every table as CSV, all numbers in `summary.json`, "
               "and the figures as PNG and SVG; `sweep/` holds the runs.\n")
  return "\n".join(parts)


def _seed_pair_cells(pair: Mapping | None, level: str) -> list[str]:
  """An ablation's seed-pair CEG interval (t with pairs - 1 dof), its interval from the
  pooled seed noise, and the smallest CEG this many seeds detect."""
  if not pair:
    return ["–", "–", "–"]
  paired = (f"[{pair['paired_lower']:.3g}, {pair['paired_upper']:.3g}] ({pair['pairs']} pairs)"
            if _finite(pair.get("paired_lower")) and _finite(pair.get("paired_upper"))
            else f"– ({pair['pairs']} pair{'s' if pair['pairs'] != 1 else ''})")
  noise = (f"[{pair['noise_lower']:.3g}, {pair['noise_upper']:.3g}]"
           if _finite(pair.get("noise_lower")) else "–")
  detect = (f"{pair['detectable_ceg']:.3g}x ({pair['detectable_ceg_conservative']:.3g}x)"
            if _finite(pair.get("detectable_ceg")) else "–")
  return [paired, noise, detect]


def _lr_alternative_cell(row: Mapping) -> str:
  """An ablation's CEG with each ambiguous group at its runner-up LR, and the LR band."""
  if not row.get("lr_alternatives"):
    return "–"
  cells = []
  for alt in row["lr_alternatives"]:
    if alt.get("status") == "ok":
      value = f"{alt['ceg']:.3g}x"
    elif "ceg_lower_bound" in alt:
      value = f"≥ {alt['ceg_lower_bound']:.3g}x"
    else:
      value = str(alt.get("status", "?"))
    cells.append(f"{alt['group']} at LR {alt['learning_rate']:.3g}: {value}")
  band = row["lr_band"]
  low, high, lower, upper = (number_text(band[k], "{:.3g}") for k in (
      "estimate_low", "estimate_high", "lower", "upper"))
  if band.get("open_below"):  # an alternative has no value: nothing bounds it
    return ", ".join(cells) + " (band not bounded)"
  if band.get("open_above"):  # a variant missed the target: no upper end
    return ", ".join(cells) + f" (band ≥ {low}x, bounds [{lower}, ∞))"
  return ", ".join(cells) + f" (band {low}–{high}x, bounds [{lower}, {upper}])"


def _two_seed_sentence(rows: Sequence[Mapping], level: str) -> str:
  """How wide the seed pairs leave an ablation's CEG."""
  pairs = [r["seed_pair"] for r in rows if r.get("seed_pair")]
  two = [p for p in pairs if p["pairs"] == 2 and _finite(p.get("paired_lower"))]
  detect = [p["detectable_ceg"] for p in pairs if _finite(p.get("detectable_ceg"))]
  text = ("Seed-pair interval: t interval of the seed-paired ln CEG (pairs − 1 dof); from "
          "seed noise: the pooled seed noise shifts each crossing by sigma / |dL/d ln C|; "
          "smallest detectable: the CEG these seeds tell from 1x at "
          f"{level} with 80% power (in brackets at the noise's upper bound).")
  if two:
    width = max(p["paired_upper"] / p["paired_lower"] for p in two)
    text += (f" With 2 seeds the t quantile is 12.7 (1 dof): the widest seed-pair interval "
             f"spans a factor {width:.3g}; more seeds narrow it fastest.")
  if detect:
    low, high = min(detect), max(detect)
    text += (f" Gains below {low:.3g}x" + (f"–{high:.3g}x" if f"{high:.3g}" != f"{low:.3g}"
                                            else "")
             + " cannot be told from seed noise with these seeds.")
  return text + "\n"


# ----------------------------------------------------------------------------------------
# LR optima and LR laws (algoprog.analysis.scaling.LrSection.to_json): both reports.


def lr_optima_rows(lr: Mapping) -> list[list[str]]:
  """Header and one row per LR sweep: chosen LR, the parabola optimum with its interval,
  P(runner-up truly better), and whether the runner-up's full runs are in the bootstrap."""
  runner_up = set(lr.get("runner_up_sweeps", ()))
  rows = [["sweep", "chosen LR", "optimum LR [CI]", "p_runner_up", "runner-up runs",
           "method"]]
  for o in lr["optima"]:
    # An end the sweep cannot bound (0 or inf, null in JSON) is shown as open.
    lower = "open" if not o["lower"] else f"{o['lower']:.3g}"
    upper = "open" if o["upper"] is None else f"{o['upper']:.3g}"
    optimum = f"{number_text(o['lr'], '{:.3g}')} [{lower}, {upper}]"
    rows.append([o["key"], number_text(o["chosen"], "{:.3g}"),
                 optimum + (f" (beyond the grid: {o['beyond_grid']})" if o["beyond_grid"]
                            else ""),
                 number_text(o["p_runner_up"], "{:.2f}")
                 + (" ambiguous" if o["ambiguous"] else ""),
                 "in the CI" if o["key"] in runner_up else "-", o["method"]])
  return rows


def lr_law_rows(lr: Mapping) -> list[list[str]]:
  """Header and one row per group's LR law lr* = c * width^b with intervals."""
  rows = [["group", "c [CI]", "b [CI]", "widths"]]
  for group, law in sorted(lr["laws"].items()):
    rows.append([group, interval_text(law["c"], *law["c_interval"], "{:.3g}"),
                 interval_text(law["b"], *law["b_interval"], "{:.3g}"),
                 ", ".join(f"{w:g}" for w in law["widths"])])
  return rows


def lr_uncertainty_markdown(lr: Mapping) -> str:
  """The report's section on LR optima and laws."""
  optima, law_rows = lr_optima_rows(lr), lr_law_rows(lr)
  parts = ["## LR optima and LR laws\n",
           "Optimum: vertex of a parabola in ln LR through the best sweep points, interval "
           "from refits with the losses perturbed by the seed noise; p_runner_up: probability "
           "the second-best grid LR is truly better. Where the runner-up's full runs were "
           "trained, each bootstrap resample chooses between the two LRs by its own "
           "perturbed sweep losses, so the ambiguity widens the intervals above instead of "
           "vetoing the group.\n", markdown_table(optima[0], optima[1:])]
  if law_rows[1:]:
    parts += ["LR law per group, lr* = c * width^b (weighted least squares in log-log):\n",
              markdown_table(law_rows[0], law_rows[1:]),
              "![LR laws](analysis/lr_laws.png)\n"]
  return "\n".join(parts)


def lr_uncertainty_text(lr: Mapping) -> str:
  """launch.fit's lines on LR optima and laws."""
  lines = ["\nLR optima per sweep (parabola in ln LR; interval under the seed noise)",
           aligned_table(lr_optima_rows(lr))]
  if lr["laws"]:
    lines += ["\nLR laws  lr* = c * width^b", aligned_table(lr_law_rows(lr))]
  return "\n".join(lines)


# ----------------------------------------------------------------------------------------
# launch.fit's printed tables.


def _row_interval(row: Mapping, name: str) -> str:
  return interval_text(row[name], row[f"{name}_lower"], row[f"{name}_upper"])


def laws_text(law_rows: Sequence[Mapping]) -> str:
  """Fitted laws (algoprog.analysis.fit.law_rows) with their intervals."""
  return aligned_table([["group", "points", "a", "alpha", "E"]] + [
      [r["group"], str(r["fit_points"])] + [_row_interval(r, k) for k in ("a", "alpha", "E")]
      for r in law_rows])


def _verdict(pair: Mapping, diags: Mapping[str, diagnostics.GroupDiagnostics],
             profile: Mapping | None = None) -> str:
  if pair["not_determined"]:
    if profile and _bounded_only(diags, [pair["group"], pair["reference"]]):
      cell = profile_cell(profile, pair["group"], pair["reference"], "exponent_difference")
      if cell:
        return f"E profile: {cell}"
    return "not determined: " + diagnostics.not_determined(
        diags, [pair["group"], pair["reference"]], short=True)
  if pair["distinguishable"] is None:
    return ""
  return "distinguishable" if pair["distinguishable"] else "not distinguishable"


def pairs_text(pairs: Sequence[Mapping], diags: Mapping[str, diagnostics.GroupDiagnostics],
               profile: Mapping | None = None) -> str:
  """Exponent differences (algoprog.analysis.scaling.ExponentPair as dicts) and verdicts
  (with an E `profile` dict, its band where E at a bound is the only reason)."""
  return aligned_table([["group", "reference", "difference", "verdict"]] + [
      [r["group"], r["reference"], _row_interval(r, "exponent_difference"),
       _verdict(r, diags, profile)] for r in pairs])


def fit_text(analysis: ScalingAnalysis, table: RunTable, raw_combine: str) -> str:
  """What launch.fit prints: warnings, the fitted laws, diagnostics, exponent differences,
  the sensitivity refit, CEG tables (fitted and raw), Chinchilla fits and excluded runs."""
  options, main = analysis.options, analysis.main
  reference, diags = analysis.reference, main.diagnostics
  lines = [f"warning: {message}" for message in analysis.all_warnings()]
  if table.other_stages:
    stages = sorted({e.reason for e in table.other_stages})
    lines.append(f"left out {len(table.other_stages)} runs of other stages "
                 f"({', '.join(stages)}); --all_stages fits them too")
  power_law = main.fit.options
  lines.append(f"{len(table.run_ids)} runs, {table.loss.size} points from {table.source}; "
               f"frontier {main.fit.frontier}; E {power_law.irreducible}"
               + ("; shared exponent" if power_law.shared_exponent else "")
               + (f"; {options.bootstrap} bootstrap refits resampling {options.resample}, "
                  f"{options.level:.0%} intervals" if main.bootstrap else ""))
  lines += ["\nfitted laws  L(C) = E + a * C^alpha  (C in FLOPs, L in nats/token)",
            laws_text(main.laws),
            "\ndiagnostics (a group with reasons makes every number derived from its law "
            "not determined" + (", except where the E profile bounds it" if analysis.e_profile
                                else "") + ")"]
  for group, d in diags.items():
    lines.append(f"  {group}: " + ("; ".join(d.reasons) or "determined")
                 + (f"  (skipped: {'; '.join(d.skipped)})" if d.skipped else ""))
  noise = analysis.evidence.noise
  lines.append(f"  seed noise {noise.value:.3g} nats ({noise.source})")
  numbers = analysis.to_json()
  if seed_noise_text(numbers):
    lines.append(f"  pooled: {seed_noise_text(numbers)}")
  profile = numbers["e_profile"]
  pairs = [dataclasses.asdict(p) for p in main.exponent_pairs]
  if pairs:
    lines += ["\nexponent differences alpha_group - alpha_reference",
              pairs_text(pairs, diags, profile)]
  if profile:
    lines.append("\nE profile (one shared E refitted on a grid; bands over the plausible E)")
    lines += [f"  {line}" for line in profile["summary"]]
  other = analysis.sensitivity
  if other is not None:
    lines += [f"\nsensitivity: E {other.irreducible} instead of {main.irreducible}",
              laws_text(other.laws),
              pairs_text([dataclasses.asdict(p) for p in other.exponent_pairs],
                         other.diagnostics)]
  if analysis.ceg:
    lines.append(f"\nCEG over {reference} from the fitted laws (C_{reference} / C_group)")
    lines.append(aligned_table([["group", "quantity", "at", "estimate"]] + [
        [r.group, r.quantity, f"{r.at:.4g}",
         _or_not_determined(dataclasses.asdict(r), interval_text(r.estimate, r.lower, r.upper)
                            + ("  scale-dependent" if r.scale_dependent else ""),
                            diags, profile)] for r in analysis.ceg]))
  if analysis.raw_ceg:
    lines.append(f"\nCEG over {reference} from raw curves at the target loss ({raw_combine})")
    lines.append(aligned_table([["group", "target loss", "C_group", f"C_{reference}", "CEG"]] + [
        [r.group, f"{r.target_loss:g}", f"{r.compute_group:.4g}", f"{r.compute_reference:.4g}",
         interval_text(r.ceg, r.lower, r.upper)] for r in analysis.raw_ceg]))
  if analysis.chinchilla:
    lines.append("\nChinchilla L(N, D) = E + A/N^alpha + B/D^beta on final points")
    lines.append(aligned_table([["group", "points", "E", "A", "B", "alpha", "beta"]] + [
        [r["group"], str(r["points"])] + [_row_interval(r, k)
                                          for k in ("E", "A", "B", "alpha", "beta")]
        for r in analysis.chinchilla]))
  if analysis.lr is not None:
    lines.append(lr_uncertainty_text(analysis.lr.to_json()))
  if analysis.raw_scale:
    lines.append(f"\nscale dependence without a law (raw envelopes, over {reference})")
    header, rows = raw_scale_rows(numbers["raw_scale"])
    lines.append(aligned_table([header] + rows))
    lines += [f"  {r.group}: {r.verdict}" for r in analysis.raw_scale]
  if analysis.rollout is not None or analysis.curvature:
    lines.append("\nrollout (largest size(s) held out, predicted) and residual curvature")
    header, rows = rollout_rows(numbers["rollout"], numbers["curvature"])
    lines.append(aligned_table([header] + rows))
  if table.excluded:
    lines.append(f"\nexcluded runs ({len(table.excluded)}):")
    lines += [f"  {e.run_id} ({e.group}): {e.reason}" for e in table.excluded]
  header, rows = plateau_rows(numbers["plateau"])
  if rows:
    lines.append(f"\nexcluded points on the unigram plateau ({len(rows)} runs):")
    lines += [f"  {r[0]} ({r[1]}): {r[2]} points, {r[3]}" for r in rows]
  lines += [f"note: {n}" for n in analysis.notes]
  lines += [f"{s[0].upper()}{s[1:]}." for s in analysis.requirements]
  return "\n".join(lines)
