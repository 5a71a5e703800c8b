"""Each model component is what it claims: checked against numpy and closed forms."""

import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algoprog.training import config as config_lib, data, models, train
from algoprog.training.model_spec import ModelSpec

CONFIGS = pathlib.Path(__file__).resolve().parent.parent / "configs"
VOCAB = 61


def model_config(**fields) -> ModelSpec:
  c = config_lib.base_config()
  c.data.sequence_length = 16
  c.train.lstm_window = 8
  c.model.width = 32
  for dotted, value in fields.items():
    section, key = dotted.split("__")
    c[section][key] = value
  return config_lib.model_spec(config_lib.resolve(c))


def init(module, *args):
  return module.init(jax.random.key(0), *args)["params"]


def rand(*shape, seed=0):
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


# ---------------------------------------------------------------------------------------
# Transformer components.


@pytest.mark.parametrize("positions", ["rotary", "learned", "sinusoidal", "none"])
@pytest.mark.parametrize("placement", ["pre", "post"])
def test_changing_a_later_token_never_changes_earlier_logits(positions, placement):
  m = model_config(model__positions=positions, model__norm_placement=placement)
  model = models.build_model(m, VOCAB)
  tokens = np.random.default_rng(1).integers(0, VOCAB, (2, 16))
  params = init(model, tokens)
  logits = model.apply({"params": params}, tokens)
  for t in (0, 7, 15):
    changed = tokens.copy()
    changed[:, t] = (changed[:, t] + 1) % VOCAB
    new = model.apply({"params": params}, changed)
    np.testing.assert_array_equal(new[:, :t], logits[:, :t])
    assert np.abs(new[:, t:] - logits[:, t:]).max() > 1e-4  # Later logits do see it.


def test_logits_get_no_gradient_from_later_positions():
  m = model_config(model__tie_embeddings=False)  # Tied, the table is also the output.
  model = models.build_model(m, VOCAB)
  tokens = np.arange(16)[None] % VOCAB
  params = init(model, tokens)
  table = params["embed"]["embedding"]

  def logits_from_inputs(delta_LxD, t):
    # Tokens are distinct, so adding delta to the rows they read perturbs each input alone.
    p = {**params, "embed": {"embedding": table.at[tokens[0]].add(delta_LxD)}}
    return model.apply({"params": p}, tokens)[0, t].sum()

  for t in (3, 10):
    grad_LxD = jax.grad(logits_from_inputs)(jnp.zeros((16, m.width)), t)
    assert np.abs(grad_LxD[t + 1:]).max() == 0
    assert np.abs(grad_LxD[: t + 1]).max() > 0


@pytest.mark.parametrize("length,blocks", [
    (1, 4), (3, 4), (13, 4), (16, 4),  # Fewer queries than blocks; uneven blocks.
    (13, 1), (16, 16)])  # One block of every query; a block per query.
def test_causal_attention_in_query_blocks_equals_plain_softmax_attention(length, blocks):
  q, k, v, dout = (jax.random.normal(key, (2, 3, length, 8))
                   for key in jax.random.split(jax.random.key(7), 4))

  def plain(q, k, v):  # Autodiff through the textbook formula, one block of all queries.
    scores = jnp.einsum("bhqk,bhsk->bhqs", q, k)
    scores = jnp.where(jnp.tril(jnp.ones((length, length), bool)), scores, -jnp.inf)
    return jnp.einsum("bhqs,bhsk->bhqk", jax.nn.softmax(scores, axis=-1), v)

  out, vjp = jax.vjp(lambda q, k, v: models.causal_attention(q, k, v, blocks), q, k, v)
  want, want_vjp = jax.vjp(plain, q, k, v)
  np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
  for got, expected in zip(vjp(dout), want_vjp(dout)):
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_rotary_scores_depend_only_on_the_offset():
  k = 16
  q_K, key_K = rand(k, seed=1), rand(k, seed=2)
  length = 24
  rotate = lambda v: models.apply_rotary(jnp.broadcast_to(v, (1, length, 1, k)), 10_000.0)
  q_L, key_L = rotate(q_K)[0, :, 0], rotate(key_K)[0, :, 0]
  scores_LxL = np.asarray(q_L @ key_L.T)
  for offset in (0, 3, 11):
    diagonal = np.diagonal(scores_LxL, offset=-offset)  # Query at m, key at m - offset.
    np.testing.assert_allclose(diagonal, diagonal[0], rtol=1e-4, atol=1e-4)
  assert abs(scores_LxL[5, 2] - scores_LxL[5, 4]) > 1e-3  # It does depend on the offset.
  np.testing.assert_allclose(np.linalg.norm(q_L, axis=-1), np.linalg.norm(q_K), rtol=1e-5)
  np.testing.assert_allclose(q_L[0], q_K, rtol=1e-6)  # Position 0 is not rotated.


