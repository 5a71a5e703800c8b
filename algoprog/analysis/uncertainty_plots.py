"""Figures of the uncertainty analyses (E profile, raw-envelope scale dependence, LR laws,
rollout), following algoprog.analysis.plots: matplotlib Figures built without pyplot, axes
with units, CEG axes logarithmic; save them with plots.save_figure.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from algoprog.analysis import plots


def _shade_plausible(ax, E: np.ndarray, plausible: np.ndarray) -> None:
  """Shades the plausible E range(s) on `ax` (grey)."""
  idx = np.flatnonzero(plausible)
  if not idx.size:
    return
  runs = np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1)
  for k, run in enumerate(runs):
    ax.axvspan(E[run[0]], E[run[-1]], color="0.85", zorder=0,
               label="plausible E" if k == 0 else None)


def e_profile(profile, derived=None, title: str = "") -> Figure:
  """Two panels over the E grid (algoprog.analysis.e_profile.EProfile): the profile
  deviance n ln(SSR/SSR_min) with the likelihood-ratio threshold, and a derived number
  (a DerivedProfile of the profile; default its first) with its bootstrap band, the
  plausible E shaded in both."""
  derived = derived if derived is not None else profile.derived[0]
  figure = Figure(figsize=(7, 6.5))
  top, bottom = figure.subplots(2, 1, sharex=True)
  _shade_plausible(top, profile.E, profile.plausible)
  top.plot(profile.E, profile.deviance, "-o", ms=3, color="k", label="profile deviance")
  top.axhline(profile.threshold, color=plots._DEPENDENT_COLOR, ls="--", lw=0.8,
              label=f"chi-square(1) {profile.level:.0%} threshold")
  top.axvline(profile.E_hat, color="0.4", lw=0.7, ls=":")
  top.set_ylabel("n ln(SSR(E) / SSR_min)")
  top.set_ylim(0, max(4 * profile.threshold, 1.0))
  top.legend(fontsize=7)
  _shade_plausible(bottom, derived.E, derived.plausible)
  color = plots._INVARIANT_COLOR
  bottom.plot(derived.E, derived.estimate, "-", color=color, label="estimate")
  if np.isfinite(derived.lower).any():
    bottom.fill_between(derived.E, derived.lower, derived.upper, color=color, alpha=0.25,
                        label=f"{profile.level:.0%} bootstrap interval")
  bottom.axhline(derived.null, color="0.5", lw=0.7)
  if derived.quantity == "ceg_at_compute":
    bottom.set_yscale("log")
    plots._log_ticks_as_multiples(bottom.yaxis)
    bottom.set_ylabel(f"CEG at {derived.at:.3g} FLOPs")
  else:
    bottom.set_ylabel("alpha_group - alpha_reference")
  bottom.set_xlabel("irreducible loss E (nats/token), fixed")
  bottom.legend(fontsize=7)
  figure.suptitle(title or f"{derived.group} vs {derived.reference}: derived number over E",
                  fontsize=10)
  figure.text(0.01, 0.005, derived.verdict, fontsize=6, wrap=True)
  return figure


def raw_scale(results: Sequence, title: str = "") -> Figure:
  """CEG along the raw envelopes against the reference's compute at each target loss, with
  bootstrap bands (algoprog.analysis.raw_scale.RawScale list); legend gives the slope."""
  figure = Figure(figsize=(7, 4.5))
  ax = figure.add_subplot()
  for r, color in zip(results, plots._colors(len(results))):
    s = r.slope
    ax.plot(r.compute_reference, r.ceg, color=color,
            label=f"{r.group} vs {r.reference}: slope {s.estimate:.3f} "
                  f"[{s.lower:.3f}, {s.upper:.3f}]")
    ax.fill_between(r.compute_reference, r.lower, r.upper, color=color, alpha=0.2)
  ax.axhline(1.0, color="0.5", lw=0.7)
  ax.set_xscale("log")
  ax.set_yscale("log")
  plots._log_ticks_as_multiples(ax.yaxis)
  ax.set_xlabel("reference compute at the target loss, C_ref(L) (FLOPs)")
  ax.set_ylabel("compute-equivalent gain C_ref(L) / C_group(L)")
  ax.set_title(title or "CEG along the raw frontier envelopes (no law, no E)")
  ax.legend(fontsize=7)
  return figure


def lr_laws(optima: Sequence, fitted: Mapping, title: str = "") -> Figure:
  """Optimum LR of each sweep (algoprog.analysis.lr.LrOptimum) against width with its
  interval (open ends drawn as arrows), and each group's law lr* = c * width**b."""
  figure = Figure(figsize=(7, 4.5))
  ax = figure.add_subplot()
  groups = sorted({o.group for o in optima})
  for group, color in zip(groups, plots._colors(len(groups))):
    mine = [o for o in optima if o.group == group]
    for o in mine:
      lo = o.lower if o.lower > 0 else o.lr / 3
      hi = o.upper if math.isfinite(o.upper) else o.lr * 3
      ax.plot([o.width, o.width], [lo, hi], color=color, lw=1.5, alpha=0.6)
      ax.plot(o.width, o.lr, "o" if not o.beyond_grid else "^", color=color, ms=4)
    law = fitted.get(group)
    if law is not None:
      w = np.geomspace(min(o.width for o in mine) / 1.5, max(o.width for o in mine) * 2)
      lr, lo, hi = law.predict(w)
      ax.plot(w, lr, "--", color=color, label=f"{group}: {law.c:.3g} w^{law.b:.2f} "
                                              f"[{law.b_lower:.2f}, {law.b_upper:.2f}]")
      ax.fill_between(w, lo, hi, color=color, alpha=0.12)
    else:
      ax.plot([], [], "o", color=color, label=f"{group} (no law)")
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.set_xlabel("model width d")
  ax.set_ylabel("optimum peak learning rate")
  ax.set_title(title or "LR optima per sweep and LR laws (triangles: beyond the grid)")
  ax.legend(fontsize=7)
  return figure


def rollout(result, title: str = "") -> Figure:
  """Held-out frontier points against the law fitted without them, with the predictive
  interval (algoprog.analysis.rollout.Rollout)."""
  figure = Figure(figsize=(7, 4.5))
  ax = figure.add_subplot()
  for g, color in zip(result.groups, plots._colors(len(result.groups))):
    if not g.compute.size:
      continue
    c = np.geomspace(g.compute.min() / 10, g.compute.max() * 1.5)
    law = g.train_law
    ax.plot(c, law.E + law.a * c**law.alpha, "--", color=color,
            label=f"{g.group}: law without {len(g.held_out)} held-out run(s)")
    ax.fill_between(g.compute, g.lower, g.upper, color=color, alpha=0.2)
    ax.plot(g.compute, g.observed, "o", ms=3, color=color)
    ax.axvline(g.train_max_compute, color=color, lw=0.6, ls=":")
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.set_xlabel("training compute (FLOPs)")
  ax.set_ylabel("validation loss (nats/token)")
  ax.set_title(title or f"Rollout: held-out frontier vs prediction ({result.level:.0%} "
               "interval)")
  ax.legend(fontsize=7)
  return figure
