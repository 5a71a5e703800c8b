"""Plug-ins: registries and their errors, head_dim, plug-in FLOPs or XLA's count, any group in
reproduce, and a variant (QK-norm + Lion, defined outside the package) measured end to end."""

import json
import math
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from algoprog.training import compiled_flops, config as config_lib, flops, models, optim
from algoprog.analysis import ceg, fit
from algoprog import study
from algoprog.training import registry, sweep, train
from algoprog.analysis import runs

PLUGIN = pathlib.Path(__file__).resolve().parent / "plugin_qknorm_lion.py"


def small_config(corpus, cache, **model) -> ml_collections.ConfigDict:
  c = config_lib.base_config()
  c.plugins = str(PLUGIN)
  c.data.update(source="text", path=str(corpus), tokenizer="byte", cache_dir=str(cache),
                validation_tokens=2048, batch_size=8, sequence_length=32)
  c.model.update(width=16, **model)
  c.train.update(tokens=8 * 32 * 6, eval_every_steps=3, checkpoint_every_steps=100)
  return c


def test_unknown_names_list_the_registered_ones_including_plugins():
  c = config_lib.base_config()
  c.optim.name = "adafactorial"
  with pytest.raises(config_lib.ConfigError, match=r"optim.name: expected one of adamw, "
                     r"adam, sgd, rmsprop\b.*got 'adafactorial'"):
    config_lib.resolve(c)
  c.optim.name = "lion"
  c.plugins = str(PLUGIN)
  assert config_lib.resolve(c).optim.name == "lion"  # Imported first, then validated.
  c.model.attention = "flash"
  with pytest.raises(config_lib.ConfigError, match=r"model.attention: expected one of "
                     r"softmax, qknorm .*got 'flash'") as e:
    config_lib.resolve(c)
  assert "\n" not in str(e.value)


def test_plugin_import_errors_are_one_line_naming_the_entry(tmp_path):
  c = config_lib.base_config()
  c.plugins = "no_such_module_anywhere"
  with pytest.raises(config_lib.ConfigError, match="plugins: importing 'no_such_module_anywh"
                     "ere' failed: ModuleNotFoundError"):
    config_lib.resolve(c)
  broken = tmp_path / "broken_plugin.py"
  broken.write_text("raise RuntimeError('bad\\nplug-in')\n")
  c.plugins = str(broken)
  with pytest.raises(config_lib.ConfigError) as e:
    config_lib.resolve(c)
  assert "broken_plugin.py" in str(e.value) and "RuntimeError: bad" in str(e.value)
  assert "\n" not in str(e.value)
  c.plugins = str(tmp_path / "missing.py")
  with pytest.raises(config_lib.ConfigError, match="plugins: no plug-in file"):
    config_lib.resolve(c)


def test_registering_a_taken_name_fails_and_builtins_cannot_be_replaced():
  with pytest.raises(registry.RegistryError, match="'adamw' is already registered \\(built"):
    registry.OPTIMIZERS.register("adamw", lambda o, s, m: None, replace=True)
  registry.NORMS.register("test_only_norm", lambda m, name: models.RMSNorm(name=name))
  try:
    with pytest.raises(registry.RegistryError, match="pass replace=True"):
      registry.NORMS.register("test_only_norm", lambda m, name: None)
    registry.NORMS.register("test_only_norm", lambda m, name: models.LayerNorm(name=name),
                            replace=True)
    assert "test_only_norm" in registry.NORMS.names()
  finally:
    registry.NORMS.unregister("test_only_norm")
  assert "test_only_norm" not in registry.NORMS.names()


def test_two_plugins_registering_one_name_fail_naming_both_modules(tmp_path):
  body = ("from algoprog.training import models, registry\n"
          "registry.NORMS.register('test_clash_norm', lambda m, name: models.{}(name=name))\n")
  first, second = tmp_path / "first_norms.py", tmp_path / "second_norms.py"
  first.write_text(body.format("RMSNorm"))
  second.write_text(body.format("LayerNorm"))
  c = config_lib.base_config()
  c.plugins = f"{first},{second}"
  try:
    with pytest.raises(config_lib.ConfigError) as e:
      config_lib.resolve(c)
  finally:
    registry.NORMS.unregister("test_clash_norm")
  message = str(e.value)
  assert "\n" not in message
  assert message.startswith("model.norm: 'test_clash_norm' is already registered by ")
  assert f"by {first}; {second} registers it again" in message
  # A built-in's name: the message names the built-in's module and the newcomer.
  with pytest.raises(registry.RegistryError, match=r"'rmsnorm' is already registered \(built "
                     r"in, by algoprog\.training\.models\); \S*test_plugins registers it again$"):
    registry.NORMS.register("rmsnorm", lambda m, name: None)


