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
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import math
import os
import pathlib
import signal
import socket
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

from algoprog import rundir
from algoprog.training import checkpoints, config as config_lib, console, data, flops, models, optim
from algoprog.training import compiled_flops, output_layer

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
  with gradients stopped at the boundary.
  """
  b, length = inputs_BxL.shape
  by_window = lambda x: x.reshape(b, length // window, window).swapaxes(0, 1)

  def one_window(carry, batch):
    inputs_BxW, targets_BxW, reset_B = batch
    carry = jnp.where(reset_B[:, None, None, None], 0.0, jax.lax.stop_gradient(carry))
    loss, count, carry = model_loss_sum(model, params, inputs_BxW, targets_BxW, carry=carry)
    return carry, (loss, count)

  carry, (losses, counts) = jax.lax.scan(
      one_window, carry_BxNx2xD, (by_window(inputs_BxL), by_window(targets_BxL), resets_BxT.T))
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
                        lstm_reset=self.config.train.get("lstm_reset", "window")),
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


# Fields that change how a run is watched and saved, not its results: they may differ
# between a run and its resume.
_BOOKKEEPING_FIELDS = ("train.log_every_steps", "train.checkpoint_every_steps",
                       "train.keep_checkpoints")


def _config_differences(old: dict, new: dict, prefix: str = "") -> list[str]:
  diffs = []
  for key in sorted(set(old) | set(new)):
    a, b = old.get(key, "<missing>"), new.get(key, "<missing>")
    if isinstance(a, dict) and isinstance(b, dict):
      diffs += _config_differences(a, b, f"{prefix}{key}.")
    elif a != b and f"{prefix}{key}" not in _BOOKKEEPING_FIELDS:
      diffs.append(f"{prefix}{key}: {a!r} -> {b!r}")
  return diffs


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
    return (compiled_flops.xla_flops_per_token(config, vocab_size), compiled_flops.CONVENTION,
            warning)


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


@contextlib.contextmanager
def workdir_lock(run_dir: pathlib.Path):
  """Holds an exclusive fcntl lock on run_dir/.lock (which names the holder) for the
  block; a second trainer on the same workdir gets RunError instead of racing the first."""
  fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
  with os.fdopen(fd, "r+") as f:
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = f.read().strip() or "another process"
      raise RunError(f"workdir {run_dir} is in use by another trainer ({holder}); wait for "
                     "it to finish or use another --workdir") from None
    f.truncate(0)
    f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    f.flush()
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


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
    config: an unresolved or resolved config (algoprog.training.config).
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
  stream = data.TokenStream(corpus.train_tokens, config.data.batch_size,
                            config.data.sequence_length)
  if corpus.validation_tokens.size < config.data.validation_tokens:
    logging.warning("data.validation_tokens: the corpus holds out only %d of the %d tokens "
                    "asked for; validating on %d (run.json's data_fingerprint records both)",
                    corpus.validation_tokens.size, config.data.validation_tokens,
                    corpus.validation_tokens.size)

  # The parameter count fixes the token budget, so count on abstract shapes first.
  model = models.build_model(config.model, corpus.vocab_size)
  abstract_params = jax.eval_shape(
      lambda: model.init(jax.random.key(0), jnp.zeros((1, config.data.sequence_length),
                                                      jnp.int32)))["params"]
  params_total = models.count_params(abstract_params)
  params_embedding = models.embedding_param_count(abstract_params)
  flops_per_token, flops_convention, flops_warning = token_flops(config, corpus.vocab_size)
  if config.train.tokens:
    tokens = config.train.tokens
  elif config.train.flops:
    tokens = int(config.train.flops / flops_per_token)
  else:
    tokens = max(config.train.min_tokens, int(config.train.tokens_per_param * params_total))
  total_steps = max(1, round(tokens / stream.tokens_per_step))
  if total_steps > stream.steps_per_epoch:
    raise data.DataError(
        f"train.tokens: the budget needs {total_steps} steps of {stream.tokens_per_step} "
        f"tokens but the corpus has {stream.steps_per_epoch} ({corpus.train_tokens.size:,} "
        "training tokens, one epoch): lower train.tokens / train.tokens_per_param")
  evaluate_after = eval_steps(total_steps, config.train.eval_every_steps)
  with config.unlocked():
    config.data.vocab_size = corpus.vocab_size
    config.train.tokens = total_steps * stream.tokens_per_step
    config.train.steps = total_steps

  writes = writes_run_files()
  with contextlib.ExitStack() as held:
    if writes:
      held.enter_context(workdir_lock(run_dir))
    previous = _check_workdir(run_dir, config, corpus.fingerprint)
    if previous is not None and previous.get("status") == "completed":
      logging.info("run %s is already complete (final validation loss %s); nothing to do",
                   run_dir, previous.get("final_validation_loss"))
      return previous
    return _train(config, run_dir, corpus, stream, mesh, stop_after_steps, writes,
                  params_total, params_embedding,
                  (flops_per_token, flops_convention, flops_warning), evaluate_after)


def _check_workdir(run_dir: pathlib.Path, config: ml_collections.ConfigDict,
                   fingerprint: dict) -> dict | None:
  """The workdir's previous run.json, after checking that it holds this run on this data."""
  old_config = rundir.read_json(run_dir / rundir.CONFIG_FILE)
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


