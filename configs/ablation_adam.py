"""Ablation: the modern Transformer with AdamW reverted to Adam (weight decay 0.01 becomes
coupled L2) (optim.name = "adam"); nothing else changes.
"""

from algoprog import presets


def get_config():
  c = presets.modern()
  c.label = "ablation_adam"
  c.optim.name = "adam"
  return c
