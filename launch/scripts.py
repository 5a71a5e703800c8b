"""Console scripts: `algoprog-train ...` is `python -m launch.train ...`, and so on for
every launcher (pyproject.toml's [project.scripts] point here)."""

from __future__ import annotations

import importlib
import sys

from absl import app

from algoprog.training import console


def _run(launcher: str) -> None:
  module = importlib.import_module(f"launch.{launcher}")  # Defines its flags on import.
  # absl's --help prints the __main__ module's docstring: the launcher's, not this one's.
  sys.modules["__main__"].__doc__ = module.__doc__
  app.run(module.main, flags_parser=console.parse_flags_or_exit)


def train() -> None:
  _run("train")


def sweep() -> None:
  _run("sweep")


def reproduce() -> None:
  _run("reproduce")


def fit() -> None:
  _run("fit")


def account() -> None:
  _run("account")


def flops() -> None:
  _run("flops")


def corpus() -> None:
  _run("corpus")


def aot() -> None:
  _run("aot")


def plan() -> None:
  _run("plan")
