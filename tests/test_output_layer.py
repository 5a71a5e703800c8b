"""The fused output layer + cross-entropy (model.loss_block_tokens) against the logits path,
and model.attention_impl="dot_product_attention" against algoprog's attention."""

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from algoprog.training import config as config_lib, models, output_layer, train

VOCAB = 97  # Odd, small: compiles fast; blocks never divide it.


def resolved(kind: str = "transformer", length: int = 13, batch: int = 4, block: int = 8,
             **model_fields) -> ml_collections.ConfigDict:
  c = config_lib.base_config()
  c.model.kind, c.model.width, c.model.num_layers = kind, 32, 1
  c.model.loss_block_tokens = block
  c.model.update(model_fields)
  c.data.sequence_length, c.data.batch_size = length, batch
  c.train.lstm_window = length if kind != "lstm" else 8
  c.train.tokens = batch * length * 4
  return config_lib.resolve(c)


def model_pair(config: ml_collections.ConfigDict):
  """(fused model, unfused model) of one config: same parameters."""
  spec = models.ModelSpec.from_config(config.model)
  return (models.build_model(spec, VOCAB),
          models.build_model(dataclasses.replace(spec, loss_block_tokens=0), VOCAB))


def tokens(batch: int, length: int, seed: int = 1) -> tuple[jax.Array, jax.Array]:
  x = jax.random.randint(jax.random.key(seed), (batch, length + 1), 0, VOCAB)
  return x[:, :-1], x[:, 1:]


def init(model, length: int):
  params = model.init(jax.random.key(0), jnp.zeros((1, length), jnp.int32))["params"]
  # A non-zero bias, so its use and gradient are tested.
  return dict(params, output_bias=0.1 * jax.random.normal(jax.random.key(2), (VOCAB,)))


def assert_trees_close(a, b, rtol=1e-5, atol=1e-6):
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


def loss_and_grads(model, params, inputs, targets, weights=None):
  def loss(p):
    total, count, _ = train.model_loss_sum(model, p, inputs, targets, weights)
    return total / count
  return jax.value_and_grad(loss)(params)


@pytest.mark.parametrize("block,vocab_block,untied,weighted", [
    (8, 0, False, False),   # 2 positions of 4 rows per block, 13 = 6 x 2 + 1: padded.
    (1, 0, False, True),    # One position per block (the floor), eval-style weights.
    (4096, 0, True, False),  # One block of every token; untied unembedding.
    (8, 16, False, True),  # 7 vocabulary tiles, the last padded (97 = 6 x 16 + 1).
    (4096, 97, True, False),  # One tile of exactly the vocabulary.
])
def test_transformer_fused_loss_and_gradients_equal_the_logits_path(block, vocab_block, untied,
                                                                    weighted):
  config = resolved(block=block, tie_embeddings=not untied, loss_vocab_block=vocab_block)
  fused, plain = model_pair(config)
  assert output_layer.uses_fused_loss(fused) and not output_layer.uses_fused_loss(plain)
  params = init(plain, 13)
  inputs, targets = tokens(4, 13)
  weights = (jnp.arange(4 * 13).reshape(4, 13) % 3).astype(jnp.float32) if weighted else None
  loss_f, grads_f = loss_and_grads(fused, params, inputs, targets, weights)
  loss_p, grads_p = loss_and_grads(plain, params, inputs, targets, weights)
  np.testing.assert_allclose(loss_f, loss_p, rtol=1e-6)
  assert_trees_close(grads_f, grads_p)
  assert float(jnp.abs(grads_f["output_bias"]).max()) > 0


