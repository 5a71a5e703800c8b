"""Training FLOPs per token.

CONVENTION names the count the training metrics use; it is recorded with every run.
"""

from __future__ import annotations

import ml_collections

CONVENTION = "6*N_total per token (Kaplan-style; analytical per-component count pending)"


def training_flops_per_token(model: ml_collections.ConfigDict, vocab_size: int,
                             params_total: int) -> float:
  """Forward + backward FLOPs per training token: 6 * total parameters."""
  del model, vocab_size
  return 6.0 * params_total
