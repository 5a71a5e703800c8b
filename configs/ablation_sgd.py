"""Ablation: the modern Transformer with AdamW reverted to SGD with heavy-ball momentum 0.98
and no weight decay (optim.name = "sgd", optim.weight_decay = 0), measured against Adam
without weight decay (configs/ablation_adam.py); nothing else changes.
"""

from algoprog.training import presets


def get_config():
  c = presets.modern()
  c.label = "ablation_sgd"
  c.optim.name = "sgd"
  c.optim.weight_decay = 0.0
  return c