def test_head_dim_allows_widths_not_a_multiple_of_16():
  c = config_lib.base_config()
  c.model.width = 24
  with pytest.raises(config_lib.ConfigError, match="model.width: expected a multiple of "
                     "model.head_dim=16"):
    config_lib.resolve(c)
  c.model.head_dim = 8
  r = config_lib.resolve(c)
  assert (r.model.num_heads, r.model.num_layers) == (3, 2)  # 24 / 8 heads; 24 / 16 -> 2.
  c.model.head_dim = 12
  assert config_lib.resolve(c).model.num_heads == 2
  # The default keeps the study's rule: heads = layers = width / 16.
  base = config_lib.resolve(config_lib.base_config())
  assert (base.model.num_heads, base.model.num_layers, base.model.head_dim) == (4, 4, 16)
  c.model.head_dim = 8
  c.data.sequence_length = 16
  model = models.build_model(config_lib.resolve(c).model, 64)
  params = model.init(jax.random.key(0), jnp.zeros((2, 16), jnp.int32))["params"]
  query = params["layer_0"]["attention"]["query"]["kernel"]
  assert query.shape == (24, 24) and "layer_1" in params and "layer_2" not in params
  total, _ = flops.param_counts(config_lib.resolve(c).model, 64)
  assert models.count_params(params) == int(total)


def test_plugin_flops_replace_the_builtin_component_and_agree_with_xla():
  config_lib.import_plugins(ml_collections.ConfigDict({"plugins": str(PLUGIN)}))
  c = config_lib.base_config()
  c.model.update(width=32, attention="qknorm")
  c.data.sequence_length = 32
  r = config_lib.resolve(c)
  parts = flops.training_flops_per_token_by_component(r.model, 256, 32)
  base = flops.training_flops_per_token_by_component(
      config_lib.resolve(_with(c, attention="softmax")).model, 256, 32)
  # Everything but the QK norms is the built-in attention's count.
  assert set(parts) == set(base) | {"qk_norm"}
  assert all(float(parts[k]) == pytest.approx(float(base[k])) for k in base)
  assert float(parts["qk_norm"]) > 0
  analytical = float(flops.training_flops_per_token(r.model, 256, 32))
  xla = train.xla_flops_per_token(r, 256)
  assert analytical == pytest.approx(xla, rel=0.02)


def _with(c, **model):
  out = ml_collections.ConfigDict(c.to_dict())
  out.model.update(model)
  return out


def test_plugin_without_flops_is_counted_by_xla_with_a_recorded_warning(
    small_corpus, tmp_path):
  c = small_config(small_corpus, tmp_path / "cache", ffn="squared_relu")
  with pytest.raises(flops.FlopsUnavailable, match="model.ffn='squared_relu': plug-in"):
    flops.training_flops_per_token(config_lib.resolve(c).model, 256, 32)
  info = train.train_and_evaluate(c, tmp_path / "run")
  assert info["status"] == "completed"
  assert info["flops_source"] == "xla_cost_analysis"
  assert "squared_relu" in info["flops_warning"] and "XLA" in info["flops_warning"]
  assert info["flops_convention"] == compiled_flops.CONVENTION
  on_disk = json.loads((tmp_path / "run" / "run.json").read_text())
  assert on_disk["flops_source"] == "xla_cost_analysis"
  # XLA's count of the plug-in is close to the analytical count of ReLU (one more multiply
  # per hidden unit, forward, and its gradient).
  relu = _with(config_lib.resolve(c), ffn="relu")
  analytical_relu = float(flops.training_flops_per_token(relu.model, info_vocab(tmp_path), 32))
  assert info["flops_per_token"] == pytest.approx(analytical_relu, rel=0.05)
  assert info["flops_per_token"] > analytical_relu
  assert train.token_flops(relu, info_vocab(tmp_path)) == (
      analytical_relu, flops.CONVENTION, None)  # Built-ins: analytical, no warning.


