"""Ablation: the modern Transformer with SwiGLU reverted to a GELU FFN (4d, two matrices)
(model.ffn = "gelu"); nothing else changes.
"""

from algoprog.training import presets


def get_config():
  c = presets.modern()
  c.label = "ablation_gelu"
  c.model.ffn = "gelu"
  return c
