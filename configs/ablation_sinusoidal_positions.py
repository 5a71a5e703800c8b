"""Ablation: the modern Transformer with rotary reverted to sinusoidal positions
(model.positions = "sinusoidal"); nothing else changes.
"""

from algoprog import presets


def get_config():
  c = presets.modern()
  c.label = "ablation_sinusoidal_positions"
  c.model.positions = "sinusoidal"
  return c
