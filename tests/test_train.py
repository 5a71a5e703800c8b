"""The training core: data parallelism, accumulation, resume, and the run records."""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algoprog import rundir
from algoprog.training import config as config_lib, data, train


def tiny_config(corpus_dir: pathlib.Path, cache_dir: pathlib.Path, **overrides):
  c = config_lib.base_config()
  c.data.source = "text"
  c.data.path = str(corpus_dir)
  c.data.tokenizer = "byte"
  c.data.cache_dir = str(cache_dir)
  c.data.validation_tokens = 4096
  c.data.sequence_length = 32
  c.data.batch_size = 16
  c.model.width = 32
  c.train.tokens = 16 * 32 * 12
  c.train.eval_every_steps = 4
  c.train.log_every_steps = 4
  c.train.checkpoint_every_steps = 5
  for dotted, value in overrides.items():
    node = c
    *parents, leaf = dotted.split("__")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return c


@pytest.fixture(scope="module")
def setup(small_corpus, tmp_path_factory):
  cache = tmp_path_factory.mktemp("cache")
  config = config_lib.resolve(tiny_config(small_corpus, cache))
  corpus = data.load_corpus(config.data)
  stream = data.TokenStream(corpus.train_tokens, config.data.batch_size,
                            config.data.sequence_length)
  return config, corpus, stream


def run_steps(trainer: train.Trainer, stream: data.TokenStream, steps: int):
  state = trainer.init(jax.random.key(0))
  losses = []
  for step in range(steps):
    state, loss = trainer.train_step(state, *trainer.shard_batch(*stream.batch(step)))
    losses.append(float(loss))
  return jax.device_get(state.params), losses


def assert_trees_close(a, b, rtol=2e-5, atol=2e-6):
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


def test_eight_devices_match_one_device(setup):
  config, corpus, stream = setup
  assert jax.device_count() == 8
  one = train.build_trainer(config, corpus.vocab_size, 20,
                            train.make_mesh(jax.devices()[:1]))
  eight = train.build_trainer(config, corpus.vocab_size, 20, train.make_mesh())
  params_1, losses_1 = run_steps(one, stream, 5)
  params_8, losses_8 = run_steps(eight, stream, 5)
  np.testing.assert_allclose(losses_1, losses_8, rtol=1e-5)
  assert_trees_close(params_1, params_8)
  # The batch really is split: each device holds 16 / 8 = 2 rows.
  inputs, _ = eight.shard_batch(*stream.batch(0))
  assert {s.data.shape for s in inputs.addressable_shards} == {(2, 32)}


def test_microbatches_match_full_batch(setup):
  config, corpus, stream = setup
  mesh = train.make_mesh(jax.devices()[:2])
  full = train.build_trainer(config, corpus.vocab_size, 20, mesh)
  with config.unlocked():
    config.train.microbatches = 4
  try:
    accumulated = train.build_trainer(config, corpus.vocab_size, 20, mesh)
  finally:
    config.train.microbatches = 1
  params_full, losses_full = run_steps(full, stream, 4)
  params_acc, losses_acc = run_steps(accumulated, stream, 4)
  np.testing.assert_allclose(losses_full, losses_acc, rtol=1e-5)
  assert_trees_close(params_full, params_acc)


def test_jit_matches_no_jit(setup):
  config, corpus, stream = setup
  trainer = train.build_trainer(config, corpus.vocab_size, 20,
                                train.make_mesh(jax.devices()[:1]))
  step_fn = train.make_train_step(trainer.model, trainer.optimizer, 1)
  state = trainer.init(jax.random.key(0))
  batch = [jnp.asarray(x) for x in stream.batch(0)]
  jitted_state, jitted_loss = jax.jit(step_fn)(state, *batch)
  with jax.disable_jit():
    eager_state, eager_loss = step_fn(state, *batch)
  np.testing.assert_allclose(jitted_loss, eager_loss, rtol=1e-5)
  assert_trees_close(jitted_state.params, eager_state.params)


def test_cross_entropy_matches_numpy():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(2, 3, 7)).astype(np.float32)
  targets = rng.integers(0, 7, size=(2, 3))
  weights = np.array([[1, 1, 0], [1, 0, 1]], np.float32)
  log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  expected = -(np.take_along_axis(log_probs, targets[..., None], -1)[..., 0] * weights).sum()
  total, count = train.cross_entropy_sum(jnp.asarray(logits), jnp.asarray(targets),
                                         jnp.asarray(weights))
  np.testing.assert_allclose(total, expected, rtol=1e-5)
  assert count == 4


