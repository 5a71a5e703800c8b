"""Ahead-of-time compilation of the train step: per-device memory and FLOPs before a run.

`largest_runs` finds the biggest models a sweep or reproduce config will train (no data is
read: the vocabulary follows from data.tokenizer); `compile_train_step` lowers the real
train step (algoprog.training.train.Trainer.train_step, with its shardings) on abstract inputs over a
device mesh and compiles it; `step_report` reads XLA's memory analysis and cost analysis of
the compiled per-device program. launch/aot.py prints them as a table.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh

from algoprog.training import config as config_lib, models, sweep, train

GPT2_VOCAB_SIZE = 50_257
BYTE_VOCAB_SIZE = 257


def vocab_size(data: ml_collections.ConfigDict) -> int:
  """The vocabulary `data.tokenizer` gives (a trained BPE's is at most bpe_vocab_size)."""
  return {"gpt2": GPT2_VOCAB_SIZE, "byte": BYTE_VOCAB_SIZE}.get(data.tokenizer,
                                                               data.bpe_vocab_size)


def param_count(config: ml_collections.ConfigDict, vocab: int) -> int:
  """Parameters of a resolved config's model, from abstract shapes (nothing allocated)."""
  model = models.build_model(config.model, vocab)
  tokens = jnp.zeros((1, config.data.sequence_length), jnp.int32)
  return models.count_params(jax.eval_shape(lambda: model.init(jax.random.key(0), tokens)))


def _set_dotted(c: ml_collections.ConfigDict, dotted: str, value: Any) -> None:
  *path, last = dotted.split(".")
  for key in path:
    c = c[key]
  c[last] = value


def largest_runs(config: ml_collections.ConfigDict, count: int
                 ) -> list[tuple[str, ml_collections.ConfigDict]]:
  """The `count` runs of a sweep/reproduce config with the most parameters, as
  (label, resolved config) pairs, largest first: each group at its largest width with
  the sweep's and the group's overrides."""
  section = sweep.sweep_section(config)
  common = sweep.flatten_overrides(section.overrides)
  candidates = []
  for label, group in section.groups.items():
    c = config_lib.load_config_file(group.config)
    overrides = {**common, **sweep.flatten_overrides(group.get("overrides")),
                 "label": label, "model.width": int(max(group.widths))}
    for dotted, value in overrides.items():
      _set_dotted(c, dotted, value)
    if c.data.tokenizer == "gpt2" and not c.data.gpt2_vocab_dir:
      c.data.gpt2_vocab_dir = "(not read: the vocabulary size is all a compile needs)"
    c = config_lib.resolve(c)
    candidates.append((param_count(c, vocab_size(c.data)), label, c))
  candidates.sort(key=lambda t: -t[0])
  return [(label, c) for _, label, c in candidates[:count]]


@dataclasses.dataclass(frozen=True)
class StepReport:
  """XLA's numbers for one compiled train step, per device (bytes, FLOPs)."""
  label: str
  width: int
  params: int
  devices: int
  batch_per_device: int
  argument_bytes: int  # Inputs: train state (params + optimizer state) and the batch shard.
  output_bytes: int
  alias_bytes: int  # Outputs written in place of donated inputs (the train state).
  temp_bytes: int  # Activations, gradients, workspace.
  generated_code_bytes: int
  flops: float  # Of the per-device program (XLA's cost analysis).

  @property
  def peak_bytes(self) -> int:
    """Live at once, at most: arguments + outputs not aliased to them + temporaries."""
    return self.argument_bytes + self.output_bytes - self.alias_bytes + self.temp_bytes


def compile_train_step(config: ml_collections.ConfigDict, vocab: int, mesh: Mesh):
  """The compiled train step of a resolved config on `mesh`, from abstract inputs."""
  trainer = train.build_trainer(config, vocab, total_steps=1000, mesh=mesh)
  batch = jax.ShapeDtypeStruct((config.data.batch_size, config.data.sequence_length),
                               jnp.int32, sharding=trainer.batch_sharding)
  return trainer.train_step.lower(trainer.abstract_state, batch, batch).compile()


def compiled_peak_bytes(compiled) -> int | None:
  """XLA's peak per-device bytes of a compiled program (StepReport.peak_bytes's sum), or
  None where the backend gives no memory analysis."""
  try:
    m = compiled.memory_analysis()
  except Exception:  # pylint: disable=broad-except  (backends without the analysis)
    return None
  if m is None:
    return None
  return (m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes
          + m.temp_size_in_bytes)


@dataclasses.dataclass
class RandomBatchStep:
  """A compiled train step with an initialised state and one random batch on the devices:
  what a benchmark times (`time_steps`). compile_s: seconds to lower and compile."""
  compiled: Any
  state: Any
  batch: tuple[jax.Array, jax.Array]
  compile_s: float


def compile_on_random_batch(config: ml_collections.ConfigDict, vocab: int,
                            mesh: Mesh | None = None, seed: int = 0) -> RandomBatchStep:
  """The train step of a resolved config compiled for, and holding, a random batch of token
  ids in [0, vocab) (inputs and targets): real parameters, so the step can run. Module
  attributes a benchmark swaps (e.g. models.lstm_scan) are read while this traces."""
  trainer = train.build_trainer(config, vocab, total_steps=1000, mesh=mesh)
  rng = np.random.default_rng(seed)
  shape = (config.data.batch_size, config.data.sequence_length)
  batch = trainer.shard_batch(rng.integers(0, vocab, shape, dtype=np.int32),
                              rng.integers(0, vocab, shape, dtype=np.int32))
  state = trainer.init(jax.random.key(seed))
  start = time.perf_counter()
  compiled = trainer.train_step.lower(state, *batch).compile()
  return RandomBatchStep(compiled, state, batch, time.perf_counter() - start)


def time_steps(step: RandomBatchStep, steps: int, warmup: int = 2) -> tuple[list[float],
                                                                          jax.Array]:
  """(seconds of each of `steps` timed steps after `warmup` untimed ones, the last loss);
  advances `step.state`. Each step waits for its loss, so a time is the whole step's."""
  loss = None
  for _ in range(warmup):
    step.state, loss = step.compiled(step.state, *step.batch)
  if loss is not None:
    loss.block_until_ready()
  seconds = []
  for _ in range(steps):
    start = time.perf_counter()
    step.state, loss = step.compiled(step.state, *step.batch)
    loss.block_until_ready()
    seconds.append(time.perf_counter() - start)
  return seconds, loss


def step_report(label: str, config: ml_collections.ConfigDict, mesh: Mesh) -> StepReport:
  vocab = vocab_size(config.data)
  compiled = compile_train_step(config, vocab, mesh)
  memory = compiled.memory_analysis()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return StepReport(
      label=label, width=config.model.width, params=param_count(config, vocab),
      devices=mesh.size, batch_per_device=config.data.batch_size // mesh.size,
      argument_bytes=int(memory.argument_size_in_bytes),
      output_bytes=int(memory.output_size_in_bytes),
      alias_bytes=int(memory.alias_size_in_bytes),
      temp_bytes=int(memory.temp_size_in_bytes),
      generated_code_bytes=int(memory.generated_code_size_in_bytes),
      flops=float((cost or {}).get("flops", float("nan"))))


def table(reports: list[StepReport]) -> str:
  """A Markdown table of the reports (MiB, GFLOPs)."""
  mib = lambda b: f"{b / 2**20:,.1f}"
  lines = ["| run | width | params | devices | batch/device | arguments MiB | outputs MiB | "
           "aliased MiB | temporaries MiB | code MiB | peak MiB | GFLOPs/device |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in reports:
    lines.append(f"| {r.label} | {r.width} | {r.params:,} | {r.devices} | "
                 f"{r.batch_per_device} | {mib(r.argument_bytes)} | {mib(r.output_bytes)} | "
                 f"{mib(r.alias_bytes)} | {mib(r.temp_bytes)} | "
                 f"{r.generated_code_bytes / 2**20:.2f} | {mib(r.peak_bytes)} | {r.flops / 1e9:.4g} |")
  return "\n".join(lines)
