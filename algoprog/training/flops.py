"""Analytical training FLOPs, per component, per token and per step; the planner.

Every function here is plain arithmetic over a width that may be traced: jit it, vmap it
over a grid of widths (one call gives a table), differentiate it in width. Static choices
(positions, norm, FFN, kind, ...) come from a model: a `model_spec.ModelSpec` or a
`config.model` (converted by `ModelSpec.from_config`). At another `width` than the model's,
depth and heads follow the trainer's own width rule (model_spec.num_layers_for_width:
width / 16 rounded half up; heads width / head_dim) when the config derived them (left
`num_layers` / `num_heads` 0), so pass an *unresolved* config (or a spec made from one) to
scale depth with the width; a resolved one pins them.

Numbers: at a concrete width (None, a Python or numpy number) parameter counts are exact
Python ints and FLOPs Python floats (float64); a jax array width (traced or not) gives
float32 jax arrays (parameter counts above 2^24 then round).

Units: FLOPs (one multiply or add or transcendental = 1 FLOP), per token or per step.

The convention of `training_flops_per_token` (recorded with every run as CONVENTION):
  - Matmuls: 2*m*n*k (a multiply-add is 2 FLOPs). Backward = exactly 2x forward for every
    matmul (input and weight gradients; every activation needs a gradient because the
    embedding is trained).
  - Causal attention is counted FULL: QK^T and PV over all L keys per query, as the
    compiled program (a dense L x L product, masked) executes. attention="causal" counts
    the (L+1)/2 keys a query actually attends to on average (MaxText's halving).
  - Embedding lookup: 0 FLOPs forward (a gather); its gradient is a scatter-add, d FLOPs
    per token. The tied unembedding is a matmul, 2*d*V forward.
  - Elementwise work (norms, rotary, softmax, activations, residual adds, output bias,
    matrix biases, cross-entropy) is counted exactly, forward and backward, as one FLOP per
    arithmetic op per element of the implementation in models.py/train.py; transcendentals
    count 1 each except erf, which XLA expands into a ~60-op polynomial (GELU), counted as
    executed. The per-element constants are in ELEMENTWISE_FLOPS with the ops they stand for.
  - Optimizer update FLOPs are per step, not per token: `optimizer_flops_per_step`.
  - LSTM: `sequence_length` is the truncated-BPTT window (tokens between stopped
    gradients); it only removes the recurrent input-gradient of each window's first step.

Plug-in components (algoprog.training.registry) are counted by the FLOPs function they register,
which replaces the built-in components of their kind (PLUGIN_COMPONENTS); one without such
a function raises FlopsUnavailable (the trainer then counts with XLA, see
algoprog.training.compiled_flops). Closed-form parameter counts cover the built-ins only.

Other conventions, for conversion: `six_n_flops_per_token` (6*N, N total or
non-embedding: Kaplan's C = 6ND), `kaplan_flops_per_token` (6*N_nonembedding plus the
attention context term 6 * n_layer * n_ctx * d), `chinchilla_flops_per_token` (Hoffmann et
al. 2022, appendix F: embedding counted as a 2*V*d matmul, full attention, softmax 3 FLOPs
per score, backward 2x forward). docs/flops.md tabulates all of them.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from algoprog.training import registry
from algoprog.training.model_spec import ModelSpec, Width, is_concrete_number

Model = ModelSpec | ml_collections.ConfigDict  # A spec, or a config.model to convert.

CONVENTION = ("analytical fwd+bwd FLOPs/token (algoprog.training.flops): matmuls 2mnk with backward "
              "2x forward; causal attention counted full (L keys per query); tied "
              "unembedding 2dV, embedding lookup 0; norms/rotary/softmax/activations/"
              "cross-entropy elementwise ops exact fwd+bwd; optimizer update excluded "
              "(per-step, see optimizer_flops_per_step)")

# (forward, backward) FLOPs per element of the tensor each acts on. Measured against XLA's
# cost analysis of each component alone (tests/test_flops.py re-derives them) and
# explained op by op:
ELEMENTWISE_FLOPS = {
    # x*x, sum, x*rsqrt, *scale | d(scale) product+reduce, dx: 2 products, row-dot, ...
    "rmsnorm": (4.0, 11.0),
    # sum, x-mean, square, sum, *rsqrt, *scale, +bias, (one more sub) | twice as involved
    "layernorm": (8.0, 20.0),
    # per channel of q and k: x*cos, x'*sin, +/- | the same rotation transposed + adds
    "rotary": (3.0, 4.0),
    # per score: /sqrt(k), mask select, max, sub, exp, sum, divide | p*(g - sum(g*p)), /sqrt
    "softmax": (7.0, 8.0),
    # per hidden unit: sigmoid (neg, exp, add, div), *x, *up | sigmoid' and 3 products
    "swiglu": (6.0, 9.0),
    # per hidden unit: x*0.5*(1+erf(x/sqrt2)), erf expanded by XLA into a ~60-op
    # polynomial | Phi(x) + x*phi(x) with the forward's erf reused (measured in context).
    "gelu": (65.0, 25.0),
    # max(x, 0) | select(x > 0, g, 0)
    "relu": (1.0, 2.0),
    # residual or position add | cotangent fan-in add
    "add": (1.0, 1.0),
    # per output unit of a matrix with a bias (model.matrix_biases): +bias | bias reduce
    "matrix_bias": (1.0, 1.0),
    # per logit: +bias, max, sub, exp, sum, (label gather) | exp*g, - onehot, bias reduce
    "logits_loss": (6.0, 3.0),
    # per LSTM hidden unit: 8 (two gate adds over 4H), 3 sigmoids x4, 2 tanh, c and h
    # updates 4, + per-row work | sigmoid' 3x3, tanh' 2x3, product rules, bias reduce 4
    "lstm_cell": (34.0, 27.0),
}
# Per-row (per token) extras of the norms: mean divide, +eps, rsqrt | the row reductions.
NORM_ROW_FLOPS = {"rmsnorm": (2.0, 5.0), "layernorm": (3.0, 13.0)}

# Optimizer update FLOPs per parameter per step (optax as algoprog.training.optim chains it),
# without weight decay / clipping; the extras below are added when enabled.
OPTIMIZER_FLOPS_PER_PARAM = {
    "adamw": 14.0,  # mu: 3, nu: 4, bias corrections 2, sqrt + eps + divide 3, *lr, apply.
    "adam": 14.0,
    "sgd": 4.0,  # trace: *momentum, +g; *lr, apply.
    "rmsprop": 9.0,  # nu: 4; sqrt, +eps, divide; *lr, apply.
}
WEIGHT_DECAY_FLOPS_PER_PARAM = 2.0  # wd * p, added (decoupled or coupled alike).
CLIP_FLOPS_PER_PARAM = 4.0  # g*g, sum into the norm, scale factor select, *factor.
# Adam(W) reads the gradient in two moment updates and XLA recomputes whatever transformed
# it before (the clip's *factor: 1 FLOP; coupled L2 for adam: 2) in both fusions.
MEAN_GRADIENT_FLOPS_PER_PARAM = 1.0  # train_step divides the summed gradient by the count.

# The components the closed forms know, by model config field; any other value names a
# plug-in (algoprog.training.registry).
BUILTIN_COMPONENTS = {
    "kind": ("transformer", "lstm"), "attention": ("softmax",),
    "ffn": ("swiglu", "gelu", "relu"), "norm": ("rmsnorm", "layernorm"),
    "positions": ("rotary", "learned", "sinusoidal", "none"),
}
# A plug-in's FLOPs replace these entries of training_flops_per_token_by_component (those
# of the built-in stand-in in _BUILTIN_STAND_IN); a plug-in model (kind) replaces all.
PLUGIN_COMPONENTS = {
    "attention": ("attention_projections", "attention_scores", "attention_values",
                  "attention_softmax"),
    "ffn": ("ffn", "ffn_activation"), "norm": ("norms",), "positions": (),
}
_BUILTIN_STAND_IN = {"attention": "softmax", "ffn": "swiglu", "norm": "rmsnorm",
                     "positions": "none"}


class FlopsUnavailable(ValueError):
  """A plug-in component registered no FLOPs function; the message names it."""


def _spec(model: Model) -> ModelSpec:
  return ModelSpec.from_config(model)


def plugin_components(model: Model) -> dict[str, str]:
  """{config field under `model`: value} of the fields naming a plug-in, not a built-in."""
  model = _spec(model)
  return {field: getattr(model, field) for field, names in BUILTIN_COMPONENTS.items()
          if getattr(model, field) not in names}


def _registry_of(field: str) -> registry.Registry:
  return registry.MODELS if field == "kind" else registry.MODEL_COMPONENTS[field]


def with_builtin_stand_ins(model: Model) -> ModelSpec:
  """The spec of `model` with each plug-in component replaced by the built-in whose FLOPs
  entries it replaces (attention -> softmax, ffn -> swiglu, norm -> rmsnorm, positions ->
  none): what a plug-in's FLOPs function can reuse for the parts it shares."""
  model = _spec(model)
  return dataclasses.replace(model, **{field: _BUILTIN_STAND_IN[field]
                                       for field in plugin_components(model)
                                       if field != "kind"})


