"""Ready for accelerators this machine does not have: the train and eval steps of every
model preset lower for TPU and CUDA (jax.export on abstract shapes), in float32 and with
bf16 matmuls. Lowering is what is tested, so the models are tiny."""

import pathlib

import jax
import jax.numpy as jnp
import pytest
from jax import export

from algoprog.training import config as config_lib, train

ROOT = pathlib.Path(__file__).resolve().parents[1]
PLATFORMS = ("tpu", "cuda")
VOCAB = 64


def model_presets() -> dict[str, config_lib.ml_collections.ConfigDict]:
  """Every configs/*.py that configures a model: the zoo and the ablations."""
  presets = {}
  for path in sorted((ROOT / "configs").glob("*.py")):
    config = config_lib.load_config_file(path)
    if "model" in config:
      presets[path.stem] = config
  return presets


PRESETS = model_presets()


def test_every_model_preset_is_covered():
  assert {"modern", "retro", "lstm", "lstm2", "ablation_gelu", "ablation_sgd"} <= set(PRESETS)
  assert len([n for n in PRESETS if n.startswith("ablation_")]) >= 10


def tiny(config, matmul_dtype: str):
  c = config_lib.ml_collections.ConfigDict(config.to_dict())
  c.model.width, c.model.matmul_dtype = 16, matmul_dtype
  c.model.num_layers = c.model.num_heads = c.model.max_sequence_length = 0
  c.data.batch_size, c.data.sequence_length, c.train.lstm_window = 2, 16, 8
  c.data.tokenizer = "byte"
  return config_lib.resolve(c)


@pytest.mark.parametrize("matmul_dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_train_and_eval_steps_lower_for_tpu_and_cuda(name, matmul_dtype):
  config = tiny(PRESETS[name], matmul_dtype)
  trainer = train.build_trainer(config, VOCAB, total_steps=10,
                                mesh=train.make_mesh(jax.devices()[:1]))
  batch = jax.ShapeDtypeStruct((2, 16), jnp.int32, sharding=trainer.batch_sharding)
  weights = jax.ShapeDtypeStruct((2, 16), jnp.float32, sharding=trainer.batch_sharding)
  state = trainer.abstract_state
  lowered = {
      "train": export.export(trainer.train_step, platforms=PLATFORMS)(state, batch, batch),
      "eval": export.export(trainer.eval_step, platforms=PLATFORMS)(
          state.params, state.carry, batch, batch, weights),
  }
  for step, exported in lowered.items():
    assert exported.platforms == PLATFORMS, step
    text = exported.mlir_module()
    assert "stablehlo" in text, step
    if matmul_dtype == "bfloat16":  # The matmuls really run on bf16 operands.
      assert "bf16" in text, step
  new_state, loss = jax.tree_util.tree_unflatten(lowered["train"].out_tree,
                                                 lowered["train"].out_avals)
  assert jax.tree_util.tree_structure(new_state) == jax.tree_util.tree_structure(state)
  assert loss.shape == () and loss.dtype == jnp.float32
