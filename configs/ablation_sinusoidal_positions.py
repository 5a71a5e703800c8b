"""Ablation: the modern Transformer with rotary reverted to sinusoidal positions
(model.positions = "sinusoidal") with the 2017 embedding convention that goes with them
(model.scale_embeddings: table N(0, 1/d) read as x sqrt(d), so unit-scale token inputs are not
drowned by the unit-amplitude sinusoids, as in configs/retro.py); nothing else changes.
"""

from algoprog.training import presets


def get_config():
  c = presets.modern()
  c.label = "ablation_sinusoidal_positions"
  c.model.positions = "sinusoidal"
  c.model.scale_embeddings = True
  return c
