"""Schedules and optimizers do what algoprog/training/optim.py's conventions say, to the number."""

import math

import jax.numpy as jnp
import numpy as np
import optax

from algoprog.training import config as config_lib, optim


def optim_config(**fields):
  c = config_lib.base_config().optim
  c.update(fields)
  return c


def lr_at(schedule, steps):
  return [float(schedule(s)) for s in steps]


def test_warmup_is_linear_from_peak_over_warmup():
  o = optim_config(learning_rate=1.0, warmup_fraction=0.1, schedule="constant")
  schedule = optim.learning_rate_schedule(o, 100)
  np.testing.assert_allclose(lr_at(schedule, [0, 4, 9, 10, 99]), [0.1, 0.5, 1.0, 1.0, 1.0],
                             rtol=1e-6)
  # warmup_steps overrides the fraction.
  o.warmup_steps = 4
  np.testing.assert_allclose(lr_at(optim.learning_rate_schedule(o, 100), [0, 3, 4]),
                             [0.25, 1.0, 1.0], rtol=1e-6)
  assert optim.warmup_steps(o, 100) == 4


def test_cosine_decays_to_the_floor_at_the_last_step():
  o = optim_config(learning_rate=2.0, warmup_fraction=0.1, final_lr_fraction=0.1)
  schedule = optim.learning_rate_schedule(o, 110)  # Warmup steps 0-10; decay over 11-109.
  floor = 0.2
  expected = lambda s: floor + (2.0 - floor) * 0.5 * (1 + math.cos(math.pi * (s - 11) / 98))
  np.testing.assert_allclose(lr_at(schedule, [11, 30, 60, 109, 200]),
                             [2.0, expected(30), expected(60), floor, floor], rtol=1e-5)


def test_linear_decays_to_the_floor():
  o = optim_config(learning_rate=1.0, warmup_steps=10, schedule="linear",
                   final_lr_fraction=0.0)
  schedule = optim.learning_rate_schedule(o, 111)  # Decay over steps 10-110.
  np.testing.assert_allclose(lr_at(schedule, [10, 60, 110]), [1.0, 0.5, 0.0], atol=1e-6)


def test_inverse_sqrt_after_warmup():
  o = optim_config(learning_rate=1.0, warmup_steps=16, schedule="inverse_sqrt")
  schedule = optim.learning_rate_schedule(o, 1000)
  np.testing.assert_allclose(lr_at(schedule, [15, 63, 255, 999]),
                             [1.0, 0.5, 0.25, math.sqrt(16 / 1000)], rtol=1e-5)
  np.testing.assert_allclose(lr_at(schedule, [7]), [0.5], rtol=1e-6)  # In warmup.


def test_constant_without_warmup():
  o = optim_config(learning_rate=0.3, warmup_fraction=0.0, schedule="constant")
  np.testing.assert_allclose(lr_at(optim.learning_rate_schedule(o, 10), [0, 5, 9]),
                             [0.3] * 3, rtol=1e-6)


def one_update(o, params, grads, total_steps=10, steps=1):
  tx = optim.make_optimizer(o, total_steps)
  state = tx.init(params)
  for _ in range(steps):
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
  return params


CONSTANT = dict(schedule="constant", warmup_fraction=0.0, grad_clip_norm=0.0)


def test_adamw_decays_decoupled_and_adam_couples_l2():
  params = {"w": jnp.array([[2.0, -4.0]])}
  zero = {"w": jnp.zeros((1, 2))}
  lr, wd = 0.1, 0.5
  # AdamW, zero gradient: the Adam direction is 0, only lr * wd * p remains.
  adamw = one_update(optim_config(name="adamw", learning_rate=lr, weight_decay=wd,
                                  **CONSTANT), params, zero)
  np.testing.assert_allclose(adamw["w"], [[2.0 - lr * wd * 2.0, -4.0 + lr * wd * 4.0]],
                             rtol=1e-6)
  # Adam, zero gradient: wd * p enters as the gradient, and Adam's first step normalises it
  # to a step of lr * sign(wd * p), whatever its size.
  adam = one_update(optim_config(name="adam", learning_rate=lr, weight_decay=wd,
                                 **CONSTANT), params, zero)
  np.testing.assert_allclose(adam["w"], [[2.0 - lr, -4.0 + lr]], rtol=1e-5)
  # Adam without weight decay leaves the parameters alone.
  none = one_update(optim_config(name="adam", learning_rate=lr, weight_decay=0.0,
                                 **CONSTANT), params, zero)
  np.testing.assert_array_equal(none["w"], params["w"])


def test_sgd_heavy_ball_momentum():
  params = {"w": jnp.array([1.0])}
  g = {"w": jnp.array([0.5])}
  o = optim_config(name="sgd", learning_rate=0.1, weight_decay=0.0, **CONSTANT)
  assert o.momentum == 0.98
  after = one_update(o, params, g, steps=3)
  # Velocities v1 = g, v2 = g + 0.98 g, v3 = g + 0.98 v2.
  v1 = 0.5
  v2 = 0.5 + 0.98 * v1
  v3 = 0.5 + 0.98 * v2
  np.testing.assert_allclose(after["w"], [1.0 - 0.1 * (v1 + v2 + v3)], rtol=1e-6)


def test_rmsprop_first_step():
  params = {"w": jnp.array([1.0])}
  g = {"w": jnp.array([0.5])}
  o = optim_config(name="rmsprop", learning_rate=0.01, weight_decay=0.0, b2=0.99, eps=0.0,
                   **CONSTANT)
  after = one_update(o, params, g)
  np.testing.assert_allclose(after["w"], [1.0 - 0.01 * 0.5 / math.sqrt(0.01 * 0.25)],
                             rtol=1e-5)


def test_clipping_by_global_norm_comes_first():
  params = {"a": jnp.zeros(1), "b": jnp.zeros(1)}
  g = {"a": jnp.array([3.0]), "b": jnp.array([4.0])}  # Global norm 5.
  o = optim_config(name="sgd", learning_rate=1.0, momentum=0.0, weight_decay=0.0,
                   schedule="constant", warmup_fraction=0.0, grad_clip_norm=1.0)
  after = one_update(o, params, g)
  np.testing.assert_allclose([after["a"][0], after["b"][0]], [-0.6, -0.8], rtol=1e-6)
  o.grad_clip_norm = 10.0  # Under the threshold: untouched.
  after = one_update(o, params, g)
  np.testing.assert_allclose([after["a"][0], after["b"][0]], [-3.0, -4.0], rtol=1e-6)


def test_decay_mask_spares_norms_and_biases():
  params = {"kernel": jnp.ones((2, 2)), "scale": jnp.ones(2), "bias": jnp.ones(3)}
  zero = {k: jnp.zeros_like(v) for k, v in params.items()}
  o = optim_config(name="adamw", learning_rate=0.1, weight_decay=0.5,
                   decay_norms_and_biases=False, **CONSTANT)
  after = one_update(o, params, zero)
  np.testing.assert_allclose(after["kernel"], 0.95)
  np.testing.assert_array_equal(after["scale"], 1.0)
  np.testing.assert_array_equal(after["bias"], 1.0)
  o.decay_norms_and_biases = True
  after = one_update(o, params, zero)
  np.testing.assert_allclose(after["bias"], 0.95)
