"""Ablation: the modern Transformer with the cosine decay replaced by a linear decay to the
same floor (0.1x peak) after the same warmup (optim.schedule = "linear"); nothing else
changes.
"""

from algoprog.training import presets


def get_config():
  c = presets.modern()
  c.label = "ablation_linear_decay"
  c.optim.schedule = "linear"
  return c