def info_vocab(tmp_path) -> int:
  return json.loads((tmp_path / "run" / "config.json").read_text())["data"]["vocab_size"]


def test_lion_is_optax_lion_after_clipping():
  config_lib.import_plugins(ml_collections.ConfigDict({"plugins": str(PLUGIN)}))
  o = config_lib.base_config().optim
  o.update(name="lion", b1=0.9, b2=0.99, weight_decay=0.0, grad_clip_norm=0.0,
           schedule="constant", warmup_steps=1, learning_rate=0.1)
  tx = optim.make_optimizer(o, 10)
  params = {"w": jnp.array([1.0, -2.0, 3.0])}
  grads = {"w": jnp.array([0.5, -0.1, 0.0])}
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(updates["w"], [-0.1, 0.1, 0.0], atol=1e-7)  # -lr * sign.
  assert float(flops.optimizer_flops_per_step(o, 100)) == (11.0 + 1.0) * 100


def test_reproduce_accepts_any_scaling_group_with_the_modern_lr_rule():
  kwargs = dict(name="x", description="x", data={}, train={},
                scaling_widths={"modern": (32,), "mine": (32, 64)}, scaling_seeds=(1,),
                tokens_per_param=1.0, lr_sweep_widths={"modern": (32,)}, ablation_width=32,
                ablation_seeds=(1,), ablation_tokens_per_param=1.0, ablations=())
  with pytest.raises(study.StudyConfigError, match="scaling_configs: no config file for "
                     "scaling group 'mine'"):
    study.study_config(**kwargs)
  c = study.study_config(**kwargs, scaling_configs={"mine": "configs/modern.py"},
                         scaling_overrides={"mine": {"model": {"attention": "qknorm"}}})
  mine = c.sweep.groups.mine
  assert mine.lr_sweep_widths == (32, 64)  # Not listed: every width is swept.
  assert dict(zip(mine.lr_widths, mine.lr_values)) == study.STUDY_LEARNING_RATES["modern"]
  planned = sweep.plan_runs(c.sweep)
  centre = [r for r in planned if r.label == "mine" and r.overrides["model.width"] == 64]
  lrs = sorted(r.overrides["optim.learning_rate"] for r in centre)
  assert lrs[len(lrs) // 2] == pytest.approx(5.79e-3, rel=1e-3)  # The modern LR at 64.
  assert all(r.overrides["model.attention"] == "qknorm" for r in centre)
  with pytest.raises(study.StudyConfigError, match="ablations: unknown 'mine_vs_x'"):
    study.study_config(**{**kwargs, "ablations": ("mine_vs_x",)},
                       scaling_configs={"mine": "configs/modern.py"})


def test_qknorm_and_lion_from_outside_the_package_get_a_ceg_with_cis_at_3_widths(
    small_corpus, tmp_path, monkeypatch):
  """The notebook colabs/extending.ipynb in miniature: sweep subprocesses import the plug-in
  from `plugins`, train baseline and variant at widths 16/24/32, fit, CEG with CIs."""
  monkeypatch.setenv("XLA_FLAGS", "")  # The runs' own processes: one CPU device each.
  s = ml_collections.ConfigDict()
  s.workers = 2
  s.overrides = ml_collections.ConfigDict({
      "plugins": str(PLUGIN),
      "data": {"source": "text", "path": str(small_corpus), "tokenizer": "byte",
               "cache_dir": str(tmp_path / "cache"), "validation_tokens": 2048,
               "batch_size": 8, "sequence_length": 32},
      "model": {"head_dim": 8},
      "train": {"eval_every_steps": 4, "checkpoint_every_steps": 100}})
  s.lr_sweep = ml_collections.ConfigDict({"points": 1, "spacing_decades": 0.5,
                                          "budget_fraction": 0.5, "min_tokens": 0,
                                          "center": 3e-3})
  group = dict(config="configs/modern.py", widths=(16, 24, 32), seeds=(123,),
               tokens_per_param=0.3, lr_widths=(16,), lr_values=(1e-2,), lr_sweep=False)
  s.groups = ml_collections.ConfigDict({
      "baseline": {**group, "overrides": {}},
      "qknorm_lion": {**group, "lr_values": (3e-3,),
                      "overrides": {"model": {"attention": "qknorm"},
                                    "optim": {"name": "lion", "b2": 0.99}}}})
  results = sweep.run_sweep(s, tmp_path / "sweep", workers=2, log=lambda _: None)
  assert len(results) == 6
  assert all(r["status"] == "completed" for r in results.values()), results
  assert all(r["flops_source"] == "analytical" for r in results.values())
  variant = json.loads((tmp_path / "sweep" / "runs" / "qknorm_lion_w24_s123" /
                        "config.json").read_text())
  assert (variant["model"]["attention"], variant["optim"]["name"]) == ("qknorm", "lion")
  assert (variant["model"]["num_heads"], variant["model"]["num_layers"]) == (3, 2)
  table = runs.load_runs(tmp_path / "sweep" / "runs")
  result, boot, _ = fit.fit_and_bootstrap(
      table, groups=["baseline", "qknorm_lion"], options=fit.PowerLawOptions(irreducible=1.0),
      num_samples=20, resample="points", seed=0)
  compute = float(np.sqrt(table.compute.min() * table.compute.max()))
  rows = [r for r in ceg.ceg_table(result, boot, "baseline", computes=[compute])
          if r.quantity == "ceg_at_compute"]
  assert [r.group for r in rows] == ["qknorm_lion"]
  row = rows[0]
  assert math.isfinite(row.estimate) and row.estimate > 0
  assert math.isfinite(row.lower) and math.isfinite(row.upper)
  assert row.lower <= row.estimate <= row.upper


class _Bigram(models.nn.Module):
  """A plug-in model: logits of the next token from the current one alone."""
  model: ml_collections.ConfigDict
  vocab_size: int

  @models.nn.compact
  def __call__(self, tokens_BxL):
    return models.nn.Embed(self.vocab_size, self.vocab_size, name="embed")(tokens_BxL)


class _OffsetPositions(models.nn.Module):
  """A plug-in position scheme: a learned vector per position, scaled by 0.5."""
  model: ml_collections.ConfigDict

  @models.nn.compact
  def __call__(self, x_BxLxD):
    table = self.param("table", models.nn.initializers.normal(0.02),
                       (self.model.max_sequence_length, x_BxLxD.shape[-1]))
    return x_BxLxD + 0.5 * table[None, :x_BxLxD.shape[1]]


def test_norm_positions_and_model_plugins_build_and_count_their_flops():
  registry.NORMS.register("test_scale_norm", lambda m, name: models.RMSNorm(name=name))
  registry.POSITIONS.register("test_offset", lambda m, name: _OffsetPositions(m, name=name))
  registry.MODELS.register("test_bigram", _Bigram,
                           flops=lambda m, v, length, width: {"logits": 3.0 * v * v})
  try:
    c = config_lib.base_config()
    c.model.update(width=16, norm="test_scale_norm", positions="test_offset")
    c.data.sequence_length = 8
    r = config_lib.resolve(c)
    model = models.build_model(r.model, 32)
    params = model.init(jax.random.key(0), jnp.zeros((2, 8), jnp.int32))["params"]
    assert params["positions"]["table"].shape == (8, 16)
    assert params["layer_0"]["ffn_norm"]["scale"].shape == (16,)
    with pytest.raises(flops.FlopsUnavailable, match="model.norm='test_scale_norm', "
                       "model.positions='test_offset': plug-in.s. registered no FLOPs"):
      flops.training_flops_per_token(r.model, 32, 8)
    with pytest.raises(flops.FlopsUnavailable, match="closed-form parameter counts"):
      flops.param_counts(r.model, 32)
    c.model.update(kind="test_bigram", norm="rmsnorm", positions="rotary")
    r = config_lib.resolve(c)
    logits = models.build_model(r.model, 32).apply(
        {"params": {"embed": {"embedding": jnp.eye(32)}}}, jnp.array([[3, 5]]))
    assert logits.shape == (1, 2, 32) and int(jnp.argmax(logits[0, 1])) == 5
    assert float(flops.training_flops_per_token(r.model, 32, 8)) == 3.0 * 32 * 32
  finally:
    registry.NORMS.unregister("test_scale_norm")
    registry.POSITIONS.unregister("test_offset")
    registry.MODELS.unregister("test_bigram")
