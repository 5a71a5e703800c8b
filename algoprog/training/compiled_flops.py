"""FLOPs as the compiler counts them: XLA's cost analysis of the compiled train step.

The cross-check of algoprog.training.flops's analytical count (launch/flops.py tabulates both), and
the trainer's fallback for plug-in components that register no FLOPs function
(algoprog.training.registry). Nothing runs: shapes are abstract, only compilation happens.

Per token: FLOPs are linear in the batch from batch 2 on (batch 1 lets XLA squeeze a
dimension and differs), so (FLOPs at batch 4 - at batch 2) / (2 * sequence length) is the
per-token cost and the intercept the per-step cost (the optimizer update). XLA counts a
scan body once, so recurrent models (the LSTM) are undercounted: not for them. For the
same reason the step is compiled on the unfused output layer (model.loss_block_tokens = 0):
the fused one is a scan over token blocks, and it recomputes the logits in the backward,
which are not model FLOPs (docs/flops.md); the unfused step executes exactly the model's.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections

CONVENTION = ("XLA cost analysis (flops + transcendentals) of the compiled train step, per "
              "token: (batch 4 - batch 2) / (2 * sequence length); optimizer excluded")


def xla_train_step_flops(config: ml_collections.ConfigDict, vocab_size: int,
                         batch_size: int) -> float:
  """XLA's cost analysis of one compiled train step (microbatches 1, unfused output layer)
  of a resolved config: flops + transcendentals (FLOPs)."""
  from algoprog.training import models, optim, train  # train imports this module.
  spec = models.ModelSpec.from_config(config.model)
  model = models.build_model(dataclasses.replace(spec, loss_block_tokens=0), vocab_size)
  optimizer = optim.make_optimizer(config.optim, 100)
  step = train.make_train_step(model, optimizer, 1)
  length = config.data.sequence_length

  def init():
    params = model.init(jax.random.key(0), jnp.zeros((1, length), jnp.int32))["params"]
    return train.TrainState(jnp.zeros((), jnp.int32), params, optimizer.init(params))

  tokens = jax.ShapeDtypeStruct((batch_size, length), jnp.int32)
  cost = jax.jit(step).lower(jax.eval_shape(init), tokens, tokens).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost  # A list on older jax.
  return float(cost.get("flops", 0.0) + cost.get("transcendentals", 0.0))


def xla_flops_per_token(config: ml_collections.ConfigDict, vocab_size: int) -> float:
  """Training FLOPs per token of a resolved config by XLA's count (CONVENTION)."""
  at2, at4 = (xla_train_step_flops(config, vocab_size, b) for b in (2, 4))
  return (at4 - at2) / (2 * config.data.sequence_length)
