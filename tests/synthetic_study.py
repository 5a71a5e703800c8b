"""Synthetic studies with known truth for the uncertainty tests (not a test module).

A group follows L(C) = E + a * C**alpha. Each run of width w ends at compute C_w on the
law, times a run-level lognormal factor (seed noise), and its curve lies above the law
before that (a run is compute-optimal only at its end), so its final point is on the law
and its earlier points are not: frontier="final" fits the law without bias.
"""

from __future__ import annotations

import numpy as np

from algoprog.analysis import laws, runs

MODERN = laws.PowerLaw(88.0, -0.094, 1.9)
LSTM = laws.PowerLaw(36.3, -0.065, 1.9)


def curve(law: laws.PowerLaw, final_compute: float, factor: float,
          num_points: int = 8) -> tuple[np.ndarray, np.ndarray]:
  """One run: computes from 1% to 100% of `final_compute`, losses on the law times
  (1 + 0.3 * ln(C_final/C)**2 / 20) (above it before the end) times `factor`."""
  c = final_compute * np.geomspace(0.01, 1.0, num_points)
  loss = np.asarray(laws.loss_at_compute(law, c)) * (1 + 0.015 * np.log(final_compute / c)**2)
  return c, loss * factor


def study(group_laws: dict, finals: np.ndarray, noise: float, seed: int,
          seeds_per_width: int = 1, num_points: int = 8, widths=None) -> runs.RunTable:
  """A RunTable: for every group and final compute, `seeds_per_width` runs with run-level
  relative noise `noise` (lognormal). run_info records label, width, seed."""
  rng = np.random.default_rng(seed)
  rows, info = [], {}
  widths = widths if widths is not None else [16 * (i + 1) for i in range(len(finals))]
  for group, law in group_laws.items():
    for width, final in zip(widths, finals):
      for s in range(seeds_per_width):
        run_id = f"{group}_w{width}_s{s}"
        c, l = curve(law, final, float(np.exp(noise * rng.normal())), num_points)
        rows += [(run_id, group, ci, li, 1e3 * width**2) for ci, li in zip(c, l)]
        info[run_id] = {"label": group, "width": width, "seed": 100 + s,
                        "status": "completed", "final_validation_loss": float(l[-1]),
                        "learning_rate": 1e-3, "tokens_planned": 1, "stage": "full"}
  run_id, group, compute, loss, params = zip(*rows)
  table = runs.make_table(run_id, group, compute, loss, params=params)
  import dataclasses
  return dataclasses.replace(table, run_info=info)