def builtin_component_flops(model: Model, vocab_size: int,
                            sequence_length: int, field: str, width: Width | None = None,
                            attention: str = "full") -> dict[str, Width]:
  """Training FLOPs per token of the built-in (or stand-in) component selected by
  `model.<field>` ("attention", "ffn", "norm"): the entries a plug-in of that kind
  replaces, e.g. for a QK-norm attention to add its norms to."""
  parts = training_flops_per_token_by_component(with_builtin_stand_ins(model), vocab_size,
                                                sequence_length, width, attention)
  return {k: parts[k] for k in PLUGIN_COMPONENTS[field] if k in parts}


def depth_and_heads(model: Model, width: Width) -> tuple[Any, Any]:
  """(layers, heads) at `width`: the config's if it set them, else the trainer's width
  rule (ModelSpec.layers_at / heads_at); heads 0 for the LSTM."""
  model = _spec(model)
  return model.layers_at(width), model.heads_at(width)


def _width(model: ModelSpec, width: Width | None) -> Width:
  """The width to count at: a Python number stays one (exact counts, float64 FLOPs); any
  other (a jax array, maybe traced) becomes a float32 jax scalar."""
  width = model.width if width is None else width
  if is_concrete_number(width):
    return int(width) if float(width).is_integer() else float(width)
  return jnp.asarray(width, jnp.float32)


