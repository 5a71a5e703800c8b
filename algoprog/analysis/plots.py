"""Figures: matplotlib Figure objects built without pyplot (no global state, any backend).

Every function returns a `matplotlib.figure.Figure`; `save_figure` writes it as PNG and SVG.
Axes carry units (FLOPs, nats/token, years); CEG axes are logarithmic.
"""

from __future__ import annotations

import math
import pathlib

from matplotlib.figure import Figure

from algoprog.analysis.report import multiple


def save_figure(figure: Figure, path_stem: str | pathlib.Path,
                formats: tuple[str, ...] = ("png", "svg")) -> list[pathlib.Path]:
  """Writes `figure` to `path_stem`.<format> for each format; returns the paths."""
  paths = []
  for fmt in formats:
    path = pathlib.Path(f"{path_stem}.{fmt}")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=150, bbox_inches="tight")
    paths.append(path)
  return paths


# ----------------------------------------------------------------------------------------
# Algorithmic-progress accounting figures (algoprog.analysis.account).

_DEPENDENT_COLOR = "#c0392b"
_INVARIANT_COLOR = "#2c7fb8"


def _log_ticks_as_multiples(axis) -> None:
  """Labels a log CEG axis 1x, 10x, 100x, ... (CEG is a multiplier, not a count)."""
  from matplotlib.ticker import FuncFormatter
  axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}x" if v >= 1 else f"{v:g}x"))


def innovation_bars(innovations, decomposition, measured: dict | None = None,
                    title: str = "") -> Figure:
  """Horizontal bars of each innovation's CEG (log axis) in one decomposition.

  Scale-dependent bars are red and hatched (their CEG depends on the compute of
  `decomposition`); `measured` (name -> CEG before the interaction normalisation) adds an
  open marker at the raw ablation value.
  """
  import numpy as np
  figure = Figure(figsize=(8, 0.45 * len(innovations) + 1.6))
  ax = figure.add_subplot()
  names = [i.name for i in innovations]
  values = [float(np.asarray(decomposition.components[n])) for n in names]
  rows = np.arange(len(names))[::-1]
  for row, innovation, value in zip(rows, innovations, values):
    dependent = innovation.scale_dependent
    ax.barh(row, value - 1.0, left=1.0, height=0.7,
            color=_DEPENDENT_COLOR if dependent else _INVARIANT_COLOR,
            hatch="//" if dependent else None, edgecolor="white")
    raw = (measured or {}).get(innovation.name)
    text = f"{value:,.3g}x" + ("" if raw is None else f" (measured {float(raw):.3g}x)")
    ax.text(max(value, float(raw or 0.0)) * 1.12, row, text, va="center", fontsize=9)
  if measured:
    raw = [(row, measured[n]) for row, n in zip(rows, names) if n in measured]
    ax.scatter([v for _, v in raw], [r for r, _ in raw], marker="o", facecolors="none",
               edgecolors="black", zorder=3, label="measured ablation (before normalisation)")
  ax.set_xscale("log")
  ax.set_xlim(1.0, max(values + [2.0]) * 4)
  _log_ticks_as_multiples(ax.xaxis)
  ax.set_yticks(rows, [i.label for i in innovations])
  ax.set_xlabel("compute-equivalent gain (x, log scale)")
  compute = float(np.asarray(decomposition.compute).ravel()[0])
  ax.set_title(title or f"CEG per innovation at {compute:.3g} FLOPs")
  from matplotlib.patches import Patch
  handles = [Patch(color=_DEPENDENT_COLOR, hatch="//", label="scale-dependent"),
             Patch(color=_INVARIANT_COLOR, label="scale-invariant")]
  if measured:
    handles += ax.get_legend_handles_labels()[0]
  ax.legend(handles=handles, loc="lower right", fontsize=8)
  ax.grid(axis="x", which="major", alpha=0.3)
  return figure


