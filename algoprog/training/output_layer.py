"""The fused output layer + cross-entropy: the loss of hidden states without [T, V] logits.

The unfused path (model.loss_block_tokens = 0) has the model return logits [B, L, V] in
float32 and takes their cross-entropy (train.cross_entropy_sum): at the study's vocabulary
of 50,257 those logits (and their gradient) are by far the largest arrays of a step, ~0.8 GB
at 4,096 tokens, written and read several times. Here the model returns its final hidden
states [B, L, D] instead (`return_hidden=True`), and `cross_entropy_sum` computes

  sum_t weight_t * (logsumexp_v(h_t . w_v + b_v) - (h_t . w_target + b_target))

block by block: the tokens are cut into blocks of loss_block_tokens // B positions of every
row (all B rows in each block, so a batch sharded on the data axis stays sharded and each
device computes its rows' share), and a `lax.scan` computes each block's logits [B * P, V],
its logsumexp and its targets' logits (h . w_target + b_target, from the targets' rows of
W). The loss is a scalar, so its cotangent only scales the gradient: while a block's
logits exist, the forward of the custom VJP also forms the block's gradient at cotangent
1, dlogits = weight * (softmax - onehot), and accumulates the three gradients: hidden
states (dlogits @ W), the tied (or untied) unembedding (h^T @ dlogits, a transposed
float32 carry, turned back once per step) and the output bias (weight @ softmax, a
matrix-vector product as in models.add_output_bias); the backward multiplies them by the
cotangent. The two halves of dlogits are taken apart: the softmax half densely, with the
token weight applied to the [T, D] operands and results rather than to the [T, V] tile,
and the onehot half sparsely (minus each target's row of W, the one gathered for its
logit, for dh; minus weight * h added into each target's row of W's gradient, once per
step), so the tile's only elementwise pass is its exponential. Peak memory is one block's
(or tile's) logits and their gradient instead of all of them. Evaluation (no gradient)
runs the plain forward and forms no gradients.

The vocabulary is cut into tiles of model.loss_vocab_block entries (V padded with zero rows
and a -inf bias, whose softmax weight is exactly 0). Each block then makes two passes over
the tiles: an online logsumexp (a running maximum and a rescaled sum of exponentials),
then, with the logsumexp known, each tile's logits again and its gradient. Every
[tokens, tile] array then fits in cache, which on CPU more than pays for the one
recomputed logits matmul (docs/performance.md; not counted as model FLOPs,
docs/flops.md). With one tile (loss_vocab_block 0, or >= V) the logits are formed once
and the matmuls are exactly the unfused path's.

Precision follows model.matmul_dtype exactly as the unfused path does: "bfloat16" casts
both operands of every matmul (the logits, and both backward matmuls with the cotangent
cast too) to bf16 and accumulates in float32; the softmax, logsumexp and bias gradient stay
float32. Within f32 rounding the loss and gradients equal the unfused path's
(tests/test_output_layer.py).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from algoprog.training.model_spec import ModelSpec


def uses_fused_loss(model: Any) -> bool:
  """Whether the train/eval steps take `model`'s loss through `cross_entropy_sum`: its
  spec asks for it (model.loss_block_tokens > 0) and the module returns hidden states on
  `return_hidden=True` (the built-in Transformer and LSTM; other plug-in models keep the
  logits path)."""
  from algoprog.training import models  # models does not import this module.
  spec = getattr(model, "model", None)
  return (isinstance(spec, ModelSpec) and spec.loss_block_tokens > 0
          and isinstance(model, (models.Transformer, models.LSTM)))


def unembedding(spec: ModelSpec, params: Any) -> tuple[jax.Array, jax.Array | None]:
  """(w [V, D], output bias [V] or None) of a built-in model's params: the tied embedding
  table, or the untied unembed/kernel transposed."""
  if spec.tie_embeddings:
    w_VxD = params["embed"]["embedding"]
  else:
    w_VxD = params["unembed"]["kernel"].T
  return w_VxD, params["output_bias"] if spec.output_bias else None


def cross_entropy_sum(spec: ModelSpec, params: Any, hidden_BxLxD: jax.Array,
                      targets_BxL: jax.Array, weights_BxL: jax.Array | None = None
                      ) -> tuple[jax.Array, jax.Array]:
  """(sum of token losses in nats, number of weighted tokens) of the model's final hidden
  states, as train.cross_entropy_sum of the logits would give, in blocks of
  spec.loss_block_tokens tokens and spec.loss_vocab_block vocabulary entries."""
  w_VxD, bias_V = unembedding(spec, params)
  if weights_BxL is None:
    weights_BxL = jnp.ones(targets_BxL.shape, jnp.float32)
  loss = blockwise_cross_entropy_sum(hidden_BxLxD, w_VxD, bias_V, targets_BxL, weights_BxL,
                                     spec.loss_block_tokens, spec.matmul_dtype,
                                     spec.loss_vocab_block)
  return loss, jnp.sum(weights_BxL)


def blockwise_cross_entropy_sum(hidden_BxLxD: jax.Array, w_VxD: jax.Array,
                                bias_V: jax.Array | None, targets_BxL: jax.Array,
                                weights_BxL: jax.Array, block_tokens: int,
                                matmul_dtype: str = "float32", vocab_block: int = 0
                                ) -> jax.Array:
  """sum_t weight_t * cross-entropy of logits h_t @ w^T + bias at target_t (nats), without
  materialising the [B * L, V] logits.

  Blocks hold P = max(1, block_tokens // B) positions of every row (at most L); L is
  padded to a multiple of P with zero-weight positions, so any L works. vocab_block > 0
  (and < V) cuts the vocabulary into tiles of that many entries (V padded with zero rows
  and a -inf bias); 0 takes the whole vocabulary as one tile.
  """
  b, length, d = hidden_BxLxD.shape
  positions = min(length, max(1, block_tokens // b))
  blocks = -(-length // positions)
  pad = blocks * positions - length
  if pad:  # Zero weight: padded positions add nothing to the loss or any gradient.
    hidden_BxLxD = jnp.pad(hidden_BxLxD, ((0, 0), (0, pad), (0, 0)))
    targets_BxL = jnp.pad(targets_BxL, ((0, 0), (0, pad)))
    weights_BxL = jnp.pad(weights_BxL, ((0, 0), (0, pad)))
  # [B, L] -> [blocks, B, P]: the scan runs over the leading axis; B stays where the data
  # axis shards it.
  by_block = lambda x: jnp.swapaxes(x.reshape((b, blocks, positions) + x.shape[2:]), 0, 1)
  if bias_V is None:  # A zero bias: its gradient is computed and dropped (V per block).
    bias_V = jnp.zeros((w_VxD.shape[0],), jnp.float32)
  vocab = w_VxD.shape[0]
  tile = vocab if vocab_block <= 0 else min(vocab, vocab_block)
  return _blockwise(by_block(hidden_BxLxD), w_VxD, bias_V, by_block(targets_BxL),
                    by_block(weights_BxL.astype(jnp.float32)), matmul_dtype, tile)


def _operand(x: jax.Array, matmul_dtype: str) -> jax.Array:
  """x in the matmul operand dtype, through float32 (models.unembed takes float32 hidden
  states)."""
  x = x.astype(jnp.float32)
  return x if matmul_dtype == "float32" else x.astype(matmul_dtype)


def _vocab_tiles(w_VxD: jax.Array, bias_V: jax.Array, tile: int, matmul_dtype: str
                 ) -> tuple[jax.Array, jax.Array]:
  """(w [C, tile, D] in the matmul dtype, bias [C, tile] f32): V padded to C * tile with
  zero rows and a -inf bias, whose softmax weight is exactly 0."""
  vocab, d = w_VxD.shape
  count = -(-vocab // tile)
  pad = count * tile - vocab
  w_low = _operand(w_VxD, matmul_dtype)  # Cast once, not per block.
  bias_V = bias_V.astype(jnp.float32)
  if pad:
    w_low = jnp.pad(w_low, ((0, pad), (0, 0)))
    bias_V = jnp.pad(bias_V, (0, pad), constant_values=-jnp.inf)
  return w_low.reshape(count, tile, d), bias_V.reshape(count, tile)


def _logits(h_TxD: jax.Array, w_VxD: jax.Array, bias_V: jax.Array) -> jax.Array:
  """h @ w^T + bias in float32 [T, V] (operands already in the matmul dtype)."""
  logits_TxV = jax.lax.dot_general(h_TxD, w_VxD, (((1,), (1,)), ((), ())),
                                   preferred_element_type=jnp.float32)
  return logits_TxV + bias_V


def _target_rows(tiles: tuple, targets_T: jax.Array) -> jax.Array:
  """Each token's target row of w, float32 [T, D] (targets are < V: never a padding row)."""
  w_CxVxD = tiles[0]
  return jnp.take(w_CxVxD.reshape(-1, w_CxVxD.shape[-1]), targets_T, axis=0).astype(
      jnp.float32)


def _target_logits(h_TxD: jax.Array, target_rows_TxD: jax.Array, tiles: tuple,
                   targets_T: jax.Array) -> jax.Array:
  """Each token's logit at its target, h_t . w_target + b_target, float32 (operands in the
  matmul dtype, whose products are exact in float32 as in the logits matmul)."""
  return (jnp.sum(h_TxD.astype(jnp.float32) * target_rows_TxD, axis=-1)
          + jnp.take(tiles[1].reshape(-1), targets_T))


def _logsumexp(h_TxD: jax.Array, tiles: tuple) -> tuple[jax.Array, jax.Array | None]:
  """(logsumexp over the vocabulary per token, the logits [T, V] when the vocabulary is
  one tile else None). Over several tiles it is online: a running maximum and a sum of
  exponentials rescaled when the maximum grows."""
  w_CxVxD, bias_CxV = tiles
  if w_CxVxD.shape[0] == 1:
    logits_TxV = _logits(h_TxD, w_CxVxD[0], bias_CxV[0])
    top_T = jnp.max(logits_TxV, axis=-1)
    return jnp.log(jnp.sum(jnp.exp(logits_TxV - top_T[:, None]), axis=-1)) + top_T, logits_TxV

  def tile(carry, xs):
    top_T, sum_T = carry
    logits_TxV = _logits(h_TxD, *xs)
    new_top_T = jnp.maximum(top_T, jnp.max(logits_TxV, axis=-1))
    sum_T = (sum_T * jnp.exp(top_T - new_top_T)
             + jnp.sum(jnp.exp(logits_TxV - new_top_T[:, None]), axis=-1))
    return (new_top_T, sum_T), None

  tokens = h_TxD.shape[0]
  # The first tile always holds real entries (padding is at the end), so -inf starts the
  # maximum safely: exp(-inf - finite) = 0.
  (top_T, sum_T), _ = jax.lax.scan(
      tile, (jnp.full((tokens,), -jnp.inf, jnp.float32), jnp.zeros((tokens,), jnp.float32)),
      tiles)
  return jnp.log(sum_T) + top_T, None


def _softmax_gradients(logits_TxV, w_VxD, lse_T, weights_T, weighted_h_DxT):
  """One tile's share of the gradient at cotangent 1 from the softmax half of
  dlogits = weight * (softmax - onehot): (softmax @ w [T, D], unweighted; w's gradient
  transposed, (weight * h)^T @ softmax [D, V]; the bias gradient, weight @ softmax [V]).
  weighted_h_DxT is (weight * h)^T, transposed once per block (`_transposed`).

  The weight scales the [T, D] sides instead of the [T, V] tile, and the onehot half is a
  sparse update made once per step (`_blockwise_fwd`): the tile's only elementwise pass is
  the exponential (docs/performance.md)."""
  softmax_TxV = jnp.exp(logits_TxV - lse_T[:, None])
  low_TxV = softmax_TxV.astype(weighted_h_DxT.dtype)  # The matmul operand dtype.
  dh_TxD = jnp.dot(low_TxV, w_VxD, preferred_element_type=jnp.float32)
  # w's gradient transposed, [D, T] @ [T, V]: a plain matmul, which XLA:CPU runs
  # 1.2-1.3x faster than h^T @ dlogits as a dot over h's first axis, and that 1.1-1.3x
  # faster than dlogits^T @ h (docs/performance.md); the caller transposes dw once.
  dw_DxV = jnp.dot(weighted_h_DxT, low_TxV, preferred_element_type=jnp.float32)
  # A matrix-vector product: XLA:CPU's column sums are slow (models.add_output_bias).
  dbias_V = weights_T @ softmax_TxV
  return dh_TxD, dw_DxV, dbias_V


def _transposed(x_TxD: jax.Array) -> jax.Array:
  """x^T [D, T], materialised: behind the barrier XLA cannot fold the transpose back into
  the matmuls that read it as a dot over x's first axis, a form XLA:CPU runs slower."""
  return jax.lax.optimization_barrier(x_TxD.T)


def _block_inputs(xs, matmul_dtype):
  h_BxPxD, targets_BxP, weights_BxP = xs
  h_TxD = _operand(h_BxPxD.reshape(-1, h_BxPxD.shape[-1]), matmul_dtype)
  return h_TxD, targets_BxP.reshape(-1).astype(jnp.int32), weights_BxP.reshape(-1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6))
