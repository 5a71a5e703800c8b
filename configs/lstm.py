"""The 1-layer streaming LSTM baseline (algoprog.presets.lstm; docs/models.md)."""

from algoprog import presets


def get_config():
  return presets.lstm(num_layers=1)