def param_counts(model: Model, vocab_size: int, width: Width | None = None
                 ) -> tuple[Any, Any]:
  """(total, non-embedding) parameters, as models.count_params/embedding_param_count:
  exact Python ints at a concrete integer width, float32 jax arrays at a jax one.

  Embedding part: V*d table (+ d*V untied unembedding) + V output bias + Lmax*d learned
  positions. Transformer layer: 4d^2 attention + 3dF (SwiGLU) or 2dF FFN + norms (d, or
  2d for LayerNorm, twice per layer, plus a final norm per model.final_norm) + with
  model.matrix_biases a bias per matrix output: 4d + 2F + d (SwiGLU) or F + d. LSTM layer:
  4H(in+H) + 4H per bias set (model.lstm_bias_sets).
  """
  model = _spec(model)
  if plugin_components(model):
    raise FlopsUnavailable(f"model: closed-form parameter counts cover the built-in "
                           f"components only; {plugin_components(model)} are plug-ins (count "
                           "a built model with models.count_params)")
  d = _width(model, width)
  layers = model.layers_at(d)
  v = int(vocab_size)
  embedding = v * d + (0 if model.tie_embeddings else v * d) + (v if model.output_bias else 0)
  if model.kind == "lstm":
    body = layers * (4 * d * (2 * d) + 4 * d * model.lstm_bias_sets)
    return embedding + body, body
  if model.positions == "learned":
    embedding = embedding + model.max_sequence_length * d
  ffn = (3 if model.ffn == "swiglu" else 2) * d * model.ffn_hidden_at(d)
  norm = (1 if model.norm == "rmsnorm" else 2) * d
  norms = 2 * layers * norm + (norm if model.final_norm else 0)
  body = layers * (4 * d * d + ffn + _matrix_bias_units(model, d)) + norms
  return embedding + body, body


def _matrix_bias_units(model: ModelSpec, d: Width):
  """Bias entries per Transformer layer: the output widths of its matrices (0 without
  model.matrix_biases): 4 d attention + 2F + d (SwiGLU: gate, up, down) or F + d."""
  if not model.matrix_biases:
    return 0 * d
  return 4 * d + (2 if model.ffn == "swiglu" else 1) * model.ffn_hidden_at(d) + d


def _attended_keys(sequence_length: int, attention: str) -> float:
  if attention == "full":
    return float(sequence_length)
  if attention == "causal":
    return (sequence_length + 1) / 2.0
  raise ValueError(f"attention: expected 'full' or 'causal'; got {attention!r}")


