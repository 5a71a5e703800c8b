"""Training: everything that writes run directories (config, models, FLOPs, data, the train loop, sweeps)."""
