"""The study's protocol (SPEC.md), for TPU/GPU: GPT-2 BPE (vocab 50,257), sequence 128,
batch 64, widths 32-256, 40 tokens per parameter for the scaling runs and 20 for the
ablations (64d, four seeds), LR sweeps on a 10^0.25 grid at max(16M tokens, 5% of the
budget) at the study's four tuned widths (the others interpolate), a tfds dataset.

Needs a prepared tfds data_dir and GPT-2's vocabulary files on the machine:
  --config.sweep.overrides.data.tfds_data_dir=gs://... (or a local folder)
  --config.sweep.overrides.data.gpt2_vocab_dir=/path/with/encoder.json+vocab.bpe
The study used a C4 subset; `c4/en` (or `lm1b`, `pg19` with tfds_text_key=book_text) via
--config.sweep.overrides.data.tfds_name. Fields are documented in algoprog/study.py (study_config).
"""

from algoprog import study

WIDTHS = (32, 48, 64, 96, 128, 160, 192, 224, 256)
TUNED = (32, 64, 128, 256)
# The largest run (modern, width 256: 29.7M parameters x 40 tokens = 1.19B tokens) needs
# ~5.1 GB of C4 at ~4.3 bytes per GPT-2 token; 6 GB of documents leaves a margin. Reads stop
# there (data.max_bytes), so c4/en's 365M documents are never listed; every run shares the
# one token cache built from them.
MAX_BYTES = 6_000_000_000


def get_config():
  return study.study_config(
      name="paper",
      description="The study's protocol (configs/reproduce_paper.py): GPT-2 BPE, sequence "
                  "128, batch 64, widths 32-256, 40 tokens/parameter, ablations at 64d with "
                  "four seeds.",
      data=dict(source="tfds", tfds_name="c4/en", tokenizer="gpt2", sequence_length=128,
                batch_size=64, validation_tokens=500_000, max_bytes=MAX_BYTES),
      train=dict(eval_every_steps=500, log_every_steps=100, checkpoint_every_steps=2000),
      scaling_widths={"lstm": WIDTHS, "retro": WIDTHS, "modern": WIDTHS},
      scaling_seeds=(123,), tokens_per_param=40.0,
      lr_sweep_widths={"lstm": TUNED, "retro": TUNED, "modern": TUNED},
      ablation_width=64, ablation_seeds=(123, 456, 789, 101), ablation_tokens_per_param=20.0,
      lr_points=5, lr_spacing_decades=0.25, lr_budget_fraction=0.05,
      lr_min_tokens=16_000_000, workers=1, bootstrap=1000, extra_ceg_compute=(1e15,))
