"""Presets differ from modern exactly where they claim (the study's retro baseline silently
kept RMSNorm): diff the resolved configs, field by field."""

import json
import pathlib

import pytest

from algoprog.training import config as config_lib, presets

CONFIGS = pathlib.Path(__file__).resolve().parent.parent / "configs"

# Every field each preset changes relative to configs/modern.py (label included).
EXPECTED = {
    "ablation_gelu": {"model.ffn": "gelu"},
    "ablation_relu": {"model.ffn": "relu"},
    "ablation_learned_positions": {"model.positions": "learned",
                                   "model.positions_init_std": 0.01},
    "ablation_sinusoidal_positions": {"model.positions": "sinusoidal",
                                      "model.scale_embeddings": True},
    "ablation_post_norm": {"model.norm_placement": "post", "model.final_norm": "no"},
    "ablation_layernorm": {"model.norm": "layernorm"},
    "ablation_inverse_sqrt": {"optim.schedule": "inverse_sqrt"},
    "ablation_linear_decay": {"optim.schedule": "linear"},
    "ablation_adam": {"optim.name": "adam", "optim.weight_decay": 0.0},
    "ablation_sgd": {"optim.name": "sgd", "optim.weight_decay": 0.0},
    "retro": {"model.norm": "layernorm", "model.norm_placement": "post",
              "model.final_norm": "no",
              "model.positions": "sinusoidal", "model.ffn": "gelu",
              "model.scale_embeddings": True, "optim.name": "adam",
              "optim.weight_decay": 0.0, "optim.schedule": "inverse_sqrt",
              "optim.learning_rate": 1.86e-3},
    "lstm": {"model.kind": "lstm", "model.num_layers": 1, "model.num_heads": 0,
             "optim.b1": 0.0, "optim.eps": 1e-9, "optim.weight_decay": 1e-4,
             "optim.learning_rate": 3.16e-2},
    "lstm2": {"model.kind": "lstm", "model.num_layers": 2, "model.num_heads": 0,
              "optim.b1": 0.0, "optim.eps": 1e-9, "optim.weight_decay": 1e-4,
              "optim.learning_rate": 3.16e-2},
}


def load(name: str):
  return config_lib.load_config_file(CONFIGS / f"{name}.py")


def flat(d: dict, prefix: str = "") -> dict:
  out = {}
  for key, value in d.items():
    if isinstance(value, dict):
      out.update(flat(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out


def resolved(name: str) -> dict:
  return flat(config_lib.resolve(load(name)).to_dict())


def test_every_ablation_config_is_listed_here():
  on_disk = {p.stem for p in CONFIGS.glob("ablation_*.py")}
  assert on_disk == {n for n in EXPECTED if n.startswith("ablation_")}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_differs_from_modern_exactly_where_it_claims(name):
  modern, preset = resolved("modern"), resolved(name)
  assert set(preset) == set(modern)
  diff = {k: preset[k] for k in modern if preset[k] != modern[k]}
  assert diff == {**EXPECTED[name], "label": name}


def test_modern_is_the_spec_reference():
  m = resolved("modern")
  assert m["label"] == "modern"
  assert (m["model.norm"], m["model.norm_placement"], m["model.positions"], m["model.ffn"]) == (
      "rmsnorm", "pre", "rotary", "swiglu")
  assert (m["model.init"], m["model.init_std"], m["model.tie_embeddings"],
          m["model.output_bias"]) == ("normal", 0.02, True, True)
  assert (m["optim.name"], m["optim.b1"], m["optim.b2"], m["optim.eps"],
          m["optim.weight_decay"]) == ("adamw", 0.9, 0.999, 1e-8, 0.01)
  assert (m["optim.schedule"], m["optim.final_lr_fraction"], m["optim.warmup_fraction"],
          m["optim.grad_clip_norm"], m["optim.learning_rate"]) == (
              "cosine", 0.1, 0.1, 1.0, 5.79e-3)
  assert m["model.num_layers"] == m["model.num_heads"] == 64 // 16


def test_lstm_is_the_spec_recipe():
  lstm = resolved("lstm")
  assert (lstm["train.lstm_window"], lstm["train.lstm_reset_probability"]) == (32, 0.01)
  assert (lstm["optim.name"], lstm["optim.b2"], lstm["optim.schedule"],
          lstm["optim.grad_clip_norm"]) == ("adamw", 0.999, "cosine", 1.0)
  assert lstm["model.tie_embeddings"] and lstm["model.output_bias"]


def test_labels_are_unique_and_builders_match_files():
  labels = [resolved(n)["label"] for n in EXPECTED] + ["modern"]
  assert len(set(labels)) == len(labels)
  assert load("lstm2").to_dict() == presets.lstm(num_layers=2).to_dict()
  assert load("retro").to_dict() == presets.retro().to_dict()


def test_study_fidelity_fields_are_validated_and_resolved():
  for field, value in (("model.final_norm", "always"), ("train.lstm_reset", "step"),
                       ("model.positions_init_std", -0.01)):
    c = config_lib.base_config()
    section, key = field.split(".")
    c[section][key] = value
    with pytest.raises(config_lib.ConfigError, match=field):
      config_lib.validate(c)
  # Defaults keep today's models: a final norm exactly for pre-norm, positions at init_std.
  assert resolved("modern")["model.final_norm"] == "yes"
  assert resolved("ablation_post_norm")["model.final_norm"] == "no"
  assert resolved("modern")["model.positions_init_std"] == 0.02
  assert resolved("modern")["model.matrix_biases"] is False
  assert resolved("lstm")["train.lstm_reset"] == "window"


def test_backfill_fills_fields_newer_than_a_recorded_config_as_they_resolve_for_it():
  """A config.json written before model.final_norm etc. existed is the same run: each
  missing field is filled as the code resolves it for that config (post-norm -> no final
  norm), so resuming it or rerunning its sweep is not refused as a different config."""
  for preset in (presets.modern(), presets.retro(), presets.lstm()):
    new = config_lib.resolve(preset).to_dict()
    old = json.loads(json.dumps(new))
    for dotted in ("plugins", "stage", "model.final_norm", "model.head_dim",
                   "model.matmul_dtype", "data.max_bytes", "train.eval_tokens",
                   # Read with .get defaults by models/flops before ModelSpec.
                   "model.matrix_biases", "model.attention", "model.positions_init_std",
                   "model.lstm_bias_sets", "train.trackers", "model.loss_block_tokens",
                   "model.attention_impl", "model.attention_query_blocks"):
      *parents, leaf = dotted.split(".")
      node = old
      for key in parents:
        node = node[key]
      del node[leaf]
    assert config_lib.backfill(old) == new
  old["model"]["width"] = 48  # A recorded value is kept, never overwritten.
  assert config_lib.backfill(old)["model"]["width"] == 48
