"""Orbax checkpoints of the train state together with the data-stream state.

The data stream is a pure function of the step (algoprog.data.TokenStream), so its state is a
small JSON record saved beside the model state in the same checkpoint: resuming restores
parameters, optimizer state and stream position atomically.
"""

from __future__ import annotations

import pathlib
from typing import Any

import jax
import orbax.checkpoint as ocp


def manager(run_dir: pathlib.Path, keep: int) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                         enable_async_checkpointing=False)
  return ocp.CheckpointManager(pathlib.Path(run_dir).absolute() / "checkpoints",
                               options=options)


def save(mngr: ocp.CheckpointManager, step: int, state: Any, stream_state: dict) -> None:
  mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                          stream=ocp.args.JsonSave(stream_state)))
  mngr.wait_until_finished()


def restore_latest(mngr: ocp.CheckpointManager, abstract_state: Any
                   ) -> tuple[Any, dict] | None:
  """(state, stream_state) of the newest checkpoint, placed as `abstract_state`'s shardings."""
  step = mngr.latest_step()
  if step is None:
    return None
  restored = mngr.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_state), stream=ocp.args.JsonRestore()))
  return restored.state, restored.stream


def abstract_with_shardings(abstract: Any, shardings: Any) -> Any:
  return jax.tree_util.tree_map(
      lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)
