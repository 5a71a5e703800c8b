"""Ablation: the modern Transformer with RMSNorm reverted to LayerNorm (model.norm =
"layernorm"); nothing else changes.
"""

from algoprog.training import presets


def get_config():
  c = presets.modern()
  c.label = "ablation_layernorm"
  c.model.norm = "layernorm"
  return c