def _matmul_flops_per_token(model, vocab_size, sequence_length, width, attention):
  """Forward matmul FLOPs per token, by component (backward is 2x each)."""
  d = _width(model, width)
  layers = model.layers_at(d)
  out = {"unembedding": 2.0 * d * vocab_size}
  if model.kind == "lstm":
    out["lstm_gates"] = layers * 2.0 * 4 * (d + d) * d  # [x, h] (2H) x 4H per layer.
    return out
  keys = _attended_keys(sequence_length, attention)
  f = model.ffn_hidden_at(d)
  out["attention_projections"] = layers * 2.0 * 4 * d * d
  out["attention_scores"] = layers * 2.0 * keys * d  # QK^T: heads * keys * head_dim.
  out["attention_values"] = layers * 2.0 * keys * d  # PV.
  out["ffn"] = layers * 2.0 * (3 if model.ffn == "swiglu" else 2) * d * f
  return out


def _elementwise_flops_per_token(model, vocab_size, sequence_length, width, attention,
                                 backward: bool):
  """Elementwise FLOPs per token, by component, forward or backward."""
  side = int(backward)
  ew = lambda name: ELEMENTWISE_FLOPS[name][side]
  d = _width(model, width)
  layers, heads = model.layers_at(d), model.heads_at(d)
  # Embedding: the lookup is free; its gradient is a scatter-add (0 * d keeps an array).
  out = {"logits_loss": ew("logits_loss") * vocab_size, "embedding": d if backward else 0.0 * d}
  if model.kind == "lstm":
    out["lstm_cell"] = layers * ew("lstm_cell") * d
    return out
  keys = _attended_keys(sequence_length, attention)
  norm_elem, norm_row = ELEMENTWISE_FLOPS[model.norm][side], NORM_ROW_FLOPS[model.norm][side]
  num_norms = 2 * layers + (1 if model.final_norm else 0)
  out["norms"] = num_norms * (norm_elem * d + norm_row)
  out["residual"] = layers * 2 * ew("add") * d
  if model.matrix_biases:
    out["matrix_biases"] = layers * ew("matrix_bias") * _matrix_bias_units(model, d)
  out["attention_softmax"] = layers * heads * keys * ew("softmax")
  if model.positions == "rotary":
    out["rotary"] = layers * 2 * ew("rotary") * d  # On queries and keys.
  elif model.positions == "learned" or (model.positions == "sinusoidal" and not backward):
    out["positions"] = ew("add") * d  # A table added; only the learned one has a gradient.
  if model.scale_embeddings:
    out["embedding"] = out["embedding"] + d  # x sqrt(d) (2017 recipe), and its transpose.
  out["ffn_activation"] = layers * ew(model.ffn) * model.ffn_hidden_at(d)
  return out


def forward_flops_per_token(model: Model, vocab_size: int,
                            sequence_length: int, width: Width | None = None,
                            attention: str = "full") -> dict[str, Width]:
  """Forward-pass FLOPs per token, by component (a dict of scalars; sum for the total)."""
  model = _spec(model)
  return _merge(_matmul_flops_per_token(model, vocab_size, sequence_length, width, attention),
                _elementwise_flops_per_token(model, vocab_size, sequence_length, width,
                                             attention, backward=False))


def backward_flops_per_token(model: Model, vocab_size: int,
                             sequence_length: int, width: Width | None = None,
                             attention: str = "full") -> dict[str, Width]:
  """Backward-pass FLOPs per token, by component: 2x forward for matmuls, exact elsewhere."""
  model = _spec(model)
  matmuls = _matmul_flops_per_token(model, vocab_size, sequence_length, width, attention)
  backward = {k: 2.0 * v for k, v in matmuls.items()}
  if model.kind == "lstm":
    # Truncated BPTT: the state entering a window is a constant, so the first step of each
    # window needs no gradient of h @ W_h with respect to h (2 * 4H * H).
    d = _width(model, width)
    backward["lstm_gates"] = (backward["lstm_gates"]
                              - model.layers_at(d) * 2.0 * 4 * d * d / sequence_length)
  return _merge(backward,
                _elementwise_flops_per_token(model, vocab_size, sequence_length, width,
                                             attention, backward=True))


