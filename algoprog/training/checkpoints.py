"""Orbax checkpoints of the train state together with the data-stream state.

The data stream is a pure function of the step (algoprog.training.data.TokenStream), so its state is a
small JSON record saved beside the model state in the same checkpoint: resuming restores
parameters, optimizer state and stream position atomically.
"""

from __future__ import annotations

import logging as logging_lib
import pathlib
import sys
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


def _drop_closed_loop_callbacks() -> None:
  """Silences the noise of a failed restore for the rest of the process (a fallback to an
  older checkpoint has then succeeded, and the warning says which step was unreadable).

  Orbax closes its asyncio loop while tensorstore reads of the failed restore are still
  pending; each one's completion, calling into the closed loop from a tensorstore thread,
  prints a RuntimeError("Event loop is closed") traceback through sys.unraisablehook
  (dozens of them, when the race goes that way), and failed read tasks nobody awaited are
  logged by asyncio as "Task exception was never retrieved". Every other unraisable
  exception and asyncio record still goes through.
  """
  previous = sys.unraisablehook
  if getattr(previous, "_algoprog_drops_closed_loop", False):
    return

  def hook(unraisable):
    if not (isinstance(unraisable.exc_value, RuntimeError)
            and str(unraisable.exc_value) == "Event loop is closed"):
      previous(unraisable)

  hook._algoprog_drops_closed_loop = True
  sys.unraisablehook = hook
  logging_lib.getLogger("asyncio").addFilter(_drop_orbax_unretrieved_tasks)


def _drop_orbax_unretrieved_tasks(record: logging_lib.LogRecord) -> bool:
  message = record.getMessage()
  return not ("Task exception was never retrieved" in message and "/orbax/" in message)


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
  _drop_closed_loop_callbacks()
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
