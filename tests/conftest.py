"""Test session set-up: 8 simulated CPU devices for the data-parallel tests.

XLA reads the flag once, when jax initialises its backends, so it is set here before any
test module imports jax.
"""

import os
import pathlib
import shutil

import pytest

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

LICENSES = pathlib.Path("/usr/share/common-licenses")


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> pathlib.Path:
  """~300 KB of real English prose (the GNU/Apache/Artistic license texts every Debian
  machine ships), copied so tests never depend on the embedded corpus package."""
  folder = tmp_path_factory.mktemp("corpus")
  for name in ("GPL-3", "LGPL-3", "Apache-2.0", "Artistic", "GFDL-1.3", "MPL-2.0"):
    if (LICENSES / name).exists():
      shutil.copy(LICENSES / name, folder / f"{name}.txt")
  if not any(folder.iterdir()):
    pytest.skip("no license texts on this machine")
  return folder


def tiny_train_command(python: str, workdir: pathlib.Path, corpus: pathlib.Path,
                       cache: pathlib.Path, tokens: int, *extra: str) -> list[str]:
  """`python -m launch.train` of the modern preset at width 16 on byte-tokenised local
  text (`corpus`, e.g. the small_corpus fixture): the smallest real run, for tests that
  start the launcher as a user would."""
  return [python, "-m", "launch.train", "--config=configs/modern.py",
          f"--workdir={workdir}", "--config.data.source=text",
          f"--config.data.path={corpus}", "--config.data.tokenizer=byte",
          f"--config.data.cache_dir={cache}", "--config.data.validation_tokens=2048",
          "--config.data.batch_size=8", "--config.data.sequence_length=32",
          "--config.model.width=16", f"--config.train.tokens={tokens}", *extra]