@pytest.mark.parametrize("vocab_block,forward_dots", [
    # One tile: each block's logits are formed once, in the forward, with the block's
    # gradient (logits, and the three gradient matmuls: hidden states, unembedding, and the
    # bias as ones @ dlogits).
    (0, 4),
    # Several tiles: the logsumexp pass and the gradient pass each form a tile's logits.
    (4, 5),
])
def test_the_backward_only_scales_and_evaluation_forms_no_gradient(vocab_block, forward_dots):
  # The gradient is formed in the forward (the backward only scales by the cotangent: no
  # matmul there); evaluation alone (no differentiation) does the logits matmul and nothing
  # else.
  rng = np.random.default_rng(0)
  h = jnp.asarray(rng.normal(size=(2, 8, 4)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(11, 4)), jnp.float32)
  b = jnp.asarray(rng.normal(size=(11,)), jnp.float32)
  targets = jnp.asarray(rng.integers(0, 11, (2, 8)), jnp.int32)
  weights = jnp.ones((2, 8), jnp.float32)
  loss = lambda h, w, b: output_layer.blockwise_cross_entropy_sum(
      h, w, b, targets, weights, 4, vocab_block=vocab_block)
  dots = lambda jaxpr: str(jaxpr).count("dot_general")
  assert dots(jax.make_jaxpr(loss)(h, w, b)) == 1  # the logits, inside the scans
  primal, backward = jax.vjp(loss, h, w, b)
  assert dots(jax.make_jaxpr(backward)(jnp.float32(1.0))) == 0
  assert dots(jax.make_jaxpr(lambda *a: jax.vjp(loss, *a)[0])(h, w, b)) == forward_dots
  np.testing.assert_allclose(primal, loss(h, w, b), rtol=1e-6)
  # The tiled loss is the plain cross-entropy (the online logsumexp over 3 tiles, the last
  # padded) and its gradients are the logits path's.
  def reference(h, w, b):
    logits = jnp.einsum("bld,vd->blv", h, w) + b
    picked = jnp.take_along_axis(logits, targets[..., None], -1)[..., 0]
    return jnp.sum(jax.nn.logsumexp(logits, -1) - picked)
  np.testing.assert_allclose(primal, reference(h, w, b), rtol=1e-6)
  assert_trees_close(jax.grad(loss, (0, 1, 2))(h, w, b), jax.grad(reference, (0, 1, 2))(h, w, b))


def test_no_output_bias_and_jit_equals_no_jit():
  config = resolved(output_bias=False)
  fused, plain = model_pair(config)
  params = plain.init(jax.random.key(0), jnp.zeros((1, 13), jnp.int32))["params"]
  assert "output_bias" not in params
  inputs, targets = tokens(4, 13)
  eager = loss_and_grads(fused, params, inputs, targets)
  jitted = jax.jit(lambda p: loss_and_grads(fused, p, inputs, targets))(params)
  assert_trees_close(eager, jitted)
  assert_trees_close(eager, loss_and_grads(plain, params, inputs, targets))


def test_lstm_truncated_bptt_loss_and_gradients_equal_the_logits_path():
  # 3 positions per window of 8: padded; 4 vocabulary tiles, the last padded.
  config = resolved("lstm", length=16, block=12, loss_vocab_block=32)
  fused, plain = model_pair(config)
  params = init(plain, 16)
  inputs, targets = tokens(4, 16)
  carry = 0.1 * jax.random.normal(jax.random.key(3), (4, 1, 2, 32))
  resets = jnp.array([[False, True]] * 2 + [[False, False]] * 2)

  def tbptt(model):
    def loss(p):
      total, (count, carry_out) = train.truncated_bptt_loss_sum(
          model, p, carry, inputs, targets, resets, 8)
      return total / count, carry_out
    return jax.value_and_grad(loss, has_aux=True)(params)

  (loss_f, carry_f), grads_f = tbptt(fused)
  (loss_p, carry_p), grads_p = tbptt(plain)
  np.testing.assert_allclose(loss_f, loss_p, rtol=1e-6)
  np.testing.assert_allclose(carry_f, carry_p, rtol=1e-6, atol=1e-7)
  assert_trees_close(grads_f, grads_p)
  # The eval step (weights, carry in and out) too.
  weights = jnp.ones((4, 16)).at[0, 5:].set(0.0)
  got = train.make_eval_step(fused)(params, carry, inputs, targets, weights)
  want = train.make_eval_step(plain)(params, carry, inputs, targets, weights)
  assert_trees_close(got, want)


@pytest.mark.parametrize("kind", ["transformer", "lstm"])
def test_bf16_fused_path_is_close_to_the_bf16_logits_path(kind):
  config = resolved(kind, length=16, block=24, matmul_dtype="bfloat16", loss_vocab_block=32)
  fused, plain = model_pair(config)
  params = init(plain, 16)
  inputs, targets = tokens(4, 16)
  loss_f, grads_f = loss_and_grads(fused, params, inputs, targets)
  loss_p, grads_p = loss_and_grads(plain, params, inputs, targets)
  # Same bf16 operands, f32 accumulation: differences are summation order only.
  np.testing.assert_allclose(loss_f, loss_p, rtol=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(grads_f), jax.tree_util.tree_leaves(grads_p)):
    np.testing.assert_allclose(a, b, atol=1e-2 * (float(jnp.abs(b).max()) or 1.0))


