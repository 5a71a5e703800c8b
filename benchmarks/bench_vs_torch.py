r"""algoprog's train step against the same models written in plain (eager) PyTorch.

  pip install '.[bench]'   # torch; never needed by the library or its tests
  python benchmarks/bench_vs_torch.py [--models=modern,lstm] [--widths=64,128,256]
      [--steps=5] [--batch=32] [--sequence_length=128] [--vocab=50257] [--threads=0]
      [--malloc=default|no_mmap]

The PyTorch side is written here from algoprog's resolved presets (configs/modern.py,
configs/lstm.py), shape for shape, and its parameter count is asserted equal to the flax
model's:
  - modern: tied input/output embedding plus an output bias of V; pre-norm RMSNorm
    (eps 1e-6); rotary positions on query and key (GPT-NeoX halves, base 10,000); causal
    softmax attention (torch's scaled_dot_product_attention); SwiGLU FFN with hidden 4d
    (gate, up, down); depth = heads = d/16; no matrix biases; final RMSNorm.
  - lstm: one nn.LSTM layer of hidden d, tied embedding plus output bias, truncated BPTT
    over windows of 32 tokens with the state carried across windows and steps, each row's
    state zeroed before a window with probability 0.01. algoprog's LSTM has one gate bias
    of 4d, nn.LSTM two: the torch LSTM is bias-free and reads [embedding, 1], so the last
    input column of W_ih is the single gate bias (same parameter count, same function).
Both sides run one full train step: forward, backward, global-norm clipping at 1.0 and an
AdamW update with the preset's hyperparameters (torch.optim.AdamW's defaults otherwise;
the torch learning rate is the constant peak, algoprog's follows its schedule in-step).
Synthetic tokens, the same batch every step: the data pipeline is not what is timed.

Timing: the two sides alternate step by step (torch, ours, torch, ...), after warm-up
steps, so machine load hits both alike; the table has the best and the median step of each
side and the ratio torch time / our time. torch runs in its own worker process (this
script with --side=torch_worker, one step per request, timed inside the worker), so the
two libraries never share a heap. torch uses as many
intra-op threads as XLA:CPU (the schedulable cores, unless --threads). Peak memory is each
side's process RSS high-water mark (VmHWM), measured in a fresh subprocess
per side and row that builds only that side (the other library never imported) and runs
warm-up + 2 steps; the jax figure includes XLA's compilation.

The ceiling: our step's model FLOPs (docs/flops.md) at the jitted f32 matmul peak measured
in the same run (bench_train.py's 2048^3 matmul, best of bursts before and after every row)
would take FLOPs / peak seconds; torch's best step over that is the largest torch / ours
ratio any f32 implementation of the same FLOPs reaches on this machine.

Allocator: with glibc's defaults every block above 32 MiB is a fresh mmap, so the torch
step, which allocates its [tokens, V] logits and their gradient anew each step, pays page
faults for hundreds of MB per step; how much depends on the host (its torch times moved by
up to 1.6x between sessions on the same CPU model). --malloc=no_mmap runs the torch
processes with mmap and trimming off (GLIBC_TUNABLES), so freed blocks are reused: torch's
best case here. Its heap then grows through fresh pages for the first steps, which slows
both sides, so the warm-up is 4 steps unless --warmup says otherwise. Our step alone runs
the same under either setting, but while a no_mmap torch process alternates with it, it
was measured up to 2x slower at d=128-256: each of our steps maps XLA's temporaries afresh,
and those page faults cost more beside a torch process holding several GB
(docs/performance.md). Set torch's no_mmap time against our time from a default run.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

from absl import app, flags

_MODELS = flags.DEFINE_list("models", ["modern", "lstm"], "Models: modern, lstm.")
_WIDTHS = flags.DEFINE_list("widths", ["64", "128", "256"], "Widths d.")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps per side and row (after warm-up).")
_WARMUP = flags.DEFINE_integer(
    "warmup", None, "Untimed steps per side first; unset: 1, or 4 with --malloc=no_mmap, "
    "whose torch heap grows through fresh pages for its first few steps.")
_BATCH = flags.DEFINE_integer("batch", 32, "Sequences per step.")
_SEQUENCE_LENGTH = flags.DEFINE_integer("sequence_length", 128, "Tokens per sequence.")
_VOCAB = flags.DEFINE_integer("vocab", 50_257, "Vocabulary size (GPT-2's).")
_THREADS = flags.DEFINE_integer("threads", 0, "torch intra-op threads; 0 -> as XLA:CPU.")
_MEMORY = flags.DEFINE_bool("memory", True, "Measure each side's peak RSS (subprocesses).")
_MALLOC = flags.DEFINE_enum(
    "malloc", "default", ["default", "no_mmap"],
    "glibc malloc of the torch processes: default, or no_mmap (GLIBC_TUNABLES: no mmap, "
    "no trimming), which keeps freed memory for reuse: torch's best case here.")
_PAUSE = flags.DEFINE_float(
    "pause_s", 0.2, "Untimed sleep between steps, so one side's idle worker threads have "
    "stopped spinning when the other side's step starts.")
_SIDE = flags.DEFINE_enum("side", "", ["", "torch", "jax", "torch_worker"],
                          "Internal: measure one side's peak RSS for --spec and exit.")
_SPEC = flags.DEFINE_string("spec", "", "Internal: the row's spec (JSON) for --side.")

SKIP_MESSAGE = "bench_vs_torch: skipped: torch is not installed (pip install '.[bench]')"


def import_torch():
  """The torch module, or None when it cannot be imported (the benchmark then skips)."""
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError:
    return None
  return torch


def schedulable_cores() -> int:
  """The cores this process may run on: the size of XLA:CPU's intra-op thread pool."""
  return len(os.sched_getaffinity(0))


