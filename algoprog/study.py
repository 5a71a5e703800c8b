"""The study's design: its config builder and the published constants it is compared with.

configs/reproduce_*.py call `study_config` with their scale's numbers; `algoprog.reproduce`
runs what it builds. This module imports neither the analysis, matplotlib nor jax, so
loading a preset stays cheap (tests/test_layout.py checks it).
"""

from __future__ import annotations

import ml_collections

from algoprog import lr_law
from algoprog.training import config as config_lib


class StudyConfigError(ValueError):
  """A study_config argument is unusable; the message names it."""


# The study's tuned learning rates (SPEC.md), the centres of our LR sweeps.
STUDY_LEARNING_RATES = {
    "modern": {32: 9.95e-3, 64: 5.79e-3, 128: 3.37e-3, 256: 1.97e-3},
    "retro": {32: 5.6e-3, 64: 1.86e-3, 128: 6.2e-4, 256: 3.16e-4},
    "lstm": {32: 5.62e-2, 64: 3.16e-2, 128: 1.78e-2, 256: 1.0e-2},
}
SCALING_CONFIGS = {"lstm": "configs/lstm.py", "retro": "configs/retro.py",
                   "modern": "configs/modern.py"}
# Study ablation name -> (reference group, variant group, variant config, LR-sweep centre;
# None = the modern anchors at the ablation width). CEG = C_variant / C_reference.
ABLATIONS = {
    "swiglu_vs_gelu": ("ablation_reference", "ablation_gelu", "configs/ablation_gelu.py", None),
    "swiglu_vs_relu": ("ablation_reference", "ablation_relu", "configs/ablation_relu.py", None),
    "rotary_vs_learned": ("ablation_reference", "ablation_learned_positions",
                          "configs/ablation_learned_positions.py", None),
    "rotary_vs_sinusoidal": ("ablation_reference", "ablation_sinusoidal_positions",
                             "configs/ablation_sinusoidal_positions.py", None),
    "prenorm_vs_postnorm": ("ablation_reference", "ablation_post_norm",
                            "configs/ablation_post_norm.py", None),
    "rmsnorm_vs_layernorm": ("ablation_reference", "ablation_layernorm",
                             "configs/ablation_layernorm.py", None),
    "cosine_vs_inverse_sqrt": ("ablation_reference", "ablation_inverse_sqrt",
                               "configs/ablation_inverse_sqrt.py", None),
    "cosine_vs_linear": ("ablation_reference", "ablation_linear_decay",
                         "configs/ablation_linear_decay.py", None),
    "adamw_vs_adam": ("ablation_reference", "ablation_adam", "configs/ablation_adam.py", None),
    # SGD with heavy-ball momentum needs a far larger step than Adam: its own sweep centre.
    "adam_vs_sgd": ("ablation_adam", "ablation_sgd", "configs/ablation_sgd.py", 0.1),
    "modern_vs_retro": ("ablation_reference", "ablation_retro", "configs/retro.py", None),
}
PUBLISHED_ABLATIONS = {"swiglu_vs_gelu": 1.17, "rotary_vs_learned": 1.26,
                       "rotary_vs_sinusoidal": 1.44, "prenorm_vs_postnorm": 1.87,
                       "rmsnorm_vs_layernorm": 1.09, "cosine_vs_inverse_sqrt": 1.04,
                       "adamw_vs_adam": 1.00, "adam_vs_sgd": 1.67, "modern_vs_retro": 1.33}


