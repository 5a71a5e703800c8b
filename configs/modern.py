"""The modern Transformer (the study's reference): pre-norm RMSNorm, rotary, SwiGLU, AdamW,
cosine to 0.1x with 10% warmup, clipping 1.0. Every field is documented in algoprog/training/config.py.
"""

from algoprog.training import presets


def get_config():
  return presets.modern()
