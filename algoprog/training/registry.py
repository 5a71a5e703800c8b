"""Registries of swappable components: the names a config may use, and where plug-ins go.

One `Registry` per component kind, each naming the config field that selects from it:

  OPTIMIZERS  optim.name        factory(optim, schedule, decay_mask) -> optax transformation
  MODELS      model.kind        factory(model, vocab_size) -> flax module, tokens -> logits
  ATTENTION   model.attention   factory(model, name) -> flax module, [B, L, D] -> [B, L, D]
  FFNS        model.ffn         factory(model, name) -> flax module, [B, L, D] -> [B, L, D]
  NORMS       model.norm        factory(model, name) -> flax module, [B, L, D] -> [B, L, D]
  POSITIONS   model.positions   factory(model, name) -> flax module adding positions to the
                                token embeddings [B, L, D] (None for the built-ins, which
                                models.Transformer applies itself)

`model` is a model_spec.ModelSpec (the resolved, typed config.model); `optim` is
config.optim.

The built-ins (algoprog.training.models, algoprog.training.optim) register themselves the
same way, so their names are ordinary registered names; `ensure_builtins` imports those
modules on the first lookup or registration, so importing the config (or loading a preset)
pulls in no flax. A plug-in is a Python module that calls `register` on import; a config
lists such modules in `plugins` (comma-separated dotted module paths or .py files), and
`config.resolve` imports them before validating, so a training process started by a sweep
sees the same registrations (docs/extending.md).

FLOPs: an entry may carry `flops`, its training (forward + backward) FLOPs per token:
  model components: flops(model, vocab_size, sequence_length, width) -> {component: FLOPs}
    (`model` a model_spec.ModelSpec, `width` None or a possibly traced jax scalar),
    replacing the built-in components of its kind (algoprog.training.flops.PLUGIN_COMPONENTS);
  optimizers: FLOPs per parameter per optimizer step (a number).
Without it, the trainer counts the compiled train step with XLA's cost analysis and records
that (and a warning) in run.json.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import pathlib
import sys
from typing import Any, Callable


class RegistryError(ValueError):
  """A registration or a plug-in module is unusable; the message names it."""


@dataclasses.dataclass(frozen=True)
class Entry:
  """One registered component.

  Attributes:
    name: the config value selecting it.
    factory: builds it (the signature is the registry's, see the module docstring).
    flops: its FLOPs (see the module docstring), or None: counted by XLA at run time.
    builtin: registered by algoprog itself (the closed-form FLOPs and parameter counts
      know it).
    module: the module that registered it (a file plug-in: its path), for error messages.
  """
  name: str
  factory: Callable[..., Any] | None
  flops: Any = None
  builtin: bool = False
  module: str = ""


class Registry:
  """Named components of one kind, selected by one config field."""

  def __init__(self, kind: str, field: str):
    self.kind = kind
    self.field = field
    self._entries: dict[str, Entry] = {}

  def register(self, name: str, factory: Callable[..., Any] | None, flops: Any = None, *,
               builtin: bool = False, replace: bool = False, module: str | None = None
               ) -> Entry:
    """Adds `name`; registering a taken name needs replace=True (built-ins never).

    `module` names the registering module in error messages (default: the caller's).
    """
    ensure_builtins()  # A plug-in taking a built-in's name then fails here, not later.
    module = module or _caller_module()
    if not isinstance(name, str) or not name or "," in name:
      raise RegistryError(f"{self.field}: a registered name must be a non-empty string "
                          f"without commas (registered by {module}); got {name!r}")
    old = self._entries.get(name)
    if old is not None and (old.builtin or not replace):
      if old.factory is factory and old.flops is flops:
        return old  # The same module imported twice (e.g. as a file and as a module).
      raise RegistryError(
          f"{self.field}: {name!r} is already registered"
          + (f" (built in, by {old.module})" if old.builtin else f" by {old.module}")
          + f"; {module} registers it again"
          + ("" if old.builtin else " (pass replace=True to replace it)"))
    entry = Entry(name, factory, flops, builtin, module)
    self._entries[name] = entry
    return entry

  def unregister(self, name: str) -> None:
    """Removes a plug-in entry (tests, notebooks re-running a cell); built-ins stay."""
    entry = self._entries.get(name)
    if entry is not None and not entry.builtin:
      del self._entries[name]

  def names(self) -> tuple[str, ...]:
    ensure_builtins()
    return tuple(self._entries)

  def __contains__(self, name: object) -> bool:
    ensure_builtins()
    return name in self._entries

  def get(self, name: str) -> Entry:
    """The entry of `name`; a RegistryError listing the registered names if there is none."""
    ensure_builtins()
    if name not in self._entries:
      raise RegistryError(self.unknown_message(name))
    return self._entries[name]

  def unknown_message(self, name: object) -> str:
    ensure_builtins()
    return (f"{self.field}: expected one of {', '.join(self._entries)} (registered "
            f"{self.kind}s; add one with a plug-in listed in `plugins`, see "
            f"docs/extending.md); got {name!r}")


OPTIMIZERS = Registry("optimizer", "optim.name")
MODELS = Registry("model", "model.kind")
ATTENTION = Registry("attention", "model.attention")
FFNS = Registry("FFN", "model.ffn")
NORMS = Registry("norm", "model.norm")
POSITIONS = Registry("position scheme", "model.positions")

# Model-component registries by the config field (under `model`) that selects from them.
MODEL_COMPONENTS = {"attention": ATTENTION, "ffn": FFNS, "norm": NORMS,
                    "positions": POSITIONS}

# The modules registering the built-ins (they import flax and optax).
BUILTIN_MODULES = ("algoprog.training.models", "algoprog.training.optim")
_builtins_state = "unloaded"  # -> "loading" (while importing them) -> "loaded".


def ensure_builtins() -> None:
  """Imports BUILTIN_MODULES once, so their names are registered before any lookup.

  Registrations made while they import (their own) do not re-enter. A failed import is
  retried at the next lookup.
  """
  global _builtins_state
  if _builtins_state != "unloaded":
    return
  _builtins_state = "loading"
  try:
    for name in BUILTIN_MODULES:
      importlib.import_module(name)
  except BaseException:
    _builtins_state = "unloaded"
    raise
  _builtins_state = "loaded"


def _caller_module() -> str:
  """The module calling Registry.register: its name, or its file for a file plug-in."""
  frame = sys._getframe(2)  # pylint: disable=protected-access
  name = frame.f_globals.get("__name__", "?")
  path = frame.f_globals.get("__file__")
  return path if name.startswith(_FILE_PLUGIN_PREFIX) and path else name


_FILE_PLUGIN_PREFIX = "algoprog_plugin_"  # Module names of plug-ins loaded from .py files.


def _load_file(path: pathlib.Path):
  name = f"{_FILE_PLUGIN_PREFIX}{path.stem}"
  module = sys.modules.get(name)
  if module is not None and getattr(module, "__file__", None) == str(path):
    return module
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  sys.modules[name] = module
  try:
    spec.loader.exec_module(module)
  except BaseException:
    del sys.modules[name]
    raise
  return module


def import_plugins(plugins: str) -> list[Any]:
  """Imports each comma-separated entry of `plugins` (the config field): a dotted module
  path importable from the working directory / PYTHONPATH, or a path to a .py file.
  Importing a module twice runs it once. Raises RegistryError naming the entry that fails."""
  modules = []
  for entry in (p.strip() for p in (plugins or "").split(",")):
    if not entry:
      continue
    try:
      if entry.endswith(".py"):
        path = pathlib.Path(entry).expanduser().resolve()
        if not path.is_file():
          raise RegistryError(f"plugins: no plug-in file {entry} (expected a .py file or a "
                              "dotted module path)")
        modules.append(_load_file(path))
      else:
        modules.append(importlib.import_module(entry))
    except RegistryError:
      raise
    except Exception as e:  # The plug-in's own error, reduced to one line naming it.
      detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
      raise RegistryError(f"plugins: importing {entry!r} failed: {type(e).__name__}: "
                          f"{detail} (a dotted module path importable from the working "
                          "directory or PYTHONPATH, or a .py file)") from e
  return modules
