"""The experiment config: every field, documented once, and its validation.

Presets in configs/ start from `base_config()` and change only the fields they name, so a
diff of two resolved presets shows exactly what differs (tests hold this). Code reads the
fields and never a preset's name.

Fields left at 0 or "" are derived when the run starts (`resolve`): the resolved config is
what a run records, so every number that shaped it is on disk.
"""

from __future__ import annotations

import importlib.util
import math
import pathlib

import ml_collections

from algoprog.training import registry, tracking
from algoprog.training.model_spec import HEAD_DIM, ModelSpec


class ConfigError(ValueError):
  """A config field holds a value the code cannot run with; the message names the field."""


def base_config() -> ml_collections.ConfigDict:
  """The modern Transformer of docs/science.md at width 64 on the embedded corpus."""
  c = ml_collections.ConfigDict()
  c.seed = 123  # Seeds parameter init and the LSTM state resets. Study: 123, 456, 789, 101.
  c.label = ""  # Group label of this run in analyses (e.g. "modern"); "" -> model.kind.
  # Plug-in modules imported before validation (comma-separated dotted module paths
  # importable from the working directory / PYTHONPATH, or .py files). They register more
  # values of model.kind, model.attention, model.ffn, model.norm, model.positions and
  # optim.name (algoprog.training.registry, docs/extending.md).
  c.plugins = ""
  c.stage = ""  # Sweep stage, recorded in run.json: "" (not a sweep) | "lr_sweep" | "full".

  c.data = ml_collections.ConfigDict()
  c.data.source = "embedded"  # "embedded" | "text" (data.path) | "tfds" (data.tfds_name).
  c.data.path = ""  # A text file or a folder of *.txt files, for source="text".
  c.data.tfds_name = ""  # A tfds catalog name, e.g. "lm1b", "c4/en", "tiny_shakespeare".
  c.data.tfds_data_dir = ""  # Where tfds finds prepared data; "" -> tfds default.
  c.data.tfds_text_key = "text"  # Feature holding the text ("book_text" for pg19).
  c.data.tfds_train_split = "train"
  c.data.tfds_validation_split = ""  # "" -> carve validation from the end of train.
  c.data.max_documents = 0  # Read at most this many documents; 0 -> no limit.
  # Stop reading documents once this many UTF-8 bytes are read (~4.3 bytes per GPT-2 token
  # of English); 0 -> no limit. Reads are lazy: a catalog dataset is never listed whole.
  c.data.max_bytes = 0
  c.data.cache_dir = ""  # Tokenizers and token caches; "" -> ~/.cache/algoprog.
  c.data.tokenizer = "bpe"  # "byte" | "bpe" (trained on the train split) | "gpt2".
  c.data.bpe_vocab_size = 4096  # Vocabulary of the trained BPE.
  c.data.gpt2_vocab_dir = ""  # Folder with GPT-2's vocab.json + merges.txt (vocab 50,257).
  c.data.validation_tokens = 500_000  # Fixed validation set size, capped by the corpus.
  c.data.sequence_length = 128  # Tokens per training sequence (the study: 128).
  c.data.batch_size = 64  # Global batch in sequences (the study: 64).

  c.model = ml_collections.ConfigDict()
  c.model.kind = "transformer"  # "transformer" | "lstm".
  c.model.width = 64  # d: residual width (Transformer) or hidden size (LSTM).
  # 0 -> width / 16 (rounded half up, >= 1) for the Transformer, 1 for the LSTM.
  c.model.num_layers = 0
  c.model.num_heads = 0  # 0 -> width / head_dim.
  c.model.head_dim = HEAD_DIM  # Channels per head when num_heads = 0 (e.g. 8 for width 24).
  c.model.attention = "softmax"  # "softmax" (multi-head causal) | a registered plug-in.
  c.model.ffn = "swiglu"  # "swiglu" (3 matrices d x 4d) | "gelu" | "relu" (2 matrices).
  c.model.ffn_multiplier = 4  # FFN hidden width / d.
  c.model.norm = "rmsnorm"  # "rmsnorm" | "layernorm".
  c.model.norm_placement = "pre"  # "pre" (final norm added) | "post" (2017 Transformer).
  c.model.final_norm = ""  # Norm after the last layer: "yes" | "no"; "" -> yes iff pre-norm.
  c.model.positions = "rotary"  # "rotary" | "learned" | "sinusoidal" | "none".
  c.model.rotary_base = 10_000.0  # Rotary wavelength base.
  c.model.max_sequence_length = 0  # Longest input the model takes; 0 -> data.sequence_length.
  c.model.init = "normal"  # "normal" (N(0, init_std)) | "xavier" | "kaiming".
  c.model.init_std = 0.02  # Std of the "normal" init, embeddings included.
  c.model.positions_init_std = 0.0  # Learned-position table N(0, std); 0 -> init_std.
  c.model.scaled_output_init = False  # Divide output projections' init by sqrt(2 layers).
  c.model.scale_embeddings = False  # 2017 recipe: table N(0, 1/d) (not init_std), inputs x sqrt(d).
  c.model.tie_embeddings = True  # Unembedding = embedding transposed.
  c.model.output_bias = True  # Bias of V on the logits.
  c.model.matrix_biases = False  # Biases on the Transformer's matrices (as torch nn.Linear).
  c.model.dtype = "float32"  # Activation dtype: "float32" | "bfloat16". Params stay f32.
  # Matmul operand dtype: "bfloat16" casts every matmul's inputs (weights and activations)
  # to bf16 and accumulates in f32 (preferred_element_type); its outputs, the activations
  # between matmuls, params and optimizer state stay in their own dtypes.
  c.model.matmul_dtype = "float32"
  # Output layer + cross-entropy fused (algoprog.training.output_layer): the [B*L, V] logits
  # are never materialised; blocks of this many tokens (over the rows of a microbatch:
  # loss_block_tokens // rows positions of each) form their logits, loss and gradient in
  # turn. 0 -> the unfused path (the model returns logits). Same loss and gradients within
  # f32 rounding; built-in models only (plug-in models keep logits).
  c.model.loss_block_tokens = 2048
  # Vocabulary entries per tile of a fused block (online logsumexp; each tile's logits
  # recomputed for its gradient, so every [tokens, tile] array stays in cache). 0 -> the
  # whole vocabulary in one tile. 2048 x 2048: modern train step 1.1-1.7x faster than
  # 512 x whole vocabulary on CPU at vocab 50,257, d = 256-64 (docs/performance.md).
  c.model.loss_vocab_block = 2048
  # Attention kernel of the built-in softmax attention: "xla" (algoprog's, hand-written
  # backward) | "dot_product_attention" (jax.nn.dot_product_attention: cuDNN flash attention
  # on GPU for bf16 operands, XLA elsewhere). Same function; rotary is applied before.
  c.model.attention_impl = "xla"
  # Query blocks of the "xla" causal attention: block i's queries read only the keys up to
  # its end, so 4 blocks skip 3/8 of the L x L score work (the FLOP convention still counts
  # all L keys, docs/flops.md). 1 -> one block of all queries. Same function; train step
  # 2-3% faster on CPU at d = 128-256 with 4 than with 1 (docs/performance.md).
  c.model.attention_query_blocks = 4
  c.model.lstm_bias_sets = 1  # LSTM gate biases per layer: 1 (4d) or 2 (PyTorch's 2 x 4d).
  c.model.lstm_forget_bias = 1.0  # LSTM forget-gate bias at init (summed over bias sets).

  c.optim = ml_collections.ConfigDict()
  c.optim.name = "adamw"  # "adamw" | "adam" | "sgd" (heavy-ball momentum) | "rmsprop".
  c.optim.learning_rate = 5.79e-3  # Peak learning rate (study's tuned 64d modern value).
  c.optim.b1 = 0.9  # Adam(W) first-moment decay, in [0, 1).
  c.optim.b2 = 0.999  # Adam(W)/RMSProp second-moment decay, in [0, 1).
  c.optim.eps = 1e-8
  c.optim.weight_decay = 0.01  # Decoupled (AdamW) or L2 added to the gradient (adam, sgd).
  c.optim.decay_norms_and_biases = True  # False: no weight decay on norm scales or biases.
  c.optim.momentum = 0.98  # SGD heavy-ball momentum.
  c.optim.schedule = "cosine"  # "cosine" | "linear" | "inverse_sqrt" | "constant".
  c.optim.warmup_fraction = 0.1  # Linear warmup as a fraction of training steps.
  c.optim.warmup_steps = 0  # > 0 overrides warmup_fraction.
  c.optim.final_lr_fraction = 0.1  # Cosine/linear decay floor, as a fraction of peak.
  c.optim.grad_clip_norm = 1.0  # Global-norm clipping; 0 disables.

  c.train = ml_collections.ConfigDict()
  # Training tokens (at least one step, batch_size x sequence_length); 0 ->
  # tokens_per_param * total parameters.
  c.train.tokens = 0
  c.train.tokens_per_param = 20.0  # 40 for the study's scaling runs, 20 for ablations.
  c.train.min_tokens = 0  # Budget floor: max(min_tokens, tokens_per_param * params).
  c.train.flops = 0.0  # FLOP budget (algoprog.training.flops count); > 0 sets the tokens instead.
  c.train.microbatches = 1  # Gradient accumulation: the global batch in this many slices.
  c.train.eval_every_steps = 100  # Validation loss every this many steps (and at the end).
  # Validation tokens scored at each evaluation before the last: B evenly spaced contiguous
  # runs of the validation windows (the same subset every time and in every run of a
  # config); the last evaluation scores the whole set. 0 -> derived: the intermediate
  # evaluations together score at most a quarter of the training tokens, each at least
  # 65,536 (capped by the set). Metrics rows record the tokens each evaluation scored.
  c.train.eval_tokens = 0
  c.train.log_every_steps = 20  # Progress line (with steps/s and ETA) every this many steps.
  # Where metrics rows go besides metrics.jsonl (always written): a comma list of "jsonl",
  # "tensorboard" (event files in the run directory; `pip install 'algoprog[tensorboard]'`)
  # and "wandb" (Weights & Biases; `pip install 'algoprog[wandb]'`; WANDB_PROJECT etc.
  # from the environment), e.g. "jsonl,tensorboard" (algoprog.training.tracking). Can
  # change between a run and its resume.
  c.train.trackers = "jsonl"
  # Orbax checkpoint cadence (and at the end, and on SIGTERM); 0 -> a tenth of the run,
  # at most 1,000 steps. Can change between a run and its resume.
  c.train.checkpoint_every_steps = 0
  c.train.keep_checkpoints = 3  # Keep the newest this many checkpoints.
  c.train.lstm_window = 32  # LSTM truncated-BPTT window (tokens).
  c.train.lstm_reset_probability = 0.01  # Per row and draw: restart the carried state.
  c.train.lstm_reset = "window"  # When resets are drawn: "window" (each) | "batch" (per step).
  return c


