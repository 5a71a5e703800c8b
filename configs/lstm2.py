"""The 2-layer streaming LSTM: configs/lstm.py with model.num_layers = 2 (same learning
rate; the study tuned only the 1-layer LSTM)."""

from algoprog.training import presets


def get_config():
  return presets.lstm(num_layers=2)