def study_config(*, name: str, description: str, data: dict, train: dict,
                 scaling_widths: dict, scaling_seeds: tuple, tokens_per_param: float,
                 lr_sweep_widths: dict, ablation_width: int, ablation_seeds: tuple,
                 ablation_tokens_per_param: float, ablations: tuple = tuple(ABLATIONS),
                 lr_points: int = 3, lr_spacing_decades: float = 0.5,
                 lr_budget_fraction: float = 0.05, lr_min_tokens: int = 16_000_000,
                 lr_max_extensions: int = 2,
                 lr_seed_noise: float = lr_law.DEFAULT_SEED_NOISE,
                 train_runner_up: bool = True, workers: int = 1, bootstrap: int = 1000,
                 extra_ceg_compute: tuple = (), scaling_configs: dict | None = None,
                 scaling_overrides: dict | None = None, lr_anchors: dict | None = None,
                 ablation_specs: dict | None = None) -> ml_collections.ConfigDict:
  """A reproduce config: the sweep (algoprog.training.sweep) and the analysis.

  Any group label may be a scaling group (your own architecture next to the study's):
  `scaling_configs[label]` is its config file (default SCALING_CONFIGS, the study's three),
  `scaling_overrides[label]` its config overrides (nested, e.g. a plug-in's fields), and
  its LR sweeps are centred on `lr_anchors[label]` ({width: lr}, log-log interpolated), by
  default the study's tuned LRs of that label (STUDY_LEARNING_RATES) or, for a label the
  study has none for, the modern Transformer's (the recipe a new variant starts from).
  `ablation_specs` adds or replaces ablations: name -> (reference group, variant group,
  variant config file, LR-sweep centre or None for the modern anchors), as ABLATIONS.

  Fields (all overridable, e.g. --config.analysis.bootstrap=200):
    name, description: the report's title and first paragraph.
    sweep.workers: training processes at a time.
    sweep.overrides: config fields every run gets (data, train cadence; nested).
    sweep.lr_sweep.{points, spacing_decades, budget_fraction, min_tokens, center}: the LR
      grid (points, log10 spacing) and the reduced budget max(min_tokens, fraction x full).
    sweep.lr_sweep.max_extensions: points the grid may grow by past an end that wins
      (algoprog.training.sweep.lr_search).
    sweep.lr_sweep.seed_noise: nats, the seed noise assumed when judging whether an LR
      choice is ambiguous (margin under 2 x this, P(runner-up truly better) > 7.9%;
      algoprog.lr_law) until finished runs with several seeds measure a larger one
      (algoprog.training.sweep.planning_seed_noise); default 0.02 nats, a guess for small
      runs.
    sweep.groups.<label>: one architecture or ablation variant (algoprog.training.sweep.plan_runs):
      config, widths, seeds, tokens_per_param, lr_widths/lr_values (sweep centres), lr_sweep,
      lr_sweep_widths, lr_law_widths, lr_center, train_runner_up, overrides
      (train_runner_up: on in every group here; an ambiguous LR choice also trains the
      runner-up LR's full runs, which the analysis's bootstrap chooses between).
    analysis.scaling_groups: groups whose frontiers are fitted.
    analysis.reference: the group CEGs of the scaling fits are measured against.
    analysis.skip_fraction: each run's points before this fraction of its tokens (warmup
      is 10%) are not fitted (the frontier is taken over all points first).
    analysis.frontier, irreducible, shared_exponent: how the laws are fitted (algoprog.analysis.fit);
      irreducible "shared" (default: the architectures train on the same data, so one E
      fitted jointly), "fit" (one E per group) or a number (fixed, nats).
    analysis.sensitivity_irreducible: the laws and exponent differences refitted with this
      E (default "fit": per group) as a sensitivity row; "" for none.
    analysis.bootstrap, resample, seed, level: the CIs (refits, what is resampled).
    analysis.ceg_compute: FLOPs at which to report the fitted CEG; () -> low, middle and high
      end of the compute the frontiers cover. analysis.extra_ceg_compute: added to those.
    analysis.ablation_reference: the group every ablation target is set from.
    analysis.ablations.<name>: reference and variant group of one ablation CEG.
    analysis.ablation_target_loss: nats/token; 0 -> the reference's worst final validation
      loss over seeds + analysis.ablation_target_margin.
    analysis.direct_total: the ablation measuring modern over retro directly (the accounting's
      interaction normalisation).
    analysis.published_ablations: the study's values, printed next to ours.
    analysis.study_laws: accounting law label -> scaling group measured here.
    analysis.account_config: the accounting config whose published inputs are compared.
    analysis.exclude_plateau, plateau_margin: points above the unigram entropy - margin
      (nats) are not fitted (algoprog.analysis.plateau).
    analysis.e_profile: "off", "at_bound" or "always": the shared E profiled, derived numbers
      as bands over every plausible E (algoprog.analysis.e_profile); e_profile_samples.
    analysis.raw_scale: model-free CEG vs target loss and its slope (raw_scale_samples).
    analysis.rollout: largest runs held out and predicted, residual curvature.
    analysis.planner_simulations: simulated studies per design for the report's "to
      determine X you need ..." sentences (0: none); planner_designs: designs tried.
    analysis.ablation_seed_pairs: each ablation row gains its seed-pair CEG interval and the
      smallest CEG its seeds detect (algoprog.analysis.noise.ablation_ceg).
  """
  c = ml_collections.ConfigDict()
  c.name = name
  c.description = description
  c.sweep = ml_collections.ConfigDict()
  c.sweep.workers = workers
  # Every data field and every non-budget train field is listed, so that any of them can
  # be overridden from the command line (--config.sweep.overrides.data.source=text).
  base = config_lib.base_config()
  budget_fields = ("tokens", "tokens_per_param", "min_tokens", "flops")
  c.sweep.overrides = ml_collections.ConfigDict({
      "data": {**base.data.to_dict(), **data},
      "train": {**{k: v for k, v in base.train.to_dict().items() if k not in budget_fields},
                **train}})
  c.sweep.lr_sweep = ml_collections.ConfigDict(dict(
      points=lr_points, spacing_decades=lr_spacing_decades, budget_fraction=lr_budget_fraction,
      min_tokens=lr_min_tokens, center=3e-3, max_extensions=lr_max_extensions,
      seed_noise=float(lr_seed_noise)))
  groups = {}
  config_files = {**SCALING_CONFIGS, **(scaling_configs or {})}
  anchors_by_label = {**STUDY_LEARNING_RATES, **(lr_anchors or {})}
  for label, widths in scaling_widths.items():
    if label not in config_files:
      raise StudyConfigError(f"scaling_configs: no config file for scaling group {label!r} "
                             f"(the study's are {', '.join(SCALING_CONFIGS)}; pass "
                             f"scaling_configs={{{label!r}: 'path/to/config.py'}})")
    anchors = anchors_by_label.get(label, STUDY_LEARNING_RATES["modern"])
    groups[label] = dict(config=config_files[label], widths=tuple(widths),
                         seeds=tuple(scaling_seeds), tokens_per_param=float(tokens_per_param),
                         lr_widths=tuple(anchors), lr_values=tuple(anchors.values()),
                         lr_sweep=True,
                         lr_sweep_widths=tuple(lr_sweep_widths.get(label, widths)),
                         lr_law_widths=(), lr_center=0.0, flops_budgets=(),
                         train_runner_up=bool(train_runner_up),
                         overrides=dict((scaling_overrides or {}).get(label, {})))
  modern = STUDY_LEARNING_RATES["modern"]
  specs = {**ABLATIONS, **(ablation_specs or {})}
  unknown = [a for a in ablations if a not in specs]
  if unknown:
    raise StudyConfigError(f"ablations: unknown {', '.join(map(repr, unknown))}; expected "
                           f"names of {', '.join(specs)} (or add them with ablation_specs)")
  variants = {"ablation_reference": ("configs/modern.py", None)}
  for ablation in ablations:
    _, variant, config_file, center = specs[ablation]
    variants[variant] = (config_file, center)
  for label, (config_file, center) in variants.items():
    groups[label] = dict(config=config_file, widths=(ablation_width,),
                         seeds=tuple(ablation_seeds),
                         tokens_per_param=float(ablation_tokens_per_param),
                         lr_widths=() if center else tuple(modern),
                         lr_values=() if center else tuple(modern.values()),
                         lr_sweep=True, lr_sweep_widths=(), lr_law_widths=(),
                         lr_center=float(center or 0.0), flops_budgets=(),
                         train_runner_up=bool(train_runner_up), overrides={})
  c.sweep.groups = ml_collections.ConfigDict(groups)

  c.analysis = ml_collections.ConfigDict()
  c.analysis.scaling_groups = tuple(scaling_widths)
  c.analysis.reference = "lstm" if "lstm" in scaling_widths else tuple(scaling_widths)[0]
  c.analysis.frontier = "envelope"
  c.analysis.skip_fraction = 0.1
  c.analysis.irreducible = "shared"
  c.analysis.sensitivity_irreducible = "fit"
  c.analysis.shared_exponent = False
  c.analysis.bootstrap = bootstrap
  c.analysis.resample = "runs"
  c.analysis.seed = 0
  c.analysis.level = 0.95
  c.analysis.ceg_compute = ()
  c.analysis.extra_ceg_compute = tuple(extra_ceg_compute)
  c.analysis.ablation_reference = "ablation_reference"
  c.analysis.ablations = ml_collections.ConfigDict({
      a: dict(reference=specs[a][0], variant=specs[a][1]) for a in ablations})
  c.analysis.ablation_target_loss = 0.0
  c.analysis.ablation_target_margin = 0.02
  c.analysis.direct_total = "modern_vs_retro"
  c.analysis.published_ablations = ml_collections.ConfigDict(PUBLISHED_ABLATIONS)
  c.analysis.study_laws = ml_collections.ConfigDict(
      {label: label for label in ("lstm", "retro", "modern") if label in scaling_widths})
  c.analysis.account_config = "configs/account_study.py"
  c.analysis.exclude_plateau = True
  c.analysis.plateau_margin = 0.1
  c.analysis.e_profile = "always"
  c.analysis.e_profile_samples = 200
  c.analysis.raw_scale = True
  c.analysis.raw_scale_samples = 200
  c.analysis.rollout = True
  c.analysis.planner_simulations = 20
  c.analysis.planner_designs = 3
  c.analysis.ablation_seed_pairs = True
  return c