# Fields that change how a run is watched and saved, not its results: they may differ
# between a run and its resume, and a sweep does not call a run stale for them. The fused
# output layer's blocking and the attention's query blocks are among them: any blocking
# gives the same loss and gradients within f32 rounding (tests/test_output_layer.py,
# tests/test_models.py), so a faster default does not make earlier runs stale.
BOOKKEEPING_FIELDS = ("train.log_every_steps", "train.checkpoint_every_steps",
                      "train.keep_checkpoints", "train.trackers", "model.loss_block_tokens",
                      "model.loss_vocab_block", "model.attention_query_blocks")

_CHOICES = {
    "data.source": ("embedded", "text", "tfds"),
    "data.tokenizer": ("byte", "bpe", "gpt2"),
    "model.norm_placement": ("pre", "post"),
    "model.final_norm": ("", "yes", "no"),
    "model.init": ("normal", "xavier", "kaiming"),
    "model.dtype": ("float32", "bfloat16"),
    "model.matmul_dtype": ("float32", "bfloat16"),
    "model.attention_impl": ("xla", "dot_product_attention"),
    "optim.schedule": ("cosine", "linear", "inverse_sqrt", "constant"),
    "train.lstm_reset": ("window", "batch"),
    "stage": ("", "lr_sweep", "full"),
}
# Fields choosing from a registry (algoprog.training.registry): built-ins plus imported plug-ins.
_REGISTERED = {
    "model.kind": registry.MODELS, "model.attention": registry.ATTENTION,
    "model.ffn": registry.FFNS, "model.norm": registry.NORMS,
    "model.positions": registry.POSITIONS, "optim.name": registry.OPTIMIZERS,
}