def _blockwise(h_NxBxPxD, w_VxD, bias_V, targets_NxBxP, weights_NxBxP, matmul_dtype, tile):
  """The weighted loss sum over N blocks of [B, P] tokens (see the module docstring).
  Without differentiation (evaluation) only the loss is computed."""
  tiles = _vocab_tiles(w_VxD, bias_V, tile, matmul_dtype)

  def block(total, xs):
    h_TxD, targets_T, weights_T = _block_inputs(xs, matmul_dtype)
    lse_T, _ = _logsumexp(h_TxD, tiles)
    picked_T = _target_logits(h_TxD, _target_rows(tiles, targets_T), tiles, targets_T)
    return total + jnp.sum((lse_T - picked_T) * weights_T), None

  return jax.lax.scan(block, jnp.zeros((), jnp.float32),
                      (h_NxBxPxD, targets_NxBxP, weights_NxBxP))[0]


def _blockwise_fwd(h_NxBxPxD, w_VxD, bias_V, targets_NxBxP, weights_NxBxP, matmul_dtype,
                   tile):
  # The loss is a scalar, so its cotangent only scales the gradient: each block's gradient
  # is formed here, at cotangent 1, and the backward scales it. With one vocabulary tile
  # the block's logits are kept from the logsumexp for the gradient; with several, each
  # tile's logits are recomputed in a second pass once the logsumexp is known, so every
  # [T, tile] array stays in cache (one more logits matmul; docs/performance.md).
  tiles = _vocab_tiles(w_VxD, bias_V, tile, matmul_dtype)
  w_CxVxD = tiles[0]
  count, tile_size, d = w_CxVxD.shape

  def block(carry, xs):
    total, dw_CxDxV, dbias_CxV = carry
    h_TxD, targets_T, weights_T = _block_inputs(xs, matmul_dtype)
    lse_T, logits_TxV = _logsumexp(h_TxD, tiles)
    target_rows_TxD = _target_rows(tiles, targets_T)
    picked_T = _target_logits(h_TxD, target_rows_TxD, tiles, targets_T)
    total = total + jnp.sum((lse_T - picked_T) * weights_T)
    weighted_h_DxT = _transposed(
        (weights_T[:, None] * h_TxD.astype(jnp.float32)).astype(h_TxD.dtype))
    if logits_TxV is not None:  # One tile.
      dh_TxD, dw_DxV, dbias_V = _softmax_gradients(logits_TxV, w_CxVxD[0], lse_T, weights_T,
                                                   weighted_h_DxT)
      dw_tiles, dbias_tiles = dw_DxV[None], dbias_V[None]
    else:
      def grad_tile(dh_TxD, xs):
        w_VxD, bias_V = xs
        dh, dw_DxV, dbias_V = _softmax_gradients(_logits(h_TxD, w_VxD, bias_V), w_VxD, lse_T,
                                                 weights_T, weighted_h_DxT)
        return dh_TxD + dh, (dw_DxV, dbias_V)
      dh_TxD, (dw_tiles, dbias_tiles) = jax.lax.scan(
          grad_tile, jnp.zeros(h_TxD.shape, jnp.float32), tiles)
    # The onehot half of dh: minus each token's target row of w.
    dh_TxD = weights_T[:, None] * (dh_TxD - target_rows_TxD)
    h_BxPxD = xs[0]
    return ((total, dw_CxDxV + dw_tiles, dbias_CxV + dbias_tiles),
            dh_TxD.reshape(h_BxPxD.shape).astype(h_BxPxD.dtype))

  zeros = (jnp.zeros((), jnp.float32), jnp.zeros((count, d, tile_size), jnp.float32),
           jnp.zeros((count, tile_size), jnp.float32))
  (total, dw_CxDxV, dbias_CxV), dh_NxBxPxD = jax.lax.scan(
      block, zeros, (h_NxBxPxD, targets_NxBxP, weights_NxBxP))
  vocab = w_VxD.shape[0]  # Drop the padding rows.
  dw_VxD = jnp.swapaxes(dw_CxDxV, 1, 2).reshape(-1, d)[:vocab]
  dbias_V = dbias_CxV.reshape(-1)[:vocab]
  # The onehot half of w's and the bias's gradients, once for all tokens: minus each
  # token's weight times its hidden state (in the matmul operand dtype, as the matmuls
  # read it) added into its target's row.
  all_targets = targets_NxBxP.reshape(-1).astype(jnp.int32)
  all_weights = weights_NxBxP.reshape(-1)
  all_h_xD = _operand(h_NxBxPxD.reshape(-1, d), matmul_dtype).astype(jnp.float32)
  dw_VxD = dw_VxD.at[all_targets].add(-all_weights[:, None] * all_h_xD)
  dbias_V = dbias_V.at[all_targets].add(-all_weights)
  # Empty arrays carry the parameters' dtypes (residuals must be arrays).
  return total, (dh_NxBxPxD, dw_VxD, dbias_V, jnp.zeros((0,), w_VxD.dtype),
                 jnp.zeros((0,), bias_V.dtype), targets_NxBxP, weights_NxBxP)


def _blockwise_bwd(matmul_dtype, tile, residuals, dtotal):
  del matmul_dtype, tile  # (the forward formed the gradients)
  dh_NxBxPxD, dw_VxD, dbias_V, w_like, bias_like, targets_NxBxP, weights_NxBxP = residuals
  return ((dtotal * dh_NxBxPxD).astype(dh_NxBxPxD.dtype),
          (dtotal * dw_VxD).astype(w_like.dtype), (dtotal * dbias_V).astype(bias_like.dtype),
          np.zeros(targets_NxBxP.shape, jax.dtypes.float0), jnp.zeros_like(weights_NxBxP))


_blockwise.defvjp(_blockwise_fwd, _blockwise_bwd)
