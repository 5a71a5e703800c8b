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

The Chinchilla law L(N, D) = E + A/N**alpha + B/D**beta (N parameters, D tokens) and its
closed forms live here too: the compute-optimal allocation under C = 6ND and the exact
compute-optimal frontier it implies, a PowerLaw in C (`chinchilla_frontier`).

Everything here is jax.numpy, so it jits, vmaps over bootstrap samples of the law
parameters, and differentiates. The Chinchilla closed forms follow their inputs: numpy (or
Python) inputs give numpy float64 whatever JAX's x64 setting, JAX arrays (tracers
included) give JAX arrays. `interval` and `confidence_interval` summarise samples (numpy).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
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


# ----------------------------------------------------------------------------------------
# Chinchilla L(N, D).


class ChinchillaLaw(NamedTuple):
  """L(N, D) = E + A/N**alpha + B/D**beta; N total params, D tokens, L nats/token.

  A NamedTuple (pytree): fields may be [S] arrays of samples (a bootstrap), numpy or JAX.
  """

  E: ArrayLike
  A: ArrayLike
  B: ArrayLike
  alpha: ArrayLike
  beta: ArrayLike


def _namespace(*values):
  """jnp if any value is a JAX array (or tracer), else np (float64 whatever x64 says)."""
  leaves = jax.tree_util.tree_leaves(values)
  return jnp if any(isinstance(v, jax.Array) for v in leaves) else np


def chinchilla_reducible_loss(law: ChinchillaLaw, params: ArrayLike,
                              tokens: ArrayLike) -> jnp.ndarray:
  """A/N**alpha + B/D**beta (nats/token) of N = `params`, D = `tokens`."""
  xp = _namespace(law, params, tokens)
  return (law.A * xp.power(params, -law.alpha)
          + law.B * xp.power(tokens, -law.beta))


def chinchilla_loss(law: ChinchillaLaw, params: ArrayLike, tokens: ArrayLike) -> jnp.ndarray:
  """L(N, D) = E + A/N**alpha + B/D**beta in nats/token."""
  return law.E + chinchilla_reducible_loss(law, params, tokens)


def _optimal_params_coefficient(law: ChinchillaLaw, xp):
  """G = (alpha*A/(beta*B))**(1/(alpha+beta)): N_opt = G*(C/6)**(beta/(alpha+beta))."""
  return xp.power(law.alpha * law.A / (law.beta * law.B), 1.0 / (law.alpha + law.beta))


def chinchilla_optimal_allocation(law: ChinchillaLaw, compute: ArrayLike):
  """Compute-optimal (N, D) at `compute` FLOPs under C = 6*N*D.

  N_opt = G*(C/6)**(beta/(alpha+beta)), D_opt = (C/6)/N_opt,
  G = (alpha*A/(beta*B))**(1/(alpha+beta)).
  """
  xp = _namespace(law, compute)
  half = xp.asarray(compute) / 6.0
  n_opt = _optimal_params_coefficient(law, xp) * xp.power(half,
                                                           law.beta / (law.alpha + law.beta))
  return n_opt, half / n_opt


def chinchilla_frontier(law: ChinchillaLaw, *, reducible: bool = False) -> PowerLaw:
  """The compute-optimal loss L_opt(C) = E + a*C**alpha_C implied by L(N, D) (exact).

  Under C = 6ND the optimum is N = G*(C/6)**(beta/(alpha+beta)),
  G = (alpha*A/(beta*B))**(1/(alpha+beta)); then alpha_C = -alpha*beta/(alpha+beta) and
  a = (A*G**-alpha + B*G**beta) * 6**-alpha_C. With `reducible` the law's E is 0 (the
  reducible loss A/N**alpha + B/D**beta of the optimal allocation).
  """
  xp = _namespace(law)
  g = _optimal_params_coefficient(law, xp)
  exponent = -law.alpha * law.beta / (law.alpha + law.beta)
  a = (law.A * xp.power(g, -law.alpha) + law.B * xp.power(g, law.beta)) * xp.power(
      6.0, -exponent)
  return PowerLaw(a, exponent, xp.zeros_like(a) if reducible else law.E)


# ----------------------------------------------------------------------------------------
# Intervals of samples (bootstrap draws, sampled accountings).


class Interval(NamedTuple):
  """A point estimate and a percentile interval of its samples."""

  estimate: float
  lower: float
  upper: float


def confidence_interval(samples: ArrayLike, level: float = 0.95, axis: int = 0):
  """Percentile interval (lower, upper) of `samples` along `axis` at `level`.

  NaN samples (failed fits) are ignored; where every sample is NaN (or there are none) the
  bounds are NaN, without numpy's all-NaN warning.
  """
  samples = np.asarray(samples, np.float64)
  tail = 50.0 * (1.0 - level)
  with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "All-NaN slice encountered", RuntimeWarning)
    warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
    return (np.nanpercentile(samples, tail, axis=axis),
            np.nanpercentile(samples, 100.0 - tail, axis=axis))


def interval(estimate: ArrayLike, samples: ArrayLike, level: float = 0.95) -> Interval:
  """`estimate` with the percentile interval of `samples` at `level` (NaN samples ignored;
  NaN bounds when all are NaN)."""
  lower, upper = confidence_interval(np.ravel(np.asarray(samples, np.float64)), level)
  return Interval(float(estimate), float(lower), float(upper))