def training_flops_per_token_by_component(model: Model,
                                          vocab_size: int, sequence_length: int,
                                          width: Width | None = None,
                                          attention: str = "full") -> dict[str, Width]:
  """Forward + backward FLOPs per token, by component (plug-ins: their own functions', called
  with the ModelSpec)."""
  model = _spec(model)
  plugins = plugin_components(model)
  missing = [f"model.{field}={name!r}" for field, name in plugins.items()
             if _registry_of(field).get(name).flops is None]
  if missing:
    raise FlopsUnavailable(f"{', '.join(missing)}: plug-in(s) registered no FLOPs function "
                           "(algoprog.training.registry)")
  functions = {field: _registry_of(field).get(name).flops for field, name in plugins.items()}
  if "kind" in functions:
    return dict(functions["kind"](model, vocab_size, sequence_length, width))
  builtin = with_builtin_stand_ins(model) if plugins else model
  parts = _merge(forward_flops_per_token(builtin, vocab_size, sequence_length, width,
                                         attention),
                 backward_flops_per_token(builtin, vocab_size, sequence_length, width,
                                          attention))
  for field, function in functions.items():
    for key in PLUGIN_COMPONENTS[field]:
      parts.pop(key, None)
    parts = _merge(parts, dict(function(model, vocab_size, sequence_length, width)))
  return parts


def training_flops_per_token(model: Model, vocab_size: int,
                             sequence_length: int, width: Width | None = None,
                             attention: str = "full") -> jax.Array:
  """Forward + backward FLOPs per training token (CONVENTION); optimizer excluded."""
  parts = training_flops_per_token_by_component(model, vocab_size, sequence_length, width,
                                                attention)
  return sum(parts.values())


def optimizer_flops_per_step(optim: ml_collections.ConfigDict, params_total: Width,
                             microbatches: int = 1) -> Width:
  """FLOPs of one optimizer step on `params_total` parameters (independent of the batch).

  Counts the gradient mean and microbatch accumulation of train.make_train_step (adding
  the first microbatch to zeros is folded away), clipping, weight decay, and the update.
  """
  builtin = optim.name in OPTIMIZER_FLOPS_PER_PARAM
  if builtin:
    update = OPTIMIZER_FLOPS_PER_PARAM[optim.name]
  else:  # A plug-in: its registered FLOPs per parameter count its whole update.
    update = registry.OPTIMIZERS.get(optim.name).flops
    if update is None:
      raise FlopsUnavailable(f"optim.name: the plug-in optimizer {optim.name!r} registered "
                             "no FLOPs per parameter (algoprog.training.registry)")
  per_param = update + MEAN_GRADIENT_FLOPS_PER_PARAM
  per_param += microbatches - 1
  adam = optim.name in ("adam", "adamw")
  if optim.weight_decay and builtin:
    per_param += WEIGHT_DECAY_FLOPS_PER_PARAM * (2 if optim.name == "adam" else 1)
  if optim.grad_clip_norm:
    per_param += CLIP_FLOPS_PER_PARAM + (1 if adam else 0)
  return per_param * _as_count(params_total)


def training_flops_per_step(config: ml_collections.ConfigDict, vocab_size: int,
                            width: Width | None = None, attention: str = "full"
                            ) -> Width:
  """FLOPs of one training step: batch_size * sequence_length tokens + the optimizer."""
  length = config.data.sequence_length
  tokens = config.data.batch_size * length
  model = ModelSpec.from_config(config.model, length)
  total, _ = param_counts(model, vocab_size, width)
  return (tokens * training_flops_per_token(model, vocab_size, length, width, attention)
          + optimizer_flops_per_step(config.optim, total, config.train.microbatches))


def _as_count(x: Width) -> Width:
  """A parameter count as given if a Python/numpy number (exact), else a float32 array."""
  return x if is_concrete_number(x) else jnp.asarray(x, jnp.float32)


def six_n_flops_per_token(params: Width) -> Width:
  """Kaplan's C = 6ND per token: 6 * N (pass total or non-embedding N; say which)."""
  return 6.0 * _as_count(params)


def kaplan_flops_per_token(model: Model, vocab_size: int,
                           sequence_length: int, width: Width | None = None) -> jax.Array:
  """Kaplan et al. 2020 table 1: 3 * (2 N_nonembedding + 2 n_layer n_ctx d_attn)."""
  model = _spec(model)
  d = _width(model, width)
  layers = model.layers_at(d)
  _, nonembedding = param_counts(model, vocab_size, d)
  context = 0.0 if model.kind == "lstm" else 2.0 * layers * sequence_length * d
  return 3.0 * (2.0 * nonembedding + context)


