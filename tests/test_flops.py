"""Closed-form FLOPs: hand counts, vectorisation, agreement with XLA, the planner."""

import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from algoprog.training import config as config_lib, flops, models, optim, train

sys.path.insert(0, str(pathlib.Path(__file__).parents[1]))  # launch/ is not installed.
from launch import flops as flops_launch  # pylint: disable=g-import-not-at-top

V = 256  # A small vocabulary keeps compiles fast; FLOPs/token are linear in V anyway.
L = 128  # The study's sequence length.


def model_config(**fields) -> ml_collections.ConfigDict:
  c = config_lib.base_config()
  c.model.update(fields)
  return c


def resolved(c, width):
  return flops_launch.with_width(c, width, L)


def presets():
  return flops_launch.load_presets(pathlib.Path(__file__).parents[1] / "configs")


def _assert_param_counts_match_the_built_model(c) -> dict:
  model = models.build_model(c.model, V)
  params = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, L), jnp.int32))
                          )["params"]
  total, nonembedding = flops.param_counts(c.model, V)
  assert total == models.count_params(params)
  assert total - nonembedding == models.embedding_param_count(params)
  return params


@pytest.mark.parametrize("name", ["modern", "retro", "lstm", "lstm2", "ablation_learned_positions"])
@pytest.mark.parametrize("width", [32, 64])
def test_param_counts_match_the_built_model(name, width):
  c = resolved(presets()[name], width)
  _assert_param_counts_match_the_built_model(c)


def test_modern_forward_matmuls_by_hand():
  d, layers = 64, 4
  parts = flops.forward_flops_per_token(resolved(model_config(), d).model, V, L)
  assert parts["attention_projections"] == layers * 2 * 4 * d * d
  assert parts["attention_scores"] == parts["attention_values"] == layers * 2 * L * d
  assert parts["ffn"] == layers * 2 * 3 * d * 4 * d  # SwiGLU: three d x 4d matmuls.
  assert parts["unembedding"] == 2 * d * V  # Tied: the embedding table as a matmul.
  assert parts["embedding"] == 0  # The lookup is a gather.
  backward = flops.backward_flops_per_token(resolved(model_config(), d).model, V, L)
  for name in ("attention_projections", "attention_scores", "ffn", "unembedding"):
    assert backward[name] == 2 * parts[name]


def test_gelu_has_two_ffn_matmuls_and_lstm_gates_by_hand():
  d = 32
  gelu = flops.forward_flops_per_token(resolved(model_config(ffn="gelu"), d).model, V, L)
  assert gelu["ffn"] == 2 * 2 * 2 * d * 4 * d  # 2 layers x 2 matmuls x 2dF.
  lstm = resolved(presets()["lstm2"], d).model
  parts = flops.forward_flops_per_token(lstm, V, L)
  assert parts["lstm_gates"] == 2 * 2 * 4 * (d + d) * d  # 2 layers x 2 x 4 x (in+H) x H.
  assert "attention_scores" not in parts
  # The window only spares each window's first recurrent input-gradient (2 x 4H x H).
  spared = lambda window: 2 * 2 * 4 * d * d / window
  np.testing.assert_allclose(
      flops.training_flops_per_token(lstm, V, 32) - flops.training_flops_per_token(lstm, V, L),
      spared(L) - spared(32))


def test_causal_convention_counts_the_attended_half():
  m = resolved(model_config(), 64).model
  full = flops.forward_flops_per_token(m, V, L, attention="full")
  causal = flops.forward_flops_per_token(m, V, L, attention="causal")
  np.testing.assert_allclose(causal["attention_scores"],
                             full["attention_scores"] * (L + 1) / (2 * L))
  assert causal["ffn"] == full["ffn"]
  with pytest.raises(ValueError, match="attention"):
    flops.forward_flops_per_token(m, V, L, attention="half")


def test_vmap_over_widths_equals_one_at_a_time_and_is_differentiable():
  m = model_config().model  # Unresolved: depth and heads follow the width.
  widths = jnp.array([32.0, 64.0, 128.0, 256.0])
  table = jax.jit(jax.vmap(lambda w: flops.training_flops_per_token(m, V, L, w)))(widths)
  for w, value in zip(widths, table):
    resolved_model = resolved(model_config(), int(w)).model
    np.testing.assert_allclose(value, flops.training_flops_per_token(resolved_model, V, L),
                               rtol=1e-6)
  slope = jax.grad(lambda w: flops.training_flops_per_token(m, V, L, w))(64.0)
  assert np.isfinite(slope) and slope > 0