def peak_rss_mib() -> float:
  """This process's resident-set high-water mark in MiB: /proc/self/status VmHWM (Linux).

  Not getrusage's ru_maxrss: Linux carries that across fork + exec, so a fresh subprocess
  would report its parent's peak."""
  try:
    with open("/proc/self/status", encoding="utf-8") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) / 1024  # kB.
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------------------------
# The row spec: everything both sides need, taken from algoprog's resolved preset.


def row_spec(model: str, width: int, batch: int, sequence_length: int, vocab: int) -> dict:
  """The resolved preset's shapes and optimizer for one row, as plain JSON values."""
  c = jax_config(model, width, batch, sequence_length)
  o = c.optim
  if o.name != "adamw" or not o.decay_norms_and_biases:
    raise ValueError(f"{model}: the torch side implements AdamW decaying every parameter; "
                     f"the preset has optim.name={o.name!r}")
  m = c.model
  expected = dict(tie_embeddings=True, output_bias=True, matrix_biases=False)
  if m.kind == "transformer":
    expected.update(norm="rmsnorm", norm_placement="pre", final_norm="yes",
                    positions="rotary", ffn="swiglu", attention="softmax", init="normal")
  for field, value in expected.items():
    if m.get(field) != value:
      raise ValueError(f"model.{field}: the torch side implements {value!r}; the {model} "
                       f"preset has {m.get(field)!r}")
  return {
      "model": model, "width": width, "batch": batch, "sequence_length": sequence_length,
      "vocab": vocab, "num_layers": m.num_layers, "num_heads": m.num_heads,
      "ffn_hidden": m.ffn_multiplier * width, "rotary_base": m.rotary_base,
      "init_std": m.init_std, "forget_bias": m.lstm_forget_bias,
      "window": c.train.lstm_window, "reset_probability": c.train.lstm_reset_probability,
      "lr": o.learning_rate, "b1": o.b1, "b2": o.b2, "eps": o.eps,
      "weight_decay": o.weight_decay, "clip": o.grad_clip_norm,
  }


# ---------------------------------------------------------------------------------------
# The algoprog side: exactly the entry points benchmarks/bench_train.py uses.


def jax_config(model: str, width: int, batch: int, sequence_length: int):
  """The resolved preset ("modern" or "lstm") at this width and batch shape."""
  # Imported here: the --side=torch subprocess must not import jax.
  from algoprog.training import config as config_lib, presets  # pylint: disable=C0415
  c = {"modern": presets.modern, "lstm": presets.lstm}[model]()
  c.model.width = width
  c.data.batch_size = batch
  c.data.sequence_length = sequence_length
  return config_lib.resolve(c)


