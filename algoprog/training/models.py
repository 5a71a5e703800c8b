"""The model zoo: decoder-only Transformers with every component switchable, and the LSTM.

Shapes are suffixed: B batch, L sequence, D width, H heads, K head dim, F FFN hidden, V vocab,
N layers. All models map int tokens [B, L] to logits [B, L, V] in float32 and share the
convention of docs/science.md: tied input/output embedding plus an output bias of V, no
biases in the Transformer's matrices (unless model.matrix_biases), no dropout. The LSTM also
takes and returns its carried state (`LSTM.__call__`); `is_recurrent` tells the two apart.
docs/models.md has the closed forms.

Every module reads a `model_spec.ModelSpec` (the resolved, typed `config.model`; its
derived fields, e.g. depth, heads and the final norm, are derived there and only there);
`build_model` and `initial_carry` also take a resolved `config.model` and convert it.

Transformer parameter layout (what `count_params` and the closed forms in tests rely on):
  embed/embedding            V x D   (also the unembedding when tied)
  unembed/kernel             D x V   (only when untied)
  output_bias                V
  positions                  Lmax x D (learned positions only; N(0, positions_init_std))
  layer_i/attention/{query,key,value,out}/kernel   D x D each: 4 D^2
  layer_i/ffn/{gate,up,down}/kernel   SwiGLU: D x F, D x F, F x D = 3 D F (12 D^2 at F = 4D)
  layer_i/ffn/{up,down}/kernel        GELU/ReLU: 2 D F (8 D^2)
  layer_i/{attention_norm,ffn_norm}   D (RMSNorm scale) or 2 D (LayerNorm scale + bias)
  final_norm                          ModelSpec.final_norm (config "" -> pre-norm only)
  .../bias of every matrix above      its output width (model.matrix_biases only)

LSTM parameter layout (hidden = D; gates in the order input, forget, cell, output):
  embed/embedding, output_bias (and unembed/kernel when untied), as above
  layer_i/input_kernel       D x 4D
  layer_i/recurrent_kernel   D x 4D
  layer_i/bias               4D (x2 with model.lstm_bias_sets = 2, PyTorch's b_ih + b_hh)
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from algoprog.training import registry
from algoprog.training.model_spec import ModelSpec

Initializer = Callable[..., jax.Array]


def _kernel_init(model: ModelSpec, scale: float = 1.0) -> Initializer:
  """Matrix init per `model.init`; `scale` shrinks output projections when depth-scaled."""
  if model.init == "normal":
    return nn.initializers.normal(model.init_std * scale)
  if model.init == "xavier":
    return nn.initializers.variance_scaling(scale**2, "fan_avg", "uniform")
  return nn.initializers.variance_scaling(2.0 * scale**2, "fan_in", "normal")  # kaiming


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def low_precision_matmul(a_MxK: jax.Array, b_KxN: jax.Array, operand_dtype: str) -> jax.Array:
  """a @ b with both operands cast to `operand_dtype` and the products summed in float32;
  the result is float32. The backward's two matmuls do the same (the cotangent is cast to
  `operand_dtype` too): autodiff of a plain cast-then-dot would run them in f32."""
  return jnp.dot(a_MxK.astype(operand_dtype), b_KxN.astype(operand_dtype),
                 preferred_element_type=jnp.float32)


def _low_precision_matmul_fwd(a, b, operand_dtype):
  a_low, b_low = a.astype(operand_dtype), b.astype(operand_dtype)
  # Empty arrays carry the primal dtypes the cotangents must have.
  residuals = (a_low, b_low, jnp.zeros((0,), a.dtype), jnp.zeros((0,), b.dtype))
  return jnp.dot(a_low, b_low, preferred_element_type=jnp.float32), residuals


def _low_precision_matmul_bwd(operand_dtype, residuals, dout_MxN):
  a_low, b_low, a_dtype, b_dtype = residuals
  dout = dout_MxN.astype(operand_dtype)
  da = jnp.dot(dout, b_low.T, preferred_element_type=jnp.float32).astype(a_dtype.dtype)
  db = jnp.dot(a_low.T, dout, preferred_element_type=jnp.float32).astype(b_dtype.dtype)
  return da, db


low_precision_matmul.defvjp(_low_precision_matmul_fwd, _low_precision_matmul_bwd)


def matmul(model: ModelSpec, a_MxK: jax.Array, b_KxN: jax.Array
           ) -> jax.Array:
  """a @ b per `model.matmul_dtype`, for a [..., K] and b [K, N].

  "float32": a plain matmul in the operands' dtype (the activation dtype, model.dtype).
  "bfloat16": `low_precision_matmul` over the flattened rows: bf16 operands, float32
  accumulation and result (forward and backward), the accelerators' fast path; callers
  cast the result back to their activation dtype. Params stay float32 either way.
  """
  if model.matmul_dtype == "float32":
    return a_MxK @ b_KxN
  out = low_precision_matmul(a_MxK.reshape(-1, a_MxK.shape[-1]), b_KxN, model.matmul_dtype)
  return out.reshape(a_MxK.shape[:-1] + (b_KxN.shape[-1],))


def matmul_dot_general(model: ModelSpec) -> Callable[..., jax.Array]:
  """A dot_general for nn.Dense that computes its x @ kernel with `matmul`."""
  if model.matmul_dtype == "float32":
    return jax.lax.dot_general

  def dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None):
    del precision, preferred_element_type  # Fixed by model.matmul_dtype.
    if dimension_numbers != (((lhs.ndim - 1,), (0,)), ((), ())) or rhs.ndim != 2:
      raise ValueError(f"model.matmul_dtype: expected x @ kernel; got {dimension_numbers}")
    return matmul(model, lhs, rhs)

  return dot_general


def _embedding_init(model: ModelSpec) -> Initializer:
  # Embeddings are N(0, init_std) under every scheme: fan-based inits are meaningless for a
  # lookup table of a 50k vocabulary, and a tied table doubles as the unembedding. The 2017
  # recipe (scale_embeddings) is N(0, 1/d), read as x sqrt(d): unit-scale token inputs.
  if model.scale_embeddings:
    return nn.initializers.normal(model.width**-0.5)
  return nn.initializers.normal(model.init_std)


class RMSNorm(nn.Module):
  """x / sqrt(mean(x^2) + eps) * scale. Params: scale [D]."""
  eps: float = 1e-6

  @nn.compact
  def __call__(self, x_BxLxD: jax.Array) -> jax.Array:
    scale_D = self.param("scale", nn.initializers.ones, (x_BxLxD.shape[-1],))
    x = x_BxLxD.astype(jnp.float32)
    normed = x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + self.eps)
    return (normed * scale_D).astype(x_BxLxD.dtype)


class LayerNorm(nn.Module):
  """(x - mean) / sqrt(var + eps) * scale + bias. Params: scale [D], bias [D]."""
  eps: float = 1e-5

  @nn.compact
  def __call__(self, x_BxLxD: jax.Array) -> jax.Array:
    d = x_BxLxD.shape[-1]
    scale_D = self.param("scale", nn.initializers.ones, (d,))
    bias_D = self.param("bias", nn.initializers.zeros, (d,))
    x = x_BxLxD.astype(jnp.float32)
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    normed = (x - mean) * jax.lax.rsqrt(var + self.eps)
    return (normed * scale_D + bias_D).astype(x_BxLxD.dtype)


def make_norm(model: ModelSpec, name: str) -> nn.Module:
  """The `model.norm` module (registry.NORMS: built-in or plug-in) named `name`."""
  return registry.NORMS.get(model.norm).factory(model, name)


def sinusoidal_positions(length: int, width: int) -> jax.Array:
  """The 2017 Transformer's table [length, width]: sin on even, cos on odd channels.

  PE[p, 2i] = sin(p / 10000^(2i/width)), PE[p, 2i+1] = cos(p / 10000^(2i/width)).
  """
  position_L1 = jnp.arange(length, dtype=jnp.float32)[:, None]
  inv_freq = jnp.power(10_000.0, -jnp.arange(0, width, 2, dtype=jnp.float32) / width)
  angle = position_L1 * inv_freq[None, :]
  table = jnp.zeros((length, width), jnp.float32)
  table = table.at[:, 0::2].set(jnp.sin(angle))
  return table.at[:, 1::2].set(jnp.cos(angle[:, : width // 2]))


def apply_rotary(x_BxLxHxK: jax.Array, base: float) -> jax.Array:
  """Rotates channel pairs (i, i + K/2) by angle p * base^(-2i/K) (GPT-NeoX layout).

  Query-key dot products then depend on positions only through their offset.
  """
  _, length, _, k = x_BxLxHxK.shape
  inv_freq = jnp.power(base, -jnp.arange(0, k, 2, dtype=jnp.float32) / k)
  angle_LxK2 = jnp.arange(length, dtype=jnp.float32)[:, None] * inv_freq[None, :]
  cos = jnp.cos(angle_LxK2)[None, :, None, :]
  sin = jnp.sin(angle_LxK2)[None, :, None, :]
  x = x_BxLxHxK.astype(jnp.float32)
  first, second = x[..., : k // 2], x[..., k // 2:]
  rotated = jnp.concatenate([first * cos - second * sin, second * cos + first * sin], -1)
  return rotated.astype(x_BxLxHxK.dtype)


def _query_blocks(length: int, blocks: int) -> list[tuple[int, int]]:
  """(start, end) of each query block: min(blocks, L) near-equal blocks of the L queries."""
  count = max(1, min(blocks, length))
  bounds = [round(i * length / count) for i in range(count + 1)]
  return list(zip(bounds[:-1], bounds[1:]))


def _attention_block_forward(q_BxHxQxK, k_BxHxSxK, v_BxHxSxK, start: int):
  """(out, exp-scores, row sums) of queries start .. start + Q - 1 over keys 0 .. S - 1:
  softmax(q k^T + causal mask) v, normalised at the end."""
  queries, keys = q_BxHxQxK.shape[2], k_BxHxSxK.shape[2]
  visible_QxS = jnp.arange(keys)[None, :] <= start + jnp.arange(queries)[:, None]
  # An additive mask is a fused add; a select on the scores forced XLA:CPU to materialise
  # extra B x H x L x L buffers (3x slower forward at d=256).
  mask_QxS = jnp.where(visible_QxS, 0.0, jnp.finfo(jnp.float32).min)
  scores = jnp.einsum("bhqk,bhsk->bhqs", q_BxHxQxK, k_BxHxSxK,
                      preferred_element_type=jnp.float32) + mask_QxS
  exp_BxHxQxS = jnp.exp(scores - jnp.max(scores, axis=-1, keepdims=True))
  sum_BxHxQx1 = jnp.sum(exp_BxHxQxS, axis=-1, keepdims=True)
  # Dividing the B H Q K output instead of the B H Q S probabilities: S / K fewer.
  out = jnp.einsum("bhqs,bhsk->bhqk", exp_BxHxQxS.astype(v_BxHxSxK.dtype), v_BxHxSxK,
                   preferred_element_type=jnp.float32)
  return ((out.astype(jnp.float32) / sum_BxHxQx1).astype(v_BxHxSxK.dtype), exp_BxHxQxS,
          sum_BxHxQx1)


def _attention_block_backward(q, k, v, out, exp, total, dout):
  """(dq, dk, dv) of one query block, dk and dv over its keys, accumulated in float32."""
  dtype = v.dtype
  dout_scaled = dout.astype(jnp.float32) / total  # P = exp / total: fold 1 / total in once.
  f32 = jnp.float32  # Accumulate in f32 whatever the operand dtype (bf16 matmuls).
  dv = jnp.einsum("bhqs,bhqk->bhsk", exp.astype(dtype), dout_scaled.astype(dtype),
                  preferred_element_type=f32)
  dprobs = jnp.einsum("bhqk,bhsk->bhqs", dout_scaled.astype(dtype), v,
                      preferred_element_type=f32)
  row = jnp.sum(dout.astype(jnp.float32) * out.astype(jnp.float32), axis=-1, keepdims=True)
  dscores = (exp * (dprobs - row / total)).astype(dtype)
  return (jnp.einsum("bhqs,bhsk->bhqk", dscores, k, preferred_element_type=f32),
          jnp.einsum("bhqs,bhqk->bhsk", dscores, q, preferred_element_type=f32), dv)


def _causal_attention_forward(q_BxHxLxK, k_BxHxLxK, v_BxHxLxK, query_blocks):
  """(out, each query block's (out, exp-scores, row sums))."""
  blocks = [_attention_block_forward(q_BxHxLxK[:, :, start:end], k_BxHxLxK[:, :, :end],
                                     v_BxHxLxK[:, :, :end], start)
            for start, end in _query_blocks(q_BxHxLxK.shape[2], query_blocks)]
  return jnp.concatenate([block[0] for block in blocks], axis=2), blocks


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def causal_attention(q_BxHxLxK: jax.Array, k_BxHxLxK: jax.Array, v_BxHxLxK: jax.Array,
                     query_blocks: int = 1) -> jax.Array:
  """softmax(q k^T with keys after the query masked out) v over [B, H, L, K] (q prescaled).

  Exactly the softmax attention, in `query_blocks` blocks of queries (model.
  attention_query_blocks), each reading only the keys up to its end: 4 blocks skip 3/8 of
  the B x H x L x L work, which on CPU makes the train step 2-3% faster at d = 128-256
  (docs/performance.md). The hand-written backward (the standard one, with
  rowsum(dP * P) = rowsum(dO * O)) avoids the B x H x L x L temporaries of autodiff through
  max/exp/sum/divide, which dominate on XLA:CPU at head dim 16 (docs/performance.md).
  """
  return _causal_attention_forward(q_BxHxLxK, k_BxHxLxK, v_BxHxLxK, query_blocks)[0]


def _causal_attention_fwd(q, k, v, query_blocks):
  out, blocks = _causal_attention_forward(q, k, v, query_blocks)
  return out, (q, k, v, blocks)


def _causal_attention_bwd(query_blocks, residuals, dout):
  q, k, v, blocks = residuals
  dq_blocks = []
  dk = jnp.zeros(k.shape, jnp.float32)
  dv = jnp.zeros(v.shape, jnp.float32)
  for (start, end), (out, exp, total) in zip(_query_blocks(q.shape[2], query_blocks), blocks):
    dq_block, dk_keys, dv_keys = _attention_block_backward(
        q[:, :, start:end], k[:, :, :end], v[:, :, :end], out, exp, total,
        dout[:, :, start:end])
    dq_blocks.append(dq_block)
    dk = dk.at[:, :, :end].add(dk_keys)
    dv = dv.at[:, :, :end].add(dv_keys)
  return (jnp.concatenate(dq_blocks, axis=2).astype(q.dtype), dk.astype(k.dtype),
          dv.astype(v.dtype))


causal_attention.defvjp(_causal_attention_fwd, _causal_attention_bwd)


class CausalSelfAttention(nn.Module):
  """Multi-head causal attention; 4 D x D matrices, biases only with model.matrix_biases.

  Layout for speed on XLA:CPU (docs/performance.md): the projections are 2-D matmuls over
  the B*L tokens (a 3-D dot_general's backward transposes its activations), and the scores
  are batched matmuls with the batch dims (B, H) leading: [B, H, L, K] x [B, H, K, L].
  """
  model: ModelSpec

  @nn.compact
  def __call__(self, x_BxLxD: jax.Array) -> jax.Array:
    m = self.model
    b, length, d = x_BxLxD.shape
    h, k = m.num_heads, m.channels_per_head
    dense = lambda name, init: (lambda y: nn.Dense(
        d, use_bias=m.matrix_biases, kernel_init=init, dtype=x_BxLxD.dtype, name=name,
        dot_general=matmul_dot_general(m))(y).astype(x_BxLxD.dtype))
    init = _kernel_init(m)
    x_TxD = x_BxLxD.reshape(b * length, d)
    split = lambda y: y.reshape(b, length, h, k)
    q_BxLxHxK = split(dense("query", init)(x_TxD))
    k_BxLxHxK = split(dense("key", init)(x_TxD))
    v_BxLxHxK = split(dense("value", init)(x_TxD))
    q_BxLxHxK, k_BxLxHxK = self.transform_qk(q_BxLxHxK, k_BxLxHxK)
    if m.matmul_dtype != "float32":  # The score and value matmuls' operands.
      q_BxLxHxK, k_BxLxHxK, v_BxLxHxK = (y.astype(m.matmul_dtype)
                                         for y in (q_BxLxHxK, k_BxLxHxK, v_BxLxHxK))
    if m.attention_impl == "dot_product_attention":
      # jax's [B, L, H, K] layout; cuDNN's flash kernel on GPU (bf16 operands), else XLA.
      out_BxLxHxK = jax.nn.dot_product_attention(
          q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, scale=1.0 / math.sqrt(k), is_causal=True)
      out_TxD = out_BxLxHxK.astype(x_BxLxD.dtype).reshape(b * length, d)
    else:
      heads_first = lambda y: y.transpose(0, 2, 1, 3)
      q_BxHxLxK = heads_first(q_BxLxHxK)
      k_BxHxLxK = heads_first(k_BxLxHxK)
      v_BxHxLxK = heads_first(v_BxLxHxK)
      # Scaling q (B L D values) rather than the scores (B H L L) is exact for k = 16.
      out_BxHxLxK = causal_attention(
          q_BxHxLxK * jnp.asarray(1.0 / math.sqrt(k), q_BxHxLxK.dtype), k_BxHxLxK,
          v_BxHxLxK, m.attention_query_blocks).astype(x_BxLxD.dtype)
      out_TxD = out_BxHxLxK.transpose(0, 2, 1, 3).reshape(b * length, d)
    out_scale = 1.0 / math.sqrt(2 * m.num_layers) if m.scaled_output_init else 1.0
    return dense("out", _kernel_init(m, out_scale))(out_TxD).reshape(b, length, d)

  def transform_qk(self, q_BxLxHxK: jax.Array, k_BxLxHxK: jax.Array
                   ) -> tuple[jax.Array, jax.Array]:
    """Queries and keys before the scores: rotary when model.positions is "rotary".

    The hook for attention plug-ins (docs/extending.md): a subclass overriding it may
    create parameters here (e.g. QK-norm's scales) and call super() for the positions.
    """
    if self.model.positions == "rotary":
      return (apply_rotary(q_BxLxHxK, self.model.rotary_base),
              apply_rotary(k_BxLxHxK, self.model.rotary_base))
    return q_BxLxHxK, k_BxLxHxK


class FeedForward(nn.Module):
  """SwiGLU: down(silu(gate x) * up x); GELU/ReLU: down(act(up x)). Biases only with
  model.matrix_biases."""
  model: ModelSpec

  @nn.compact
  def __call__(self, x_BxLxD: jax.Array) -> jax.Array:
    m = self.model
    d = x_BxLxD.shape[-1]
    f = m.ffn_hidden_at(d)
    init = _kernel_init(m)
    out_init = _kernel_init(m, 1.0 / math.sqrt(2 * m.num_layers) if m.scaled_output_init
                            else 1.0)
    dense = lambda features, name, kernel_init: (lambda y: nn.Dense(
        features, use_bias=m.matrix_biases, kernel_init=kernel_init, dtype=x_BxLxD.dtype, name=name,
        dot_general=matmul_dot_general(m))(y).astype(x_BxLxD.dtype))
    # 2-D matmuls over the tokens: see CausalSelfAttention.
    x_TxD = x_BxLxD.reshape(-1, d)
    up_TxF = dense(f, "up", init)(x_TxD)
    if m.ffn == "swiglu":
      hidden_TxF = nn.silu(dense(f, "gate", init)(x_TxD)) * up_TxF
    elif m.ffn == "gelu":
      hidden_TxF = nn.gelu(up_TxF, approximate=False)
    else:
      hidden_TxF = nn.relu(up_TxF)
    return dense(d, "down", out_init)(hidden_TxF).reshape(x_BxLxD.shape)


class TransformerLayer(nn.Module):
  """Pre-norm: x + f(norm(x)); post-norm (2017): norm(x + f(x))."""
  model: ModelSpec

  @nn.compact
  def __call__(self, x_BxLxD: jax.Array) -> jax.Array:
    m = self.model
    attention = registry.ATTENTION.get(m.attention).factory(m, "attention")
    ffn = registry.FFNS.get(m.ffn).factory(m, "ffn")
    if m.norm_placement == "pre":
      x_BxLxD = x_BxLxD + attention(make_norm(m, "attention_norm")(x_BxLxD))
      return x_BxLxD + ffn(make_norm(m, "ffn_norm")(x_BxLxD))
    x_BxLxD = make_norm(m, "attention_norm")(x_BxLxD + attention(x_BxLxD))
    return make_norm(m, "ffn_norm")(x_BxLxD + ffn(x_BxLxD))


class Transformer(nn.Module):
  """Decoder-only LM of `model` (a ModelSpec: see algoprog.training.model_spec)."""
  model: ModelSpec
  vocab_size: int

  @nn.compact
  def __call__(self, tokens_BxL: jax.Array, return_hidden: bool = False) -> jax.Array:
    """Logits [B, L, V] float32; with `return_hidden`, the final hidden states [B, L, D]
    the unembedding would take (output_layer's fused loss computes it from them)."""
    m = self.model
    dtype = jnp.dtype(m.dtype)
    embed = nn.Embed(self.vocab_size, m.width, embedding_init=_embedding_init(m),
                     name="embed")
    x_BxLxD = embed(tokens_BxL).astype(dtype)
    if m.scale_embeddings:  # The 2017 Transformer: token scale comparable to the positions'.
      x_BxLxD = x_BxLxD * math.sqrt(m.width)
    length = tokens_BxL.shape[1]
    if m.positions == "learned":
      table = self.param("positions", nn.initializers.normal(m.positions_init_std),
                         (m.max_sequence_length, m.width))
      x_BxLxD = x_BxLxD + table[None, :length].astype(dtype)
    elif m.positions == "sinusoidal":
      x_BxLxD = x_BxLxD + sinusoidal_positions(length, m.width)[None].astype(dtype)
    elif not registry.POSITIONS.get(m.positions).builtin:  # A plug-in: adds to the inputs.
      x_BxLxD = registry.POSITIONS.get(m.positions).factory(m, "positions")(x_BxLxD)
    for i in range(m.num_layers):
      x_BxLxD = TransformerLayer(m, name=f"layer_{i}")(x_BxLxD)
    if m.final_norm:
      x_BxLxD = make_norm(m, "final_norm")(x_BxLxD)
    if return_hidden:
      return x_BxLxD
    return unembed(self, m, embed, x_BxLxD, self.vocab_size)


def unembed(module: nn.Module, m: ModelSpec, embed: nn.Embed,
            x_BxLxD: jax.Array, vocab_size: int) -> jax.Array:
  """Logits [B, L, V] in float32: tied (x @ E^T) or untied matrix, plus the output bias.

  A 2-D [B*L, D] x [D, V] matmul: as a 3-D dot_general its backward transposed the
  [B, L, V] logit gradient (67 ms of a 1 s step at d=64; docs/performance.md).
  """
  x_TxD = x_BxLxD.reshape(-1, x_BxLxD.shape[-1]).astype(jnp.float32)
  if m.tie_embeddings:
    logits_TxV = matmul(m, x_TxD, embed.embedding.T)  # embed.attend, in matmul_dtype.
  else:
    logits_TxV = nn.Dense(vocab_size, use_bias=False, kernel_init=_kernel_init(m),
                          dot_general=matmul_dot_general(m), name="unembed")(x_TxD)
  if m.output_bias:
    logits_TxV = add_output_bias(
        logits_TxV, module.param("output_bias", nn.initializers.zeros, (vocab_size,)))
  return logits_TxV.reshape(x_BxLxD.shape[:-1] + (vocab_size,))


@jax.custom_vjp
def add_output_bias(logits_TxV: jax.Array, bias_V: jax.Array) -> jax.Array:
  """logits + bias, broadcast over the T rows; the bias gradient is a matmul.

  Autodiff's bias gradient is a column sum of the [T, V] logit gradient, which XLA:CPU
  reduces slowly; ones[T] @ dlogits[T, V] is the same sum as a matmul (docs/performance.md).
  """
  return logits_TxV + bias_V


def _add_output_bias_fwd(logits_TxV, bias_V):
  return logits_TxV + bias_V, bias_V  # The bias only for its dtype: it is a live param.


def _add_output_bias_bwd(bias_V, dlogits_TxV):
  ones_T = jnp.ones((dlogits_TxV.shape[0],), dlogits_TxV.dtype)
  return dlogits_TxV, (ones_T @ dlogits_TxV).astype(bias_V.dtype)


add_output_bias.defvjp(_add_output_bias_fwd, _add_output_bias_bwd)


def _recurrent_matmul(h_BxH: jax.Array, recurrent_Hx4H: jax.Array, matmul_dtype: str
                      ) -> jax.Array:
  """h @ W_h in float32 (matmul_dtype "bfloat16": bf16 operands, f32 accumulation)."""
  if matmul_dtype == "float32":
    return h_BxH @ recurrent_Hx4H
  return jnp.dot(h_BxH.astype(matmul_dtype), recurrent_Hx4H.astype(matmul_dtype),
                 preferred_element_type=jnp.float32)


def _lstm_cell(gates_Bx4H: jax.Array, c_BxH: jax.Array
               ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(h', c', activations [B, 4H]: sigmoid(i), sigmoid(f), tanh(g), sigmoid(o))."""
  h = c_BxH.shape[-1]
  i, f, g, o = (gates_Bx4H[:, k * h:(k + 1) * h] for k in range(4))
  i, f, g, o = jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)
  c_BxH = f * c_BxH + i * g
  return o * jnp.tanh(c_BxH), c_BxH, jnp.concatenate([i, f, g, o], axis=-1)


# Scan unroll of the LSTM recurrence, forward and backward: more steps per loop iteration
# let XLA fuse across steps and amortise the loop overhead (docs/performance.md).
LSTM_UNROLL = 1


def lstm_scan_autodiff(xproj_BxLx4H: jax.Array, recurrent_Hx4H: jax.Array,
                       carry_Bx2xH: jax.Array, matmul_dtype: str = "float32"
                       ) -> tuple[jax.Array, jax.Array]:
  """`lstm_scan` differentiated by JAX's scan autodiff: the reference its custom VJP is
  tested against (tests/test_models.py) and benchmarked with (benchmarks/bench_lstm.py)."""

  def step(carry, xproj_Bx4H):
    h_BxH, c_BxH = carry
    if matmul_dtype == "float32":
      gates = xproj_Bx4H + h_BxH @ recurrent_Hx4H
    else:
      gates = xproj_Bx4H + low_precision_matmul(h_BxH, recurrent_Hx4H, matmul_dtype)
    h_BxH, c_BxH, _ = _lstm_cell(gates, c_BxH)
    return (h_BxH, c_BxH), h_BxH

  (h_BxH, c_BxH), hs_LxBxH = jax.lax.scan(
      step, (carry_Bx2xH[:, 0], carry_Bx2xH[:, 1]), jnp.swapaxes(xproj_BxLx4H, 0, 1))
  return jnp.swapaxes(hs_LxBxH, 0, 1), jnp.stack([h_BxH, c_BxH], axis=1)


def _lstm_forward(xproj_LxBx4H, recurrent_Hx4H, h0_BxH, c0_BxH, matmul_dtype, unroll,
                  save: bool = True):
  """The time-major recurrence: (hs [L, B, H], final (h, c)) and, when `save` (for the
  backward), (cs [L, B, H], activations [L, B, 4H]) too."""

  def step(carry, xproj_Bx4H):
    h_BxH, c_BxH = carry
    gates = xproj_Bx4H + _recurrent_matmul(h_BxH, recurrent_Hx4H, matmul_dtype)
    h_BxH, c_BxH, acts_Bx4H = _lstm_cell(gates, c_BxH)
    return (h_BxH, c_BxH), ((h_BxH, c_BxH, acts_Bx4H) if save else h_BxH)

  final, outputs = jax.lax.scan(step, (h0_BxH, c0_BxH), xproj_LxBx4H, unroll=unroll)
  return final, outputs


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _lstm_scan_time_major(xproj_LxBx4H: jax.Array, recurrent_Hx4H: jax.Array,
                          carry_2xBxH: jax.Array, matmul_dtype: str, unroll: int
                          ) -> tuple[jax.Array, jax.Array]:
  # Without a gradient (evaluation) nothing but the hidden states is kept.
  final, hs = _lstm_forward(xproj_LxBx4H, recurrent_Hx4H, carry_2xBxH[0], carry_2xBxH[1],
                            matmul_dtype, unroll, save=False)
  return hs, jnp.stack(final)


def _lstm_scan_fwd(xproj, recurrent, carry, matmul_dtype, unroll):
  final, (hs, cs, acts) = _lstm_forward(xproj, recurrent, carry[0], carry[1], matmul_dtype,
                                        unroll)
  return (hs, jnp.stack(final)), (recurrent, carry, hs, cs, acts)


def _lstm_scan_bwd(matmul_dtype, unroll, residuals, cotangents):
  recurrent_Hx4H, carry_2xBxH, hs_LxBxH, cs_LxBxH, acts_LxBx4H = residuals
  dhs_LxBxH, dcarry_2xBxH = cotangents
  h = recurrent_Hx4H.shape[0]
  # The state entering each step: the initial carry, then the previous step's output.
  h_prev_LxBxH = jnp.concatenate([carry_2xBxH[:1], hs_LxBxH[:-1]])
  c_prev_LxBxH = jnp.concatenate([carry_2xBxH[1:], cs_LxBxH[:-1]])
  low = matmul_dtype != "float32"
  recurrent_T = (recurrent_Hx4H.astype(matmul_dtype) if low else recurrent_Hx4H).T

  def step(carry, per_step):
    dh_BxH, dc_BxH = carry  # d loss / d (h_t, c_t) from the steps after t.
    dh_out_BxH, c_BxH, c_prev_BxH, acts_Bx4H = per_step
    i, f, g, o = (acts_Bx4H[:, k * h:(k + 1) * h] for k in range(4))
    dh_BxH = dh_BxH + dh_out_BxH
    tanh_c = jnp.tanh(c_BxH)  # Recomputed: cheaper than storing [L, B, H] more.
    dc_BxH = dc_BxH + dh_BxH * o * (1.0 - tanh_c * tanh_c)
    dgates_Bx4H = jnp.concatenate([dc_BxH * g * i * (1.0 - i),
                                   dc_BxH * c_prev_BxH * f * (1.0 - f),
                                   dc_BxH * i * (1.0 - g * g),
                                   dh_BxH * tanh_c * o * (1.0 - o)], axis=-1)
    if low:
      dh_prev = jnp.dot(dgates_Bx4H.astype(matmul_dtype), recurrent_T,
                        preferred_element_type=jnp.float32)
    else:
      dh_prev = dgates_Bx4H @ recurrent_T
    return (dh_prev, dc_BxH * f), dgates_Bx4H

  (dh0_BxH, dc0_BxH), dgates_LxBx4H = jax.lax.scan(
      step, (dcarry_2xBxH[0], dcarry_2xBxH[1]),
      (dhs_LxBxH, cs_LxBxH, c_prev_LxBxH, acts_LxBx4H), reverse=True, unroll=unroll)
  # The recurrent kernel's gradient, sum over t of h_{t-1}^T dgates_t: one [H, L*B] x
  # [L*B, 4H] matmul after the loop instead of a small one per step inside it.
  rows = h_prev_LxBxH.shape[0] * h_prev_LxBxH.shape[1]
  h_prev_TxH, dgates_Tx4H = h_prev_LxBxH.reshape(rows, h), dgates_LxBx4H.reshape(rows, 4 * h)
  if low:
    drecurrent = jnp.dot(h_prev_TxH.astype(matmul_dtype).T, dgates_Tx4H.astype(matmul_dtype),
                         preferred_element_type=jnp.float32)
  else:
    drecurrent = h_prev_TxH.T @ dgates_Tx4H
  return (dgates_LxBx4H, drecurrent.astype(recurrent_Hx4H.dtype),
          jnp.stack([dh0_BxH, dc0_BxH]))


_lstm_scan_time_major.defvjp(_lstm_scan_fwd, _lstm_scan_bwd)


def lstm_scan(xproj_BxLx4H: jax.Array, recurrent_Hx4H: jax.Array, carry_Bx2xH: jax.Array,
              matmul_dtype: str = "float32") -> tuple[jax.Array, jax.Array]:
  """Runs the LSTM recurrence over L steps; returns (hidden states [B, L, H], carry).

  `xproj` is the input projection plus bias, precomputed for all steps at once (one big
  matmul); the scan does only the h @ W_h part, so it compiles once per sequence length.
  Gates i, f, g, o in that order along the 4H axis:
    c' = sigmoid(f) * c + sigmoid(i) * tanh(g),  h' = sigmoid(o) * tanh(c').
  The carry is [B, 2, H] with h at index 0 and c at index 1; all in float32 (matmul_dtype
  "bfloat16": h and W_h enter the matmul as bf16, the gates are accumulated in f32).

  The gradient is written out (a custom VJP, equal to `lstm_scan_autodiff`'s within f32
  rounding): the forward saves the gate activations and cell states, the reverse scan does
  only the elementwise gate derivatives and dgates @ W_h^T per step, and W_h's gradient is
  one matmul over all steps after it (docs/performance.md has the timings).
  """
  hs_LxBxH, carry_2xBxH = _lstm_scan_time_major(
      jnp.swapaxes(xproj_BxLx4H, 0, 1), recurrent_Hx4H, jnp.swapaxes(carry_Bx2xH, 0, 1),
      matmul_dtype, LSTM_UNROLL)
  return jnp.swapaxes(hs_LxBxH, 0, 1), jnp.swapaxes(carry_2xBxH, 0, 1)


class LSTMLayer(nn.Module):
  """One LSTM layer, hidden = input width D: 8 D^2 + 4 D (x lstm_bias_sets) params."""
  model: ModelSpec

  @nn.compact
  def __call__(self, x_BxLxD: jax.Array, carry_Bx2xD: jax.Array
               ) -> tuple[jax.Array, jax.Array]:
    m = self.model
    d = x_BxLxD.shape[-1]
    init = _kernel_init(m)
    input_Dx4D = self.param("input_kernel", init, (d, 4 * d))
    recurrent_Dx4D = self.param("recurrent_kernel", init, (d, 4 * d))

    def bias_init(key, shape):
      del key  # Forget-gate bias starts at lstm_forget_bias (remember by default).
      return jnp.zeros(shape).at[d:2 * d].set(m.lstm_forget_bias / m.lstm_bias_sets)

    bias_4D = sum(self.param("bias" if k == 0 else f"bias_{k}", bias_init, (4 * d,))
                  for k in range(m.lstm_bias_sets))
    dtype = jnp.dtype(m.dtype)
    xproj = matmul(m, x_BxLxD.astype(dtype), input_Dx4D.astype(dtype)).astype(
        jnp.float32) + bias_4D
    hidden_BxLxD, carry_Bx2xD = lstm_scan(xproj, recurrent_Dx4D, carry_Bx2xD, m.matmul_dtype)
    return hidden_BxLxD.astype(dtype), carry_Bx2xD


class LSTM(nn.Module):
  """Streaming LSTM LM: N stacked layers of hidden D, tied embedding + output bias.

  Called as (tokens [B, L], carry [B, N, 2, D] or None for zeros) -> (logits [B, L, V],
  carry after the last token). Truncation of backpropagation and state resets are the
  caller's (algoprog.training.train): the module itself is a plain recurrence over its input.
  """
  model: ModelSpec
  vocab_size: int

  @nn.compact
  def __call__(self, tokens_BxL: jax.Array, carry_BxNx2xD: jax.Array | None = None,
               return_hidden: bool = False) -> tuple[jax.Array, jax.Array]:
    """(logits [B, L, V], carry); with `return_hidden`, (last layer's hidden states
    [B, L, D], carry) for output_layer's fused loss."""
    m = self.model
    embed = nn.Embed(self.vocab_size, m.width, embedding_init=_embedding_init(m),
                     name="embed")
    x_BxLxD = embed(tokens_BxL)
    if carry_BxNx2xD is None:
      carry_BxNx2xD = initial_carry(m, tokens_BxL.shape[0])
    carries = []
    for i in range(m.num_layers):
      x_BxLxD, carry_Bx2xD = LSTMLayer(m, name=f"layer_{i}")(x_BxLxD, carry_BxNx2xD[:, i])
      carries.append(carry_Bx2xD)
    if return_hidden:
      return x_BxLxD, jnp.stack(carries, axis=1)
    return unembed(self, m, embed, x_BxLxD, self.vocab_size), jnp.stack(carries, axis=1)


def initial_carry(model: ModelSpec | ml_collections.ConfigDict, batch_size: int
                  ) -> jax.Array | None:
  """The zero state of a recurrent model, float32 [B, N, 2, D]; None for a Transformer.
  `model`: a ModelSpec or a resolved config.model."""
  model = ModelSpec.from_config(model)
  if model.kind != "lstm":
    return None
  return jnp.zeros((batch_size, model.num_layers, 2, model.width), jnp.float32)


def is_recurrent(model: nn.Module) -> bool:
  """True for models called as (tokens, carry) -> (logits, carry)."""
  return isinstance(model, LSTM)


def build_model(model: ModelSpec | ml_collections.ConfigDict, vocab_size: int) -> nn.Module:
  """The flax module (registry.MODELS[model.kind]) of a ModelSpec or a resolved
  `config.model`; factories get the ModelSpec (frozen: hashable, as flax attributes must
  be)."""
  model = ModelSpec.from_config(model)
  return registry.MODELS.get(model.kind).factory(model, vocab_size)


def count_params(params) -> int:
  """Parameters in a pytree (or its abstract shapes), exactly."""
  return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))


def embedding_param_count(params) -> int:
  """Parameters that live in the vocabulary/position tables: embedding, untied unembedding,
  output bias, learned positions (the 'embedding' part excluded from non-embedding counts,
  as in Kaplan et al.)."""
  flat = jax.tree_util.tree_flatten_with_path(params)[0]
  names = ("embed", "unembed", "output_bias", "positions")
  total = 0
  for path, leaf in flat:
    top = getattr(path[0], "key", str(path[0]))
    if top in names:
      total += leaf.size
  return int(total)


# The built-in components, registered as plug-ins are (algoprog.training.registry): their
# names are the registered config values. Their FLOPs are algoprog.training.flops's closed
# forms.
registry.MODELS.register("transformer", Transformer, builtin=True)
registry.MODELS.register("lstm", LSTM, builtin=True)
registry.ATTENTION.register("softmax", lambda m, name: CausalSelfAttention(m, name=name),
                            builtin=True)
for _ffn in ("swiglu", "gelu", "relu"):
  registry.FFNS.register(_ffn, lambda m, name: FeedForward(m, name=name), builtin=True)
registry.NORMS.register("rmsnorm", lambda m, name: RMSNorm(name=name), builtin=True)
registry.NORMS.register("layernorm", lambda m, name: LayerNorm(name=name), builtin=True)
for _positions in ("rotary", "learned", "sinusoidal", "none"):  # Applied by Transformer.
  registry.POSITIONS.register(_positions, None, builtin=True)
