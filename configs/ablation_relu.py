"""Ablation: the modern Transformer with SwiGLU reverted to a ReLU FFN (4d, two matrices)
(model.ffn = "relu"); nothing else changes.
"""

from algoprog.training import presets


def get_config():
  c = presets.modern()
  c.label = "ablation_relu"
  c.model.ffn = "relu"
  return c
