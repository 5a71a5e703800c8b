"""What a person watching a run sees: our progress lines, not the libraries' chatter.

Orbax, tfds and etils log many INFO lines per checkpoint through absl's logger; the filter
keeps their warnings and errors and drops their INFO records.
"""

from __future__ import annotations

import logging

_CHATTY = ("/orbax/", "/tensorflow_datasets/", "/etils/", "/grain/")


class _DropLibraryInfo(logging.Filter):

  def filter(self, record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or not any(
        part in record.pathname for part in _CHATTY)


def quiet_libraries() -> None:
  """Installs the filter on absl's handler (call once from an entry point)."""
  from absl import logging as absl_logging
  absl_logging.get_absl_handler().addFilter(_DropLibraryInfo())
  logging.getLogger("absl").addFilter(_DropLibraryInfo())


def parse_flags_or_exit(argv: list[str]) -> list[str]:
  """absl flag parsing whose failures (an unknown config field, a value of the wrong type)
  end the program with one line naming the flag, instead of a traceback."""
  import sys
  from absl import flags
  try:
    return flags.FLAGS(argv)
  except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
    message = " ".join(str(e).replace("\\n", " ").replace("\\'", "'").split())
    if isinstance(e, AttributeError):  # ml_collections: "'key' Did you mean ...".
      message = "unknown config field '" + message.strip("'\"").replace(" Did", "; did")
    sys.exit(f"error: {message}")
