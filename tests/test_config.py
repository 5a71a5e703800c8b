"""Config validation of single fields, the typed ModelSpec and its width rules, and that
loading a preset stays free of the model code."""

import json
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algoprog.training import config as config_lib, model_spec, presets
from algoprog.training.model_spec import ModelSpec

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("field", ["b1", "b2"])
@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5])
def test_adam_betas_outside_zero_one_are_refused_naming_the_field(field, value):
  c = config_lib.base_config()
  c.optim[field] = value
  with pytest.raises(config_lib.ConfigError, match=rf"^optim\.{field}: expected .*\[0, 1\); "
                     rf"got {value}$"):
    config_lib.validate(c)


def test_adam_betas_at_the_ends_of_the_range_are_accepted():
  c = config_lib.base_config()
  c.optim.b1, c.optim.b2 = 0.0, 0.9999  # The LSTM preset's b1 = 0.
  config_lib.validate(c)


def test_train_tokens_below_one_step_is_refused_with_the_tokens_per_step():
  c = config_lib.base_config()
  c.data.batch_size, c.data.sequence_length = 64, 128
  c.train.tokens = 100
  with pytest.raises(config_lib.ConfigError) as e:
    config_lib.validate(c)
  message = str(e.value)
  assert message.startswith("train.tokens: ") and "\n" not in message
  assert "data.batch_size x data.sequence_length = 64 x 128 = 8,192 tokens" in message
  assert message.endswith("got 100")
  c.train.tokens = 8192  # Exactly one step runs.
  config_lib.validate(c)
  c.train.tokens = 0  # 0: derived from tokens_per_param.
  config_lib.validate(c)


def test_an_unknown_or_missing_model_field_is_refused():
  c = config_lib.base_config()
  c.model.widht = 128  # A typo the models would silently ignore.
  with pytest.raises(config_lib.ConfigError, match=r"^model\.widht: not a model field"):
    config_lib.validate(c)
  c = config_lib.base_config()
  del c.model["head_dim"]
  with pytest.raises(config_lib.ConfigError, match=r"^model\.head_dim: missing"):
    config_lib.validate(c)


def test_model_spec_has_exactly_the_config_fields_and_round_trips_through_resolve():
  for preset in (presets.modern(), presets.retro(), presets.lstm(num_layers=2)):
    resolved = config_lib.resolve(preset)
    spec = config_lib.model_spec(resolved)
    assert spec.to_config() == resolved.model.to_dict()
    # The unresolved section derives the same model; only where depth comes from differs.
    unresolved = ModelSpec.from_config(preset.model, preset.data.sequence_length)
    assert unresolved.to_config() == spec.to_config()
    assert not spec.layers_follow_width and not spec.heads_follow_width
    lstm = preset.model.kind == "lstm"
    assert unresolved.layers_follow_width == unresolved.heads_follow_width == (not lstm)
    assert hash(spec) == hash(config_lib.model_spec(resolved))  # Flax attributes hash.
  modern = config_lib.model_spec(config_lib.resolve(presets.modern()))
  assert (modern.num_layers, modern.num_heads, modern.channels_per_head, modern.ffn_hidden,
          modern.final_norm) == (4, 4, 16, 256, True)
  retro = config_lib.model_spec(config_lib.resolve(presets.retro()))
  assert retro.final_norm is False  # Post-norm: no final norm unless asked.


def test_width_rules_agree_on_ints_and_traced_widths():
  widths = np.arange(1, 520)
  exact = [model_spec.num_layers_for_width(int(w)) for w in widths]
  assert all(isinstance(n, int) for n in exact)
  # The study's rule: width / 16 rounded half up, at least one layer.
  assert exact == [max(1, int(w / 16 + 0.5)) for w in widths]
  traced = jax.jit(jax.vmap(model_spec.num_layers_for_width))(jnp.asarray(widths, jnp.float32))
  np.testing.assert_array_equal(traced, exact)
  heads = jax.vmap(lambda w: model_spec.num_heads_for_width(w, 8))(jnp.array([16.0, 24.0]))
  np.testing.assert_array_equal(heads, [2, 3])
  assert model_spec.num_heads_for_width(24, 8) == 3


def test_loading_a_preset_imports_no_model_code_and_validation_lists_every_name():
  script = f"""
import json, sys
from algoprog.training import config
c = config.load_config_file({str(ROOT / 'configs' / 'modern.py')!r})
loaded = [m for m in ("algoprog.training.models", "algoprog.training.optim", "flax")
          if m in sys.modules]
c.model.kind = "gru"
try:
  config.validate(c)
except config.ConfigError as e:
  message = str(e)
print(json.dumps([loaded, message, "algoprog.training.models" in sys.modules]))
"""
  out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       check=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin"})
  loaded, message, models_after = json.loads(out.stdout.strip().splitlines()[-1])
  assert loaded == []
  assert message.startswith("model.kind: expected one of transformer, lstm ")
  assert message.endswith("got 'gru'")
  assert models_after  # The first lookup registered the built-ins.
