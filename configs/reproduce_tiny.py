"""The study at toy scale, for tests and the Colab notebook: minutes on 2 CPU cores.

Byte-level tokens, sequence 64, batch 16, widths 16 and 32, 4 tokens per parameter, two LR
points at one width per architecture, two ablations (GELU, and the 2017 Transformer as the
direct modern-vs-retro measurement) with two seeds, 100 bootstrap refits. Far too small for
meaningful exponents: it exercises every stage of reproduce_cpu.py quickly. Fields are
documented in algoprog/study.py (study_config).
"""

from algoprog import study


def get_config():
  return study.study_config(
      name="tiny",
      description="Toy-scale study (configs/reproduce_tiny.py): every stage of the pipeline "
                  "on runs of seconds; not a measurement.",
      data=dict(tokenizer="byte", sequence_length=64, batch_size=16, validation_tokens=16_384),
      train=dict(eval_every_steps=10, log_every_steps=50, checkpoint_every_steps=200),
      scaling_widths={"lstm": (16, 32), "retro": (16, 32), "modern": (16, 32)},
      scaling_seeds=(123,), tokens_per_param=4.0,
      lr_sweep_widths={"lstm": (32,), "retro": (32,), "modern": (32,)},
      ablation_width=16, ablation_seeds=(123, 456), ablation_tokens_per_param=4.0,
      ablations=("swiglu_vs_gelu", "modern_vs_retro"),
      # Two points always have the winner at an edge; growing the grid would only add runs
      # here (tests/test_sweep.py tests the extension without training).
      lr_points=2, lr_spacing_decades=0.5, lr_budget_fraction=0.5, lr_min_tokens=0,
      lr_max_extensions=0, workers=2, bootstrap=100)