def test_conventions_for_conversion():
  m = resolved(model_config(), 64).model
  total, nonembedding = flops.param_counts(m, V)
  assert flops.six_n_flops_per_token(total) == 6 * total
  d, layers = 64, 4
  np.testing.assert_allclose(flops.kaplan_flops_per_token(m, V, L),
                             6 * nonembedding + 6 * layers * L * d, rtol=1e-6)
  forward = 2 * V * d + layers * (8 * d * d + 4 * L * d + 3 * 4 * L + 2 * 3 * d * 4 * d) + 2 * d * V
  np.testing.assert_allclose(flops.chinchilla_flops_per_token(m, V, L), 3 * forward,
                             rtol=1e-6)


@pytest.mark.parametrize("name,fields", [
    ("retro", {"matrix_biases": True, "final_norm": "yes"}),
    ("modern", {"matrix_biases": True, "final_norm": "no", "positions": "learned",
                "positions_init_std": 0.01}),
])
def test_param_counts_with_study_fidelity_options(name, fields):
  c = ml_collections.ConfigDict(presets()[name].to_dict())
  c.model.update(fields)
  c = resolved(c, 32)
  params = _assert_param_counts_match_the_built_model(c)
  nonembedding = flops.param_counts(c.model, V)[1]
  assert ("final_norm" in params) == (fields["final_norm"] == "yes")
  d, f = 32, 4 * 32
  plain = flops.param_counts(resolved(presets()[name], 32).model, V)[1]
  norm = 2 * d if name == "retro" else d
  assert nonembedding - plain == 2 * (4 * d + (f + d if name == "retro" else 2 * f + d)) + (
      norm if name == "retro" else -norm)


def test_matrix_bias_flops_agree_with_xla():
  """Biases count +bias and the bias-gradient reduce, 2 FLOPs per output unit per token.

  XLA also counts the bias add again in the backward fusions that recompute the biased
  pre-activation (1.5-2.4x the bias ops here, under 1% of the total): the whole count stays
  within 5%.
  """
  c = resolved(presets()["retro"], 32)
  with_biases = ml_collections.ConfigDict(c.to_dict())
  with_biases.model.matrix_biases = True
  xla_with, xla_without = xla_per_token(with_biases)[0], xla_per_token(c)[0]
  analytical = float(flops.training_flops_per_token(with_biases.model, V, L))
  bias_flops = 2 * 2 * (4 * 32 + 4 * 32 + 32)  # 2 layers x (attention, up, down) outputs.
  assert analytical - float(flops.training_flops_per_token(c.model, V, L)) == bias_flops
  assert bias_flops <= xla_with - xla_without <= 2.5 * bias_flops
  assert abs(analytical / xla_with - 1) < 0.05
  # A final norm (model.final_norm) counts as one more norm of its kind.
  with_biases.model.final_norm = "yes"
  assert float(flops.training_flops_per_token(with_biases.model, V, L)) - analytical == (
      sum(flops.ELEMENTWISE_FLOPS["layernorm"]) * 32 + sum(flops.NORM_ROW_FLOPS["layernorm"]))


def xla_per_token(c, batches=(2, 4)):
  a, b = (flops_launch.xla_train_step_flops(c, V, n) for n in batches)
  return (b - a) / ((batches[1] - batches[0]) * L), a


@pytest.mark.parametrize("name,fields,width", [
    ("modern", {}, 32),
    ("modern", {}, 48),
    ("retro", {}, 32),  # Post-norm LayerNorm, sinusoidal, GELU, scaled embeddings.
    ("modern", {"ffn": "relu", "positions": "learned", "tie_embeddings": False}, 32),
])
def test_analytical_agrees_with_xla_within_5_percent(name, fields, width):
  c = ml_collections.ConfigDict(presets()[name].to_dict())
  c.model.update(fields)
  c = resolved(c, width)
  # XLA's count is linear in the batch (batch 1 aside): the slope is FLOPs per token.
  per_token, at2 = xla_per_token(c)
  per_token_3, _ = xla_per_token(c, (2, 3))
  np.testing.assert_allclose(per_token_3, per_token, rtol=1e-5)  # float32 cost counters.
  analytical = float(flops.training_flops_per_token(c.model, V, L))
  assert abs(analytical / per_token - 1) < 0.05
  # The rest is per step: the optimizer update (plus small per-step terms, see docs).
  per_step = at2 - 2 * L * per_token
  total, _ = flops.param_counts(c.model, V)
  optimizer = float(flops.optimizer_flops_per_step(c.optim, total))
  assert 0.75 < optimizer / per_step <= 1.0


def _xla(f, *args) -> float:
  cost = jax.jit(f).lower(*args).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return cost.get("flops", 0.0) + cost.get("transcendentals", 0.0)