def chinchilla_flops_per_token(model: Model, vocab_size: int,
                               sequence_length: int, width: Width | None = None
                               ) -> jax.Array:
  """Hoffmann et al. 2022 appendix F, per token, training (backward = 2x forward).

  Forward: embeddings 2Vd; per layer QKV 6d^2, QK^T 2Ld, softmax 3HL, PV 2Ld, output
  projection 2d^2, FFN 4dF (2 matrices; 6dF for SwiGLU here); logits 2dV. Norms,
  rotary and activations are not counted. Transformer only (LSTM: NaN).
  """
  model = _spec(model)
  d = _width(model, width)
  if model.kind == "lstm":
    return math.nan * d
  layers, heads = model.layers_at(d), model.heads_at(d)
  length = float(sequence_length)
  f = model.ffn_hidden_at(d)
  attention = 6 * d * d + 2 * length * d + 3 * heads * length + 2 * length * d + 2 * d * d
  dense = 2.0 * (3 if model.ffn == "swiglu" else 2) * d * f
  forward = 2.0 * vocab_size * d + layers * (attention + dense) + 2.0 * d * vocab_size
  return 3.0 * forward


def _merge(a: dict, b: dict) -> dict:
  out = dict(a)
  for k, v in b.items():
    out[k] = out[k] + v if k in out else v
  return out


# --- The budget planner. ---------------------------------------------------------------


def plan_for_width(model: Model, vocab_size: int, sequence_length: int,
                   width: Width, tokens: Width | None = None,
                   tokens_per_param: Width | None = None) -> dict[str, Width]:
  """Budget of a width trained on `tokens` (or tokens_per_param * total params), with
  the depth the trainer builds at that width (when the model derives it).

  Returns {width, layers, params_total, params_nonembedding, tokens, tokens_per_param,
  flops_per_token, budget_flops} (budget = flops_per_token * tokens; optimizer excluded):
  Python numbers at a concrete width, jax arrays at a jax one.
  """
  if (tokens is None) == (tokens_per_param is None):
    raise ValueError("plan_for_width: pass exactly one of tokens, tokens_per_param")
  model = _spec(model)
  d = _width(model, width)
  total, nonembedding = param_counts(model, vocab_size, d)
  tokens = total * tokens_per_param if tokens is None else _as_count(tokens)
  per_token = training_flops_per_token(model, vocab_size, sequence_length, d)
  return {"width": d, "layers": model.layers_at(d), "params_total": total,
          "params_nonembedding": nonembedding, "tokens": tokens,
          "tokens_per_param": tokens / total, "flops_per_token": per_token,
          "budget_flops": per_token * tokens}


def width_for_budget(model: Model, vocab_size: int,
                     sequence_length: int, budget_flops: Width, tokens_per_param: Width,
                     iterations: int = 80) -> jax.Array:
  """The (continuous) width whose budget at `tokens_per_param` is `budget_flops`.

  Bisection in log-width over [1, 2^20]: budget(width) = tokens_per_param * N(width) *
  flops_per_token(width) increases with width (in steps where the trainer's depth rule
  adds a layer: the width found is then where the budget jumps past `budget_flops`).
  jit- and vmap-able.
  """
  model = _spec(model)
  log_budget = jnp.log(jnp.asarray(budget_flops, jnp.float32))

  def log_budget_at(log_w):
    plan = plan_for_width(model, vocab_size, sequence_length, jnp.exp(log_w),
                          tokens_per_param=tokens_per_param)
    return jnp.log(plan["budget_flops"])

  def bisect(_, bounds):
    lo, hi = bounds
    mid = 0.5 * (lo + hi)
    below = log_budget_at(mid) < log_budget
    return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

  lo, hi = jax.lax.fori_loop(0, iterations, bisect,
                             (jnp.float32(0.0), jnp.float32(20 * jnp.log(2.0))))
  return jnp.exp(0.5 * (lo + hi))


def plan_for_budget(model: Model, vocab_size: int,
                    sequence_length: int, budget_flops: Width, tokens_per_param: Width,
                    snap_to: int | None = None) -> dict[str, Width]:
  """Width, parameters and tokens that spend `budget_flops` at `tokens_per_param`.

  With `snap_to` (e.g. 16, the head dim), the width is rounded to a multiple of it and the
  tokens recomputed so the budget is still spent exactly (tokens_per_param then drifts).
  """
  model = _spec(model)
  width = width_for_budget(model, vocab_size, sequence_length, budget_flops,
                           tokens_per_param)
  if snap_to is None:
    return plan_for_width(model, vocab_size, sequence_length, width,
                          tokens_per_param=tokens_per_param)
  width = jnp.maximum(snap_to, jnp.round(width / snap_to) * snap_to)
  per_token = training_flops_per_token(model, vocab_size, sequence_length, width)
  return plan_for_width(model, vocab_size, sequence_length, width,
                        tokens=budget_flops / per_token)
