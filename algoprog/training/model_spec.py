"""The model section of a config as a typed value, and the width rules that derive it.

`ModelSpec` is `config.model` frozen and typed, with every derived field filled in:
depth, heads, the longest input, the final norm, the learned positions' init.
`ModelSpec.from_config` is the one function that derives them; `config.resolve` writes a
spec's fields back into the config a run records, and `models` and `flops` read specs.

The width rules (the study's: layers = heads = width / 16) are written once, here, in
plain arithmetic that gives exact ints on Python numbers and works on traced jax scalars
too (the FLOPs planner jit/vmaps over widths). This module imports neither jax nor flax,
so loading or resolving a preset stays light.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any, Mapping

HEAD_DIM = 16  # The study's width rule: heads = width / 16 (model.head_dim's default).
LAYER_WIDTH = 16  # Layers = width / 16, rounded half up (at least 1).

Width = Any  # A Python number or a (possibly traced) jax scalar.


def is_concrete_number(x: Any) -> bool:
  """A Python or numpy number: exact arithmetic, not a jax array (which may be traced)."""
  return isinstance(x, numbers.Number)


def num_layers_for_width(width: Width) -> Width:
  """Transformer layers at `width` when model.num_layers is 0: width / 16 rounded half up,
  at least 1. An int for a Python number; for a jax scalar a float array, piecewise
  constant in the width (the trainer never builds a fractional layer)."""
  layers = (width + LAYER_WIDTH // 2) // LAYER_WIDTH
  if is_concrete_number(layers):
    return max(1, int(layers))
  return layers.clip(1)  # A jax array (possibly traced): max(1, .) without importing jax.


def num_heads_for_width(width: Width, head_dim: int) -> Width:
  """Heads at `width` when model.num_heads is 0: width / head_dim (config.validate makes
  it whole). An int for a Python number; for a jax scalar a float array, floored."""
  heads = width // head_dim
  return int(heads) if is_concrete_number(heads) else heads


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """A resolved `config.model`: the fields of config.base_config's model section (each
  documented there), typed, with every derived field filled in.

  Frozen and hashable: the flax modules of algoprog.training.models hold one as an
  attribute. Make one with `ModelSpec.from_config`.

  Attributes beyond the config's:
    layers_follow_width: num_layers was derived from the width (the config left it 0),
      so the FLOPs functions evaluated at another width (`layers_at`) re-derive it; False
      when the config pins it (every resolved config does: resolution writes it in).
    heads_follow_width: the same for num_heads.
  """
  kind: str
  width: int
  num_layers: int
  num_heads: int  # 0 for the LSTM.
  head_dim: int
  attention: str
  ffn: str
  ffn_multiplier: int
  norm: str
  norm_placement: str
  final_norm: bool  # The config's "yes" / "no" ("" resolved: yes iff pre-norm).
  positions: str
  rotary_base: float
  max_sequence_length: int  # 0 only in a spec made without a sequence length.
  init: str
  init_std: float
  positions_init_std: float
  scaled_output_init: bool
  scale_embeddings: bool
  tie_embeddings: bool
  output_bias: bool
  matrix_biases: bool
  dtype: str
  matmul_dtype: str
  loss_block_tokens: int
  loss_vocab_block: int
  attention_impl: str
  attention_query_blocks: int
  lstm_bias_sets: int
  lstm_forget_bias: float
  layers_follow_width: bool = False
  heads_follow_width: bool = False

  @classmethod
  def from_config(cls, model: ModelSpec | Mapping[str, Any],
                  sequence_length: int | None = None) -> ModelSpec:
    """The spec of a `config.model` (a ConfigDict, FrozenConfigDict or dict; a ModelSpec is
    returned as it is): the one place the derived fields are derived.

    Fields the config leaves 0 / "" are derived: num_layers (Transformer and plug-in
    models: `num_layers_for_width`; LSTM: 1), num_heads (`num_heads_for_width`; LSTM: 0),
    max_sequence_length (`sequence_length`, the data's; without it 0 stays 0),
    final_norm (yes iff pre-norm), positions_init_std (init_std).

    Raises:
      KeyError: a field of the model section is missing (configs start from
        config.base_config; config.backfill completes ones recorded by older versions).
      TypeError: the section has a field ModelSpec does not know.
    """
    if isinstance(model, ModelSpec):
      return model
    values = dict(model.items())
    names = [f.name for f in dataclasses.fields(cls) if f.name not in _NOT_CONFIG_FIELDS]
    unknown = sorted(set(values) - set(names))
    if unknown:
      raise TypeError(f"model.{unknown[0]}: not a model field (expected one of "
                      f"{', '.join(names)})")
    missing = [name for name in names if name not in values]
    if missing:
      raise KeyError(f"model.{missing[0]}: missing from the model section")
    lstm = values["kind"] == "lstm"
    layers, heads = values["num_layers"], values["num_heads"]
    final_norm = values["final_norm"] or ("yes" if values["norm_placement"] == "pre" else "no")
    values.update(
        num_layers=layers or (1 if lstm else num_layers_for_width(values["width"])),
        num_heads=heads or (0 if lstm else num_heads_for_width(values["width"],
                                                               values["head_dim"])),
        max_sequence_length=values["max_sequence_length"] or sequence_length or 0,
        final_norm=final_norm == "yes",
        positions_init_std=values["positions_init_std"] or values["init_std"],
        layers_follow_width=not layers and not lstm,
        heads_follow_width=not heads and not lstm)
    return cls(**values)

  def to_config(self) -> dict[str, Any]:
    """The model section as config.resolve records it (final_norm "yes" / "no")."""
    out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
           if f.name not in _NOT_CONFIG_FIELDS}
    out["final_norm"] = "yes" if self.final_norm else "no"
    return out

  @property
  def channels_per_head(self) -> int:
    """Channels of each attention head (K): width / num_heads."""
    return self.width // self.num_heads

  @property
  def ffn_hidden(self) -> int:
    """FFN hidden width F = ffn_multiplier * width."""
    return self.ffn_hidden_at(self.width)

  def ffn_hidden_at(self, width: Width) -> Width:
    """F at `width` (traced widths too)."""
    return self.ffn_multiplier * width

  def layers_at(self, width: Width) -> Width:
    """Layers at `width`: the width rule if the config derived them, else num_layers."""
    return num_layers_for_width(width) if self.layers_follow_width else self.num_layers

  def heads_at(self, width: Width) -> Width:
    """Heads at `width`: the width rule if the config derived them, else num_heads."""
    return (num_heads_for_width(width, self.head_dim) if self.heads_follow_width
            else self.num_heads)


_NOT_CONFIG_FIELDS = ("layers_follow_width", "heads_follow_width")
