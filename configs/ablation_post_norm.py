"""Ablation: the modern Transformer with pre-norm reverted to post-norm (2017 wiring)
(model.norm_placement = "post"); nothing else changes.
"""

from algoprog.training import presets


def get_config():
  c = presets.modern()
  c.label = "ablation_post_norm"
  c.model.norm_placement = "post"
  return c
