"""Builders of the named presets that other presets extend (configs/*.py wrap them).

Each starts from `config.base_config()` (the modern Transformer) and changes only the fields
it names; tests/test_presets.py diffs every resolved preset against modern.
"""

from __future__ import annotations

import ml_collections

from algoprog.training import config


def modern() -> ml_collections.ConfigDict:
  """The study's reference: pre-norm RMSNorm, rotary, SwiGLU, AdamW, cosine (base_config)."""
  c = config.base_config()
  c.label = "modern"
  return c


def retro() -> ml_collections.ConfigDict:
  """The "2017" Transformer: post-norm LayerNorm, sinusoidal positions, GELU FFN, the 2017
  embedding convention (table N(0, 1/d) read as x sqrt(d), so tokens are not drowned by the
  unit-amplitude sinusoids), Adam with no weight decay (the 2017 recipe had none),
  inverse-sqrt schedule after the linear warmup; learning rate tuned for 64d (docs/science.md).
  Init of the matrices, clipping, betas and warmup as modern."""
  c = config.base_config()
  c.label = "retro"
  c.model.norm = "layernorm"
  c.model.norm_placement = "post"
  c.model.positions = "sinusoidal"
  c.model.ffn = "gelu"
  c.model.scale_embeddings = True
  c.optim.name = "adam"
  c.optim.weight_decay = 0.0
  c.optim.schedule = "inverse_sqrt"
  c.optim.learning_rate = 1.86e-3
  return c


def lstm(num_layers: int = 1) -> ml_collections.ConfigDict:
  """The LSTM baseline: hidden = width, tied embeddings + output bias, truncated BPTT over
  32-token windows with the state carried across windows and steps and reset per row with
  probability 0.01 (docs/models.md); AdamW(b1=0, b2=0.999, eps=1e-9, wd=1e-4), cosine to
  0.1x with 10% warmup, clipping 1.0; learning rate tuned for 64d (docs/science.md). The
  Transformer-only model fields keep their base values and are unused."""
  c = config.base_config()
  c.label = "lstm" if num_layers == 1 else f"lstm{num_layers}"
  c.model.kind = "lstm"
  c.model.num_layers = num_layers
  c.optim.b1 = 0.0
  c.optim.eps = 1e-9
  c.optim.weight_decay = 1e-4
  c.optim.learning_rate = 3.16e-2
  return c