def _get(c: ml_collections.ConfigDict, dotted: str):
  for key in dotted.split("."):
    c = c[key]
  return c


def _non_finite_field(c: ml_collections.ConfigDict, prefix: str = "") -> str | None:
  for key, value in c.items():
    if isinstance(value, ml_collections.ConfigDict):
      found = _non_finite_field(value, f"{prefix}{key}.")
      if found:
        return found
    elif isinstance(value, float) and not math.isfinite(value):
      return f"{prefix}{key}: expected a finite number; got {value!r}"
  return None


def import_plugins(c: ml_collections.ConfigDict) -> None:
  """Imports the modules in `c.plugins` (they register components); ConfigError if one
  cannot be imported."""
  try:
    registry.import_plugins(c.plugins)
  except registry.RegistryError as e:
    raise ConfigError(str(e)) from e


def validate(c: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the first field whose value cannot run (plug-ins in
  `c.plugins` are imported first, so their names are valid values)."""
  import_plugins(c)
  model_fields = set(base_config().model)
  unknown = sorted(set(c.model) - model_fields)
  if unknown:  # A typo would otherwise be ignored: the models read only known fields.
    raise ConfigError(f"model.{unknown[0]}: not a model field (the fields are "
                      "config.base_config()'s, documented there)")
  missing = sorted(model_fields - set(c.model))
  if missing:
    raise ConfigError(f"model.{missing[0]}: missing (start from config.base_config(); "
                      "config.backfill completes configs recorded by older versions)")
  non_finite = _non_finite_field(c)  # First: inf passes the range checks below.
  if non_finite:
    raise ConfigError(non_finite)
  for field, choices in _CHOICES.items():
    value = _get(c, field)
    if value not in choices:
      raise ConfigError(f"{field}: expected one of {', '.join(choices)}; got {value!r}")
  for field, names in _REGISTERED.items():
    if _get(c, field) not in names:
      raise ConfigError(names.unknown_message(_get(c, field)))

  def positive(field, allow_zero=False):
    value = _get(c, field)
    if not (value > 0 or (allow_zero and value == 0)):
      raise ConfigError(f"{field}: expected a {'non-negative' if allow_zero else 'positive'}"
                        f" number; got {value!r}")

  for field in ("data.sequence_length", "data.batch_size", "data.validation_tokens",
                "model.width", "model.ffn_multiplier", "model.init_std", "model.head_dim",
                "optim.learning_rate", "train.microbatches", "train.eval_every_steps",
                "train.log_every_steps", "train.keep_checkpoints", "train.lstm_window",
                "model.attention_query_blocks"):
    positive(field)
  for field in ("train.tokens", "train.tokens_per_param", "train.min_tokens", "train.flops",
                "model.num_layers",
                "model.num_heads", "model.max_sequence_length", "model.positions_init_std",
                "optim.warmup_steps", "optim.weight_decay", "optim.grad_clip_norm",
                "model.loss_block_tokens", "model.loss_vocab_block",
                "data.max_documents", "data.max_bytes", "train.eval_tokens",
                "train.checkpoint_every_steps"):
    positive(field, allow_zero=True)
  try:  # .get: a config built by hand before the field existed tracks to metrics.jsonl.
    tracking.parse_trackers(c.train.get("trackers", "jsonl"))
  except tracking.TrackerError as e:
    raise ConfigError(f"train.trackers: {e}") from None
  if c.train.tokens == 0 and c.train.tokens_per_param == 0 and c.train.flops == 0:
    raise ConfigError("train.tokens: expected > 0 when train.tokens_per_param and "
                      "train.flops are 0")
  if c.train.tokens and c.train.flops:
    raise ConfigError("train.flops: expected 0 when train.tokens is set (one budget)")
  for field in ("optim.b1", "optim.b2"):
    if not 0 <= _get(c, field) < 1:
      raise ConfigError(f"{field}: expected a moment decay in [0, 1); got {_get(c, field)!r}")
  tokens_per_step = c.data.batch_size * c.data.sequence_length
  if 0 < c.train.tokens < tokens_per_step:
    raise ConfigError(
        f"train.tokens: expected at least one step of data.batch_size x "
        f"data.sequence_length = {c.data.batch_size} x {c.data.sequence_length} = "
        f"{tokens_per_step:,} tokens (runs train whole steps: this would train "
        f"{tokens_per_step:,}); got {c.train.tokens:,}")
  if not 0 <= c.optim.warmup_fraction < 1:
    raise ConfigError(f"optim.warmup_fraction: expected in [0, 1); got {c.optim.warmup_fraction}")
  if not 0 <= c.optim.final_lr_fraction <= 1:
    raise ConfigError(
        f"optim.final_lr_fraction: expected in [0, 1]; got {c.optim.final_lr_fraction}")
  if not 0 <= c.train.lstm_reset_probability <= 1:
    raise ConfigError("train.lstm_reset_probability: expected in [0, 1]; "
                      f"got {c.train.lstm_reset_probability}")
  if c.data.source == "text" and not c.data.path:
    raise ConfigError("data.path: expected a text file or folder when data.source='text'")
  if c.data.source == "tfds" and not c.data.tfds_name:
    raise ConfigError("data.tfds_name: expected a tfds catalog name when data.source='tfds'")
  if c.data.tokenizer == "gpt2" and not c.data.gpt2_vocab_dir:
    raise ConfigError("data.gpt2_vocab_dir: expected a folder holding GPT-2's vocab.json and "
                      "merges.txt when data.tokenizer='gpt2' (nothing is downloaded)")
  if c.data.batch_size % c.train.microbatches:
    raise ConfigError(f"train.microbatches: expected a divisor of data.batch_size="
                      f"{c.data.batch_size}; got {c.train.microbatches}")
  if c.model.kind != "lstm":  # The Transformer, and plug-in models alike.
    if c.model.num_heads == 0 and c.model.width % c.model.head_dim:
      raise ConfigError(f"model.width: expected a multiple of model.head_dim={c.model.head_dim} "
                        f"(heads = width / head_dim); got {c.model.width} (set model.head_dim "
                        "to a divisor of the width, or model.num_heads)")
    if c.model.num_heads and c.model.width % c.model.num_heads:
      raise ConfigError(f"model.num_heads: expected a divisor of model.width="
                        f"{c.model.width}; got {c.model.num_heads}")
    spec = ModelSpec.from_config(c.model, c.data.sequence_length)
    if c.model.positions == "rotary" and spec.channels_per_head % 2:
      raise ConfigError(f"model.{'num_heads' if c.model.num_heads else 'head_dim'}: rotary "
                        f"needs an even head dim; got {spec.channels_per_head}")
    if c.data.sequence_length > spec.max_sequence_length:
      raise ConfigError(f"data.sequence_length: expected <= model.max_sequence_length="
                        f"{spec.max_sequence_length}; got {c.data.sequence_length}")
  else:
    if c.model.lstm_bias_sets not in (1, 2):
      raise ConfigError(
          f"model.lstm_bias_sets: expected 1 or 2; got {c.model.lstm_bias_sets!r}")
    if c.data.sequence_length % c.train.lstm_window:
      raise ConfigError(f"data.sequence_length: expected a multiple of train.lstm_window="
                        f"{c.train.lstm_window} for the LSTM; got {c.data.sequence_length}")


def resolve(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A validated copy with every derived (0 / "") model field filled in, as
  `ModelSpec.from_config` derives them (`model_spec(resolved)` is that spec).

  Data-dependent fields (vocabulary, token budget) are filled by the trainer once the
  corpus and the parameter count are known. Plug-ins in `plugins` are imported first.
  """
  validate(c)
  r = ml_collections.ConfigDict(c.to_dict())
  if not r.label:
    r.label = r.model.kind
  r.model.update(ModelSpec.from_config(r.model, r.data.sequence_length).to_config())
  return r


def model_spec(c: ml_collections.ConfigDict) -> ModelSpec:
  """The typed model of a resolved config (what models and flops read)."""
  return ModelSpec.from_config(c.model, c.data.sequence_length)


def backfill(recorded: dict) -> dict:
  """A config recorded before some fields existed (a run's config.json), with each missing
  field filled in as the code resolves it for that config, i.e. what those runs did: a
  field's default keeps the earlier behaviour (e.g. model.final_norm "" -> "yes" for
  pre-norm, "no" for post-norm). Lets a resumed run or a rerun sweep accept workdirs written
  by an older algoprog; fields that cannot be filled are left missing (they then differ)."""
  def missing(node: dict, base: dict) -> bool:
    return any(k not in node or (isinstance(v, dict) and isinstance(node[k], dict)
                                 and missing(node[k], v)) for k, v in base.items())

  base = base_config().to_dict()
  if not missing(recorded, base):
    return recorded

  def merged(defaults: dict, node: dict) -> dict:
    out = dict(defaults)
    for key, value in node.items():
      out[key] = (merged(defaults[key], value) if isinstance(value, dict)
                  and isinstance(defaults.get(key), dict) else value)
    return out

  def fill(node: dict, resolved: dict, base: dict) -> dict:
    out = dict(node)
    for key, value in base.items():
      if key not in node and key in resolved:
        out[key] = resolved[key]
      elif isinstance(value, dict) and isinstance(node.get(key), dict):
        out[key] = fill(node[key], resolved.get(key, {}), value)
    return out

  try:
    filled = resolve(ml_collections.ConfigDict(merged(base, recorded))).to_dict()
  except (ConfigError, TypeError, ValueError, KeyError):
    return recorded
  return fill(recorded, filled, base)


# Where configs/ and launch/ live: the checkout, or after a non-editable `pip install` the
# site-packages folder holding algoprog/, launch/ and configs/ side by side.
REPOSITORY_ROOT = pathlib.Path(__file__).resolve().parents[2]


def find_config_file(path: str | pathlib.Path) -> pathlib.Path:
  """`path` as given when it exists (or is absolute), else the same relative path under
  REPOSITORY_ROOT: so configs/modern.py names the shipped preset from any directory, in a
  checkout and in an installed algoprog alike. Not checked for existence."""
  path = pathlib.Path(path)
  if not path.is_absolute() and not path.exists() and (REPOSITORY_ROOT / path).exists():
    return REPOSITORY_ROOT / path
  return path


def load_config_file(path: str | pathlib.Path, field: str = "--config"
                     ) -> ml_collections.ConfigDict:
  """`get_config()` of a config file: the one loader of every config file the code reads.

  A relative path that does not exist from the working directory is taken from the
  repository root or the installed package (`find_config_file`, so configs/... works from
  anywhere). `field` names what gave the path in the error.

  Raises:
    ConfigError: no such file, the file does not run, or it defines no get_config().
  """
  given = pathlib.Path(path)
  path = find_config_file(given)
  if not path.is_file():
    raise ConfigError(f"{field}: no config file {given}" + (
        "" if given.is_absolute() else f" (looked in {pathlib.Path.cwd()} and "
        f"{REPOSITORY_ROOT})"))
  spec = importlib.util.spec_from_file_location(f"_config_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except Exception as e:  # A config file is user code: any failure is the file's fault.
    raise ConfigError(f"{field}: {path} failed to load: {type(e).__name__}: {e}") from e
  if not callable(getattr(module, "get_config", None)):
    raise ConfigError(f"{field}: {path} defines no get_config()")
  return module.get_config()
