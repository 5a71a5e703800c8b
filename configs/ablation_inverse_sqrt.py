"""Ablation: the modern Transformer with the cosine schedule reverted to inverse-sqrt after the
same warmup (optim.schedule = "inverse_sqrt"); nothing else changes.
"""

from algoprog.training import presets


def get_config():
  c = presets.modern()
  c.label = "ablation_inverse_sqrt"
  c.optim.schedule = "inverse_sqrt"
  return c