def test_sinusoidal_table_matches_the_closed_form():
  length, width = 50, 24
  table = np.asarray(models.sinusoidal_positions(length, width))
  expected = np.zeros((length, width))
  for p in range(length):
    for i in range(width // 2):
      expected[p, 2 * i] = math.sin(p / 10_000 ** (2 * i / width))
      expected[p, 2 * i + 1] = math.cos(p / 10_000 ** (2 * i / width))
  np.testing.assert_allclose(table, expected, atol=2e-5)


def test_rmsnorm_and_layernorm_match_numpy():
  x = rand(2, 3, 8) * 3 + 1
  scale, bias = rand(8, seed=1), rand(8, seed=2)
  rms = models.RMSNorm().apply({"params": {"scale": scale}}, x)
  np.testing.assert_allclose(rms, x / np.sqrt((x**2).mean(-1, keepdims=True) + 1e-6) * scale,
                             rtol=1e-5, atol=1e-6)
  ln = models.LayerNorm().apply({"params": {"scale": scale, "bias": bias}}, x)
  mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
  np.testing.assert_allclose(ln, (x - mean) / np.sqrt(var + 1e-5) * scale + bias,
                             rtol=1e-5, atol=1e-5)


def _gelu(x):
  return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


@pytest.mark.parametrize("ffn", ["swiglu", "gelu", "relu"])
def test_ffn_matches_numpy(ffn):
  m = model_config(model__ffn=ffn)
  x = rand(2, 5, m.width)
  module = models.FeedForward(m)
  params = init(module, x)
  up, down = params["up"]["kernel"], params["down"]["kernel"]
  assert up.shape == (m.width, 4 * m.width) and down.shape == (4 * m.width, m.width)
  if ffn == "swiglu":
    gate = np.asarray(x @ params["gate"]["kernel"])
    hidden = gate / (1 + np.exp(-gate)) * (x @ up)
  else:
    assert set(params) == {"up", "down"}
    hidden = _gelu(x @ up) if ffn == "gelu" else np.maximum(x @ up, 0)
  np.testing.assert_allclose(module.apply({"params": params}, x), hidden @ down,
                             rtol=2e-4, atol=1e-6)


@pytest.mark.parametrize("norm", ["rmsnorm", "layernorm"])
def test_pre_and_post_norm_wiring(norm):
  x = rand(2, 6, 32)

  def normalise(y, p):
    y = np.asarray(y, np.float64)
    if norm == "rmsnorm":
      return y / np.sqrt((y**2).mean(-1, keepdims=True) + 1e-6) * p["scale"]
    return ((y - y.mean(-1, keepdims=True)) / np.sqrt(y.var(-1, keepdims=True) + 1e-5)
            * p["scale"] + p["bias"])

  for placement in ("pre", "post"):
    m = model_config(model__norm=norm, model__norm_placement=placement)
    layer = models.TransformerLayer(m)
    params = init(layer, x)
    # Non-trivial norm parameters, so a misplaced norm cannot hide.
    params = dict(params)
    for name in ("attention_norm", "ffn_norm"):
      params[name] = {k: v + rand(*v.shape, seed=len(k)) * 0.3 for k, v in params[name].items()}
    attention = lambda y: np.asarray(models.CausalSelfAttention(m).apply(
        {"params": params["attention"]}, jnp.asarray(y, jnp.float32)))
    ffn = lambda y: np.asarray(models.FeedForward(m).apply(
        {"params": params["ffn"]}, jnp.asarray(y, jnp.float32)))
    if placement == "pre":
      h = x + attention(normalise(x, params["attention_norm"]))
      expected = h + ffn(normalise(h, params["ffn_norm"]))
    else:
      h = normalise(x + attention(x), params["attention_norm"])
      expected = normalise(h + ffn(h), params["ffn_norm"])
    np.testing.assert_allclose(layer.apply({"params": params}, x), expected,
                               rtol=1e-4, atol=1e-4)
    full = init(models.build_model(m, VOCAB), np.zeros((1, 16), np.int32))
    assert ("final_norm" in full) == (placement == "pre")


def test_scale_embeddings_is_the_2017_convention():
  m = model_config(model__scale_embeddings=True, model__positions="none")
  model = models.build_model(m, VOCAB)
  params = init(model, np.zeros((1, 4), np.int32))
  assert abs(np.std(params["embed"]["embedding"]) - m.width**-0.5) < 0.03


def test_inits_have_their_scales():
  d = 64
  for scheme, std in (("normal", 0.02), ("xavier", math.sqrt(2 / (d + 4 * d))),
                      ("kaiming", math.sqrt(2 / d))):
    m = model_config(model__width=d, model__init=scheme, model__ffn="gelu")
    up = init(models.FeedForward(m), rand(1, 2, d))["up"]["kernel"]
    assert abs(np.std(up) / std - 1) < 0.05, scheme
  m = model_config(model__width=d, model__scaled_output_init=True)
  down = init(models.FeedForward(m), rand(1, 2, d))["down"]["kernel"]
  assert abs(np.std(down) / (0.02 / math.sqrt(2 * m.num_layers)) - 1) < 0.05


def test_untied_embeddings_and_no_output_bias():
  m = model_config(model__tie_embeddings=False, model__output_bias=False)
  params = init(models.build_model(m, VOCAB), np.zeros((1, 16), np.int32))
  assert params["unembed"]["kernel"].shape == (m.width, VOCAB)
  assert "output_bias" not in params


def test_matrix_biases_are_on_every_matrix_and_used():
  for ffn in ("swiglu", "gelu"):
    m = model_config(model__matrix_biases=True, model__ffn=ffn)
    model = models.build_model(m, VOCAB)
    tokens = np.random.default_rng(0).integers(0, VOCAB, (2, 16))
    params = init(model, tokens)
    layers = [params[f"layer_{i}"] for i in range(m.num_layers)]
    denses = [d for layer in layers for part in layer.values() for d in part.values()
              if isinstance(d, dict) and "kernel" in d]
    assert len(denses) == m.num_layers * (4 + (3 if ffn == "swiglu" else 2))
    for dense in denses:
      np.testing.assert_array_equal(dense["bias"], 0)  # Zero at init: the same function.
      assert dense["bias"].shape == dense["kernel"].shape[-1:]
    moved = jax.tree_util.tree_map(lambda x: x, params)
    moved["layer_0"]["ffn"]["down"]["bias"] = jnp.ones(m.width)
    assert np.abs(model.apply({"params": moved}, tokens)
                  - model.apply({"params": params}, tokens)).max() > 1e-3
  plain = init(models.build_model(model_config(), VOCAB), np.zeros((1, 16), np.int32))
  assert not any("bias" in d for d in plain["layer_0"]["attention"].values())
  assert not any("bias" in d for d in plain["layer_0"]["ffn"].values())


def test_final_norm_option_adds_a_norm_after_post_norm_layers():
  m = model_config(model__norm_placement="post", model__norm="layernorm",
                   model__final_norm="yes")
  model = models.build_model(m, VOCAB)
  tokens = np.random.default_rng(0).integers(0, VOCAB, (2, 16))
  params = init(model, tokens)
  assert set(params["final_norm"]) == {"scale", "bias"}
  moved = dict(params, final_norm={"scale": params["final_norm"]["scale"] * 2,
                                   "bias": params["final_norm"]["bias"]})
  logits = model.apply({"params": params}, tokens)
  bias = params["output_bias"]
  # Doubling the final norm's scale doubles the logits less the output bias: it is last.
  np.testing.assert_allclose(model.apply({"params": moved}, tokens) - bias,
                             2 * (logits - bias), rtol=1e-4, atol=1e-5)
  off = model_config(model__final_norm="no")  # Pre-norm without one, too.
  assert "final_norm" not in init(models.build_model(off, VOCAB), tokens)


def test_learned_positions_init_std():
  m = model_config(model__positions="learned", model__positions_init_std=0.01,
                   model__width=128)
  params = init(models.build_model(m, VOCAB), np.zeros((1, 16), np.int32))
  assert abs(np.std(params["positions"]) / 0.01 - 1) < 0.05
  assert abs(np.std(params["embed"]["embedding"]) / 0.02 - 1) < 0.05
  assert model_config(model__positions="learned").positions_init_std == 0.02  # 0 -> init_std.


def test_output_bias_gradient_matmul_equals_autodiff():
  logits, bias = rand(300, 61), rand(61, seed=1)
  weights = rand(300, 61, seed=2)  # A non-uniform upstream gradient.
  loss = lambda add: lambda l, b: jnp.sum(weights * jnp.tanh(add(l, b)))
  np.testing.assert_array_equal(models.add_output_bias(logits, bias), logits + bias)
  got = jax.grad(loss(models.add_output_bias), argnums=(0, 1))(logits, bias)
  want = jax.grad(loss(lambda l, b: l + b), argnums=(0, 1))(logits, bias)
  np.testing.assert_array_equal(got[0], want[0])
  np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-5)
  assert np.abs(got[1]).max() > 1  # Not trivially zero.


