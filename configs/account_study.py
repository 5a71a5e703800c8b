r"""The study's algorithmic-progress accounting, from its published constants.

`python -m launch.account --config=configs/account_study.py --out=DIR` reproduces the
headlines (2023: ~6,926x = Kaplan Transformer ~726x * Chinchilla 3.71x * scale-invariant
~2.57x; 2025: ~21,400x). Any field can be overridden, e.g.
`--config.trend.growth_per_year=3.5`, `--config.laws.lstm.alpha=-0.07`,
`--config.innovations.moe.ceg=1.5`, `--config.interaction.normalise=False`,
`--config.laws_json=fits.json` (the fit module's laws; docs/account.md).

Fields (each documented once):
  start_year: baseline year before any innovation; annual growth of year y is
    total**(1/(y - start_year)) (the study: 2012, 6,926x over 2012-2023 = 2.23x/year).
  end_year: last year of the by-year tables and figures.
  headline_years: years of the headline table, at the frontier compute of each year (at
    least one; the first is also the year of the sensitivity table).
  fixed_compute: FLOPs (> 0) at which progress by year is also accounted (compute held
    fixed).
  trend: frontier training compute C(y) = compute_at_base_year *
    growth_per_year**(y - base_year) FLOPs (growth_per_year > 1: the frontier grows).
  laws: label -> frontier law L(C) = E + a*C**alpha (a > 0, alpha < 0, E nats/token), the
    study's fits with E fixed at 1.9: "lstm" (1-layer LSTM), "retro" (2017 Transformer,
    trained at ~Chinchilla token ratios), "modern" (modern dense Transformer).
  laws_json: optional path to fitted laws (JSON format of docs/account.md); its laws
    replace or add to `laws` by label, its bootstrap samples give the intervals.
  chinchilla: L(N, D) = E + A/N**alpha + B/D**beta (Hoffmann et al. 2022), for M(C).
  kaplan: Kaplan et al.'s allocation N = coefficient * C**exponent, D = C/(6N).
  ablations: name -> CEG measured by one small-scale ablation against the 64-wide modern
    Transformer at target loss 5.3 nats ("x_vs_y": x's gain over y).
  interaction.normalise: raise every "ablation" innovation's CEG m to m**k,
    k = ln(measured_total) / ln(product of `components`).
  interaction.components: comma-separated ablations a 2017 -> modern upgrade combines.
  interaction.measured_total: directly measured CEG of modern over retro (all combined).
  innovations.<name>: one innovation.
    label: display name.
    year: first year it counts (calendar year > start_year).
    kind: "constant" (CEG `ceg`), "ablation" (CEG from `ablation`, normalised),
      "laws" (CEG of law `new` over law `reference`, at the frontier compute),
      "chinchilla" (the Kaplan -> Chinchilla multiplier M(C)).
    ceg: the CEG of a "constant" innovation (ignored otherwise).
    ablation: for "ablation": ablation names joined by * or /.
    reference, new: for "laws": law labels.
    net_of_chinchilla: for "laws": divide by M(C) because the `new` runs already used
      Chinchilla token ratios (LSTM -> Kaplan Transformer = CEG(lstm -> retro) / M(C)).
  references.<name>: a reference algorithm for reference dependence.
    label: display name.
    includes: comma-separated innovations it already has (progress relative to it counts
      the others).
  sensitivity.<name>: one tornado row: the input at dotted `path` (e.g. laws.lstm.alpha)
    set to `low` and to `high`, everything else at its value; the metric is the total of
    the first headline year.
  confidence_level: coverage of the percentile intervals from bootstrap samples, in (0, 1).
  compute_range: (low, high) FLOPs of the CEG-vs-compute and loss-vs-compute figures,
    0 < low < high.
  figure_formats: file formats of the figures (ones matplotlib writes: png, svg, pdf, ...).

Multi-valued fields (headline_years, fixed_compute, figure_formats) take a comma list or
repeats on the command line: `--config.figure_formats=png,pdf`,
`--config.headline_years=2023 --config.headline_years=2025`. Every field is checked before
anything is computed (algoprog.analysis.account and account_report).
"""

import ml_collections


def _innovation(label, year, kind, ceg=1.0, ablation="", reference="", new="",
                net_of_chinchilla=False):
  # Every innovation carries every field, so any of them can be overridden by flag.
  return ml_collections.ConfigDict(dict(
      label=label, year=year, kind=kind, ceg=float(ceg), ablation=ablation,
      reference=reference, new=new, net_of_chinchilla=net_of_chinchilla))


