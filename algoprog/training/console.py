"""What a person watching a run sees: our progress lines, not the libraries' chatter.

Orbax, tfds and etils log many INFO lines per checkpoint through absl's logger; the filter
keeps their warnings and errors and drops their INFO records. jax's backend probing ("Unable
to initialize backend 'tpu'" on every machine without a TPU) is INFO too. Progress bars
(tfds' tqdm, when local text is prepared) are drawn only when stderr is a terminal
(`is_terminal`, read by algoprog.training.tfds_text): in a log file their carriage returns
and escape codes are noise.
"""

from __future__ import annotations

import logging
import sys

_CHATTY = ("/orbax/", "/tensorflow_datasets/", "/etils/", "/grain/", "/jax/_src/xla_bridge")


class _DropLibraryInfo(logging.Filter):

  def filter(self, record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or not any(
        part in record.pathname for part in _CHATTY)


def quiet_libraries() -> None:
  """Installs the filter on absl's handler (call once from an entry point)."""
  from absl import logging as absl_logging
  absl_logging.get_absl_handler().addFilter(_DropLibraryInfo())
  logging.getLogger("absl").addFilter(_DropLibraryInfo())


def is_terminal() -> bool:
  """Whether stderr (where progress goes) is an interactive terminal."""
  return hasattr(sys.stderr, "isatty") and sys.stderr.isatty()


def os_error_line(e: OSError, workdir) -> str:
  """`error: PATH: reason (workdir ...; rerun to resume)` for a disk that is read-only,
  full or missing a folder: what was written stays, so the same command resumes later."""
  return (f"error: {e.filename or workdir}: {e.strerror or _one_line(e)} (workdir {workdir}; "
          "rerun the same command to resume once it is writable)")


def _one_line(e: BaseException) -> str:
  return " ".join(str(e).split())[:300]


def define_integer_list(name: str, default: list[int], help_text: str,
                        minimum: int = 1):
  """An absl flag taking a comma list of integers >= `minimum` (`--widths=32,64`); a bad
  item fails flag parsing with one line naming the flag and the item."""
  from absl import flags

  class Parser(flags.ListParser):

    def parse(self, argument):
      items = argument if isinstance(argument, list) else super().parse(argument)
      values = []
      for item in items:
        try:
          value = int(str(item).strip())
        except ValueError:
          value = None
        if value is None or value < minimum:
          raise ValueError(f"expected a comma list of integers >= {minimum}; got {item!r}")
        values.append(value)
      return values

    def flag_type(self):
      return "comma-separated list of integers"

  return flags.DEFINE(Parser(), name, default, help_text, serializer=flags.CsvListSerializer(","))


def with_config_files_found(argv: list[str]) -> list[str]:
  """argv with each config-file flag's path (`--config=configs/modern.py[:args]` or
  `--config configs/modern.py`) replaced by the file it names as
  config.find_config_file finds it: the shipped configs/ work from any directory, also
  after a non-editable install. Other arguments are returned unchanged."""
  from absl import flags
  from ml_collections.config_flags import config_flags
  from algoprog.training import config as config_lib
  names = {name for name in flags.FLAGS
           if isinstance(flags.FLAGS[name].parser, config_flags.ConfigFileFlagParser)}

  def found(value: str) -> str:
    path, colon, args = value.partition(":")
    return str(config_lib.find_config_file(path)) + colon + args

  out = list(argv[:1])
  for i, arg in enumerate(argv[1:], 1):
    name, equals, value = arg.lstrip("-").partition("=")
    if arg.startswith("-") and name in names and equals:
      arg = f"{arg[:len(arg) - len(value)]}{found(value)}"
    elif i > 1 and argv[i - 1].lstrip("-") in names and argv[i - 1].startswith("-"):
      arg = found(arg)  # The value of `--config PATH`.
    out.append(arg)
  return out


def parse_flags_or_exit(argv: list[str]) -> list[str]:
  """absl flag parsing whose failures (an unknown config field, a value of the wrong type,
  a config file that is missing or does not run, a bad item of a comma list) end the
  program with one line naming the flag or file, instead of a traceback. Config-file paths
  are found as `with_config_files_found` says."""
  import sys
  from absl import flags
  argv = with_config_files_found(argv)
  try:
    remaining = flags.FLAGS(argv)
  except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
    message = " ".join(str(e).replace("\\n", " ").replace("\\'", "'").split())
    if isinstance(e, AttributeError):  # ml_collections: "'key' Did you mean ...".
      message = "unknown config field '" + message.strip("'\"").replace(" Did", "; did")
    sys.exit(f"error: {message}")
  except Exception as e:  # A config file's own code failed (SyntaxError, NameError, ...).
    files = [a.split("=", 1)[1] for a in argv[1:] if a.endswith(".py") and "=" in a]
    sys.exit(f"error: {', '.join(files) or 'a config file'}: cannot load it "
             f"({type(e).__name__}: {_one_line(e)})")
  for name in flags.FLAGS:  # A missing config file surfaces only when its value is read.
    value = flags.FLAGS[name].value
    if type(value).__name__ == "_ErrorConfig":
      try:
        value.to_dict()
      except Exception as e:
        lines = [l.strip() for l in str(e).splitlines() if l.strip()]
        sys.exit(f"error: --{name}: cannot load the config file ({lines[-1] if lines else e})")
  return remaining


def format_duration(seconds: float | None) -> str:
  """'1h 02m', '3m 05s', '42s'; '?' for None."""
  if seconds is None:
    return "?"
  seconds = int(round(seconds))
  if seconds >= 3600:
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
  if seconds >= 60:
    return f"{seconds // 60}m {seconds % 60:02d}s"
  return f"{seconds}s"