# ---------------------------------------------------------------------------------------
# The LSTM.


def _sigmoid(x):
  return 1 / (1 + np.exp(-x))


def test_lstm_layer_matches_a_numpy_reference():
  m = model_config(model__kind="lstm", model__lstm_bias_sets=2)
  d = m.width
  x = rand(3, 5, d)
  carry = rand(3, 2, d, seed=4) * 0.5
  layer = models.LSTMLayer(m)
  params = init(layer, x, carry)
  params = {k: v + rand(*v.shape, seed=7) * 0.1 for k, v in params.items()}
  out, new_carry = layer.apply({"params": params}, x, carry)
  wx, wh = params["input_kernel"], params["recurrent_kernel"]
  b = params["bias"] + params["bias_1"]
  h, c = carry[:, 0].astype(np.float64), carry[:, 1].astype(np.float64)
  for t in range(5):
    z = x[:, t] @ wx + h @ wh + b
    i, f, g, o = np.split(z, 4, axis=-1)
    c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    h = _sigmoid(o) * np.tanh(c)
    np.testing.assert_allclose(out[:, t], h, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(new_carry[:, 0], h, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(new_carry[:, 1], c, rtol=1e-4, atol=1e-5)


def test_lstm_forget_bias_init():
  m = model_config(model__kind="lstm")
  params = init(models.LSTMLayer(m), rand(1, 2, m.width), np.zeros((1, 2, m.width)))
  d = m.width
  np.testing.assert_array_equal(params["bias"][d:2 * d], 1.0)
  np.testing.assert_array_equal(np.delete(params["bias"], np.s_[d:2 * d]), 0.0)


def test_lstm_streams_exactly_across_calls_and_is_causal():
  m = model_config(model__kind="lstm", model__num_layers=2)
  model = models.build_model(m, VOCAB)
  tokens = np.random.default_rng(2).integers(0, VOCAB, (3, 16))
  params = init(model, tokens)
  logits, carry = model.apply({"params": params}, tokens)
  assert carry.shape == (3, 2, 2, m.width)
  first, mid = model.apply({"params": params}, tokens[:, :10])
  second, end = model.apply({"params": params}, tokens[:, 10:], mid)
  np.testing.assert_allclose(np.concatenate([first, second], 1), logits, rtol=1e-5,
                             atol=1e-5)
  np.testing.assert_allclose(end, carry, rtol=1e-5, atol=1e-6)
  changed = tokens.copy()
  changed[:, 9] += 1
  np.testing.assert_array_equal(model.apply({"params": params}, changed)[0][:, :9],
                                logits[:, :9])


@pytest.mark.parametrize("matmul_dtype", ["float32", "bfloat16"])
def test_lstm_scan_gradient_equals_autodiff_of_the_plain_scan(matmul_dtype):
  b, length, h = 3, 7, 8
  xproj, recurrent = rand(b, length, 4 * h), rand(h, 4 * h, seed=1) * 0.5
  carry = rand(b, 2, h, seed=2)  # A state carried in from an earlier window.
  weights_h, weights_c = rand(b, length, h, seed=3), rand(b, 2, h, seed=4)

  def loss(scan):
    def f(xproj, recurrent, carry):
      hs, new_carry = scan(xproj, recurrent, carry, matmul_dtype)
      return jnp.sum(hs * weights_h) + jnp.sum(new_carry * weights_c)  # Both outputs used.
    return jax.value_and_grad(f, argnums=(0, 1, 2))(xproj, recurrent, carry)

  (got, got_grads), (want, want_grads) = loss(models.lstm_scan), loss(models.lstm_scan_autodiff)
  np.testing.assert_allclose(got, want, rtol=1e-6)
  for name, a, b in zip(("xproj", "recurrent", "carry"), got_grads, want_grads):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max(), err_msg=name)


def test_lstm_train_steps_with_resets_equal_the_autodiff_scan(monkeypatch):
  """Truncated BPTT over two windows per step, state carried across steps, resets drawn:
  losses, carries and parameters after three steps match the plain scan's."""
  results = []
  for scan in (models.lstm_scan, models.lstm_scan_autodiff):
    monkeypatch.setattr(models, "lstm_scan", scan)  # Read when the step is traced.
    trainer = lstm_trainer(reset=0.3)
    state, losses = trainer.init(jax.random.key(0)), []
    for x, y in batches(3):
      state, loss = trainer.train_step(state, *trainer.shard_batch(x, y))
      losses.append(float(loss))
    results.append((losses, jax.device_get(state.carry), jax.device_get(state.params)))
  (losses, carry, params), (want_losses, want_carry, want_params) = results
  np.testing.assert_allclose(losses, want_losses, rtol=1e-5)
  np.testing.assert_allclose(carry, want_carry, rtol=1e-4, atol=1e-6)
  for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(want_params)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def lstm_trainer(batch_size=4, length=16, window=8, reset=0.0, microbatches=1, devices=2,
                 reset_per="window"):
  c = config_lib.base_config()
  c.data.sequence_length = length
  c.data.batch_size = batch_size
  c.model.kind = "lstm"
  c.model.width = 16
  c.train.lstm_window = window
  c.train.lstm_reset_probability = reset
  c.train.lstm_reset = reset_per
  c.train.microbatches = microbatches
  c = config_lib.resolve(c)
  return train.build_trainer(c, VOCAB, 100, train.make_mesh(jax.devices()[:devices]))


def batches(steps, batch_size=4, length=16, seed=3):
  rng = np.random.default_rng(seed)
  stream = rng.integers(0, VOCAB, (batch_size, steps * length + 1)).astype(np.int32)
  return [(stream[:, s * length:(s + 1) * length], stream[:, s * length + 1:(s + 1) * length + 1])
          for s in range(steps)]


def test_train_step_carries_the_state_across_windows_and_steps():
  trainer = lstm_trainer()
  state = trainer.init(jax.random.key(0))
  np.testing.assert_array_equal(state.carry, 0)
  (x0, y0), (x1, _) = batches(2)
  params0 = jax.device_get(state.params)
  state = trainer.train_step(state, *trainer.shard_batch(x0, y0))[0]
  # With no resets the carry after a step is the plain recurrence over all its windows.
  _, expected = trainer.model.apply({"params": params0}, x0)
  np.testing.assert_allclose(state.carry, expected, rtol=1e-5, atol=1e-6)
  params1, carry1 = jax.device_get((state.params, state.carry))
  state = trainer.train_step(state, *trainer.shard_batch(x1, y0))[0]
  _, expected = trainer.model.apply({"params": params1}, x1, carry1)
  np.testing.assert_allclose(state.carry, expected, rtol=1e-5, atol=1e-6)
  assert {s.data.shape for s in state.carry.addressable_shards} == {(2, 1, 2, 16)}


def test_reset_probability_one_restarts_every_window():
  trainer = lstm_trainer(reset=1.0)
  state = trainer.init(jax.random.key(0))
  (x0, y0), = batches(1)
  params0 = jax.device_get(state.params)
  state = trainer.train_step(state, *trainer.shard_batch(x0, y0))[0]
  _, expected = trainer.model.apply({"params": params0}, x0[:, 8:])  # Last window alone.
  np.testing.assert_allclose(state.carry, expected, rtol=1e-5, atol=1e-6)


def test_per_batch_resets_restart_only_before_the_first_window():
  trainer = lstm_trainer(reset=1.0, reset_per="batch")
  state = trainer.init(jax.random.key(0))
  (x0, y0), (x1, y1) = batches(2)
  state = trainer.train_step(state, *trainer.shard_batch(x0, y0))[0]
  params1 = jax.device_get(state.params)
  state = trainer.train_step(state, *trainer.shard_batch(x1, y1))[0]
  # Step 2 restarts from zeros (not from step 1's carry), then carries across its windows.
  _, expected = trainer.model.apply({"params": params1}, x1)
  np.testing.assert_allclose(state.carry, expected, rtol=1e-5, atol=1e-6)
  mask = np.asarray(train.reset_mask(0, jnp.int32(3), 4000, 4, 0.01, "batch"))
  assert not mask[:, 1:].any() and 0.006 < mask[:, 0].mean() < 0.014


def test_reset_draws_depend_only_on_seed_and_step():
  a = train.reset_mask(123, jnp.int32(5), 64, 4, 0.01)
  np.testing.assert_array_equal(a, train.reset_mask(123, jnp.int32(5), 64, 4, 0.01))
  assert not np.array_equal(a, train.reset_mask(123, jnp.int32(6), 64, 4, 0.01)) or not a.any()
  many = train.reset_mask(0, jnp.int32(0), 4000, 25, 0.01)
  assert 0.008 < float(many.mean()) < 0.012
  # Microbatching splits the same draws: losses and carries match the full batch.
  full, micro = lstm_trainer(reset=0.3), lstm_trainer(reset=0.3, microbatches=2)
  s_full, s_micro = full.init(jax.random.key(0)), micro.init(jax.random.key(0))
  for x, y in batches(3):
    s_full, loss_full = full.train_step(s_full, *full.shard_batch(x, y))
    s_micro, loss_micro = micro.train_step(s_micro, *micro.shard_batch(x, y))
    np.testing.assert_allclose(loss_full, loss_micro, rtol=1e-5)
    np.testing.assert_allclose(s_full.carry, s_micro.carry, rtol=1e-4, atol=1e-6)


def test_gradients_stop_at_window_boundaries():
  trainer = lstm_trainer()
  params = jax.device_get(trainer.init(jax.random.key(0)).params)
  (x, y), = batches(1)
  carry0 = models.initial_carry(trainer.config.model, 4)

  def truncated(p, window):
    return train.truncated_bptt_loss_sum(trainer.model, p, carry0, x, y,
                                         np.zeros((4, 16 // window), bool), window)[0]

  def window_loss(p, inputs, targets, carry):
    logits, _ = trainer.model.apply({"params": p}, inputs, carry)
    return train.cross_entropy_sum(logits, targets)[0]

  _, mid = trainer.model.apply({"params": params}, x[:, :8])
  reference = jax.tree_util.tree_map(
      jnp.add, jax.grad(window_loss)(params, x[:, :8], y[:, :8], carry0),
      jax.grad(window_loss)(params, x[:, 8:], y[:, 8:], mid))  # mid held constant.
  got = jax.grad(truncated)(params, 8)
  for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(reference)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  full = jax.grad(truncated)(params, 16)  # One window: full backpropagation differs.
  kernel = lambda g: g["layer_0"]["recurrent_kernel"]
  assert np.abs(kernel(full) - kernel(got)).max() > 1e-6


def test_validation_streams_score_the_same_targets_in_row_streams():
  tokens = np.arange(1000, dtype=np.int32)
  plain = data.validation_batches(tokens, 4, 16)
  streams = data.validation_batches(tokens, 4, 16, streams=True)
  assert len(plain) == len(streams)
  rows = lambda bs: sorted((tuple(t), float(w[0])) for _, ts, ws in bs for t, w in zip(ts, ws))
  assert rows(plain) == rows(streams)
  # Row r of consecutive batches continues where the previous batch left off.
  for (x0, _, w0), (x1, _, w1) in zip(streams, streams[1:]):
    live = (w0[:, 0] > 0) & (w1[:, 0] > 0)
    np.testing.assert_array_equal(x1[live, 0], x0[live, -1] + 1)


def test_lstm_evaluation_streams_from_zeros_across_batches():
  trainer = lstm_trainer(batch_size=2, length=8, window=8)
  params = jax.device_get(trainer.init(jax.random.key(0)).params)
  tokens = np.random.default_rng(5).integers(0, VOCAB, 203).astype(np.int32)
  validation = data.validation_batches(tokens, 2, 8, streams=True)
  got = trainer.evaluate(params, validation)
  # Reference: each row's whole stream in one call from zeros.
  n_seq = (tokens.size - 1) // 8  # 25 windows: rows of 13 and 12 (+1 padding).
  total, count = 0.0, 0
  for first, n in ((0, 13), (13, 12)):
    inputs = tokens[first * 8:(first + n) * 8][None]
    targets = tokens[first * 8 + 1:(first + n) * 8 + 1][None]
    logits, _ = trainer.model.apply({"params": params}, inputs)
    loss, k = train.cross_entropy_sum(logits, targets)
    total, count = total + float(loss), count + int(k)
  assert count == n_seq * 8
  np.testing.assert_allclose(got, total / count, rtol=1e-5)


# ---------------------------------------------------------------------------------------
# Parameter counts: the pytree against the closed forms of docs/science.md / docs/models.md.


def closed_form(m, vocab: int) -> tuple[int, int]:
  """(total, non-embedding) parameters.

  Transformer: N [4 d^2 + (3 if SwiGLU else 2) d F + 2 n] + (n if pre-norm) with F = 4d
  (SwiGLU 12 d^2, GELU/ReLU 8 d^2) and n = d (RMSNorm scale) or 2d (LayerNorm scale + bias);
  LSTM: N (8 d^2 + 4 d b), b = bias sets. Embedding part: V d + V (output bias)
  + d V (untied) + Lmax d (learned positions); model.matrix_biases adds each matrix's output
  width, model.final_norm one more norm.
  """
  m = ModelSpec.from_config(m)
  d, n_layers = m.width, m.num_layers
  embedding = vocab * d + (vocab if m.output_bias else 0)
  embedding += 0 if m.tie_embeddings else d * vocab
  if m.kind == "lstm":
    return embedding + n_layers * (8 * d * d + 4 * d * m.lstm_bias_sets), n_layers * (
        8 * d * d + 4 * d * m.lstm_bias_sets)
  if m.positions == "learned":
    embedding += m.max_sequence_length * d
  f = m.ffn_multiplier * d
  norm = d if m.norm == "rmsnorm" else 2 * d
  body = n_layers * (4 * d * d + (3 if m.ffn == "swiglu" else 2) * d * f + 2 * norm)
  if m.matrix_biases:  # Every matrix's output width: 4 d + (gate) + up + down.
    body += n_layers * (4 * d + (2 if m.ffn == "swiglu" else 1) * f + d)
  body += norm if m.final_norm else 0
  return embedding + body, body


def load_preset(name):
  return config_lib.load_config_file(CONFIGS / f"{name}.py")


PRESETS = sorted(p.stem for p in CONFIGS.glob("*.py")
                 if p.stem in ("modern", "retro", "lstm", "lstm2")
                 or p.stem.startswith("ablation_"))


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("width", [32, 64, 128, 256])
def test_param_counts_match_the_closed_forms(name, width):
  c = load_preset(name)
  c.model.width = width
  m = config_lib.resolve(c).model
  vocab = 50_257
  model = models.build_model(m, vocab)
  params = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32)))
  params = params["params"]
  total, nonembedding = closed_form(m, vocab)
  assert models.count_params(params) == total
  assert models.count_params(params) - models.embedding_param_count(params) == nonembedding


def test_spec_layer_counts_at_width_64():
  d = 64
  modern = model_config(model__width=d)
  assert closed_form(modern, 1)[1] == 4 * (4 * d * d + 12 * d * d + 2 * d) + d
  gelu = model_config(model__width=d, model__ffn="gelu", model__norm="layernorm")
  assert closed_form(gelu, 1)[1] == 4 * (4 * d * d + 8 * d * d + 4 * d) + 2 * d
  lstm = model_config(model__width=d, model__kind="lstm")
  assert closed_form(lstm, 1)[1] == 8 * d * d + 4 * d


def _train_step_and_state(kind: str, matmul_dtype: str, untied: bool = False):
  import optax
  c = config_lib.base_config()
  c.model.kind, c.model.width, c.model.matmul_dtype = kind, 32, matmul_dtype
  c.model.tie_embeddings = not untied
  c.data.sequence_length = c.train.lstm_window = 32
  r = config_lib.resolve(c)
  model = models.build_model(r.model, 300)
  tokens = jax.random.randint(jax.random.key(1), (4, 32), 0, 300)
  params = model.init(jax.random.key(0), tokens)["params"]
  optimizer = optax.sgd(1.0)
  state = train.TrainState(jnp.zeros((), jnp.int32), params, optimizer.init(params),
                           models.initial_carry(r.model, 4))
  step = train.make_train_step(model, optimizer, 1, lstm_window=32)
  return model, step, state, tokens


@pytest.mark.parametrize("kind,untied", [("transformer", False), ("transformer", True),
                                         ("lstm", False)])
def test_bf16_matmuls_stay_close_to_f32_and_keep_params_f32(kind, untied):
  results = {}
  for matmul_dtype in ("float32", "bfloat16"):
    model, step, state, tokens = _train_step_and_state(kind, matmul_dtype, untied)
    out = model.apply({"params": state.params}, tokens)
    logits = out[0] if models.is_recurrent(model) else out
    new_state, loss = jax.jit(step)(state, tokens, jnp.roll(tokens, -1, axis=1))
    assert logits.dtype == jnp.float32
    assert {x.dtype for x in jax.tree_util.tree_leaves(new_state.params)} == {jnp.dtype("f4")}
    # SGD at lr 1: the parameter change is minus the gradient.
    grads = jax.tree_util.tree_map(jnp.subtract, state.params, new_state.params)
    results[matmul_dtype] = logits, float(loss), grads
  (l32, loss32, g32), (l16, loss16, g16) = results["float32"], results["bfloat16"]
  assert not np.array_equal(l32, l16)  # The option does something.
  np.testing.assert_allclose(l16, l32, atol=3e-2 * float(jnp.max(jnp.abs(l32))))
  assert abs(loss16 - loss32) < 1e-3 * loss32
  for a, b in zip(jax.tree_util.tree_leaves(g32), jax.tree_util.tree_leaves(g16)):
    scale = float(jnp.max(jnp.abs(a))) or 1.0
    np.testing.assert_allclose(b, a, atol=5e-2 * scale)


@pytest.mark.parametrize("kind", ["transformer", "lstm"])
def test_bf16_option_makes_every_matmul_bf16_in_with_f32_accumulation(kind):
  import re
  for matmul_dtype, operand in (("float32", "f32"), ("bfloat16", "bf16")):
    _, step, state, tokens = _train_step_and_state(kind, matmul_dtype)
    hlo = jax.jit(step).lower(state, tokens, tokens).as_text()
    # The lhs has rank >= 2: the one rank-1 dot is the output bias's gradient, ones[T] @
    # dlogits (models.add_output_bias), a column sum kept in float32 on purpose.
    dots = re.findall(r"stablehlo\.dot_general .*: \(tensor<\d+x[^>]*x(\w+)>, "
                      r"tensor<[^>]*x(\w+)>\) -> tensor<[^>]*x(\w+)>", hlo)
    assert len(dots) >= (9 if kind == "lstm" else 40)  # Forward and backward.
    assert set(dots) == {(operand, operand, "f32")}, (matmul_dtype, set(dots))
