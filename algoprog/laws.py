"""Compute-optimal frontier laws and the compute-equivalent gain (CEG) they imply.

A frontier law says how the best achievable validation loss (nats/token) falls with
training compute C (FLOPs):

    L(C) = E + a * C**alpha        (alpha < 0, E = irreducible loss)

CEG of a new algorithm A over a reference B at compute C is how many times more compute B
needs to reach the loss A reaches with C:

    CEG_{B->A}(C) = C_B(L_A(C)) / C

With a shared E this has the closed form (a_A/a_B)**(1/alpha_B) * C**(alpha_A/alpha_B - 1):
constant in C when the exponents agree (scale-invariant), growing with C when A's exponent
is steeper (scale-dependent).

Everything here is pure jax.numpy, so it jits, vmaps over bootstrap samples of the law
parameters, and differentiates.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jax.typing import ArrayLike


class PowerLaw(NamedTuple):
  """L(C) = E + a * C**alpha. A NamedTuple, hence a pytree: vmap over stacked samples.

  Attributes:
    a: multiplier (nats per FLOP**alpha), > 0.
    alpha: exponent, < 0 for a loss that falls with compute.
    E: irreducible loss (nats/token).
  """

  a: ArrayLike
  alpha: ArrayLike
  E: ArrayLike


def loss_at_compute(law: PowerLaw, compute: ArrayLike) -> jnp.ndarray:
  """Frontier loss (nats/token) at training compute `compute` (FLOPs)."""
  return law.E + law.a * jnp.power(compute, law.alpha)


def compute_at_loss(law: PowerLaw, loss: ArrayLike) -> jnp.ndarray:
  """Training compute (FLOPs) the frontier needs to reach `loss` (nats/token).

  NaN where `loss` <= E: the law never reaches it.
  """
  reducible = jnp.asarray(loss) - law.E
  return jnp.where(reducible > 0,
                   jnp.power(jnp.where(reducible > 0, reducible, 1.0) / law.a,
                             1.0 / law.alpha),
                   jnp.nan)


def compute_equivalent_gain(reference: PowerLaw, new: PowerLaw,
                            compute: ArrayLike) -> jnp.ndarray:
  """CEG of `new` over `reference` at the new algorithm's compute (FLOPs).

  CEG = C_reference(L_new(compute)) / compute; > 1 means `new` is more efficient.
  Works for different irreducible losses too (then there is no closed form in C alone).
  """
  return compute_at_loss(reference, loss_at_compute(new, compute)) / compute


def compute_equivalent_gain_at_loss(reference: PowerLaw, new: PowerLaw,
                                    loss: ArrayLike) -> jnp.ndarray:
  """CEG at a target loss: C_reference(loss) / C_new(loss)."""
  return compute_at_loss(reference, loss) / compute_at_loss(new, loss)
