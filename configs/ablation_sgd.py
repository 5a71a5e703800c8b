"""Ablation: the modern Transformer with AdamW reverted to SGD with heavy-ball momentum 0.98
(coupled L2 0.01) (optim.name = "sgd"); nothing else changes.
"""

from algoprog import presets


def get_config():
  c = presets.modern()
  c.label = "ablation_sgd"
  c.optim.name = "sgd"
  return c