def gains_vs_compute(innovations, compute, marks: dict | None = None,
                     sampled_innovations=None, level: float = 0.95) -> Figure:
  """CEG of each innovation vs compute (log-log): flat lines are scale-invariant.

  Args:
    innovations: algoprog.analysis.account.Innovation sequence (point estimates).
    compute: FLOPs grid [T].
    marks: label -> FLOPs drawn as vertical lines (e.g. the 2023 frontier).
    sampled_innovations: the same innovations with [S] samples; adds `level` bands.
  """
  import jax
  import numpy as np
  from algoprog.analysis import account
  figure = Figure(figsize=(8, 5))
  ax = figure.add_subplot()
  colors = _colors(len(innovations))
  for color, innovation in zip(colors, innovations):
    ceg = np.asarray(account.gain_at(innovation.gain, compute))
    ax.plot(compute, ceg, color=color, lw=2 if innovation.scale_dependent else 1.3,
            ls="-" if innovation.scale_dependent else "--", label=innovation.label)
  if sampled_innovations is not None:
    tail = 50.0 * (1.0 - level)
    for color, innovation in zip(colors, sampled_innovations):
      samples = np.asarray(jax.vmap(lambda c: account.gain_at(innovation.gain, c))(
          np.asarray(compute)))
      if samples.ndim != 2:  # this innovation carries no samples.
        continue
      lower, upper = np.nanpercentile(samples, [tail, 100 - tail], axis=1)
      ax.fill_between(compute, lower, upper, color=color, alpha=0.15, lw=0)
  for label, flops in (marks or {}).items():
    ax.axvline(flops, color="gray", lw=0.8, ls=":")
    ax.text(flops, 0.02, f"{label} ", rotation=90, va="bottom", ha="right", fontsize=8,
            color="gray", transform=ax.get_xaxis_transform())
  ax.set_xscale("log")
  ax.set_yscale("log")
  _log_ticks_as_multiples(ax.yaxis)
  ax.set_xlabel("training compute of the new algorithm (FLOPs)")
  ax.set_ylabel("compute-equivalent gain (x)")
  ax.set_title("CEG vs compute: scale-dependent (solid) vs scale-invariant (dashed)")
  ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
  ax.grid(which="major", alpha=0.3)
  return figure


def _steps(years, values):
  """(years + [last + 1], values + [last value]): a step plot shows the final year too."""
  import numpy as np
  years, values = np.asarray(years), np.asarray(values)
  return np.append(years, years[-1] + 1), np.concatenate([values, values[-1:]])


def _colors(n: int) -> list:
  from matplotlib import colormaps
  cmap = colormaps["tab10" if n <= 10 else "tab20"]
  return [cmap(i % cmap.N) for i in range(n)]


def progress_by_year(innovations, frontier, fixed: dict, frontier_band=None,
                     level: float = 0.95) -> Figure:
  """Cumulative CEG by year: (left) stacked by innovation at the moving frontier, (right)
  totals at the frontier and at fixed compute levels, with annual growth in the legend.

  Args:
    innovations: the innovations, in stacking order.
    frontier: account.YearlyProgress at the frontier.
    fixed: FLOPs -> account.YearlyProgress at that fixed compute.
    frontier_band: optional account.YearlyProgress of samples; adds a `level` band.
  """
  import numpy as np
  figure = Figure(figsize=(13, 5), layout="constrained")
  stacked, lines = figure.subplots(1, 2)
  years = np.asarray(frontier.years)
  log_bottom = np.zeros(len(years) + 1)
  for color, innovation in zip(_colors(len(innovations)), innovations):
    steps, ceg = _steps(years, frontier.components[innovation.name])
    log_top = log_bottom + np.log10(ceg)
    stacked.fill_between(steps, 10 ** log_bottom, 10 ** log_top, step="post", color=color,
                         alpha=0.85, lw=0, hatch="//" if innovation.scale_dependent else None,
                         label=innovation.label)
    log_bottom = log_top
  stacked.step(*_steps(years, frontier.total), where="post", color="black", lw=1.2)
  stacked.set_title("cumulative CEG at the frontier, by innovation (hatched: scale-dependent)",
                    fontsize=10)
  stacked.legend(fontsize=7, loc="upper left")
  final = len(years) - 1
  growth_label = f"frontier ({float(np.asarray(frontier.annual_growth)[final]):.2f}x/yr)"
  lines.step(*_steps(years, frontier.total), where="post", color="black", lw=2,
             label=growth_label)
  if frontier_band is not None:
    tail = 50.0 * (1.0 - level)
    lower, upper = np.nanpercentile(np.asarray(frontier_band.total), [tail, 100 - tail], axis=1)
    steps, lower = _steps(years, lower)
    lines.fill_between(steps, lower, _steps(years, upper)[1], step="post", color="black",
                       alpha=0.15, lw=0, label=f"{level:.0%} interval")
  for color, (flops, progress) in zip(_colors(len(fixed)), sorted(fixed.items())):
    growth = float(np.asarray(progress.annual_growth)[final])
    lines.step(*_steps(years, progress.total), where="post", color=color, ls="--",
               label=f"fixed {flops:.0e} FLOPs ({growth:.2f}x/yr)")
  lines.set_title(f"cumulative CEG at the frontier vs at fixed compute "
                  f"(growth over {years[0]}-{years[final]})", fontsize=10)
  lines.legend(fontsize=8, loc="upper left")
  for ax in (stacked, lines):
    ax.set_yscale("log")
    _log_ticks_as_multiples(ax.yaxis)
    ax.set_xlabel("year")
    ax.set_ylabel("cumulative compute-equivalent gain (x)")
    ax.grid(which="major", alpha=0.3)
  return figure


