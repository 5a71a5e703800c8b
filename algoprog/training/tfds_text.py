"""A tensorflow-datasets builder for local text, so prepared text is cached as array_record.

`prepare_and_read(files, data_dir)` builds the dataset once per distinct text (the builder
config is named by a hash of the files' contents, in order, and the document rule; a file
rewritten with the same size and modification time is new text) and reads it back through
tfds' array_record data source: no TensorFlow needed either way. Document order
is the files' sorted order, and tfds' shuffling is disabled so the stream is in order.
"""

from __future__ import annotations

import hashlib
import logging
import pathlib
import re

import tensorflow_datasets as tfds

from algoprog.training import console, corpus

_MIN_DOCUMENT_CHARS = 1024
# Part of every builder config's name: documents cut by another rule are another dataset.
DOCUMENT_RULE = f"blank-line blocks merged to >= {_MIN_DOCUMENT_CHARS} chars, v1"


def split_into_documents(text: str) -> list[str]:
  """Blank-line-separated blocks, merged until each is >= 1 KB (the last may be shorter)."""
  documents, current = [], []
  size = 0
  for block in re.split(r"\n\s*\n", text):
    if not block.strip():
      continue
    current.append(block)
    size += len(block)
    if size >= _MIN_DOCUMENT_CHARS:
      documents.append("\n\n".join(current))
      current, size = [], 0
  if current:
    documents.append("\n\n".join(current))
  return documents


class LocalTextConfig(tfds.core.BuilderConfig):

  def __init__(self, *, files: list[pathlib.Path], digests: list[str] | None = None,
               **kwargs):
    """`digests`: the files' SHA-256 if the caller has them (else they are computed)."""
    digest = hashlib.sha256(DOCUMENT_RULE.encode())
    for sha256 in digests if digests is not None else [corpus.file_sha256(f) for f in files]:
      digest.update(f"|{sha256}".encode())
    super().__init__(name="files_" + digest.hexdigest()[:16], **kwargs)
    self.files = files


class LocalText(tfds.core.GeneratorBasedBuilder):
  """Documents from local UTF-8 text files: feature {"text": Text}, split "train"."""

  VERSION = tfds.core.Version("1.0.0")
  BUILDER_CONFIGS = []  # Configs are made per file set at run time.

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({"text": tfds.features.Text()}),
        disable_shuffling=True)

  # tfds prints "Downloading and preparing dataset ..." and "... downloaded and prepared"
  # to stdout in bold for every build, though nothing is downloaded here: local text is
  # prepared once per distinct content, quickly, and silently.
  def _log_download_bytes(self) -> None:
    pass

  def _log_download_done(self) -> None:
    pass

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing is downloaded.
    return {"train": self._generate_examples()}

  def _generate_examples(self):
    index = 0
    for path in self.builder_config.files:
      text = path.read_text(encoding="utf-8")  # Strict: data.text_file_sha256 checked it.
      for document in split_into_documents(text):
        yield index, {"text": document}
        index += 1


class _DropCustomConfigWarning(logging.Filter):
  """tfds warns "Using custom data configuration: LocalTextConfig(...)" for every builder
  made with a config it does not list: that is how this builder works, not a problem."""

  def filter(self, record: logging.LogRecord) -> bool:
    return not str(record.getMessage()).startswith(
        "Using custom data configuration: LocalTextConfig")


logging.getLogger("absl").addFilter(_DropCustomConfigWarning())  # tfds logs through absl.


def prepare_and_read(files: list[pathlib.Path], data_dir: pathlib.Path,
                     digests: list[str] | None = None) -> list[str]:
  """Builds (first call) and reads the documents of `files` via array_record; `digests`
  are the files' SHA-256 if known (they name the prepared dataset)."""
  builder = LocalText(config=LocalTextConfig(files=files, digests=digests),
                      data_dir=str(data_dir),
                      file_format="array_record")
  # Preparation's progress bars only where someone watches a terminal (algoprog.console).
  tfds.display_progress_bar(console.is_terminal())
  try:
    builder.download_and_prepare()
  except AssertionError as e:  # tfds' way of saying the generator yielded nothing.
    if "No examples were yielded" not in str(e):
      raise
    return []
  source = builder.as_data_source(split="train")
  return [source[i]["text"].decode("utf-8") for i in range(len(source))]
