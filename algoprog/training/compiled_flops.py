"""FLOPs as the compiler counts them: XLA's cost analysis of a compiled train step.

The cross-check of algoprog.training.flops's analytical count (launch/flops.py tabulates both), and
the trainer's fallback for plug-in components that register no FLOPs function
(algoprog.training.registry). Nothing runs: shapes are abstract, only compilation happens.
This module counts whatever step it is given; algoprog.training.train builds the step it
trains (train.xla_train_step_flops, train.xla_flops_per_token), so the count follows the
trainer without this module importing it.

Per token: FLOPs are linear in the batch from batch 2 on (batch 1 lets XLA squeeze a
dimension and differs), so (FLOPs at batch 4 - at batch 2) / (2 * sequence length) is the
per-token cost and the intercept the per-step cost (the optimizer update). XLA counts a
scan body once, so recurrent models (the LSTM) are undercounted: not for them. For the
same reason the step is compiled on the unfused output layer (model.loss_block_tokens = 0):
the fused one is a scan over token blocks, and it recomputes the logits in the backward,
which are not model FLOPs (docs/flops.md); the unfused step executes exactly the model's.
Likewise the attention runs in one query block (model.attention_query_blocks = 1): the
FLOP convention counts every query against all L keys, and more blocks skip part of that.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

CONVENTION = ("XLA cost analysis (flops + transcendentals) of the compiled train step, per "
              "token: (batch 4 - batch 2) / (2 * sequence length); optimizer excluded")


def step_flops(train_step: Callable, abstract_state: Any, batch_size: int,
               sequence_length: int) -> float:
  """XLA's cost analysis of `train_step(state, inputs, targets)` compiled for int32
  [batch_size, sequence_length] inputs and targets: flops + transcendentals (FLOPs)."""
  tokens = jax.ShapeDtypeStruct((batch_size, sequence_length), jnp.int32)
  cost = jax.jit(train_step).lower(abstract_state, tokens, tokens).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost  # A list on older jax.
  return float(cost.get("flops", 0.0) + cost.get("transcendentals", 0.0))


def flops_per_token(flops_at_batch: Callable[[int], float], sequence_length: int) -> float:
  """Training FLOPs per token by CONVENTION, from a step's count at a given batch size."""
  at2, at4 = (flops_at_batch(b) for b in (2, 4))
  return (at4 - at2) / (2 * sequence_length)
