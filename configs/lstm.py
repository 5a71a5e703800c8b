"""The 1-layer streaming LSTM baseline (algoprog.training.presets.lstm; docs/models.md)."""

from algoprog.training import presets


def get_config():
  return presets.lstm(num_layers=1)