@pytest.mark.parametrize("name,weight_decay,clip", [
    ("adamw", 0.01, 1.0), ("adamw", 0.0, 0.0), ("adam", 0.01, 1.0), ("adam", 0.0, 0.0),
    ("sgd", 0.01, 1.0), ("sgd", 0.0, 0.0), ("rmsprop", 0.01, 0.0), ("rmsprop", 0.0, 1.0)])
def test_optimizer_update_agrees_with_xla(name, weight_decay, clip):
  o = config_lib.base_config().optim
  o.update({"name": name, "weight_decay": weight_decay, "grad_clip_norm": clip})
  opt = optim.make_optimizer(o, 100)
  params = {"w": jnp.ones((64, 300)), "b": jnp.ones((300,))}
  n = 64 * 300 + 300

  def update(grads, state, params):
    updates, state = opt.update(grads, state, params)
    return jax.tree_util.tree_map(jnp.add, params, updates), state

  measured = _xla(update, params, opt.init(params), params)
  # optimizer_flops_per_step also counts train_step's 1-FLOP gradient mean.
  expected = float(flops.optimizer_flops_per_step(o, n)) - n
  np.testing.assert_allclose(expected, measured, rtol=0.02)


def test_lstm_cell_agrees_with_unrolled_xla():
  """A stand-alone LSTM layer unrolled in Python (XLA counts a scan body once).

  Short window: XLA duplicates gate math across unrolled steps when it fuses, an excess
  that grows with the window (docs/flops.md); the matmuls are exact at any length.
  """
  hidden, steps, batch = 64, 4, 8

  def layer(params, xs):
    w_in, w_rec, bias = params
    h = c = jnp.zeros((batch, hidden))
    outs = []
    for x in xs:  # Separate per-step inputs: slicing one array adds pad-and-add backward.
      gates = x @ w_in + h @ w_rec + bias
      i, f, g, o = jnp.split(gates, 4, -1)
      c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
      h = jax.nn.sigmoid(o) * jnp.tanh(c)
      outs.append(h)
    return outs

  params = (jnp.ones((hidden, 4 * hidden)), jnp.ones((hidden, 4 * hidden)),
            jnp.ones((4 * hidden,)))
  xs = [jnp.ones((batch, hidden))] * steps

  def forward_backward(params, xs, cotangents):
    outs, vjp = jax.vjp(layer, params, xs)
    return outs, vjp(cotangents)

  measured = _xla(forward_backward, params, xs, xs) / (steps * batch)
  m = resolved(presets()["lstm"], hidden).model
  parts = flops.training_flops_per_token_by_component(m, V, steps)
  analytical = float(parts["lstm_gates"] + parts["lstm_cell"])
  # The weight gradients accumulate across steps here (one outer product per step).
  analytical += 2 * 4 * hidden * hidden * 2 / batch
  assert abs(analytical / measured - 1) < 0.05
  forward = _xla(layer, params, xs) / (steps * batch)
  np.testing.assert_allclose(
      float(flops.forward_flops_per_token(m, V, L)["lstm_gates"]
            + flops.forward_flops_per_token(m, V, L)["lstm_cell"]), forward, rtol=0.01)


@pytest.mark.parametrize("name", ["lstm", "lstm2"])
def test_lstm_model_agrees_with_xla_at_window_one(name):
  """The real LSTM train step, one-token windows: each scan runs once, so XLA's count
  (a scan body once) is the whole program; the window-start rule is then exact too."""
  c = ml_collections.ConfigDict(presets()[name].to_dict())
  c.data.sequence_length = c.train.lstm_window = 1
  c.model.width = 64
  c = config_lib.resolve(c)
  model = models.build_model(c.model, V)
  opt = optim.make_optimizer(c.optim, 100)
  step = train.make_train_step(model, opt, 1, lstm_window=1)

  def step_flops(batch):
    def init():
      params = model.init(jax.random.key(0), jnp.zeros((1, 1), jnp.int32))["params"]
      return train.TrainState(jnp.zeros((), jnp.int32), params, opt.init(params),
                              models.initial_carry(c.model, batch))
    tokens = jax.ShapeDtypeStruct((batch, 1), jnp.int32)
    return _xla(step, jax.eval_shape(init), tokens, tokens)

  measured = (step_flops(16) - step_flops(8)) / 8
  analytical = float(flops.training_flops_per_token(c.model, V, 1))
  assert abs(analytical / measured - 1) < 0.02