class JaxSide:
  """algoprog's compiled train step on a fixed synthetic batch."""

  def __init__(self, spec: dict, inputs, targets):
    import jax  # pylint: disable=import-outside-toplevel
    from algoprog.training import flops, models, train  # pylint: disable=C0415
    self._jax = jax
    c = jax_config(spec["model"], spec["width"], spec["batch"], spec["sequence_length"])
    # Model FLOPs (docs/flops.md's convention: no rematerialisation, no recompute).
    tokens_per_step = spec["batch"] * spec["sequence_length"]
    self.flops_per_step = tokens_per_step * float(flops.training_flops_per_token(
        c.model, spec["vocab"], spec["sequence_length"]))
    trainer = train.build_trainer(c, spec["vocab"], total_steps=1000)
    self.batch = trainer.shard_batch(inputs, targets)
    self.state = trainer.init(jax.random.key(0))
    self.params = models.count_params(self.state.params)
    start = time.perf_counter()
    self.compiled = trainer.train_step.lower(self.state, *self.batch).compile()
    self.compile_s = time.perf_counter() - start

  def step(self) -> float:
    """One train step; returns its loss (the wait for it is part of the step)."""
    self.state, loss = self.compiled(self.state, *self.batch)
    return float(loss)


# ---------------------------------------------------------------------------------------
# The PyTorch side, written for this benchmark.


