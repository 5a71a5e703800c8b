"""One process of tests/test_distributed.py: trains tiny models data-parallel over every
device of every process and writes what it computed (process 0 only).

  python tests/distributed_worker.py OUT.json CONFIGS.json PROCESS_ID NUM_PROCESSES
      LOCAL_DEVICES COORDINATOR_PORT STEPS

CONFIGS.json is a list of config dicts (algoprog.training.config), trained one after the other; their
corpus must already be in its cache.
"""

import json
import sys

import jax
import numpy as np


def main(out, configs_json, process_id, num_processes, local_devices, port, steps):
  jax.config.update("jax_num_cpu_devices", local_devices)
  if num_processes > 1:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}",
                               num_processes=num_processes, process_id=process_id)
  results = [train_one(json.loads(c), steps) for c in json.loads(configs_json)]
  if jax.process_index() == 0:
    with open(out, "w") as f:
      json.dump({"devices": jax.device_count(), "processes": jax.process_count(),
                 "runs": results}, f)


def train_one(config_dict: dict, steps: int) -> dict:
  import ml_collections
  from algoprog.training import config as config_lib, data, models, train

  config = config_lib.resolve(ml_collections.ConfigDict(config_dict))
  corpus = data.load_corpus(config.data)
  stream = data.TokenStream(corpus.train_tokens, config.data.batch_size,
                            config.data.sequence_length)
  trainer = train.build_trainer(config, corpus.vocab_size, steps)
  validation = data.validation_batches(corpus.validation_tokens, config.data.batch_size,
                                       config.data.sequence_length,
                                       streams=models.is_recurrent(trainer.model))
  state = trainer.init(jax.random.key(config.seed))
  rows = train.host_rows(config.data.batch_size)
  losses = []
  for step in range(steps):
    inputs, targets = stream.batch(step, rows)
    state, loss = trainer.train_step(state, *trainer.shard_batch(inputs, targets))
    losses.append(float(loss))
  validation_loss = trainer.evaluate(state.params, validation)
  # Replicated: every process holds the whole value on each of its devices.
  params = [np.asarray(x.addressable_data(0)).tolist()
            for x in jax.tree_util.tree_leaves(state.params)]
  return {"train_losses": losses, "validation_loss": validation_loss, "params": params}


if __name__ == "__main__":
  out, config_json, *numbers = sys.argv[1:]
  main(out, config_json, *map(int, numbers))