@pytest.mark.parametrize("name", ["modern", "lstm"])
@pytest.mark.parametrize("tokens_per_param", [20.0, 40.0])
def test_planner_round_trips(name, tokens_per_param):
  m = ml_collections.ConfigDict(presets()[name].model.to_dict())
  m.num_layers = m.num_heads = 0
  plan = flops.plan_for_width(m, 50_257, L, 96.0, tokens_per_param=tokens_per_param)
  np.testing.assert_allclose(plan["tokens"], tokens_per_param * plan["params_total"])
  np.testing.assert_allclose(plan["budget_flops"], plan["flops_per_token"] * plan["tokens"])
  back = flops.plan_for_budget(m, 50_257, L, plan["budget_flops"], tokens_per_param)
  np.testing.assert_allclose(back["width"], 96.0, rtol=1e-4)
  snapped = flops.plan_for_budget(m, 50_257, L, 1.1 * plan["budget_flops"], tokens_per_param,
                                  snap_to=16)
  assert float(snapped["width"]) == 96.0
  np.testing.assert_allclose(snapped["budget_flops"], 1.1 * plan["budget_flops"], rtol=1e-5)
  budgets = jnp.array([1e13, 1e15, 1e17])
  widths = jax.vmap(lambda b: flops.width_for_budget(m, 50_257, L, b, tokens_per_param))(
      budgets)
  assert np.all(np.diff(widths) > 0)


def test_planner_needs_exactly_one_of_tokens():
  with pytest.raises(ValueError, match="exactly one"):
    flops.plan_for_width(model_config().model, V, L, 64.0)


def test_param_counts_are_exact_ints_above_float32_precision():
  """d=256, V=50,257: 29,701,713 parameters (float32 rounds it to ...712)."""
  c = resolved(presets()["modern"], 256)
  total, nonembedding = flops.param_counts(c.model, 50_257)
  assert type(total) is int and type(nonembedding) is int
  d, layers, vocab = 256, 16, 50_257
  body = layers * (4 * d * d + 12 * d * d + 2 * d) + d  # docs/models.md; final RMSNorm.
  assert (total, nonembedding) == (vocab * d + vocab + body, body) == (29_701_713, 16_785_664)
  model = models.build_model(c.model, vocab)
  params = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))
                          )["params"]
  assert models.count_params(params) == total
  assert total - models.embedding_param_count(params) == nonembedding
  # FLOPs at a concrete width are float64 Python numbers; a jax width gives float32 arrays
  # that agree to float32 precision.
  per_step = flops.training_flops_per_step(c, vocab)
  assert type(per_step) is float
  assert type(flops.optimizer_flops_per_step(c.optim, total)) is float
  traced = jax.jit(lambda w: flops.param_counts(c.model, vocab, w)[0])(256.0)
  assert traced.dtype == jnp.float32 and abs(float(traced) - total) <= 2


def test_plan_uses_the_trainers_depth_and_refuses_what_it_would_not_build():
  modern, lstm2 = presets()["modern"], presets()["lstm2"]
  plan, continuous = flops_launch.plan(modern, 50_257, L, budget=1e16, tokens_per_param=20)
  width = int(plan["width"])
  assert width % 16 == 0 and abs(width - continuous) <= 8
  trainer = resolved(modern, width).model
  assert plan["layers"] == trainer.num_layers
  assert plan["params_total"] == flops.param_counts(trainer, 50_257)[0]
  np.testing.assert_allclose(plan["budget_flops"], 1e16, rtol=1e-9)
  # lstm2 pins two layers at every width (the plan used to drop to one).
  plan, _ = flops_launch.plan(lstm2, 50_257, L, budget=1e15, tokens_per_param=20)
  assert plan["layers"] == 2
  for kwargs, flag in (({"budget": 0.0}, "--budget"), ({"budget": -1e15}, "--budget"),
                       ({"budget": float("nan")}, "--budget"),
                       ({"width": 64, "tokens": -5.0}, "--tokens"),
                       ({"width": 64, "tokens_per_param": 0.0}, "--tokens_per_param"),
                       ({"width": -64}, "--width"), ({}, "--width, --budget"),
                       ({"width": 64, "budget": 1e15}, "--width, --budget"),
                       ({"width": 100}, "--width=100: the trainer would not build it: "
                                        "model.width: expected a multiple of model.head_dim")):
    with pytest.raises(flops_launch.PlanError, match="^" + flag.replace(".", r"\.")):
      flops_launch.plan(modern, 50_257, L, **kwargs)


def test_launch_flops_plan_errors_are_one_line_without_traceback():
  out = subprocess.run([sys.executable, "-m", "launch.flops", "--mode=plan", "--budget=-1"],
                       capture_output=True, text=True, cwd=pathlib.Path(__file__).parents[1])
  assert out.returncode == 1
  assert out.stderr.strip().splitlines()[-1] == (
      "error: --budget: expected a positive number of FLOPs; got -1")
  assert "Traceback" not in out.stderr