def reference_dependence(progress: dict) -> Figure:
  """Cumulative CEG at the frontier by year relative to each reference algorithm.

  Args:
    progress: reference label -> account.YearlyProgress (of the innovations it lacks).
  """
  import numpy as np
  figure = Figure(figsize=(8, 5))
  ax = figure.add_subplot()
  for color, (label, p) in zip(_colors(len(progress)), progress.items()):
    total = np.asarray(p.total)
    final = float(total[-1])
    growth = float(np.asarray(p.annual_growth)[-1])
    ax.step(*_steps(p.years, total), where="post", color=color, lw=2,
            label=f"relative to {label}: {multiple(final)} in {int(p.years[-1])} "
                  f"({growth:.2f}x/yr)")
  ax.set_yscale("log")
  _log_ticks_as_multiples(ax.yaxis)
  ax.set_xlabel("year")
  ax.set_ylabel("cumulative compute-equivalent gain at the frontier (x)")
  ax.set_title("algorithmic progress depends on the reference algorithm")
  ax.legend(fontsize=8, loc="upper left")
  ax.grid(which="major", alpha=0.3)
  return figure


def kaplan_vs_chinchilla(law, allocation, compute, marks: dict | None = None) -> Figure:
  """(left) Reducible loss vs compute of Kaplan's and the compute-optimal allocation under
  the Chinchilla law L(N, D); (right) the multiplier M(C) between them.

  Args:
    law: algoprog.analysis.laws.ChinchillaLaw; allocation: account.KaplanAllocation.
    compute: FLOPs grid [T]; marks: label -> FLOPs marked on M(C).
  """
  import numpy as np
  from algoprog.analysis import account, laws as laws_lib
  figure = Figure(figsize=(12, 4.8), layout="constrained")
  losses, multiplier = figure.subplots(1, 2)
  compute = np.asarray(compute, dtype=float)
  kaplan = np.asarray(account.kaplan_reducible_loss(law, allocation, compute))
  frontier = laws_lib.chinchilla_frontier(law, reducible=True)
  optimal = np.asarray(laws_lib.loss_at_compute(frontier, compute))
  losses.plot(compute, kaplan, color=_DEPENDENT_COLOR, lw=2,
              label="Kaplan allocation N = %.3g C^%.2f" % (allocation.coefficient,
                                                          allocation.exponent))
  losses.plot(compute, optimal, color=_INVARIANT_COLOR, lw=2, ls="--",
              label="Chinchilla-optimal allocation")
  losses.set_yscale("log")
  losses.set_ylabel("reducible loss L - E (nats/token)")
  losses.set_title("Chinchilla law: reducible loss by allocation")
  losses.legend(fontsize=8)
  m = np.asarray(account.chinchilla_multiplier(law, allocation, compute))
  multiplier.plot(compute, m, color="black", lw=2)
  for label, flops in (marks or {}).items():
    value = float(account.chinchilla_multiplier(law, allocation, flops))
    multiplier.scatter([flops], [value], color=_DEPENDENT_COLOR, zorder=3)
    multiplier.annotate(f"{label}: {value:.3g}x", (flops, value), textcoords="offset points",
                        xytext=(-8, 6), ha="right", fontsize=8)
  multiplier.set_yscale("log")
  _log_ticks_as_multiples(multiplier.yaxis)
  multiplier.set_ylabel("Kaplan -> Chinchilla multiplier M(C) (x)")
  multiplier.set_title("compute saved by rebalancing parameters vs tokens")
  for ax in (losses, multiplier):
    ax.set_xscale("log")
    ax.set_xlabel("training compute (FLOPs)")
    ax.grid(which="major", alpha=0.3)
  return figure


