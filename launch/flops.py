r"""Analytical vs compiler FLOPs, and the budget planner.

  python -m launch.flops                      # the table: every preset x widths 32..256
  python -m launch.flops --widths=32,64 --variants=false
  python -m launch.flops --mode=plan --budget=1e17 --tokens_per_param=40
  python -m launch.flops --mode=plan --width=128 --tokens=2e8

The table compiles the real train step (algoprog.training.train.make_train_step, microbatches=1)
at batch 2 and 4 and reads XLA's cost analysis (flops + transcendentals). FLOPs are
linear in the batch from batch 2 on (batch 1 lets XLA squeeze a dimension and differs),
so the difference of the two is the per-token cost (independent of the batch) and the
intercept is the per-step cost: the optimizer update, which the analytical count lists
separately. Recurrent presets are skipped: XLA counts a scan body once (see
tests/test_flops.py for the unrolled LSTM cross-check).

The plan uses the trainer's own model: depth and heads by its width rule (where the preset
derives them), a width the trainer would refuse is refused (one `error:` line naming the
flag), and the printed plan is that of the resolved config at the planned width.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import sys

import ml_collections
from absl import app, flags

from algoprog.training import config as config_lib, console, flops, train

_MODE = flags.DEFINE_enum("mode", "table", ["table", "plan"], "What to print.")
_CONFIGS = flags.DEFINE_string("configs", "configs", "Folder of preset *.py files (a "
                               "relative one not in the working directory: the shipped one).")
_WIDTHS = console.define_integer_list("widths", [32, 48, 64, 96, 128, 160, 192, 224, 256],
                                      "Widths of the table, a comma list.")
_VOCAB = flags.DEFINE_integer("vocab_size", 50_257, "Vocabulary (GPT-2's by default).")
_LENGTH = flags.DEFINE_integer("sequence_length", 128, "Tokens per sequence.")
_ONLY = flags.DEFINE_list("presets", [], "table: only these presets (default all).")
_VARIANTS = flags.DEFINE_bool("variants", False, "Also one-component switches of each "
                              "Transformer preset (FFN, norm, placement, positions).")
_BUDGET = flags.DEFINE_float("budget", None, "plan: compute budget in FLOPs.")
_TPP = flags.DEFINE_float("tokens_per_param", 20.0, "plan: tokens per total parameter.")
_WIDTH = flags.DEFINE_integer("width", None, "plan: width (instead of --budget).")
_TOKENS = flags.DEFINE_float("tokens", None, "plan: training tokens with --width "
                             "(default tokens_per_param * params).")
_PRESET = flags.DEFINE_string("preset", "modern", "plan: preset name in --configs.")

VARIANTS = {  # One field switched at a time: every component the closed forms count.
    "gelu": {"ffn": "gelu"}, "relu": {"ffn": "relu"}, "layernorm": {"norm": "layernorm"},
    "post": {"norm_placement": "post"}, "learned": {"positions": "learned"},
    "sinusoidal": {"positions": "sinusoidal"}, "untied": {"tie_embeddings": False},
}


def load_presets(folder: str | pathlib.Path) -> dict[str, ml_collections.ConfigDict]:
  """{name: get_config()} for every configs/*.py that configures a model (sorted); a
  relative folder missing from the working directory is the shipped one
  (config.find_config_file)."""
  presets = {}
  folder = config_lib.find_config_file(folder)
  if not folder.is_dir():
    raise config_lib.ConfigError(f"--configs: expected a folder of preset *.py files; got "
                                 f"{folder}")
  for path in sorted(folder.glob("*.py")):
    config = config_lib.load_config_file(path)
    if config is not None and "model" in config:  # Not e.g. the accounting config.
      presets[path.stem] = config
  return presets


def with_width(config: ml_collections.ConfigDict, width: int, sequence_length: int
               ) -> ml_collections.ConfigDict:
  """A resolved copy at `width` (depth/heads re-derived), microbatches 1."""
  c = ml_collections.ConfigDict(config.to_dict())
  c.model.width = width
  c.data.sequence_length = sequence_length
  c.model.max_sequence_length = 0
  c.train.microbatches = 1
  return config_lib.resolve(c)


xla_train_step_flops = train.xla_train_step_flops  # Kept for callers of launch.flops.


@dataclasses.dataclass
class Comparison:
  """One row of the table: FLOPs per token and per step, analytical and XLA."""
  name: str
  width: int
  params_total: int
  analytical_per_token: float
  xla_per_token: float
  analytical_per_step: float  # Optimizer update.
  xla_per_step: float  # Batch-independent intercept of XLA's count.
  six_n_per_token: float
  chinchilla_per_token: float

  @property
  def ratio(self) -> float:
    return self.analytical_per_token / self.xla_per_token


def compare(name: str, config: ml_collections.ConfigDict, vocab_size: int) -> Comparison:
  """Analytical vs XLA for a resolved config (microbatches 1)."""
  length = config.data.sequence_length
  at2, at4 = (xla_train_step_flops(config, vocab_size, b) for b in (2, 4))
  per_token = (at4 - at2) / (2 * length)
  total, _ = flops.param_counts(config.model, vocab_size)
  return Comparison(
      name=name, width=config.model.width, params_total=int(total),
      analytical_per_token=float(flops.training_flops_per_token(config.model, vocab_size,
                                                                length)),
      xla_per_token=per_token,
      analytical_per_step=float(flops.optimizer_flops_per_step(config.optim, total)),
      xla_per_step=at2 - 2 * length * per_token,
      six_n_per_token=float(flops.six_n_flops_per_token(total)),
      chinchilla_per_token=float(flops.chinchilla_flops_per_token(config.model, vocab_size,
                                                                  length)))


def cost_key(config: ml_collections.ConfigDict) -> str:
  """What the compiled step's FLOPs depend on: the model and the optimizer's terms."""
  o = config.optim
  return json.dumps([config.model.to_dict(), o.name, bool(o.weight_decay),
                     bool(o.grad_clip_norm), config.data.sequence_length], sort_keys=True)


def table_configs(presets: dict, variants: bool) -> dict[str, ml_collections.ConfigDict]:
  """Presets whose model builds (Transformers), plus one-switch variants of each."""
  out = {}
  for name, c in presets.items():
    if c.model.kind != "transformer":
      continue
    out[name] = c
    for suffix, fields in (VARIANTS.items() if variants else ()):
      v = ml_collections.ConfigDict(c.to_dict())
      if all(v.model[k] == x for k, x in fields.items()):
        continue
      v.model.update(fields)
      out[f"{name}+{suffix}"] = v
  return out


def print_table(rows: list[Comparison]) -> None:
  print(f"{'config':22s} {'width':>5s} {'params':>11s} {'analytic/tok':>13s} "
        f"{'XLA/tok':>13s} {'ratio':>7s} {'6N/tok':>8s} {'Chin/tok':>8s} "
        f"{'optim/step':>11s} {'XLA/step':>11s}")
  for r in rows:
    print(f"{r.name:22s} {r.width:5d} {r.params_total:11,d} {r.analytical_per_token:13.6g} "
          f"{r.xla_per_token:13.6g} {r.ratio:7.4f} "
          f"{r.six_n_per_token / r.xla_per_token:8.4f} "
          f"{r.chinchilla_per_token / r.xla_per_token:8.4f} "
          f"{r.analytical_per_step:11.4g} {r.xla_per_step:11.4g}")
  worst = max(rows, key=lambda r: abs(r.ratio - 1))
  print(f"largest disagreement: {worst.name} width {worst.width}: analytical/XLA = "
        f"{worst.ratio:.4f} ({100 * (worst.ratio - 1):+.2f}%)")


class PlanError(ValueError):
  """A plan flag cannot give a plan the trainer would run; the message names the flag."""


def _positive(flag: str, value: float | None, what: str) -> None:
  if value is not None and not (math.isfinite(value) and value > 0):
    raise PlanError(f"{flag}: expected a positive {what}; got {value:g}")


def plan(config: ml_collections.ConfigDict, vocab_size: int, length: int, *,
         width: int | None = None, tokens: float | None = None,
         budget: float | None = None, tokens_per_param: float = 20.0
         ) -> tuple[dict[str, float], float | None]:
  """(plan, continuous width or None) of a preset: at `width` (trained on `tokens`, or
  tokens_per_param x its parameters), or the width spending `budget` FLOPs at
  tokens_per_param (rounded to a multiple of model.head_dim; LSTM: a whole width).

  The width is resolved as the trainer resolves it (config.resolve at that width), so the
  depth, heads and parameters are the run's.

  Raises:
    PlanError: a non-positive or missing budget/width/tokens/vocabulary, both --width and
      --budget, or a width the trainer would not build (the config error, naming --width).
  """
  if (width is None) == (budget is None):
    raise PlanError("--width, --budget: --mode=plan needs exactly one of them")
  _positive("--budget", budget, "number of FLOPs")
  _positive("--tokens", tokens, "number of training tokens")
  if tokens is None:  # Used for the budget's width, or for the tokens at --width.
    _positive("--tokens_per_param", tokens_per_param, "number of tokens per parameter")
  _positive("--vocab_size", vocab_size, "vocabulary size")
  _positive("--sequence_length", length, "number of tokens per sequence")
  if width is not None and width <= 0:
    raise PlanError(f"--width: expected a positive width; got {width}")
  if budget is not None and tokens is not None:
    raise PlanError("--tokens: only with --width (a --budget plan derives the tokens)")
  continuous = None
  if budget is not None:
    family = config_lib.model_spec(_at_length(config, length))  # Depth follows the width.
    continuous = float(flops.width_for_budget(family, vocab_size, length, budget,
                                              tokens_per_param))
    snap = family.head_dim if family.kind != "lstm" else 1
    width = max(snap, round(continuous / snap) * snap)
  try:
    resolved = with_width(config, width, length)
  except config_lib.ConfigError as e:
    raise PlanError(f"--width={width}: the trainer would not build it: {e}") from e
  model = config_lib.model_spec(resolved)
  if budget is not None:
    tokens = budget / flops.training_flops_per_token(model, vocab_size, length)
  if tokens is None:
    result = flops.plan_for_width(model, vocab_size, length, width,
                                  tokens_per_param=tokens_per_param)
  else:
    result = flops.plan_for_width(model, vocab_size, length, width, tokens=tokens)
  return {key: float(value) for key, value in result.items()}, continuous


def _at_length(config: ml_collections.ConfigDict, length: int) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict(config.to_dict())
  c.data.sequence_length = length
  c.model.max_sequence_length = 0
  return c


def print_plan(config: ml_collections.ConfigDict, vocab_size: int, length: int) -> None:
  result, continuous = plan(config, vocab_size, length, width=_WIDTH.value,
                            tokens=_TOKENS.value, budget=_BUDGET.value,
                            tokens_per_param=_TPP.value)
  if continuous is not None:
    print(f"continuous width at {_TPP.value:g} tokens/param: {continuous:.2f}")
  for key, value in result.items():
    print(f"{key:20s} {value:.6g}")


def main(argv):
  del argv
  try:
    presets = load_presets(_CONFIGS.value)
  except config_lib.ConfigError as e:
    sys.exit(f"error: {e}")
  unknown = [n for n in _ONLY.value if n not in presets]
  if unknown:
    sys.exit(f"error: --presets: expected names from {', '.join(presets)}; got "
             f"{unknown[0]!r}")
  if _ONLY.value and _MODE.value == "table":
    presets = {n: c for n, c in presets.items() if n in _ONLY.value}
  length = _LENGTH.value
  if _MODE.value == "plan":
    if _PRESET.value not in presets:
      sys.exit(f"error: --preset: expected one of {', '.join(presets)}; got {_PRESET.value!r}")
    try:  # Depth and heads as the preset sets them: derived ones follow the planned width.
      print_plan(presets[_PRESET.value], _VOCAB.value, length)
    except PlanError as e:
      sys.exit(f"error: {e}")
    return
  skipped = [n for n, c in presets.items() if c.model.kind != "transformer"]
  if skipped:
    print(f"skipped (recurrent; XLA counts a scan body once): {', '.join(skipped)}")
  rows, seen = [], {}
  for name, c in table_configs(presets, _VARIANTS.value).items():
    for width in _WIDTHS.value:
      resolved = with_width(c, width, length)
      key = cost_key(resolved)
      if key in seen:  # Same model and optimizer terms (e.g. a schedule ablation).
        rows.append(dataclasses.replace(seen[key], name=name))
        continue
      row = seen[key] = compare(name, resolved, _VOCAB.value)
      print(f"  {name} {width}: ratio {row.ratio:.4f}", flush=True)
      rows.append(row)
  print(f"\nvocab {_VOCAB.value}, sequence length {length}; FLOPs per token unless "
        "marked per step; ratios are X / XLA per token")
  print_table(rows)


if __name__ == "__main__":
  app.run(main, flags_parser=console.parse_flags_or_exit)
