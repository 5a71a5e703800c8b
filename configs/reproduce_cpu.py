"""The study on a 2-core CPU in about an hour, on the embedded corpus: the README's main job.

What is scaled down from the study's protocol (configs/reproduce_paper.py), and why:
  * tokenizer: BPE with a 2,048 vocabulary trained on the training split (GPT-2's 50,257
    would make the embeddings most of every small model); batch 32 x sequence 128;
  * widths: modern and 2017 Transformer 16-48 (1-3 layers), LSTM 16-96 (width 16 takes
    its compute range past two decades), one seed each;
  * budgets: 20 tokens per parameter for the scaling runs as for the ablations (40 would
    double the hour and run the LSTM off the end of the ~30 MB corpus);
  * LR sweeps: 3 points 10^0.5 apart at 25% of the budget (growing by up to 2 points past
    an end that wins), at every width, as in the study (interpolating the middle widths
    log-log between the end widths' choices gave modern width 32 an LR 2.3x the one the
    same model's ablation sweep chose, and a final loss 0.6 nats worse); each ablation
    variant gets its own sweep. 25% is what the study's max(16M tokens, 5%) gives at its
    smallest widths (16M of 32d's 68M tokens); at 10% (about 50 steps here) every run was
    still near the unigram plateau, the sweep curves were flat to 0.01 nats, and half the
    ablation variants drew an LR 10x too high for their full runs (ending 0.5-1 nats worse
    than variants at 10x lower LR);
  * ablations at width 32 (the study: 64) with two seeds; validation on 65,536 tokens.
The compute reached is reported by the run (README shows it). Fields are documented in
algoprog/study.py (study_config); any is overridable on the command line.
"""

from algoprog import study


def get_config():
  widths = {"lstm": (16, 32, 48, 64, 96), "retro": (16, 32, 48), "modern": (16, 32, 48)}
  return study.study_config(
      name="cpu",
      description="The study scaled to a 2-core CPU (configs/reproduce_cpu.py): embedded "
                  "English corpus, BPE 2,048, batch 32 x 128, Transformers at widths "
                  "16-48 and LSTMs at 16-96 with 20 tokens/parameter, ablations at width "
                  "32 with two seeds.",
      data=dict(source="embedded", tokenizer="bpe", bpe_vocab_size=2048, sequence_length=128,
                batch_size=32, validation_tokens=65_536),
      train=dict(eval_every_steps=100, log_every_steps=100, checkpoint_every_steps=500),
      scaling_widths=widths, scaling_seeds=(123,), tokens_per_param=20.0,
      lr_sweep_widths=widths,  # every scaling width gets its own sweep (see above)
      ablation_width=32, ablation_seeds=(123, 456), ablation_tokens_per_param=20.0,
      lr_points=3, lr_spacing_decades=0.5, lr_budget_fraction=0.25, lr_min_tokens=0,
      workers=2, bootstrap=1000)