def tornado(rows, metric_label: str = "total CEG", log_scale: bool = True) -> Figure:
  """Tornado chart of account.sensitivity rows: the metric at each input's low and high
  value (a CEG on a log axis; `log_scale=False` for shares), widest swing on top."""
  import numpy as np
  figure = Figure(figsize=(8, 0.45 * len(rows) + 1.6))
  ax = figure.add_subplot()
  positions = np.arange(len(rows))[::-1]
  show = multiple if log_scale else "{:.3g}".format
  for y, row in zip(positions, rows):
    if math.isclose(row.at_low, row.base, rel_tol=1e-6) and math.isclose(
        row.at_high, row.base, rel_tol=1e-6):
      ax.text(row.base, y, "  no effect", va="center", fontsize=7, color="gray")
      continue
    for value, setting, color in ((row.at_low, row.low_value, _INVARIANT_COLOR),
                                  (row.at_high, row.high_value, _DEPENDENT_COLOR)):
      ax.barh(y, value - row.base, left=row.base, color=color, height=0.6)
      ax.text(value, y, f" {setting:g}: {show(value)} ", va="center", fontsize=7,
              ha="left" if value >= row.base else "right")
  base = rows[0].base if rows else 1.0
  ax.axvline(base, color="black", lw=1)
  ax.set_ylim(-0.7, len(rows) - 0.3)
  values = [v for r in rows for v in (r.at_low, r.at_high, r.base)] or [1.0]
  if log_scale:
    ax.set_xlim(min(values) / 6, max(values) * 6)
    ax.set_xscale("log")
    _log_ticks_as_multiples(ax.xaxis)
  ax.set_yticks(positions, [f"{r.parameter} ({r.base_value:g})" for r in rows], fontsize=8)
  ax.set_xlabel(f"{metric_label} ({'x, log scale; ' if log_scale else ''}line: base "
                f"{base:,.4g})")
  ax.set_title(f"sensitivity of {metric_label}: low (blue) and high (red) input values")
  ax.grid(axis="x", which="major", alpha=0.3)
  return figure


# ----------------------------------------------------------------------------------------
# Scaling-law fit figures (algoprog.analysis.fit, algoprog.analysis.ceg).


def loss_vs_compute(table, fit=None, target_losses=(), raw_cegs=(), title: str = "") -> Figure:
  """Validation loss vs cumulative training compute, log-log, one colour per group.

  Draws every run's curve (thin), the fit points of each group's frontier (dots), the
  fitted law L(C) = E + a*C**alpha extended a decade past the data (dashed, `fit` an
  algoprog.analysis.fit.PowerLawFit), horizontal lines at `target_losses` and, for each
  algoprog.analysis.ceg.RawCeg in `raw_cegs`, the two crossings joined by an arrow labelled with the
  CEG (C_reference / C_group).
  """
  import numpy as np
  figure = Figure(figsize=(8, 5.5))
  ax = figure.add_subplot()
  groups = list(fit.groups) if fit is not None else table.groups
  groups += [g for g in table.groups if g not in groups]
  colors = dict(zip(groups, _colors(len(groups))))
  for group in groups:
    rows = table.group == group
    for i, run_id in enumerate(dict.fromkeys(table.run_id[rows].tolist())):
      run = rows & (table.run_id == run_id)
      ax.plot(table.compute[run], table.loss[run], color=colors[group],
              alpha=0.3 if fit is not None else 0.7, lw=0.8,
              label=group if fit is None and i == 0 else None)
  if fit is not None:
    for g, group in enumerate(fit.groups):
      on = fit.points_weight[g] > 0
      ax.plot(fit.points_compute[g][on], fit.points_loss[g][on], "o", ms=3,
              color=colors[group], label=f"{group} {fit.frontier} points")
      law = fit.for_group(group)
      c = np.geomspace(fit.points_compute[g][on].min(), fit.points_compute[g][on].max() * 10)
      ax.plot(c, law.E + law.a * c**law.alpha, "--", color=colors[group],
              label=f"{group}: {law.E:.3g} + {law.a:.3g} C^{law.alpha:.3f}")
  for target in target_losses:
    ax.axhline(target, color="0.5", lw=0.7, ls=":")
  for row in raw_cegs:
    ax.annotate("", xy=(row.compute_group, row.target_loss),
                xytext=(row.compute_reference, row.target_loss),
                arrowprops=dict(arrowstyle="->", color=colors.get(row.group, "k")))
    ax.text(np.sqrt(row.compute_group * row.compute_reference), row.target_loss * 1.01,
            f"{row.group} vs {row.reference}: {row.ceg:.3g}x", ha="center", va="bottom",
            fontsize=8, color=colors.get(row.group, "k"))
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.set_xlabel("training compute (FLOPs)")
  ax.set_ylabel("validation loss (nats/token)")
  ax.set_title(title or "loss vs compute: curves, frontier, fitted laws")
  if ax.get_legend_handles_labels()[0]:
    ax.legend(fontsize=7)
  return figure