def _train(config, run_dir, corpus, stream, mesh, stop_after_steps, writes, params_total,
           params_embedding, token_flops_info, evaluate_after) -> dict:
  flops_per_token, flops_convention, flops_warning = token_flops_info
  total_steps = config.train.steps
  if writes:
    rundir.write_json(run_dir / rundir.CONFIG_FILE, config.to_dict())
  run_info = {
      "run_id": run_dir.name, "label": config.label, "stage": config.stage,
      "status": "running",
      "params_total": params_total, "params_nonembedding": params_total - params_embedding,
      "flops_per_token": flops_per_token, "flops_convention": flops_convention,
      "flops_source": "analytical" if flops_warning is None else "xla_cost_analysis",
      "flops_warning": flops_warning,
      "tokens_planned": config.train.tokens, "steps_planned": total_steps,
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
               "%.3g FLOPs/token (%s), budget %.3g FLOPs", run_dir, f"{params_total:,}",
               f"{params_total - params_embedding:,}", total_steps, stream.tokens_per_step,
               flops_per_token, flops_convention, flops_per_token * config.train.tokens)

  trainer = build_trainer(config, corpus.vocab_size, total_steps, mesh)
  validation = data.validation_batches(corpus.validation_tokens, config.data.batch_size,
                                       config.data.sequence_length,
                                       streams=models.is_recurrent(trainer.model))
  # Intermediate evaluations: the first batches of the stream layout, i.e. B evenly spaced
  # contiguous runs of windows (contiguous, so the LSTM carries its state along them). The
  # derived values stay 0 in config.json (sweeps compare it with their plan); they are pure
  # functions of recorded numbers, and metrics rows record the tokens each evaluation scored.
  eval_tokens = config.train.eval_tokens or derived_eval_tokens(
      config.train.tokens, len(evaluate_after), int(corpus.validation_tokens.size))
  checkpoint_every = config.train.checkpoint_every_steps or min(
      MAX_CHECKPOINT_EVERY_STEPS, -(-total_steps // 10))
  subset_batches = -(-eval_tokens // (config.data.batch_size * config.data.sequence_length))
  validation_subset = (validation if subset_batches >= len(validation) else
                       data.validation_batches(corpus.validation_tokens,
                                               config.data.batch_size,
                                               config.data.sequence_length,
                                               streams=True)[:subset_batches])
  warmup = optim.warmup_steps(config.optim, total_steps)
  divergence_loss = math.log(corpus.vocab_size) + DIVERGENCE_MARGIN_NATS
  mngr = checkpoints.manager(run_dir, config.train.keep_checkpoints)
  try:
    restored = checkpoints.restore_latest(mngr, trainer.abstract_state)
  except BaseException:
    mngr.close()
    raise
  if restored is None:
    state = trainer.init(jax.random.key(config.seed))
    stream_state = {"step": 0, "train_loss_sum": 0.0, "train_loss_steps": 0,
                    "wall_time_s": 0.0}
  else:
    state, stream_state = restored
    logging.info("resumed %s at step %d", run_dir, stream_state["step"])
  writer = rundir.MetricsWriter(run_dir, resume_step=stream_state["step"], enabled=writes)
  rows = host_rows(config.data.batch_size)
  validation_loss = float("nan")
  start_time = time.time() - stream_state["wall_time_s"]
  interval_start, interval_step = time.time(), stream_state["step"]
  last_step = total_steps if stop_after_steps is None else min(total_steps, stop_after_steps)
  pending_losses = []  # Device scalars of the steps since the last fetch.
  done, stopping = stream_state["step"], False
  try:
    with _stop_on_sigterm() as stop:
      for step in range(stream_state["step"], last_step):
        inputs, targets = stream.batch(step, rows)
        state, train_loss = trainer.train_step(state, *trainer.shard_batch(inputs, targets))
        pending_losses.append(train_loss)
        done = step + 1
        evaluate = done in evaluate_after
        log = done % config.train.log_every_steps == 0 or done == last_step
        save = done % checkpoint_every == 0 or done == last_step
        stopping = _stop_agreed(stop["signal"] is not None, evaluate or log or save)
        save = save or stopping
        if not (evaluate or log or save):
          continue
        losses = [float(x) for x in jax.device_get(pending_losses)]
        first = done - len(losses) + 1  # The 1-based step of losses[0].
        pending_losses = []
        for i, loss in enumerate(losses):
          if not math.isfinite(loss):
            raise TrainingFailed(f"train loss is {loss} at step {first + i}")
        after_warmup = [loss for i, loss in enumerate(losses) if first + i > warmup]
        if after_warmup and sum(after_warmup) / len(after_warmup) > divergence_loss:
          raise TrainingFailed(
              f"diverged: mean train loss {sum(after_warmup) / len(after_warmup):.4g} "
              f"nats/token over steps {done - len(after_warmup) + 1}-{done} is above "
              f"ln(vocab) + {DIVERGENCE_MARGIN_NATS:g} = {divergence_loss:.4g}")
        for loss in losses:  # One by one, in step order: the sums of a per-step fetch.
          stream_state["train_loss_sum"] += loss
        stream_state["train_loss_steps"] += len(losses)
        if evaluate:
          validation_loss, scored = trainer.evaluate_tokens(
              state.params, validation if done == total_steps else validation_subset)
          tokens_seen = done * stream.tokens_per_step
          writer.write({
              "step": done, "tokens": tokens_seen, "flops": flops_per_token * tokens_seen,
              "train_loss": stream_state["train_loss_sum"] / stream_state["train_loss_steps"],
              "validation_loss": validation_loss, "validation_tokens": scored,
              "wall_time_s": time.time() - start_time,
              "learning_rate": float(trainer.learning_rate(step)),
          })
          stream_state["train_loss_sum"], stream_state["train_loss_steps"] = 0.0, 0
        if log:
          elapsed = max(time.time() - interval_start, 1e-9)
          steps_per_s = (done - interval_step) / elapsed
          logging.info(
              "step %d/%d  tokens %.3g  FLOPs %.3g  train %.4f  validation %.4f  %.0f tok/s  "
              "%.2f steps/s  ETA %s", done, total_steps, done * stream.tokens_per_step,
              flops_per_token * done * stream.tokens_per_step, losses[-1], validation_loss,
              steps_per_s * stream.tokens_per_step, steps_per_s,
              console.format_duration((total_steps - done) / max(steps_per_s, 1e-9)))
          interval_start, interval_step = time.time(), done
        if save:
          stream_state["step"] = done
          stream_state["wall_time_s"] = time.time() - start_time
          checkpoints.save(mngr, done, state, stream_state)
        if stopping:
          break
  except TrainingFailed as e:
    record(status="failed", failure_reason=str(e))
    raise
  finally:
    writer.close()
    mngr.close()
  if done == total_steps:
    if stream_state["step"] == total_steps and not pending_losses and math.isnan(
        validation_loss):  # Restored at the end (killed before run.json said so).
      validation_loss = trainer.evaluate(state.params, validation)
    record(status="completed", final_validation_loss=validation_loss,
           wall_time_s=time.time() - start_time)
  elif stopping:
    logging.warning("run %s interrupted by SIGTERM at step %d/%d (checkpointed); rerun the "
                    "same command to resume", run_dir, done, total_steps)
    record(status="interrupted", interrupted_at_step=done)
  return run_info
