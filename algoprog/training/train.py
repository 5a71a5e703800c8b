"""Training: the data-parallel train step, evaluation, and the resumable loop.

Parallelism: one device mesh with a single "data" axis over all devices (all hosts). The
global batch is sharded along it; parameters and optimizer state are replicated. `jax.jit`
with explicit in/out shardings lets XLA insert the gradient all-reduce. Microbatches
(gradient accumulation) are a `lax.scan` over slices of the global batch: the gradient is
the token-weighted sum over slices, identical in exact arithmetic to the full batch.

Losses are next-token cross-entropy in nats/token, averaged over target tokens.

Recurrent models (the LSTM) stream: `TrainState.carry` holds each batch row's hidden state
[B, N, 2, D], sharded like the batch, checkpointed with the rest of the state. A train step
cuts its L tokens per row into windows of train.lstm_window tokens and runs them in order,
carrying the state from window to window (and, through the train state, from step to step,
since data.TokenStream gives every row one contiguous stream) but stopping gradients at each
window boundary: truncated BPTT. Before each window a row's state is zeroed with probability
train.lstm_reset_probability, drawn from a key derived from (seed, step) only, so the draws
do not depend on devices or microbatches and a resumed run repeats them exactly. Evaluation
reads the validation set as batch_size contiguous streams (data.validation_batches with
streams=True), starting from zeros and carrying the state across all windows, with no resets.
Transformers have carry None.

A run (train_and_evaluate): the config is resolved and the corpus loaded, then `plan_run`
computes the run's `RunPlan` once (steps, evaluation steps and tokens, checkpoint cadence,
warmup, FLOPs per token, parameter counts; config.json records the plan's filled-in copy of
the config, the caller's config is not changed), and a `TrainingLoop` takes the steps with
the periodic work between them as named methods: fetch and check the train losses, evaluate
and write the metrics row, log progress, checkpoint, agree on stopping after a signal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import pathlib
import signal
import threading
import time
from typing import Any, Callable

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from algoprog import hardware, rundir
from algoprog.training import checkpoints, compiled_flops, config as config_lib, console, data
from algoprog.training import flops, models, optim, output_layer, tracking

DATA_AXIS = "data"


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # Optimizer steps taken (int32 scalar).
  params: Any
  opt_state: Any
  carry: Any = None  # Recurrent state per batch row [B, N, 2, D]; None for Transformers.


def make_mesh(devices: list | None = None) -> Mesh:
  """A 1-D "data" mesh over `devices` (default: every device of every host)."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA_AXIS,))


@jax.custom_vjp
def token_cross_entropy(logits_BxLxV: jax.Array, targets_BxL: jax.Array) -> jax.Array:
  """Per-token -log softmax(logits)[target] in float32 (what optax's integer-label
  cross-entropy computes), with the gradient softmax - onehot written out: autodiff through
  log_softmax kept more B x L x V temporaries, which at vocab 4096 and small widths cost as
  much as the unembedding matmul (docs/performance.md)."""
  return _token_cross_entropy_fwd(logits_BxLxV, targets_BxL)[0]


def _token_cross_entropy_fwd(logits, targets):
  top = jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True))
  logsumexp = jnp.log(jnp.sum(jnp.exp(logits - top), axis=-1, keepdims=True)) + top
  picked = jnp.take_along_axis(logits, targets[..., None], axis=-1)
  return (logsumexp - picked)[..., 0], (logits, targets, logsumexp)


def _token_cross_entropy_bwd(residuals, dloss):
  logits, targets, logsumexp = residuals
  onehot = targets[..., None] == jnp.arange(logits.shape[-1], dtype=targets.dtype)
  dlogits = dloss[..., None] * (jnp.exp(logits - logsumexp) - onehot)
  return dlogits, np.zeros(targets.shape, jax.dtypes.float0)


token_cross_entropy.defvjp(_token_cross_entropy_fwd, _token_cross_entropy_bwd)


def cross_entropy_sum(logits_BxLxV: jax.Array, targets_BxL: jax.Array,
                      weights_BxL: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
  """(sum of token losses in nats, number of weighted tokens)."""
  losses = token_cross_entropy(logits_BxLxV.astype(jnp.float32), targets_BxL)
  if weights_BxL is None:
    weights_BxL = jnp.ones_like(losses)
  return jnp.sum(losses * weights_BxL), jnp.sum(weights_BxL)


def model_loss_sum(model: nn.Module, params, inputs_BxL: jax.Array, targets_BxL: jax.Array,
                   weights_BxL: jax.Array | None = None, carry=None
                   ) -> tuple[jax.Array, jax.Array, Any]:
  """(sum of token losses in nats, number of weighted tokens, carry after the inputs) of
  `model` on a batch; `carry` enters a recurrent model (None: zeros) and is None out of a
  Transformer. The loss goes through output_layer's fused blocks when the model's
  loss_block_tokens asks for it (output_layer.uses_fused_loss), else through the logits."""
  recurrent = models.is_recurrent(model)
  args = (inputs_BxL, carry) if recurrent else (inputs_BxL,)
  if output_layer.uses_fused_loss(model):
    out = model.apply({"params": params}, *args, return_hidden=True)
    hidden, carry = out if recurrent else (out, carry)
    return output_layer.cross_entropy_sum(model.model, params, hidden, targets_BxL,
                                          weights_BxL) + (carry,)
  out = model.apply({"params": params}, *args)
  logits, carry = out if recurrent else (out, carry)
  return cross_entropy_sum(logits, targets_BxL, weights_BxL) + (carry,)


_RESET_STREAM = 1  # Folded into the seed's key so reset draws never reuse the init key.


def reset_mask(seed: int, step: jax.Array, batch_size: int, windows: int,
               probability: float, per: str = "window") -> jax.Array:
  """bool [B, windows]: which rows restart from zeros before each window of `step`.

  per="window" (train.lstm_reset): a draw before every window; per="batch": one draw per
  row and step, before its first window only (a reset per batch, whatever the window).
  """
  key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), _RESET_STREAM), step)
  if per == "batch":
    first = jax.random.bernoulli(key, probability, (batch_size, 1))
    return jnp.concatenate([first, jnp.zeros((batch_size, windows - 1), bool)], axis=1)
  return jax.random.bernoulli(key, probability, (batch_size, windows))