def _row(path, low, high):
  return ml_collections.ConfigDict(dict(path=path, low=float(low), high=float(high)))


def get_config():
  c = ml_collections.ConfigDict()
  c.start_year = 2012
  c.end_year = 2025
  c.headline_years = (2023, 2025)
  c.fixed_compute = (1e16, 1e18, 1e20, 1e22, 1e24)
  c.trend = ml_collections.ConfigDict(dict(
      compute_at_base_year=1e16, base_year=2013.0, growth_per_year=4.1))
  c.laws = ml_collections.ConfigDict(dict(
      lstm=dict(a=36.3, alpha=-0.065, E=1.9),
      retro=dict(a=81.7, alpha=-0.091, E=1.9),
      modern=dict(a=88.0, alpha=-0.094, E=1.9)))
  c.laws_json = ""
  c.chinchilla = ml_collections.ConfigDict(dict(E=1.69, A=406.4, B=410.7, alpha=0.34,
                                                beta=0.28))
  c.kaplan = ml_collections.ConfigDict(dict(coefficient=3.633e-6, exponent=0.73))
  c.ablations = ml_collections.ConfigDict(dict(
      swiglu_vs_gelu=1.17,
      rotary_vs_learned=1.26,
      rotary_vs_sinusoidal=1.44,
      prenorm_vs_postnorm=1.87,
      rmsnorm_vs_layernorm=1.09,
      cosine_vs_inverse_sqrt=1.04,
      adamw_vs_adam=1.00,
      adam_vs_sgd=1.67))
  c.interaction = ml_collections.ConfigDict(dict(
      normalise=True,
      components=("swiglu_vs_gelu,rotary_vs_sinusoidal,prenorm_vs_postnorm,"
                  "rmsnorm_vs_layernorm,cosine_vs_inverse_sqrt,adamw_vs_adam"),
      measured_total=1.33))
  c.innovations = ml_collections.ConfigDict(dict(
      kaplan_transformer=_innovation("LSTM -> Kaplan Transformer", 2017, "laws",
                                     reference="lstm", new="retro",
                                     net_of_chinchilla=True),
      learned_positions=_innovation(
          "sinusoidal -> learned positions", 2018, "ablation",
          ablation="rotary_vs_sinusoidal / rotary_vs_learned"),
      cosine_schedule=_innovation("inverse-sqrt -> cosine schedule", 2018, "ablation",
                                  ablation="cosine_vs_inverse_sqrt"),
      pre_norm=_innovation("post-norm -> pre-norm", 2019, "ablation",
                           ablation="prenorm_vs_postnorm"),
      rmsnorm=_innovation("LayerNorm -> RMSNorm", 2020, "ablation",
                          ablation="rmsnorm_vs_layernorm"),
      rotary=_innovation("learned -> rotary positions", 2021, "ablation",
                         ablation="rotary_vs_learned"),
      moe=_innovation("mixture of experts (literature)", 2021, "constant", ceg=2.0),
      chinchilla=_innovation("Kaplan -> Chinchilla rebalancing", 2022, "chinchilla")))
  c.references = ml_collections.ConfigDict(dict(
      lstm=dict(label="LSTM", includes=""),
      kaplan=dict(label="Kaplan Transformer", includes="kaplan_transformer"),
      modern_dense=dict(label="modern dense Transformer",
                        includes=("kaplan_transformer,learned_positions,cosine_schedule,"
                                  "pre_norm,rmsnorm,rotary,chinchilla"))))
  c.sensitivity = ml_collections.ConfigDict(dict(
      lstm_alpha=_row("laws.lstm.alpha", -0.070, -0.060),
      retro_alpha=_row("laws.retro.alpha", -0.096, -0.086),
      lstm_E=_row("laws.lstm.E", 1.8, 2.0),
      retro_E=_row("laws.retro.E", 1.8, 2.0),
      chinchilla_alpha=_row("chinchilla.alpha", 0.30, 0.38),
      chinchilla_beta=_row("chinchilla.beta", 0.24, 0.32),
      kaplan_exponent=_row("kaplan.exponent", 0.70, 0.76),
      growth_per_year=_row("trend.growth_per_year", 3.5, 4.7),
      moe_ceg=_row("innovations.moe.ceg", 1.5, 3.0),
      interaction_total=_row("interaction.measured_total", 1.2, 1.5)))
  c.confidence_level = 0.95
  c.compute_range = (1e13, 1e25)
  c.figure_formats = ("png", "svg")
  return c