def test_eval_steps_are_early_and_regular():
  assert train.eval_steps(50, 16) == {1, 2, 4, 8, 16, 32, 48, 50}
  assert train.eval_steps(3, 100) == {1, 2, 3}


def without_wall_time(rows):
  """The rows without their timing fields (wall time, throughput, MFU)."""
  return [{k: v for k, v in r.items() if k not in rundir.TIMING_FIELDS} for r in rows]


def test_interrupted_then_resumed_run_writes_the_same_metrics(small_corpus, tmp_path):
  config = tiny_config(small_corpus, tmp_path / "cache")
  straight = tmp_path / "straight"
  resumed = tmp_path / "resumed"
  train.train_and_evaluate(config, straight)
  # Killed after step 7: the newest checkpoint is step 5, so steps 6-7 are redone.
  train.train_and_evaluate(config, resumed, stop_after_steps=7)
  partial = rundir.read_metrics(resumed)
  assert partial[-1]["step"] == 4 and len(partial) == 3
  info = train.train_and_evaluate(config, resumed)
  assert info["status"] == "completed"
  assert without_wall_time(rundir.read_metrics(resumed)) == without_wall_time(
      rundir.read_metrics(straight))
  run = json.loads((resumed / rundir.RUN_FILE).read_text())
  assert run["params_total"] > run["params_nonembedding"] > 0
  assert run["data_fingerprint"]["train_sha256"]
  resolved = json.loads((resumed / rundir.CONFIG_FILE).read_text())
  assert resolved["model"]["num_layers"] == 2 and resolved["train"]["steps"] == 12


def test_workdir_with_a_different_config_is_refused(small_corpus, tmp_path):
  config = tiny_config(small_corpus, tmp_path / "cache")
  train.train_and_evaluate(config, tmp_path / "run", stop_after_steps=1)
  config.model.width = 48
  with pytest.raises(config_lib.ConfigError, match=r"model.width: 32 -> 48"):
    train.train_and_evaluate(config, tmp_path / "run")


def test_divergence_is_recorded_as_failed(small_corpus, tmp_path):
  config = tiny_config(small_corpus, tmp_path / "cache", optim__learning_rate=1e30,
                       optim__grad_clip_norm=0.0)
  with pytest.raises(train.TrainingFailed):
    train.train_and_evaluate(config, tmp_path / "run")
  run = json.loads((tmp_path / "run" / rundir.RUN_FILE).read_text())
  assert run["status"] == "failed" and "train loss" in run["failure_reason"]


def test_run_plan_is_what_the_run_records_and_leaves_the_config_alone(setup, tmp_path):
  config, corpus, stream = setup
  before = config.to_dict()
  plan = train.plan_run(config, corpus)
  assert config.to_dict() == before  # The resolved config is not filled in place.
  assert "vocab_size" not in config.data and "steps" not in config.train
  assert plan.config.data.vocab_size == corpus.vocab_size == plan.vocab_size
  assert plan.total_steps == plan.config.train.steps == 12
  assert plan.tokens_per_step == stream.tokens_per_step
  assert plan.tokens_planned == plan.config.train.tokens == 12 * stream.tokens_per_step
  assert plan.eval_steps == {1, 2, 4, 8, 12}
  assert plan.checkpoint_every_steps == 5 and plan.log_every_steps == 4
  assert plan.eval_tokens == train.derived_eval_tokens(
      plan.tokens_planned, len(plan.eval_steps), corpus.validation_tokens.size)
  assert plan.flops_source == "analytical" and plan.flops_warning is None
  assert plan.params_total > plan.params_nonembedding > 0

  info = train.train_and_evaluate(config, tmp_path / "run")
  assert config.to_dict() == before
  assert rundir.read_config(tmp_path / "run") == json.loads(json.dumps(plan.config.to_dict()))
  assert (info["steps_planned"], info["tokens_planned"]) == (plan.total_steps,
                                                             plan.tokens_planned)
  assert (info["params_total"], info["flops_per_token"]) == (plan.params_total,
                                                             plan.flops_per_token)
  assert [r["step"] for r in rundir.read_metrics(tmp_path / "run")] == sorted(plan.eval_steps)


def test_a_plan_longer_than_the_corpus_is_refused(setup):
  config, corpus, _ = setup
  longer = config_lib.resolve(config)  # A copy.
  longer.train.tokens = 10**9
  with pytest.raises(data.DataError, match=r"train.tokens: the budget needs"):
    train.plan_run(longer, corpus)
