"""Orbax checkpoints of the train state together with the data-stream state.

The data stream is a pure function of the step (algoprog.training.data.TokenStream), so its state is a
small JSON record saved beside the model state in the same checkpoint: resuming restores
parameters, optimizer state and stream position atomically.
"""

from __future__ import annotations

import pathlib
from typing import Any

import jax
from absl import logging
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


class CheckpointError(RuntimeError):
  """No checkpoint of a run can be restored; the message names the folder."""


def restore_latest(mngr: ocp.CheckpointManager, abstract_state: Any
                   ) -> tuple[Any, dict] | None:
  """(state, stream_state) of the newest checkpoint that restores, placed as
  `abstract_state`'s shardings; None when there is none.

  A newer checkpoint that fails to restore (torn by a kill or a full disk) is logged and
  deleted, so that the steps after the older one are redone and saved again.

  Raises:
    CheckpointError: checkpoints exist but none restores.
  """
  steps = sorted(mngr.all_steps(), reverse=True)
  unreadable = []
  for step in steps:
    try:
      restored = mngr.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state), stream=ocp.args.JsonRestore()))
      if not isinstance(restored.stream, dict) or restored.stream.get("step") != step:
        raise ValueError(f"stream state {restored.stream!r} does not match the step")
    except Exception as e:  # Orbax/tensorstore raise many types for an unreadable step.
      logging.warning("checkpoint %s/%d cannot be restored (%s: %s); trying an older one",
                      mngr.directory, step, type(e).__name__,
                      (str(e).splitlines() or [""])[0][:200])
      unreadable.append(step)
      continue
    for bad in unreadable:  # Only once an older one restored: they would block its saves.
      logging.warning("deleting unreadable checkpoint %s/%d", mngr.directory, bad)
      mngr.delete(bad)
    return restored.state, restored.stream
  if steps:
    raise CheckpointError(f"{mngr.directory}: none of the checkpoints (steps "
                          f"{', '.join(map(str, steps))}) can be restored; move the folder "
                          "away to start the run over")
  return None


def abstract_with_shardings(abstract: Any, shardings: Any) -> Any:
  return jax.tree_util.tree_map(
      lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)
