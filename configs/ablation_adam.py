"""Ablation: the modern Transformer with AdamW reverted to Adam without weight decay
(optim.name = "adam", optim.weight_decay = 0): the 2017 optimizer, as the study ran it (its
Adam's weight decay never took effect, docs/science.md); nothing else changes.
"""

from algoprog.training import presets


def get_config():
  c = presets.modern()
  c.label = "ablation_adam"
  c.optim.name = "adam"
  c.optim.weight_decay = 0.0
  return c