def torch_model(torch, spec: dict):
  """The plain PyTorch module of `spec` (module docstring), initialised as algoprog's."""
  nn, functional = torch.nn, torch.nn.functional
  d, vocab, std = spec["width"], spec["vocab"], spec["init_std"]

  class RotaryAttention(nn.Module):
    """Causal multi-head attention, rotary on q and k, 4 bias-free d x d matrices."""

    def __init__(self):
      super().__init__()
      self.heads = spec["num_heads"]
      self.query, self.key, self.value, self.out = (
          nn.Linear(d, d, bias=False) for _ in range(4))
      head_dim = d // self.heads
      inv_freq = spec["rotary_base"] ** (
          -torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
      angle = torch.arange(spec["sequence_length"], dtype=torch.float32)[:, None] * inv_freq
      self.register_buffer("cos", torch.cos(angle), persistent=False)  # [L, K/2]
      self.register_buffer("sin", torch.sin(angle), persistent=False)

    def rotate(self, x):  # [B, H, L, K]: channel pairs (i, i + K/2).
      half = x.shape[-1] // 2
      first, second = x[..., :half], x[..., half:]
      cos, sin = self.cos[: x.shape[2]], self.sin[: x.shape[2]]
      return torch.cat([first * cos - second * sin, second * cos + first * sin], dim=-1)

    def forward(self, x):
      b, length, _ = x.shape
      heads = lambda y: y.view(b, length, self.heads, -1).transpose(1, 2)
      q = self.rotate(heads(self.query(x)))
      k = self.rotate(heads(self.key(x)))
      out = functional.scaled_dot_product_attention(q, k, heads(self.value(x)),
                                                    is_causal=True)
      return self.out(out.transpose(1, 2).reshape(b, length, d))

  class SwiGLU(nn.Module):
    def __init__(self):
      super().__init__()
      hidden = spec["ffn_hidden"]
      self.gate = nn.Linear(d, hidden, bias=False)
      self.up = nn.Linear(d, hidden, bias=False)
      self.down = nn.Linear(hidden, d, bias=False)

    def forward(self, x):
      return self.down(functional.silu(self.gate(x)) * self.up(x))

  class Layer(nn.Module):
    def __init__(self):
      super().__init__()
      self.attention_norm = nn.RMSNorm(d, eps=1e-6)
      self.attention = RotaryAttention()
      self.ffn_norm = nn.RMSNorm(d, eps=1e-6)
      self.ffn = SwiGLU()

    def forward(self, x):
      x = x + self.attention(self.attention_norm(x))
      return x + self.ffn(self.ffn_norm(x))

  class Transformer(nn.Module):
    def __init__(self):
      super().__init__()
      self.embed = nn.Embedding(vocab, d)
      self.layers = nn.ModuleList(Layer() for _ in range(spec["num_layers"]))
      self.final_norm = nn.RMSNorm(d, eps=1e-6)
      self.output_bias = nn.Parameter(torch.zeros(vocab))

    def forward(self, tokens):
      x = self.embed(tokens)
      for layer in self.layers:
        x = layer(x)
      return functional.linear(self.final_norm(x), self.embed.weight, self.output_bias)

  class LSTM(nn.Module):
    def __init__(self):
      super().__init__()
      self.embed = nn.Embedding(vocab, d)
      # Input [embedding, 1]: W_ih's last column is the one gate bias (module docstring).
      self.lstm = nn.LSTM(d + 1, d, batch_first=True, bias=False)
      self.output_bias = nn.Parameter(torch.zeros(vocab))
      with torch.no_grad():
        self.lstm.weight_ih_l0[:, -1] = 0.0
        self.lstm.weight_ih_l0[d:2 * d, -1] = spec["forget_bias"]  # Gates i, f, g, o.

    def forward(self, tokens, state):
      x = self.embed(tokens)
      x = torch.cat([x, x.new_ones(x.shape[:-1] + (1,))], dim=-1)
      hidden, state = self.lstm(x, state)
      return functional.linear(hidden, self.embed.weight, self.output_bias), state

  module = Transformer() if spec["model"] == "modern" else LSTM()
  with torch.no_grad():
    for name, p in module.named_parameters():
      if p.ndim == 2 and not name.endswith("weight_ih_l0"):
        p.normal_(0.0, std)  # algoprog: N(0, init_std) matrices and embedding.
      elif name.endswith("weight_ih_l0"):
        p[:, :-1].normal_(0.0, std)
  return module


class TorchSide:
  """The PyTorch model's train step on the same fixed batch."""

  def __init__(self, torch, spec: dict, inputs, targets):
    self._torch = torch
    self.spec = spec
    self.model = torch_model(torch, spec)
    self.params = sum(p.numel() for p in self.model.parameters())
    self.inputs = torch.from_numpy(inputs).long()
    self.targets = torch.from_numpy(targets).long()
    self.optimizer = torch.optim.AdamW(
        self.model.parameters(), lr=spec["lr"], betas=(spec["b1"], spec["b2"]),
        eps=spec["eps"], weight_decay=spec["weight_decay"])
    self.generator = torch.Generator().manual_seed(0)
    d, b = spec["width"], spec["batch"]
    self.state = (torch.zeros(1, b, d), torch.zeros(1, b, d))

  def step(self) -> float:
    """One train step (forward, backward, clip, AdamW); returns the mean token loss."""
    torch, spec = self._torch, self.spec
    functional = torch.nn.functional
    self.optimizer.zero_grad(set_to_none=True)
    vocab = spec["vocab"]
    if spec["model"] == "modern":
      logits = self.model(self.inputs)
      loss = functional.cross_entropy(logits.view(-1, vocab), self.targets.view(-1))
      loss.backward()
      total = loss.item()
    else:
      tokens = self.inputs.numel()
      h, c = self.state
      total = 0.0
      window = spec["window"]
      for start in range(0, spec["sequence_length"], window):
        keep = (torch.rand(spec["batch"], generator=self.generator)
                >= spec["reset_probability"]).float()[None, :, None]
        h, c = h.detach() * keep, c.detach() * keep  # Truncation, then the resets.
        logits, (h, c) = self.model(self.inputs[:, start:start + window], (h, c))
        loss = functional.cross_entropy(
            logits.reshape(-1, vocab), self.targets[:, start:start + window].reshape(-1),
            reduction="sum") / tokens
        loss.backward()  # Gradients of the windows add up: one step per batch.
        total += loss.item()
      self.state = (h.detach(), c.detach())
    torch.nn.utils.clip_grad_norm_(self.model.parameters(), spec["clip"])
    self.optimizer.step()
    return total


# ---------------------------------------------------------------------------------------
# Measurement.


def synthetic_batch(spec: dict):
  """(inputs, targets), int32 [batch, sequence_length], uniform over the vocabulary."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  shape = (spec["batch"], spec["sequence_length"])
  return (rng.integers(0, spec["vocab"], shape, dtype=np.int32),
          rng.integers(0, spec["vocab"], shape, dtype=np.int32))


def timed(step) -> tuple[float, float]:
  """(wall seconds, loss) of one call of `step`."""
  start = time.perf_counter()
  loss = step()
  return time.perf_counter() - start, loss


def alternate(torch_side: TorchWorker, jax_side: JaxSide, steps: int, warmup: int,
              pause_s: float) -> dict:
  """Step times of both sides, interleaved: torch, jax, torch, jax, ..."""
  seconds = {"torch": [], "jax": []}
  losses = {"torch": [], "jax": []}
  for i in range(warmup + steps):
    for name, timed_step in (("torch", torch_side.timed_step),
                             ("jax", lambda: timed(jax_side.step))):
      time.sleep(pause_s)
      elapsed, loss = timed_step()
      losses[name].append(loss)
      if i >= warmup:
        seconds[name].append(elapsed)
  for name, values in losses.items():
    if not all(map(lambda v: v == v and abs(v) != float("inf"), values)):
      raise RuntimeError(f"{name} side: non-finite loss {values}")
  return {"seconds": seconds, "losses": losses}


def side_command(side: str, spec: dict, warmup: int = 0) -> list[str]:
  """This script with --side: one side's process for one row."""
  return [sys.executable, os.path.abspath(__file__), f"--side={side}",
          f"--spec={json.dumps(spec)}", f"--warmup={warmup}",
          f"--threads={_THREADS.value or schedulable_cores()}"]


def side_env(side: str) -> dict:
  """The environment of a --side process: torch's gets the --malloc tunables."""
  if side.startswith("torch") and _MALLOC.value == "no_mmap":
    return {**os.environ, "GLIBC_TUNABLES": NO_MMAP_TUNABLES}
  return dict(os.environ)


class TorchWorker:
  """The torch side in its own process (--side=torch_worker), one step per request.

  Its own process keeps the two libraries' heaps apart and lets the malloc tunables apply
  to torch alone. (It does not remove the slowdown of our step beside a no_mmap torch,
  which comes from the cost of our own page faults: module docstring.) A step's time is
  measured inside the worker; requests and replies are single lines on its stdin and
  stdout, the replies prefixed so library output cannot be mistaken for one."""

  def __init__(self, spec: dict):
    self._process = subprocess.Popen(side_command("torch_worker", spec), env=side_env("torch"),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    self.params = self._reply()["params"]

  def _reply(self) -> dict:
    for line in self._process.stdout:
      if line.startswith(WORKER_REPLY):
        return json.loads(line[len(WORKER_REPLY):])
    raise RuntimeError(f"torch worker exited with code {self._process.wait()}")

  def timed_step(self) -> tuple[float, float]:
    """(seconds, loss) of one torch train step."""
    self._process.stdin.write("step\n")
    self._process.stdin.flush()
    reply = self._reply()
    return reply["seconds"], reply["loss"]

  def close(self) -> None:
    self._process.stdin.close()
    self._process.wait()


WORKER_REPLY = "bench_vs_torch worker: "


def torch_worker_main(spec: dict, threads: int) -> None:
  """The --side=torch_worker process: build the torch side, then one step per stdin line."""
  torch = import_torch()
  torch.set_num_threads(threads)
  side = TorchSide(torch, spec, *synthetic_batch(spec))
  print(WORKER_REPLY + json.dumps({"params": side.params}), flush=True)
  for _ in sys.stdin:
    seconds, loss = timed(side.step)
    print(WORKER_REPLY + json.dumps({"seconds": seconds, "loss": loss}), flush=True)


def measure_side_memory(side: str, spec: dict, warmup: int) -> dict:
  """Runs this script with --side in a fresh process; its peak RSS (MiB) and baseline."""
  done = subprocess.run(side_command(side, spec, warmup), env=side_env(side),
                        capture_output=True, text=True, check=False)
  if done.returncode:
    raise RuntimeError(f"--side={side} failed: {done.stderr.strip().splitlines()[-1:]}")
  return json.loads(done.stdout.strip().splitlines()[-1])


def side_memory_main(side: str, spec: dict, warmup: int, threads: int) -> None:
  """The --side subprocess: build one side only, run warm-up + 2 steps, print RSS."""
  inputs, targets = synthetic_batch(spec)
  if side == "torch":
    torch = import_torch()
    torch.set_num_threads(threads)
    baseline = peak_rss_mib()
    runner = TorchSide(torch, spec, inputs, targets)
  else:
    import jax  # pylint: disable=import-outside-toplevel,unused-import
    from algoprog.training import train  # pylint: disable=import-outside-toplevel,unused-import
    baseline = peak_rss_mib()
    runner = JaxSide(spec, inputs, targets)
  for _ in range(warmup + 2):
    runner.step()
  print(json.dumps({"peak_rss_mib": peak_rss_mib(), "after_imports_mib": baseline}))


# glibc's malloc serves every block above 32 MiB with a fresh mmap and unmaps it on free,
# so a step that allocates its [tokens, V] logits anew page-faults through all of them
# every step, at a cost that depends on the host. Without mmap and trimming, freed blocks
# are reused instead (docs/performance.md).
NO_MMAP_TUNABLES = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"


def warmup_steps() -> int:
  """--warmup, or its default for the --malloc setting."""
  if _WARMUP.value is not None:
    return _WARMUP.value
  return 4 if _MALLOC.value == "no_mmap" else 1


def malloc_setting() -> str:
  """The torch processes' glibc malloc setting, as the header prints it."""
  tunables = side_env("torch").get("GLIBC_TUNABLES", "")
  return f"GLIBC_TUNABLES={tunables}" if tunables else "glibc malloc defaults"


def main(argv):
  from algoprog.training import console  # pylint: disable=import-outside-toplevel
  console.quiet_libraries()  # As the launchers: no jax backend-probing INFO lines.
  del argv
  if _SIDE.value == "torch_worker":
    torch_worker_main(json.loads(_SPEC.value), _THREADS.value)
    return
  if _SIDE.value:
    side_memory_main(_SIDE.value, json.loads(_SPEC.value), warmup_steps(), _THREADS.value)
    return
  torch = import_torch()
  if torch is None:
    print(SKIP_MESSAGE)
    return
  import jax  # pylint: disable=import-outside-toplevel
  threads = _THREADS.value or schedulable_cores()
  torch.set_num_threads(threads)
  load_before = os.getloadavg()
  started = datetime.datetime.now(datetime.timezone.utc)
  print(f"date: {started:%Y-%m-%d %H:%M} UTC; cores: {schedulable_cores()}; CPU: "
        f"{cpu_model()}; torch {torch.__version__}, jax {jax.__version__}, "
        f"python {platform.python_version()}")
  print(f"torch intra-op threads: {torch.get_num_threads()} (= {threads}, the schedulable "
        f"cores, XLA:CPU's intra-op pool size); jax devices: {jax.devices()}")
  print(f"batch {_BATCH.value} x {_SEQUENCE_LENGTH.value}, vocab {_VOCAB.value:,}, f32; "
        f"{warmup_steps()} warm-up + {_STEPS.value} timed steps per side, alternating; "
        f"torch in its own process, {malloc_setting()}")
  print(f"load average (1, 5, 15 min) before: {fmt_load(load_before)}", flush=True)
  peak = matmul_peak()
  rows = []
  for model in _MODELS.value:
    for width in map(int, _WIDTHS.value):
      spec = row_spec(model, width, _BATCH.value, _SEQUENCE_LENGTH.value, _VOCAB.value)
      torch_side = TorchWorker(spec)
      jax_side = JaxSide(spec, *synthetic_batch(spec))
      print(f"  {model} d={width}: params torch {torch_side.params:,}, algoprog "
            f"{jax_side.params:,}; jax compile {jax_side.compile_s:.1f} s", flush=True)
      if torch_side.params != jax_side.params:
        raise AssertionError(f"{model} d={width}: parameter counts differ (torch "
                             f"{torch_side.params:,}, algoprog {jax_side.params:,})")
      row = {"model": model, "width": width, "params": jax_side.params,
             "flops_per_step": jax_side.flops_per_step,
             **alternate(torch_side, jax_side, _STEPS.value, warmup_steps(), _PAUSE.value)}
      torch_side.close()
      del torch_side, jax_side
      if _MEMORY.value:
        row["memory"] = {side: measure_side_memory(side, spec, warmup_steps())
                         for side in ("torch", "jax")}
      peak = max(peak, matmul_peak())
      print("  " + format_row(row), flush=True)
      rows.append(row)
  print(f"load average (1, 5, 15 min) after: {fmt_load(os.getloadavg())}")
  print(f"jitted f32 matmul peak (2048^3, best of bursts before and after every row): "
        f"{peak / 1e9:,.0f} GFLOP/s")
  print()
  print(markdown_table(rows, _BATCH.value * _SEQUENCE_LENGTH.value, peak))


def matmul_peak() -> float:
  """This CPU's jitted f32 matmul FLOP/s now (bench_train.py's measurement)."""
  from algoprog import hardware  # pylint: disable=import-outside-toplevel
  return hardware.matmul_flops_per_second(2048, repeats=5, bursts=3)


def cpu_model() -> str:
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


def fmt_load(load) -> str:
  return ", ".join(f"{x:.2f}" for x in load)


def format_row(row: dict) -> str:
  s = row["seconds"]
  return (f"{row['model']} d={row['width']}: best torch {min(s['torch']) * 1e3:,.0f} ms, "
          f"ours {min(s['jax']) * 1e3:,.0f} ms: ratio {min(s['torch']) / min(s['jax']):.2f}x")


def markdown_table(rows: list[dict], tokens_per_step: int, peak_flops_per_s: float) -> str:
  """One table: a row per model and width.

  "ceiling" is the ratio torch / ours would be if our step ran its model FLOPs at the
  jitted-matmul peak: no f32 implementation on this machine does better, so a target
  ratio above it cannot be met here (docs/performance.md)."""
  lines = [
      "| model | d | params | torch best / median ms | ours best / median ms "
      "| torch tokens/s | ours tokens/s | torch / ours (best) | torch / ours (median) "
      "| ours: % of matmul peak | ceiling: torch / ours at the peak "
      "| peak RSS torch / ours MiB (after imports) |",
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
  for r in rows:
    t, j = r["seconds"]["torch"], r["seconds"]["jax"]
    memory = "not measured"
    if "memory" in r:
      t_mem, j_mem = r["memory"]["torch"], r["memory"]["jax"]
      memory = (f"{t_mem['peak_rss_mib']:,.0f} / {j_mem['peak_rss_mib']:,.0f} "
                f"({t_mem['after_imports_mib']:,.0f} / {j_mem['after_imports_mib']:,.0f})")
    lines.append(
        f"| {r['model']} | {r['width']} | {r['params']:,} "
        f"| {min(t) * 1e3:,.0f} / {statistics.median(t) * 1e3:,.0f} "
        f"| {min(j) * 1e3:,.0f} / {statistics.median(j) * 1e3:,.0f} "
        f"| {tokens_per_step / min(t):,.0f} | {tokens_per_step / min(j):,.0f} "
        f"| {min(t) / min(j):.2f}x | {statistics.median(t) / statistics.median(j):.2f}x "
        f"| {r['flops_per_step'] / min(j) / peak_flops_per_s:.0%} "
        f"| {min(t) * peak_flops_per_s / r['flops_per_step']:.2f}x | {memory} |")
  lines.append("")
  lines.append("tokens/s from the best step. % of matmul peak: our model FLOPs per step "
               "(docs/flops.md) / best step / the jitted f32 matmul peak; the ceiling is "
               "the torch / ours ratio at 100% of that peak. Peak RSS: VmHWM of a fresh "
               "process per side and row that imports and builds only that side and runs "
               "warm-up + 2 steps (jax's includes XLA compilation); in brackets, the "
               "high-water mark after the imports.")
  return "\n".join(lines)


if __name__ == "__main__":
  app.run(main)
