"""A plug-in defined outside the package (tests/test_plugins.py loads it as a .py file).

Registers, as docs/extending.md describes:
  model.attention = "qknorm"    causal attention with RMSNorm on queries and keys, with its
                                FLOPs (the built-in attention's plus the two norms);
  optim.name = "lion"           optax.lion (Chen et al. 2023), weight decay decoupled;
  model.ffn = "squared_relu"    down(relu(up x)^2) WITHOUT a FLOPs function, so runs of it
                                are counted by XLA's cost analysis (with a warning).
"""

import flax.linen as nn
import jax.numpy as jnp
import optax

from algoprog.training import flops, models, registry


class QKNormAttention(models.CausalSelfAttention):
  """models.CausalSelfAttention with RMSNorm (a scale per head channel) on each head's
  queries and keys before the positions are applied: bounded attention logits."""

  def transform_qk(self, q_BxLxHxK, k_BxLxHxK):
    q_BxLxHxK = models.RMSNorm(name="query_norm")(q_BxLxHxK)
    k_BxLxHxK = models.RMSNorm(name="key_norm")(k_BxLxHxK)
    return super().transform_qk(q_BxLxHxK, k_BxLxHxK)


def qknorm_flops(model, vocab_size, sequence_length, width):
  """Training FLOPs per token: the built-in attention's plus two RMSNorms per layer over
  the D channels of q and k (rows of K channels: H rows per token)."""
  parts = flops.builtin_component_flops(model, vocab_size, sequence_length, "attention",
                                        width)
  d = jnp.asarray(model.width if width is None else width, jnp.float32)
  layers, heads = flops.depth_and_heads(model, d)
  per_element = sum(flops.ELEMENTWISE_FLOPS["rmsnorm"])
  per_row = sum(flops.NORM_ROW_FLOPS["rmsnorm"])
  parts["qk_norm"] = layers * 2 * (per_element * d + per_row * heads)
  return parts


def lion(optim, schedule, decay_mask):
  """optax.lion with the config's b1, b2 and (decoupled) weight_decay."""
  return optax.lion(schedule, b1=optim.b1, b2=optim.b2, weight_decay=optim.weight_decay,
                    mask=decay_mask)


class SquaredReLUFeedForward(nn.Module):
  """down(relu(up x)^2), hidden width ffn_multiplier * D, no biases (So et al. 2021)."""
  model: object

  @nn.compact
  def __call__(self, x_BxLxD):
    d = x_BxLxD.shape[-1]
    hidden = nn.Dense(self.model.ffn_multiplier * d, use_bias=False, name="up")(x_BxLxD)
    return nn.Dense(d, use_bias=False, name="down")(jnp.square(nn.relu(hidden)))


registry.ATTENTION.register("qknorm", lambda m, name: QKNormAttention(m, name=name),
                            flops=qknorm_flops)
# Lion per parameter: two interpolations (3 each), sign, weight decay (2), *lr, apply.
registry.OPTIMIZERS.register("lion", lion, flops=11.0)
registry.FFNS.register("squared_relu", lambda m, name: SquaredReLUFeedForward(m, name=name))
