"""The "2017" (retro) Transformer: post-norm LayerNorm, sinusoidal positions, GELU, the 2017
embedding scaling, Adam without weight decay, inverse-sqrt schedule with warmup
(algoprog.training.presets.retro says why).
"""

from algoprog.training import presets


def get_config():
  return presets.retro()