@pytest.mark.parametrize("kind", ["transformer", "lstm"])
def test_sharded_eight_devices_match_one_device_with_microbatches(kind):
  assert jax.device_count() == 8
  config = resolved(kind, length=16, batch=16, block=40, loss_vocab_block=32)
  with config.unlocked():
    config.train.microbatches = 2
  inputs, targets = (np.asarray(x) for x in tokens(16, 16))
  results = []
  for devices in (jax.devices()[:1], jax.devices()):
    trainer = train.build_trainer(config, VOCAB, 4, train.make_mesh(devices))
    state = trainer.init(jax.random.key(0))
    losses = []
    for _ in range(2):
      state, loss = trainer.train_step(state, *trainer.shard_batch(inputs, targets))
      losses.append(float(loss))
    evaluated = trainer.evaluate(state.params, [(inputs, targets, np.ones((16, 16), np.float32))])
    results.append((losses, evaluated, jax.device_get(state.params)))
  (l1, e1, p1), (l8, e8, p8) = results
  np.testing.assert_allclose(l1, l8, rtol=1e-5)
  np.testing.assert_allclose(e1, e8, rtol=1e-5)
  assert_trees_close(p1, p8, rtol=2e-5, atol=2e-6)


def test_unfused_train_step_matches_fused_train_step():
  config = resolved(length=16, batch=8, block=20)
  with config.unlocked():  # SGD: the update is linear in the gradient (Adam's first step
    config.optim.name = "sgd"  # divides it by its own size: tiny entries amplify rounding).
  inputs, targets = (np.asarray(x) for x in tokens(8, 16))
  params = {}
  for block in (20, 0):
    with config.unlocked():
      config.model.loss_block_tokens = block
    trainer = train.build_trainer(config, VOCAB, 4, train.make_mesh(jax.devices()[:1]))
    state, loss = trainer.train_step(trainer.init(jax.random.key(0)),
                                     *trainer.shard_batch(inputs, targets))
    params[block] = float(loss), jax.device_get(state.params)
  np.testing.assert_allclose(params[20][0], params[0][0], rtol=1e-6)
  assert_trees_close(params[20][1], params[0][1])


@pytest.mark.parametrize("matmul_dtype", ["float32", "bfloat16"])
def test_dot_product_attention_equals_ours_forward_and_gradients(matmul_dtype):
  config = resolved(length=16, block=0, num_layers=2, matmul_dtype=matmul_dtype)
  spec = models.ModelSpec.from_config(config.model)
  ours = models.build_model(spec, VOCAB)
  jaxs = models.build_model(dataclasses.replace(spec, attention_impl="dot_product_attention"),
                            VOCAB)
  params = init(ours, 16)
  inputs, targets = tokens(4, 16)
  logits_j, logits_o = (m.apply({"params": params}, inputs) for m in (jaxs, ours))
  if matmul_dtype == "float32":
    np.testing.assert_allclose(logits_j, logits_o, rtol=1e-5, atol=1e-6)
  else:  # bf16 probabilities are rounded at different points of the two kernels.
    np.testing.assert_allclose(logits_j, logits_o, atol=1e-2 * float(jnp.abs(logits_o).max()))
  loss_j, grads_j = loss_and_grads(jaxs, params, inputs, targets)
  loss_o, grads_o = loss_and_grads(ours, params, inputs, targets)
  np.testing.assert_allclose(loss_j, loss_o, rtol=1e-6 if matmul_dtype == "float32" else 1e-3)
  if matmul_dtype == "float32":
    assert_trees_close(grads_j, grads_o, rtol=1e-4, atol=1e-6)
  # Causal: changing a later token changes no earlier position's output.
  changed = inputs.at[:, 9].set((inputs[:, 9] + 1) % VOCAB)
  before, after = (jaxs.apply({"params": params}, x) for x in (inputs, changed))
  np.testing.assert_array_equal(before[:, :9], after[:, :9])
  assert not np.allclose(before[:, 9:], after[:, 9:])