def ceg_vs_compute(bands, title: str = "") -> Figure:
  """CEG(C) of groups over a reference with bootstrap bands (algoprog.analysis.ceg.CegBand list)."""
  figure = Figure(figsize=(7, 4.5))
  ax = figure.add_subplot()
  for band, color in zip(bands, _colors(len(bands))):
    ax.plot(band.at, band.estimate, color=color, label=f"{band.group} vs {band.reference}")
    if band.lower is not None:
      ax.fill_between(band.at, band.lower, band.upper, color=color, alpha=0.2,
                      label=f"{band.level:.0%} band")
  ax.axhline(1.0, color="0.5", lw=0.7)
  ax.set_xscale("log")
  ax.set_yscale("log")
  _log_ticks_as_multiples(ax.yaxis)
  ax.set_xlabel("training compute of the group (FLOPs)")
  ax.set_ylabel("compute-equivalent gain")
  ax.set_title(title or "CEG vs compute (fitted laws)")
  ax.legend(fontsize=8)
  return figure


# ----------------------------------------------------------------------------------------
# Study report figures (algoprog.reproduce).


def ablation_cegs(rows, published: dict | None = None, title: str = "") -> Figure:
  """Each ablation's measured CEG (log axis) with its seed spread (min-max of seed-paired
  ratios), lower bounds as open arrows, and the study's published value as a cross.

  rows: algoprog.reproduce.ablation_row dicts.
  """
  import numpy as np
  published = published or {}
  figure = Figure(figsize=(8, 0.45 * len(rows) + 1.6))
  ax = figure.add_subplot()
  positions = np.arange(len(rows))[::-1]
  for y, row in zip(positions, rows):
    if row.get("status") == "ok":
      ax.plot([row["seed_min"], row["seed_max"]], [y, y], color=_INVARIANT_COLOR, lw=3,
              alpha=0.4, solid_capstyle="butt")
      ax.plot(row["ceg"], y, "o", color=_INVARIANT_COLOR,
              label="measured (seed spread)" if y == positions[0] else None)
    elif "ceg_lower_bound" in row:
      ax.annotate("", xy=(row["ceg_lower_bound"] * 1.6, y), xytext=(row["ceg_lower_bound"], y),
                  arrowprops=dict(arrowstyle="->", color=_DEPENDENT_COLOR))
      ax.plot(row["ceg_lower_bound"], y, "|", color=_DEPENDENT_COLOR, ms=10)
    if row["ablation"] in published:
      ax.plot(published[row["ablation"]], y, "x", color="k", label="study (published)"
              if row["ablation"] == next(r["ablation"] for r in rows
                                         if r["ablation"] in published) else None)
  ax.axvline(1.0, color="0.5", lw=0.7)
  ax.set_yticks(positions)
  ax.set_yticklabels([f"{r['ablation']}\n({r['variant']})" for r in rows], fontsize=7)
  ax.set_xscale("log")
  _log_ticks_as_multiples(ax.xaxis)
  ax.set_xlabel("CEG of the reference over the variant (C_variant / C_reference)")
  ax.set_title(title or "Ablations: compute-equivalent gain of each component")
  handles, labels = ax.get_legend_handles_labels()
  if handles:
    ax.legend(fontsize=7, loc="lower right")
  figure.set_layout_engine("constrained")
  return figure


def lr_sweeps(curves: dict, title: str = "") -> Figure:
  """Final validation loss vs learning rate of each LR sweep ("label/width" -> the
  lr_choices.json entry), the chosen rate circled."""
  figure = Figure(figsize=(7, 4.5))
  ax = figure.add_subplot()
  for (key, entry), color in zip(sorted(curves.items()), _colors(len(curves))):
    points = sorted((p["learning_rate"], p["final_validation_loss"]) for p in entry["curve"]
                    if p["final_validation_loss"] is not None
                    and math.isfinite(p["final_validation_loss"]))
    if not points:
      continue
    ax.plot(*zip(*points), "-o", ms=3, color=color, label=key)
    chosen = entry.get("chosen_learning_rate")
    for lr, loss in points:
      if lr == chosen:
        ax.plot(lr, loss, "o", ms=9, mfc="none", color=color)
  ax.set_xscale("log")
  ax.set_xlabel("peak learning rate")
  ax.set_ylabel("final validation loss (nats/token)")
  ax.set_title(title or "Learning-rate sweeps (reduced budget); circled: chosen")
  ax.legend(fontsize=6, ncol=2)
  return figure
