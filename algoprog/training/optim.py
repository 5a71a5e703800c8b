"""Optimizers and learning-rate schedules from `config.optim`, built on optax.

Conventions:
  - Warmup: linear from 0 to the peak over `warmup_steps` (or warmup_fraction * steps).
  - cosine / linear: decay from the peak at the end of warmup to final_lr_fraction * peak at
    the last step.
  - inverse_sqrt: peak * sqrt(warmup / step) after warmup (the 2017 Transformer's
    schedule, up to its d^-0.5 factor, which the peak learning rate absorbs).
  - adamw: decoupled weight decay (lr * wd * param). adam: weight_decay, if non-zero, is
    coupled L2 (wd * param added to the gradient, as torch.optim.Adam does). sgd: heavy-ball
    momentum, same coupled L2. rmsprop: decay b2, eps, coupled L2.
  - Clipping by global norm happens first, on the raw gradient.
  - optim.name selects from registry.OPTIMIZERS: a factory(optim, schedule, decay_mask)
    returning the transformation (or a list, chained) after clipping (plug-ins:
    docs/extending.md).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax

from algoprog.training import registry


def warmup_steps(optim: ml_collections.ConfigDict, total_steps: int) -> int:
  return optim.warmup_steps or int(round(optim.warmup_fraction * total_steps))


def learning_rate_schedule(optim: ml_collections.ConfigDict, total_steps: int
                           ) -> optax.Schedule:
  """Learning rate as a function of the (0-based) step."""
  peak = optim.learning_rate
  warmup = warmup_steps(optim, total_steps)
  decay_steps = max(total_steps - 1 - warmup, 1)  # The floor is reached at the last step.
  floor = optim.final_lr_fraction * peak

  def schedule(step):
    step = jnp.asarray(step, jnp.float32)
    warm = peak * (step + 1) / max(warmup, 1)  # Step 0 trains at peak/warmup, not at 0.
    progress = jnp.clip((step - warmup) / decay_steps, 0.0, 1.0)
    if optim.schedule == "cosine":
      after = floor + (peak - floor) * 0.5 * (1 + jnp.cos(jnp.pi * progress))
    elif optim.schedule == "linear":
      after = peak + (floor - peak) * progress
    elif optim.schedule == "inverse_sqrt":
      after = peak * jnp.sqrt(max(warmup, 1) / jnp.maximum(step + 1, 1.0))
    else:
      after = jnp.full_like(step, peak)
    return jnp.where(step < warmup, warm, after)

  return schedule


def _decay_mask(params):
  """True for matrices and embeddings; False for norm scales and biases (1-D leaves)."""
  return jax.tree_util.tree_map(lambda p: p.ndim > 1, params)


def make_optimizer(optim: ml_collections.ConfigDict, total_steps: int
                   ) -> optax.GradientTransformation:
  """Global-norm clipping (grad_clip_norm > 0), then registry.OPTIMIZERS[optim.name]."""
  schedule = learning_rate_schedule(optim, total_steps)
  mask = None if optim.decay_norms_and_biases else _decay_mask
  chain = []
  if optim.grad_clip_norm:
    chain.append(optax.clip_by_global_norm(optim.grad_clip_norm))
  update = registry.OPTIMIZERS.get(optim.name).factory(optim, schedule, mask)
  chain.extend(update if isinstance(update, list) else [update])  # A transformation is a tuple.
  return optax.chain(*chain)


def _builtin_optimizer(optim: ml_collections.ConfigDict, schedule: optax.Schedule, mask
                       ) -> list[optax.GradientTransformation]:
  """adamw | adam | sgd | rmsprop as the module docstring says (after the clipping); a
  list, chained flat with the clipping (the optimizer state's layout of earlier runs)."""
  chain = []
  if optim.name != "adamw" and optim.weight_decay:
    chain.append(optax.add_decayed_weights(optim.weight_decay, mask))
  if optim.name in ("adamw", "adam"):
    chain.append(optax.scale_by_adam(b1=optim.b1, b2=optim.b2, eps=optim.eps))
    if optim.name == "adamw" and optim.weight_decay:
      chain.append(optax.add_decayed_weights(optim.weight_decay, mask))
  elif optim.name == "sgd":
    chain.append(optax.trace(decay=optim.momentum, nesterov=False))
  else:
    chain.append(optax.scale_by_rms(decay=optim.b2, eps=optim.eps))
  chain.append(optax.scale_by_learning_rate(schedule))
  return chain


for _name in ("adamw", "adam", "sgd", "rmsprop"):
  registry.OPTIMIZERS.register(_name, _builtin_optimizer, builtin=True)
