"""Ablation: the modern Transformer with rotary reverted to learned absolute positions
(model.positions = "learned"), the table initialised N(0, 0.01) as GPT-2's
(model.positions_init_std); nothing else changes.
"""

from algoprog.training import presets


def get_config():
  c = presets.modern()
  c.label = "ablation_learned_positions"
  c.model.positions = "learned"
  c.model.positions_init_std = 0.01
  return c
