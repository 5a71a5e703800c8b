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
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import ml_collections
from absl import app, flags

from algoprog.training import compiled_flops, config as config_lib, flops

_MODE = flags.DEFINE_enum("mode", "table", ["table", "plan"], "What to print.")
_CONFIGS = flags.DEFINE_string("configs", "configs", "Folder of preset *.py files.")
_WIDTHS = flags.DEFINE_list("widths", ["32", "48", "64", "96", "128", "160", "192", "224",
                                       "256"], "Widths of the table.")
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
  """{name: get_config()} for every configs/*.py that configures a model (sorted)."""
  presets = {}
  for path in sorted(pathlib.Path(folder).glob("*.py")):
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


xla_train_step_flops = compiled_flops.xla_train_step_flops  # Kept for callers of launch.flops.


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


def print_plan(config: ml_collections.ConfigDict, vocab_size: int, length: int) -> None:
  model = config.model
  if _WIDTH.value is not None:
    if _TOKENS.value is None:
      plan = flops.plan_for_width(model, vocab_size, length, _WIDTH.value,
                                  tokens_per_param=_TPP.value)
    else:
      plan = flops.plan_for_width(model, vocab_size, length, _WIDTH.value,
                                  tokens=_TOKENS.value)
  elif _BUDGET.value is not None:
    snap = model.get("head_dim", config_lib.HEAD_DIM) if model.kind != "lstm" else 1
    exact = flops.plan_for_budget(model, vocab_size, length, _BUDGET.value, _TPP.value)
    print(f"continuous width at {_TPP.value:g} tokens/param: {float(exact['width']):.2f}")
    plan = flops.plan_for_budget(model, vocab_size, length, _BUDGET.value, _TPP.value,
                                 snap_to=snap)
  else:
    raise app.UsageError("--mode=plan needs --budget or --width")
  for key, value in plan.items():
    print(f"{key:20s} {float(value):.6g}")


def main(argv):
  del argv
  presets = load_presets(_CONFIGS.value)
  if _ONLY.value and _MODE.value == "table":
    presets = {n: c for n, c in presets.items() if n in _ONLY.value}
  length = _LENGTH.value
  if _MODE.value == "plan":
    if _PRESET.value not in presets:
      raise app.UsageError(f"--preset: expected one of {', '.join(presets)}")
    c = ml_collections.ConfigDict(presets[_PRESET.value].to_dict())
    c.model.num_layers = c.model.num_heads = 0  # Depth follows the planned width.
    print_plan(c, _VOCAB.value, length)
    return
  skipped = [n for n, c in presets.items() if c.model.kind != "transformer"]
  if skipped:
    print(f"skipped (recurrent; XLA counts a scan body once): {', '.join(skipped)}")
  rows, seen = [], {}
  for name, c in table_configs(presets, _VARIANTS.value).items():
    for width in map(int, _WIDTHS.value):
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
  app.run(main)
