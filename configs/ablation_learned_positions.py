"""Ablation: the modern Transformer with rotary reverted to learned absolute positions
(model.positions = "learned"); nothing else changes.
"""

from algoprog import presets


def get_config():
  c = presets.modern()
  c.label = "ablation_learned_positions"
  c.model.positions = "learned"
  return c