def truncated_bptt_loss_sum(model: nn.Module, params, carry_BxNx2xD, inputs_BxL, targets_BxL,
                            resets_BxT, window: int):
  """(loss sum, (token count, carry)) of a recurrent model over L / window windows in order.

  Each window starts from the previous window's final state, zeroed where `resets` says,
  with gradients stopped at the boundary. With the fused output layer the windows return
  their hidden states and one output-layer call takes the loss of all L tokens: the same
  loss and gradients (a window's tokens depend on its parameters only through its own
  hidden states), in token blocks of the full size instead of one window's, and the
  vocabulary-sized gradients formed once per step instead of once per window.
  """
  b, length = inputs_BxL.shape
  by_window = lambda x: x.reshape(b, length // window, window).swapaxes(0, 1)
  fused = output_layer.uses_fused_loss(model)

  def one_window(carry, batch):
    inputs_BxW, targets_BxW, reset_B = batch
    carry = jnp.where(reset_B[:, None, None, None], 0.0, jax.lax.stop_gradient(carry))
    if fused:
      hidden_BxWxD, carry = model.apply({"params": params}, inputs_BxW, carry,
                                        return_hidden=True)
      return carry, hidden_BxWxD
    loss, count, carry = model_loss_sum(model, params, inputs_BxW, targets_BxW, carry=carry)
    return carry, (loss, count)

  carry, per_window = jax.lax.scan(
      one_window, carry_BxNx2xD, (by_window(inputs_BxL), by_window(targets_BxL), resets_BxT.T))
  if fused:
    hidden_BxLxD = per_window.swapaxes(0, 1).reshape(b, length, -1)
    loss, count = output_layer.cross_entropy_sum(model.model, params, hidden_BxLxD,
                                                 targets_BxL)
    return loss, (count, carry)
  losses, counts = per_window
  return jnp.sum(losses), (jnp.sum(counts), carry)


def make_train_step(model: nn.Module, optimizer: optax.GradientTransformation,
                    microbatches: int, *, seed: int = 0, lstm_window: int = 0,
                    lstm_reset_probability: float = 0.0, lstm_reset: str = "window"
                    ) -> Callable:
  """(state, inputs [B, L], targets [B, L]) -> (state, mean train loss).

  The lstm_* arguments (train.* fields) matter only for recurrent models; 0 window -> L.
  """
  recurrent = models.is_recurrent(model)

  def loss_sum(params, carry, inputs, targets, resets):
    if recurrent:
      return truncated_bptt_loss_sum(model, params, carry, inputs, targets, resets,
                                     lstm_window or inputs.shape[1])
    loss, n, _ = model_loss_sum(model, params, inputs, targets)
    return loss, (n, carry)

  grad_fn = jax.value_and_grad(loss_sum, has_aux=True)

  def train_step(state: TrainState, inputs_BxL, targets_BxL):
    b, length = inputs_BxL.shape
    resets = None
    if recurrent:
      resets = reset_mask(seed, state.step, b, length // (lstm_window or length),
                          lstm_reset_probability, lstm_reset)
    split = lambda x: x.reshape((microbatches, b // microbatches) + x.shape[1:])

    def accumulate(acc, batch):
      grads, total, count = acc
      (loss, (n, carry)), g = grad_fn(state.params, *batch)
      return (jax.tree_util.tree_map(jnp.add, grads, g), total + loss, count + n), carry

    zeros = jax.tree_util.tree_map(jnp.zeros_like, state.params)
    batches = jax.tree_util.tree_map(split, (state.carry, inputs_BxL, targets_BxL, resets))
    (grads, total, count), carry = jax.lax.scan(accumulate, (zeros, 0.0, 0.0), batches)
    carry = jax.tree_util.tree_map(lambda c: c.reshape((b,) + c.shape[2:]), carry)
    grads = jax.tree_util.tree_map(lambda g: g / count, grads)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return TrainState(state.step + 1, params, opt_state, carry), total / count

  return train_step


def make_eval_step(model: nn.Module) -> Callable:
  """(params, carry, inputs, targets, weights) -> (loss sum in nats, token count, carry).

  `carry` is the recurrent state entering the batch (None for Transformers)."""

  def eval_step(params, carry, inputs_BxL, targets_BxL, weights_BxL):
    return model_loss_sum(model, params, inputs_BxL, targets_BxL, weights_BxL, carry)

  return eval_step


@dataclasses.dataclass
class Trainer:
  """Everything compiled for one config on one mesh; pure functions over TrainState."""
  config: ml_collections.ConfigDict  # Resolved.
  model: nn.Module
  optimizer: optax.GradientTransformation
  mesh: Mesh
  total_steps: int
  learning_rate: Callable  # step (0-based) -> learning rate, for the metrics.

  def __post_init__(self):
    self.replicated = NamedSharding(self.mesh, P())
    self.batch_sharding = NamedSharding(self.mesh, P(DATA_AXIS))
    abstract = jax.eval_shape(self._init, jax.random.key(0))
    self.state_shardings = jax.tree_util.tree_map(lambda _: self.replicated, abstract).replace(
        carry=jax.tree_util.tree_map(lambda _: self.batch_sharding, abstract.carry))
    self.abstract_state = checkpoints.abstract_with_shardings(abstract, self.state_shardings)
    self.init = jax.jit(self._init, out_shardings=self.state_shardings)
    self.zero_carry = jax.jit(
        lambda: models.initial_carry(self.config.model, self.config.data.batch_size),
        out_shardings=self.state_shardings.carry)
    self.train_step = jax.jit(
        make_train_step(self.model, self.optimizer, self.config.train.microbatches,
                        seed=self.config.seed, lstm_window=self.config.train.lstm_window,
                        lstm_reset_probability=self.config.train.lstm_reset_probability,
                        lstm_reset=self.config.train.lstm_reset),
        in_shardings=(self.state_shardings, self.batch_sharding, self.batch_sharding),
        out_shardings=(self.state_shardings, self.replicated), donate_argnums=0)
    self.eval_step = jax.jit(
        make_eval_step(self.model),
        in_shardings=(self.state_shardings.params, self.state_shardings.carry)
        + (self.batch_sharding,) * 3,
        out_shardings=(self.replicated, self.replicated, self.state_shardings.carry))

  def _init(self, rng: jax.Array) -> TrainState:
    length = self.config.data.sequence_length
    params = self.model.init(rng, jnp.zeros((1, length), jnp.int32))["params"]
    carry = models.initial_carry(self.config.model, self.config.data.batch_size)
    return TrainState(jnp.zeros((), jnp.int32), params, self.optimizer.init(params), carry)

  def shard_batch(self, *arrays: np.ndarray) -> tuple[jax.Array, ...]:
    """Global host arrays [B, ...] -> arrays sharded over the data axis.

    Each host passes only its own rows in multi-host runs (see `host_rows`).
    """
    return tuple(jax.make_array_from_process_local_data(self.batch_sharding, a)
                 for a in arrays)

  def evaluate(self, params, batches) -> float:
    """Mean validation loss (nats/token) over the fixed validation batches.

    A recurrent model starts from zeros and carries its state from batch to batch, so
    `batches` must be streams (data.validation_batches(..., streams=True)). `batches` are
    global; each host feeds only its own rows (`host_rows`), as in training, and the sums
    come back replicated.
    """
    return self.evaluate_tokens(params, batches)[0]

  def evaluate_tokens(self, params, batches) -> tuple[float, int]:
    """(mean validation loss in nats/token, number of target tokens scored)."""
    total, count = 0.0, 0.0
    carry = self.zero_carry()
    rows = host_rows(self.config.data.batch_size)
    for inputs, targets, weights in batches:
      loss, n, carry = self.eval_step(
          params, carry, *self.shard_batch(inputs[rows], targets[rows], weights[rows]))
      total, count = total + float(loss), count + float(n)
    return total / count, int(count)


def host_rows(batch_size: int) -> slice:
  """The rows of the global batch this host feeds (all of them on one host)."""
  per_host = batch_size // jax.process_count()
  return slice(jax.process_index() * per_host, (jax.process_index() + 1) * per_host)


def build_trainer(config: ml_collections.ConfigDict, vocab_size: int, total_steps: int,
                  mesh: Mesh | None = None) -> Trainer:
  mesh = make_mesh() if mesh is None else mesh
  if config.data.batch_size % mesh.size:
    raise config_lib.ConfigError(
        f"data.batch_size: expected a multiple of the {mesh.size} devices; got "
        f"{config.data.batch_size}")
  if (config.data.batch_size // config.train.microbatches) % mesh.size:
    raise config_lib.ConfigError(
        f"train.microbatches: each microbatch must split over {mesh.size} devices; "
        f"batch {config.data.batch_size} / {config.train.microbatches} does not")
  model = models.build_model(config.model, vocab_size)
  return Trainer(config, model, optim.make_optimizer(config.optim, total_steps), mesh,
                 total_steps, optim.learning_rate_schedule(config.optim, total_steps))


def eval_steps(total_steps: int, every: int) -> set[int]:
  """1-based step counts after which to evaluate: powers of two below `every` (early
  points for the compute frontier), every `every` steps, and the last step."""
  steps = {2**k for k in range(int(math.log2(max(every, 1))) + 1) if 2**k < every}
  steps |= set(range(every, total_steps + 1, every)) | {total_steps}
  return {s for s in steps if s <= total_steps}


_BOOKKEEPING_FIELDS = config_lib.BOOKKEEPING_FIELDS  # May differ between a run and its resume.


def _config_differences(old: dict, new: dict, prefix: str = "") -> list[str]:
  diffs = []
  for key in sorted(set(old) | set(new)):
    a, b = old.get(key, "<missing>"), new.get(key, "<missing>")
    if isinstance(a, dict) and isinstance(b, dict):
      diffs += _config_differences(a, b, f"{prefix}{key}.")
    elif a != b and f"{prefix}{key}" not in _BOOKKEEPING_FIELDS:
      diffs.append(f"{prefix}{key}: {a!r} -> {b!r}")
  return diffs


def xla_train_step_flops(config: ml_collections.ConfigDict, vocab_size: int,
                         batch_size: int) -> float:
  """XLA's cost analysis of one compiled train step (microbatches 1, no mesh, the unfused
  output layer, one attention query block: compiled_flops says why) of a resolved config:
  flops + transcendentals (FLOPs)."""
  spec = models.ModelSpec.from_config(config.model)
  model = models.build_model(
      dataclasses.replace(spec, loss_block_tokens=0, attention_query_blocks=1), vocab_size)
  optimizer = optim.make_optimizer(config.optim, 100)
  length = config.data.sequence_length

  def init():
    params = model.init(jax.random.key(0), jnp.zeros((1, length), jnp.int32))["params"]
    return TrainState(jnp.zeros((), jnp.int32), params, optimizer.init(params))

  return compiled_flops.step_flops(make_train_step(model, optimizer, 1),
                                   jax.eval_shape(init), batch_size, length)


def xla_flops_per_token(config: ml_collections.ConfigDict, vocab_size: int) -> float:
  """Training FLOPs per token of a resolved config by XLA's count
  (compiled_flops.CONVENTION)."""
  return compiled_flops.flops_per_token(
      lambda batch_size: xla_train_step_flops(config, vocab_size, batch_size),
      config.data.sequence_length)


def token_flops(config: ml_collections.ConfigDict, vocab_size: int
                ) -> tuple[float, str, str | None]:
  """(training FLOPs per token, their convention, warning or None) of a resolved config:
  analytical (algoprog.training.flops), or XLA's count of the compiled step when a plug-in component
  registered no FLOPs function (then the warning says so, and it is logged)."""
  try:
    return float(flops.training_flops_per_token(  # LSTM: per backprop window.
        config.model, vocab_size, config.train.lstm_window if config.model.kind == "lstm"
        else config.data.sequence_length)), flops.CONVENTION, None
  except flops.FlopsUnavailable as e:
    warning = (f"{e}: FLOPs per token counted by XLA's cost analysis of the compiled train "
               "step instead of analytically (within a few % of the analytical convention "
               "for the built-ins, docs/flops.md; register a FLOPs function to compare "
               "like with like)")
    logging.warning("%s", warning)
    return xla_flops_per_token(config, vocab_size), compiled_flops.CONVENTION, warning


class RunError(RuntimeError):
  """A run that cannot start or go on; the message is one line naming the workdir."""


class TrainingFailed(RunError):
  """The loss became non-finite or diverged; run.json records status "failed" and why."""


LOCK_FILE = ".lock"
# Divergence: after the warmup, a mean train loss this far above ln(vocab) (the loss of the
# uniform distribution, about where training starts) means the run has blown up.
DIVERGENCE_MARGIN_NATS = 1.0
MIN_EVAL_TOKENS = 65_536  # Floor of the derived train.eval_tokens.
MAX_CHECKPOINT_EVERY_STEPS = 1_000  # Cap of the derived train.checkpoint_every_steps.


def workdir_lock(run_dir: pathlib.Path) -> contextlib.AbstractContextManager:
  """Holds an exclusive lock on run_dir/.lock (which names the holder) for the block; a
  second trainer on the same workdir gets RunError instead of racing the first."""
  return rundir.exclusive_lock(
      run_dir / LOCK_FILE,
      lambda holder: RunError(f"workdir {run_dir} is in use by another trainer ({holder}); "
                              "wait for it to finish or use another --workdir"))


@contextlib.contextmanager
def _stop_on_sigterm():
  """Yields a dict whose "signal" is set when SIGTERM arrives, so the loop can checkpoint at
  the next step boundary and return (only in the main thread, where handlers can be set)."""
  requested = {"signal": None}
  if threading.current_thread() is not threading.main_thread():
    yield requested
    return

  def handler(signum, frame):
    del frame
    requested["signal"] = signum
    logging.warning("SIGTERM: checkpointing after the current step, then stopping")

  previous = signal.signal(signal.SIGTERM, handler)
  try:
    yield requested
  finally:
    signal.signal(signal.SIGTERM, previous)


def _stop_agreed(requested_here: bool, synchronising: bool) -> bool:
  """Whether every process stops after this step. One host: as soon as SIGTERM arrived.
  Several: at the next log/evaluation/checkpoint step, if any process got it (they must
  save the same checkpoint together, and these steps already wait for the devices)."""
  if jax.process_count() == 1:
    return requested_here
  if not synchronising:
    return False
  from jax.experimental import multihost_utils
  return bool(np.any(multihost_utils.process_allgather(np.array(requested_here))))


def derived_eval_tokens(training_tokens: int, evaluations: int, validation_size: int) -> int:
  """train.eval_tokens = 0: intermediate evaluations together score <= a quarter of the
  training tokens, each at least MIN_EVAL_TOKENS, never more than the validation set."""
  if evaluations <= 1:
    return validation_size
  per_eval = max(MIN_EVAL_TOKENS, training_tokens // (4 * (evaluations - 1)))
  return min(validation_size, per_eval)


def writes_run_files() -> bool:
  """Whether this process writes config.json, run.json, metrics.jsonl and holds the lock:
  process 0 only (orbax coordinates the checkpoint writes of all processes itself)."""
  return jax.process_index() == 0


@dataclasses.dataclass(frozen=True)
class RunPlan:
  """What one run will do, computed once from its resolved config and corpus (`plan_run`).

  `config` is what config.json records: the resolved config with the data-dependent fields
  filled in (data.vocab_size, train.tokens, train.steps), a copy that nothing changes. The
  derived cadences (eval_tokens, checkpoint_every_steps) are kept here, not in it: sweeps
  compare config.json with their plan, and these are pure functions of recorded numbers.
  """
  config: ml_collections.ConfigDict
  vocab_size: int
  params_total: int  # Of the built model, embeddings included.
  params_embedding: int
  flops_per_token: float  # Training FLOPs per token (forward + backward), by the convention.
  flops_convention: str  # flops.CONVENTION, or compiled_flops.CONVENTION when XLA counted.
  flops_warning: str | None  # Why XLA counted (a plug-in without a FLOPs function); or None.
  tokens_per_step: int  # batch size x sequence length.
  total_steps: int
  eval_steps: frozenset[int]  # 1-based step counts after which to evaluate (`eval_steps`).
  eval_tokens: int  # Validation tokens an intermediate evaluation scores (the last: all).
  log_every_steps: int
  checkpoint_every_steps: int
  warmup_steps: int  # Steps before the divergence check applies.
  divergence_loss: float  # nats/token: a mean train loss above it after warmup has diverged.

  @property
  def tokens_planned(self) -> int:
    return self.total_steps * self.tokens_per_step

  @property
  def params_nonembedding(self) -> int:
    return self.params_total - self.params_embedding

  @property
  def flops_source(self) -> str:
    return "analytical" if self.flops_warning is None else "xla_cost_analysis"


def plan_run(config: ml_collections.ConfigDict, corpus: data.Corpus) -> RunPlan:
  """The plan of a run of the resolved `config` on `corpus` (leaves `config` as it is).

  The token budget is train.tokens, else train.flops / FLOPs per token, else
  max(train.min_tokens, train.tokens_per_param x parameters), rounded to whole steps.

  Raises:
    data.DataError: the budget needs more steps than one epoch of the corpus holds.
  """
  # The parameter count fixes the token budget, so count on abstract shapes first.
  model = models.build_model(config.model, corpus.vocab_size)
  abstract_params = jax.eval_shape(
      lambda: model.init(jax.random.key(0), jnp.zeros((1, config.data.sequence_length),
                                                      jnp.int32)))["params"]
  params_total = models.count_params(abstract_params)
  flops_per_token, flops_convention, flops_warning = token_flops(config, corpus.vocab_size)
  if config.train.tokens:
    tokens = config.train.tokens
  elif config.train.flops:
    tokens = int(config.train.flops / flops_per_token)
  else:
    tokens = max(config.train.min_tokens, int(config.train.tokens_per_param * params_total))
  stream = data.TokenStream(corpus.train_tokens, config.data.batch_size,
                            config.data.sequence_length)
  total_steps = max(1, round(tokens / stream.tokens_per_step))
  if total_steps > stream.steps_per_epoch:
    raise data.DataError(
        f"train.tokens: the budget needs {total_steps} steps of {stream.tokens_per_step} "
        f"tokens but the corpus has {stream.steps_per_epoch} ({corpus.train_tokens.size:,} "
        "training tokens, one epoch): lower train.tokens / train.tokens_per_param")
  filled = ml_collections.ConfigDict(config.to_dict())
  filled.data.vocab_size = corpus.vocab_size
  filled.train.tokens = total_steps * stream.tokens_per_step
  filled.train.steps = total_steps
  evaluate_after = frozenset(eval_steps(total_steps, config.train.eval_every_steps))
  return RunPlan(
      config=filled, vocab_size=corpus.vocab_size, params_total=params_total,
      params_embedding=models.embedding_param_count(abstract_params),
      flops_per_token=flops_per_token, flops_convention=flops_convention,
      flops_warning=flops_warning, tokens_per_step=stream.tokens_per_step,
      total_steps=total_steps, eval_steps=evaluate_after,
      eval_tokens=config.train.eval_tokens or derived_eval_tokens(
          filled.train.tokens, len(evaluate_after), int(corpus.validation_tokens.size)),
      log_every_steps=config.train.log_every_steps,
      checkpoint_every_steps=config.train.checkpoint_every_steps or min(
          MAX_CHECKPOINT_EVERY_STEPS, -(-total_steps // 10)),
      warmup_steps=optim.warmup_steps(config.optim, total_steps),
      divergence_loss=math.log(corpus.vocab_size) + DIVERGENCE_MARGIN_NATS)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path,
                       mesh: Mesh | None = None, stop_after_steps: int | None = None
                       ) -> dict:
  """Trains one run into `workdir`, resuming from its latest checkpoint if any.

  A workdir whose run.json says "completed" is left as it is (and its run.json returned).
  Only process 0 writes config.json, run.json and metrics.jsonl and holds the workdir lock;
  every process writes its share of the orbax checkpoints.

  Failure handling: the train loss is fetched from the devices only at log, evaluation and
  checkpoint steps (no per-step host sync), and checked there: a non-finite loss, or after
  the warmup a mean loss above ln(vocab) + DIVERGENCE_MARGIN_NATS, records status "failed"
  with the reason in run.json and raises TrainingFailed; checkpoints saved before it are
  kept. SIGTERM checkpoints at the next step boundary (multi-host: the next log, evaluation
  or checkpoint step) and returns with status "interrupted" (rerunning resumes).

  Args:
    config: an unresolved or resolved config (algoprog.training.config); not changed.
    workdir: the run directory (algoprog.rundir describes its files).
    mesh: device mesh; default all devices.
    stop_after_steps: stop (with a checkpoint) after this many total steps, as if killed:
      for tests and for splitting a run across jobs.

  Returns:
    run.json's contents.

  Raises:
    config.ConfigError, data.DataError: bad config or data, or a workdir holding another run
      or trained on other data. RunError: the workdir is in use. TrainingFailed: see above.
    checkpoints.CheckpointError: no checkpoint restores. OSError: a file cannot be written.
  """
  run_dir = pathlib.Path(workdir)
  run_dir.mkdir(parents=True, exist_ok=True)
  config = config_lib.resolve(config)
  corpus = data.load_corpus(config.data)
  if corpus.validation_tokens.size < config.data.validation_tokens:
    logging.warning("data.validation_tokens: the corpus holds out only %d of the %d tokens "
                    "asked for; validating on %d (run.json's data_fingerprint records both)",
                    corpus.validation_tokens.size, config.data.validation_tokens,
                    corpus.validation_tokens.size)
  plan = plan_run(config, corpus)
  writes = writes_run_files()
  with contextlib.ExitStack() as held:
    if writes:
      held.enter_context(workdir_lock(run_dir))
    previous = _check_workdir(run_dir, plan.config, corpus.fingerprint)
    if previous is not None and previous.get("status") == "completed":
      logging.info("run %s is already complete (final validation loss %s); nothing to do",
                   run_dir, previous.get("final_validation_loss"))
      return previous
    return _train(plan, corpus, run_dir, mesh=mesh, stop_after_steps=stop_after_steps,
                  writes=writes)


def _check_workdir(run_dir: pathlib.Path, config: ml_collections.ConfigDict,
                   fingerprint: dict) -> dict | None:
  """The workdir's previous run.json, after checking that it holds this run on this data."""
  old_config = rundir.read_config(run_dir)
  if old_config is not None:
    diffs = _config_differences(config_lib.backfill(old_config), config.to_dict())
    if diffs:
      raise config_lib.ConfigError(
          f"workdir {run_dir} holds a run of a different config ({'; '.join(diffs[:5])}); "
          "use a new --workdir")
  previous = rundir.read_json(run_dir / rundir.RUN_FILE)
  old_fingerprint = (previous or {}).get("data_fingerprint")
  new_fingerprint = json.loads(json.dumps(fingerprint))  # As run.json stores it.
  if old_fingerprint is not None and old_fingerprint != new_fingerprint:
    changed = _config_differences(old_fingerprint, new_fingerprint)
    raise data.DataError(
        f"workdir {run_dir} was trained on different data (data_fingerprint: "
        f"{'; '.join(changed[:3])}); restore that corpus or use a new --workdir")
  return previous


@dataclasses.dataclass
class StepClock:
  """Train steps taken and the seconds they took (host wall time up to the loss fetch)."""
  steps: int = 0
  seconds: float = 0.0

  def add(self, steps: int, seconds: float) -> None:
    self.steps += steps
    self.seconds += seconds


class TrainingLoop:
  """One run's steps, from its latest checkpoint (or the initial state) on, and the
  periodic work between them, one method per piece of the protocol (train_and_evaluate):
  `take_train_losses` (fetch, check for NaN and divergence), `evaluate` (the one place a
  metrics row is built and written), `log_progress`, `checkpoint`; `run` puts them in order.

  Holds the train state and the stream state a checkpoint saves beside it: the step, the
  train-loss sum since the last metrics row, and the wall time so far (seconds).
  """

  def __init__(self, plan: RunPlan, trainer: Trainer, corpus: data.Corpus,
               run_dir: pathlib.Path, writes: bool,
               peak: hardware.DevicePeak | None = None):
    """Restores the latest checkpoint of `run_dir` (or initialises) and opens metrics.jsonl
    at that step; `writes`: whether this process writes the run files; `peak`: the
    per-device peak MFU is stated against (None: mfu is null)."""
    self.plan, self.trainer = plan, trainer
    self.peak_flops_per_s = None if peak is None else peak.flops_per_s
    self.devices = int(trainer.mesh.devices.size)
    batch_size, length = plan.config.data.batch_size, plan.config.data.sequence_length
    self.stream = data.TokenStream(corpus.train_tokens, batch_size, length)
    self.rows = host_rows(batch_size)
    self.validation = data.validation_batches(corpus.validation_tokens, batch_size, length,
                                              streams=models.is_recurrent(trainer.model))
    # Intermediate evaluations: the first batches of the stream layout, i.e. B evenly spaced
    # contiguous runs of windows (contiguous, so the LSTM carries its state along them);
    # metrics rows record the tokens each evaluation scored.
    subset_batches = -(-plan.eval_tokens // plan.tokens_per_step)
    self.validation_subset = (
        self.validation if subset_batches >= len(self.validation) else
        data.validation_batches(corpus.validation_tokens, batch_size, length,
                                streams=True)[:subset_batches])
    self.checkpoints = checkpoints.manager(run_dir, plan.config.train.keep_checkpoints)
    try:
      restored = checkpoints.restore_latest(self.checkpoints, trainer.abstract_state)
      if restored is None:
        self.state = trainer.init(jax.random.key(plan.config.seed))
        self.stream_state = {"step": 0, "train_loss_sum": 0.0, "train_loss_steps": 0,
                             "wall_time_s": 0.0}
      else:
        self.state, self.stream_state = restored
        logging.info("resumed %s at step %d", run_dir, self.stream_state["step"])
      self.writer = tracking.Trackers(run_dir, resume_step=self.stream_state["step"],
                                      enabled=writes, names=plan.config.train.trackers,
                                      config=plan.config.to_dict())
    except BaseException:
      self.checkpoints.close()
      raise
    self.done = self.stream_state["step"]  # Steps taken (1-based count of the last).
    self.stopping = False  # Set once every process agreed to stop after `done`.
    self.validation_loss = float("nan")  # Of the latest evaluation (nats/token).
    self.pending_losses = []  # Device scalars of the steps since the last fetch.
    self.start_time = time.time() - self.stream_state["wall_time_s"]
    self.interval_start, self.interval_step = time.time(), self.done
    # Train-step time only (from the end of the periodic work to the next loss fetch, which
    # waits for the devices), since the last metrics row and since the last progress line:
    # model FLOP/s and MFU measure the steps, not evaluations or checkpoints.
    self.clock_start = time.time()
    self.row_clock, self.log_clock = StepClock(), StepClock()

  def run(self, last_step: int, stop_requested: Callable[[], bool]) -> None:
    """Trains until `last_step` steps are done, or until every process agrees to stop
    (`stop_requested` says whether this one was asked to), checkpointing there."""
    for step in range(self.done, last_step):
      self.train_step(step)
      evaluate = self.done in self.plan.eval_steps
      log = self.done % self.plan.log_every_steps == 0 or self.done == last_step
      save = self.done % self.plan.checkpoint_every_steps == 0 or self.done == last_step
      self.stopping = _stop_agreed(stop_requested(), evaluate or log or save)
      if not (evaluate or log or save or self.stopping):
        continue
      latest_train_loss = self.take_train_losses()
      if evaluate:
        self.evaluate()
      if log:
        self.log_progress(latest_train_loss)
      if save or self.stopping:
        self.checkpoint()
      if self.stopping:
        return
      self.clock_start = time.time()

  def train_step(self, step: int) -> None:
    """Takes step `step` (0-based); its loss stays on the devices until fetched."""
    inputs, targets = self.stream.batch(step, self.rows)
    self.state, train_loss = self.trainer.train_step(
        self.state, *self.trainer.shard_batch(inputs, targets))
    self.pending_losses.append(train_loss)
    self.done = step + 1

  def take_train_losses(self) -> float:
    """Fetches the pending train losses, checks them, adds them to the stream state's sum
    and returns the latest (nats/token).

    Raises:
      TrainingFailed: a loss is not finite, or their mean after the warmup is above
        plan.divergence_loss.
    """
    losses = [float(x) for x in jax.device_get(self.pending_losses)]
    train_seconds = time.time() - self.clock_start  # The fetch waited for the steps.
    for clock in (self.row_clock, self.log_clock):
      clock.add(len(losses), train_seconds)
    first = self.done - len(losses) + 1  # The 1-based step of losses[0].
    self.pending_losses = []
    for i, loss in enumerate(losses):
      if not math.isfinite(loss):
        raise TrainingFailed(f"train loss is {loss} at step {first + i}")
    warmup = self.plan.warmup_steps
    after_warmup = [loss for i, loss in enumerate(losses) if first + i > warmup]
    if after_warmup and sum(after_warmup) / len(after_warmup) > self.plan.divergence_loss:
      raise TrainingFailed(
          f"diverged: mean train loss {sum(after_warmup) / len(after_warmup):.4g} "
          f"nats/token over steps {self.done - len(after_warmup) + 1}-{self.done} is above "
          f"ln(vocab) + {DIVERGENCE_MARGIN_NATS:g} = {self.plan.divergence_loss:.4g}")
    for loss in losses:  # One by one, in step order: the sums of a per-step fetch.
      self.stream_state["train_loss_sum"] += loss
    self.stream_state["train_loss_steps"] += len(losses)
    return losses[-1]

  def evaluate(self) -> None:
    """Scores the validation set (all of it after the last step, else the subset) and writes
    the metrics row; the train-loss sum starts again."""
    final = self.done == self.plan.total_steps
    self.validation_loss, scored = self.trainer.evaluate_tokens(
        self.state.params, self.validation if final else self.validation_subset)
    self.writer.write(self.metrics_row(scored))
    self.stream_state["train_loss_sum"], self.stream_state["train_loss_steps"] = 0.0, 0
    self.row_clock = StepClock()

  def metrics_row(self, validation_tokens: int) -> dict:
    """metrics.jsonl's row after `done` steps (algoprog.rundir lists its fields)."""
    tokens_seen = self.done * self.plan.tokens_per_step
    train_loss_steps = self.stream_state["train_loss_steps"]
    return {
        "step": self.done, "tokens": tokens_seen,
        "flops": self.plan.flops_per_token * tokens_seen,
        "train_loss": self.stream_state["train_loss_sum"] / train_loss_steps,
        "validation_loss": self.validation_loss, "validation_tokens": validation_tokens,
        "wall_time_s": time.time() - self.start_time,
        "learning_rate": float(self.trainer.learning_rate(self.done - 1)),
        **self.throughput(self.row_clock),
    }

  def throughput(self, clock: StepClock) -> dict:
    """{tokens_per_s, model_flops_per_s, mfu} of the train steps `clock` timed: tokens/s
    of the global batch, model FLOP/s summed over devices (analytic FLOPs per token x
    tokens/s), and MFU = model FLOP/s / (per-device peak x devices), None without a peak."""
    tokens_per_s = clock.steps * self.plan.tokens_per_step / max(clock.seconds, 1e-9)
    model_flops_per_s = self.plan.flops_per_token * tokens_per_s
    mfu = (None if self.peak_flops_per_s is None else
           model_flops_per_s / (self.peak_flops_per_s * self.devices))
    return {"tokens_per_s": tokens_per_s, "model_flops_per_s": model_flops_per_s, "mfu": mfu}

  def log_progress(self, latest_train_loss: float) -> None:
    """One progress line: position, losses, throughput since the last line (tok/s and
    steps/s of all the time, evaluations included, as the ETA needs; model FLOP/s and MFU
    of the train steps only), ETA."""
    elapsed = max(time.time() - self.interval_start, 1e-9)
    steps_per_s = (self.done - self.interval_step) / elapsed
    steps_left = self.plan.total_steps - self.done
    tokens_seen = self.done * self.plan.tokens_per_step
    rates = self.throughput(self.log_clock)
    mfu = "n/a" if rates["mfu"] is None else f"{100 * rates['mfu']:.1f}%"
    logging.info(
        "step %d/%d  tokens %.3g  FLOPs %.3g  train %.4f  validation %.4f  %.0f tok/s  "
        "%.3g FLOP/s  MFU %s  %.2f steps/s  ETA %s", self.done, self.plan.total_steps,
        tokens_seen, self.plan.flops_per_token * tokens_seen, latest_train_loss,
        self.validation_loss, steps_per_s * self.plan.tokens_per_step,
        rates["model_flops_per_s"], mfu, steps_per_s,
        console.format_duration(steps_left / max(steps_per_s, 1e-9)))
    self.interval_start, self.interval_step = time.time(), self.done
    self.log_clock = StepClock()

  def checkpoint(self) -> None:
    """Saves the train state and the stream state after `done` steps."""
    self.stream_state["step"] = self.done
    self.stream_state["wall_time_s"] = time.time() - self.start_time
    checkpoints.save(self.checkpoints, self.done, self.state, self.stream_state)

  def final_validation_loss(self) -> float:
    """The whole validation set's loss after the last step (nats/token): the last
    evaluation's, or scored now for a run restored at its end (killed before run.json said
    it was complete)."""
    if (self.stream_state["step"] == self.plan.total_steps and not self.pending_losses
        and math.isnan(self.validation_loss)):
      return self.trainer.evaluate(self.state.params, self.validation)
    return self.validation_loss

  def wall_time_s(self) -> float:
    """Training wall time so far (seconds), the time before a resume included."""
    return time.time() - self.start_time

  def close(self) -> None:
    self.writer.close()
    self.checkpoints.close()


def _train(plan: RunPlan, corpus: data.Corpus, run_dir: pathlib.Path, *, mesh: Mesh | None,
           stop_after_steps: int | None, writes: bool) -> dict:
  """Records the plan (config.json, run.json "running"), runs the loop, records how it
  ended; returns run.json's contents."""
  if writes:
    rundir.write_config(run_dir, plan.config.to_dict())
  config = plan.config
  run_info = {
      "run_id": run_dir.name, "label": config.label, "stage": config.stage,
      "status": "running",
      "params_total": plan.params_total, "params_nonembedding": plan.params_nonembedding,
      "flops_per_token": plan.flops_per_token, "flops_convention": plan.flops_convention,
      "flops_source": plan.flops_source, "flops_warning": plan.flops_warning,
      "tokens_planned": plan.tokens_planned, "steps_planned": plan.total_steps,
      "seed": config.seed, "width": config.model.width,
      "learning_rate": config.optim.learning_rate, "batch_size": config.data.batch_size,
      "sequence_length": config.data.sequence_length,
      "data_fingerprint": corpus.fingerprint, "failure_reason": None,
  }

  def record(**updates):
    run_info.update(updates)
    if writes:
      rundir.write_json(run_dir / rundir.RUN_FILE, run_info)

  record()
  logging.info("run %s: %s params (%s non-embedding), %d steps x %d tokens, "
               "%.3g FLOPs/token (%s), budget %.3g FLOPs", run_dir, f"{plan.params_total:,}",
               f"{plan.params_nonembedding:,}", plan.total_steps, plan.tokens_per_step,
               plan.flops_per_token, plan.flops_convention,
               plan.flops_per_token * plan.tokens_planned)

  trainer = build_trainer(config, plan.vocab_size, plan.total_steps, mesh)
  # Here, not earlier: on CPU this times a matmul, which only a process that trains pays.
  peak = hardware.device_peak(trainer.mesh.devices.flat[0], config.model.matmul_dtype)
  if peak.flops_per_s is None:
    logging.warning("%s (metrics.jsonl's mfu is null)", peak.source)
  record(peak_flops_per_s=peak.flops_per_s, peak_dtype=peak.dtype, peak_source=peak.source,
         devices=int(trainer.mesh.devices.size))
  loop = TrainingLoop(plan, trainer, corpus, run_dir, writes, peak)
  last_step = (plan.total_steps if stop_after_steps is None
               else min(plan.total_steps, stop_after_steps))
  try:
    with _stop_on_sigterm() as stop:
      loop.run(last_step, stop_requested=lambda: stop["signal"] is not None)
  except TrainingFailed as e:
    record(status="failed", failure_reason=str(e))
    raise
  finally:
    loop.close()
  if loop.done == plan.total_steps:
    record(status="completed", final_validation_loss=loop.final_validation_loss(),
           wall_time_s=loop.wall_time_s())
  elif loop.stopping:
    logging.warning("run %s interrupted by SIGTERM at step %d/%d (checkpointed); rerun the "
                    "same command to resume", run_dir, loop.done, plan.total_steps)
    record(status="interrupted", interrupted_at_step=loop.done)
  return run_info
