"""Figures: matplotlib Figure objects built without pyplot (no global state, any backend).

Every function returns a `matplotlib.figure.Figure`; `save_figure` writes it as PNG and SVG.
Axes carry units (FLOPs, nats/token, years); CEG axes are logarithmic.
"""

from __future__ import annotations

import pathlib

from matplotlib.figure import Figure


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
