"""Corpora, tokenizers, the train/validation split and the batch stream.

One run's data, from config to batches:

  documents (embedded | local text via our tfds builder | a tfds catalog dataset)
    -> split by documents: a held-out tail for validation, the rest for training
    -> tokenizer (byte | BPE trained on the training documents only | GPT-2 from local files)
    -> two flat token arrays, each document followed by an end-of-text token, cached on disk
    -> `TokenStream`: batch row r reads the r-th contiguous segment of the training array,
       step t reads the t-th window of every segment.

The stream layout gives every batch row one contiguous stream of text, which the LSTM needs
to carry its state across steps, and makes the batch at step t a pure function of t: resuming
needs only the step, and no token is read twice in an epoch. The validation array is a
separate array; the stream cannot index into it (asserted).
"""

from __future__ import annotations

import codecs
import dataclasses
import fcntl
import hashlib
import json
import os
import pathlib
from typing import Iterable, Iterator, Protocol

import ml_collections
import numpy as np

from algoprog.training import corpus
from algoprog.training.data_error import DataError  # Re-exported: data.DataError.

END_OF_TEXT = "<|endoftext|>"
_BYTES_PER_TOKEN_BOUND = 8  # Generous bound for English BPE, to size the held-out tail.
# Part of every token-cache key: a cache written under another format is never read.
TOKEN_CACHE_FORMAT = "tokens-v2"
# What the trained BPE is, beyond its vocabulary size (part of the cache key and fingerprint).
BPE_RECIPE = ("byte-level BPE: GPT-2 pre-tokenisation without prefix space, byte alphabet, "
              f"{END_OF_TEXT} special; tokenizers BpeTrainer on the training documents")
BYTE_RECIPE = f"UTF-8 bytes 0-255, {END_OF_TEXT} = 256"


# ---------------------------------------------------------------------------------------
# Tokenizers.


class Tokenizer(Protocol):
  name: str
  vocab_size: int
  end_of_text_id: int

  def encode(self, texts: list[str]) -> list[list[int]]:
    ...

  def decode(self, ids: Iterable[int]) -> str:
    ...


class ByteTokenizer:
  """UTF-8 bytes 0..255 plus end-of-text = 256 (vocab 257)."""
  name = "byte"
  vocab_size = 257
  end_of_text_id = 256

  def encode(self, texts: list[str]) -> list[list[int]]:
    return [list(t.encode("utf-8")) for t in texts]

  def decode(self, ids: Iterable[int]) -> str:
    return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")

  def save(self, path: pathlib.Path) -> None:
    path.write_text(json.dumps({"name": "byte"}))


class HFTokenizer:
  """A byte-level BPE from the `tokenizers` library (trained here, or GPT-2's files)."""

  def __init__(self, tokenizer, name: str):
    self._tokenizer = tokenizer
    self.name = name
    self.vocab_size = tokenizer.get_vocab_size()
    self.end_of_text_id = tokenizer.token_to_id(END_OF_TEXT)
    if self.end_of_text_id is None:
      raise DataError(f"tokenizer {name}: has no {END_OF_TEXT} token")

  def encode(self, texts: list[str]) -> list[list[int]]:
    return [e.ids for e in self._tokenizer.encode_batch(texts)]

  def decode(self, ids: Iterable[int]) -> str:
    return self._tokenizer.decode(list(ids))

  def save(self, path: pathlib.Path) -> None:
    self._tokenizer.save(str(path))


def _byte_level_bpe():
  from tokenizers import Tokenizer as HF, decoders, models, pre_tokenizers
  tok = HF(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  return tok


def train_bpe(documents: list[str], vocab_size: int) -> HFTokenizer:
  """Byte-level BPE (GPT-2 style pre-tokenisation) trained on `documents`."""
  from tokenizers import pre_tokenizers, trainers
  tok = _byte_level_bpe()
  trainer = trainers.BpeTrainer(
      vocab_size=vocab_size, special_tokens=[END_OF_TEXT], show_progress=False,
      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
  tok.train_from_iterator(documents, trainer=trainer)
  return HFTokenizer(tok, f"bpe{vocab_size}")


def gpt2_files(vocab_dir: str) -> tuple[pathlib.Path, pathlib.Path]:
  """(vocab.json or encoder.json, merges.txt or vocab.bpe) in `vocab_dir`; DataError if
  either is missing."""
  folder = pathlib.Path(vocab_dir).expanduser()
  vocab = next((folder / n for n in ("vocab.json", "encoder.json") if (folder / n).exists()),
               None)
  merges = next((folder / n for n in ("merges.txt", "vocab.bpe") if (folder / n).exists()),
                None)
  if vocab is None or merges is None:
    raise DataError(f"data.gpt2_vocab_dir: expected vocab.json and merges.txt in {folder}")
  return vocab, merges


def _check_gpt2_vocab(vocab: pathlib.Path) -> None:
  """DataError naming `vocab` unless it is a JSON object mapping tokens to integer ids."""
  expected = "expected GPT-2's vocab.json: a JSON object mapping each token to its integer id"
  try:
    payload = json.loads(vocab.read_bytes().decode("utf-8"))
  except (UnicodeDecodeError, ValueError) as e:
    raise DataError(f"data.gpt2_vocab_dir: {vocab} is not valid UTF-8 JSON "
                    f"({str(e).splitlines()[0][:120]}); {expected}") from None
  if not isinstance(payload, dict) or not payload:
    raise DataError(f"data.gpt2_vocab_dir: {vocab} holds a JSON "
                    f"{type(payload).__name__}; {expected}")
  bad = next(((k, v) for k, v in payload.items()
              if isinstance(v, bool) or not isinstance(v, int) or v < 0), None)
  if bad is not None:
    raise DataError(f"data.gpt2_vocab_dir: {vocab}: token {bad[0][:40]!r} maps to "
                    f"{bad[1]!r}; {expected} (>= 0)")


def gpt2_tokenizer(vocab_dir: str) -> HFTokenizer:
  """GPT-2's BPE (vocab 50,257) from local vocab.json (or encoder.json) + merges.txt
  (or vocab.bpe). Nothing is downloaded. A file that is not in GPT-2's format is a
  DataError naming it and what was expected."""
  from tokenizers import models
  vocab, merges = gpt2_files(vocab_dir)
  _check_gpt2_vocab(vocab)
  tok = _byte_level_bpe()
  try:
    tok.model = models.BPE.from_file(str(vocab), str(merges))
  except Exception as e:  # The tokenizers library raises plain Exceptions for bad files.
    raise DataError(f"data.gpt2_vocab_dir: {merges} cannot be read as GPT-2's merges "
                    f"({str(e).splitlines()[0][:120]}); expected one merge, two tokens of "
                    f"{vocab.name} separated by a space, per line") from None
  if tok.token_to_id(END_OF_TEXT) is None:
    tok.add_special_tokens([END_OF_TEXT])
  return HFTokenizer(tok, "gpt2")


def load_tokenizer(path: pathlib.Path) -> Tokenizer:
  """Reloads a tokenizer saved next to a token cache."""
  from tokenizers import Tokenizer as HF
  text = path.read_text()
  if json.loads(text).get("name") == "byte":
    return ByteTokenizer()
  tok = HF.from_str(text)
  return HFTokenizer(tok, path.stem)


# ---------------------------------------------------------------------------------------
# Document sources.


def _check_is_text(file: pathlib.Path) -> pathlib.Path:
  """`file`, or DataError if its first 64 KB hold a NUL byte or are not mostly UTF-8."""
  with open(file, "rb") as f:
    head = f.read(1 << 16)
  if b"\0" in head or head.decode("utf-8", errors="replace").count("\ufffd") > len(head) // 100:
    raise DataError(f"data.path: expected UTF-8 text; {file} looks binary")
  return file


def text_file_sha256(file: pathlib.Path) -> str:
  """SHA-256 of the file's bytes, which must be UTF-8 all through: a DataError names the
  file and the byte offset of the first byte that is not (latin-1 text, say), rather than
  training on U+FFFD replacements."""
  digest = hashlib.sha256()
  decoder = codecs.getincrementaldecoder("utf-8")()
  offset = 0  # Bytes of the file given to the decoder so far.
  with open(file, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
      pending = len(decoder.getstate()[0])  # An unfinished character from the last block.
      try:
        decoder.decode(block)
      except UnicodeDecodeError as e:
        raise DataError(_not_utf8(file, offset - pending + e.start, e.object[e.start])) from None
      offset += len(block)
    pending = len(decoder.getstate()[0])
    try:
      decoder.decode(b"", final=True)
    except UnicodeDecodeError as e:  # The file ends inside a character.
      raise DataError(_not_utf8(file, offset - pending, e.object[e.start])) from None
  return digest.hexdigest()


def _not_utf8(file: pathlib.Path, offset: int, byte: int) -> str:
  return (f"data.path: expected UTF-8 text; {file} has a byte that is not UTF-8 at byte "
          f"offset {offset} (0x{byte:02x}; latin-1 or another encoding? convert the file, "
          "e.g. iconv -f latin1 -t utf-8)")


def _text_files(path: str) -> list[pathlib.Path]:
  root = pathlib.Path(path).expanduser()
  if root.is_file():
    return [_check_is_text(root)]
  if root.is_dir():
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".txt", ".md"))
    if files:
      return [_check_is_text(f) for f in files]
    raise DataError(f"data.path: expected *.txt files in folder {root}; found none")
  raise DataError(f"data.path: expected an existing text file or folder; got {path!r}")


def local_text_documents(path: str, cache_dir: pathlib.Path) -> list[str]:
  """Documents of a local text file/folder, prepared once as array_record by our tfds builder.

  Each file is split into documents at blank-line-separated blocks of >= 1 KB, so a single
  large book still splits into many documents.
  """
  from algoprog.training import tfds_text
  files = _text_files(path)
  digests = [text_file_sha256(f) for f in files]  # Checks the encoding, keys the cache.
  return tfds_text.prepare_and_read(files, cache_dir / "tfds", digests)


def tfds_documents(data: ml_collections.ConfigDict, split: str) -> Iterator[str]:
  """Documents of a tfds catalog dataset, read via array_record data sources (no TF)."""
  import tensorflow_datasets as tfds
  try:
    source = tfds.data_source(data.tfds_name, split=split,
                              data_dir=data.tfds_data_dir or None, download=False)
  except Exception as e:  # tfds raises many types; all mean "not prepared here".
    raise DataError(f"data.tfds_name: cannot open {data.tfds_name!r} split {split!r} in "
                    f"data.tfds_data_dir={data.tfds_data_dir!r} without downloading "
                    f"({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
  # One record at a time, on demand: the caller decides how many it needs (c4/en holds
  # 365M documents; listing them all is what `take_documents` avoids).
  for i in range(len(source)):
    value = source[i][data.tfds_text_key]
    yield value.decode("utf-8") if isinstance(value, bytes) else str(value)


def take_documents(documents: Iterable[str], max_documents: int = 0, max_bytes: int = 0
                   ) -> list[str]:
  """The first documents of a (lazy) stream: at most `max_documents` (0: no limit), and
  none after the UTF-8 bytes taken reach `max_bytes` (0: no limit). Pulls no document
  beyond the last one it keeps."""
  taken, size = [], 0
  stream = iter(documents)
  while not ((max_documents and len(taken) >= max_documents)
             or (max_bytes and size >= max_bytes)):
    document = next(stream, None)
    if document is None:
      break
    taken.append(document)
    size += len(document.encode("utf-8"))
  return taken


def read_documents(data: ml_collections.ConfigDict, cache_dir: pathlib.Path) -> list[str]:
  """The documents of the configured source in their fixed order, read lazily up to
  data.max_documents documents and data.max_bytes bytes (`take_documents`)."""
  if data.source == "embedded":
    source = corpus.embedded_documents()
  elif data.source == "text":
    source = local_text_documents(data.path, cache_dir)
  else:
    source = tfds_documents(data, data.tfds_train_split)
  documents = take_documents(source, data.max_documents, data.max_bytes)
  documents = [d for d in documents if d.strip()]
  if not documents:
    raise DataError(f"data.source={data.source!r}: the corpus holds no text")
  return documents


# ---------------------------------------------------------------------------------------
# The split and the token cache.


@dataclasses.dataclass(frozen=True)
class Corpus:
  """Tokenised training and validation arrays and where they came from.

  Attributes:
    train_tokens: int32 [N_train], documents separated by end-of-text.
    validation_tokens: int32 [N_validation], disjoint documents from training.
    tokenizer: the tokenizer both were encoded with.
    fingerprint: source, sizes and sha256 of both arrays: recorded with every run.
  """
  train_tokens: np.ndarray
  validation_tokens: np.ndarray
  tokenizer: Tokenizer
  fingerprint: dict

  @property
  def vocab_size(self) -> int:
    return self.tokenizer.vocab_size


def _flatten(token_lists: list[list[int]], end_of_text_id: int) -> np.ndarray:
  sizes = [len(t) + 1 for t in token_lists]
  flat = np.empty(sum(sizes), np.int32)
  pos = 0
  for ids in token_lists:
    flat[pos: pos + len(ids)] = ids
    flat[pos + len(ids)] = end_of_text_id
    pos += len(ids) + 1
  return flat


def _encode_flat(tokenizer: Tokenizer, documents: list[str], chunk: int = 10_000
                 ) -> np.ndarray:
  """`_flatten` of the documents' tokens, encoded `chunk` documents at a time: peak memory
  is the int32 array plus one chunk's Python lists, not lists of every token (a c4 corpus
  for the paper preset's largest run is ~1.2B tokens)."""
  parts = [_flatten(tokenizer.encode(documents[i:i + chunk]), tokenizer.end_of_text_id)
           for i in range(0, len(documents), chunk)]
  return np.concatenate(parts) if parts else np.zeros(0, np.int32)


def split_documents(documents: list[str], holdout_bytes: int,
                    groups: list[str] | None = None) -> tuple[list[str], list[str]]:
  """(train, held-out): the held-out tail is the last documents totalling >= holdout_bytes,
  capped at half the corpus.

  `groups` (one key per document, e.g. corpus.twin_group) keeps each group on one side. A
  group stands where one of its documents stands, picked by a hash of its key (not by
  position: a group picked by its last document would be held out three times as often as
  a single document, and its bytes with it); the tail is then taken group by group, and the
  held-out list is in that order with a group's documents together, so that the validation
  prefix is a tail sample too. Training keeps corpus order. With distinct keys this is
  exactly the plain tail.
  """
  sizes = np.array([len(d.encode("utf-8")) for d in documents])
  total = int(sizes.sum())
  target = min(holdout_bytes, total // 2)
  if groups is not None and len(set(groups)) > 1:
    if len(groups) != len(documents):
      raise DataError(f"split: {len(groups)} group keys for {len(documents)} documents")
    members: dict[str, list[int]] = {}
    for i, key in enumerate(groups):
      members.setdefault(key, []).append(i)
    position = {key: ids[int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(ids)]
                for key, ids in members.items()}
    held, held_bytes = [], 0
    for key in sorted(members, key=position.get, reverse=True):
      if held_bytes >= target:
        break
      held.append(key)
      held_bytes += int(sizes[members[key]].sum())
    if len(held) < len(members):
      held_set = set(held)
      return ([d for d, key in zip(documents, groups) if key not in held_set],
              [documents[i] for key in reversed(held) for i in members[key]])
  tail = np.cumsum(sizes[::-1])
  n_holdout = int(np.searchsorted(tail, target) + 1)
  if n_holdout >= len(documents):  # One huge document: split it by characters instead.
    cut = len(documents[-1]) - min(target, len(documents[-1]) // 2)
    return documents[:-1] + [documents[-1][:cut]], [documents[-1][cut:]]
  return documents[:-n_holdout], documents[-n_holdout:]


def embedded_groups(data: ml_collections.ConfigDict, documents: list[str]) -> list[str]:
  """corpus.twin_group of each of `documents` (read_documents of the embedded corpus)."""
  records = corpus.embedded_records()
  if data.max_documents:
    records = records[: data.max_documents]
  groups = [corpus.twin_group(r["source"], r["id"]) for r in records if r["text"].strip()]
  if len(groups) != len(documents):  # read_documents kept other documents than these.
    raise DataError(f"data.source='embedded': {len(documents)} documents but "
                    f"{len(groups)} split groups; rebuild the corpus with "
                    "`python -m launch.corpus`")
  return groups


def _sha256(array: np.ndarray) -> str:
  return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def default_cache_dir(data: ml_collections.ConfigDict) -> pathlib.Path:
  return pathlib.Path(data.cache_dir or os.environ.get(
      "ALGOPROG_CACHE", "~/.cache/algoprog")).expanduser()


def load_corpus(data: ml_collections.ConfigDict) -> Corpus:
  """Reads, splits, tokenises and caches the configured corpus; cheap on a second call.

  Concurrent callers (a sweep's worker processes) take turns on a lock file in the cache
  folder, so the tfds preparation, tokenizer training and token cache are built once.
  """
  cache_dir = default_cache_dir(data)
  cache_dir.mkdir(parents=True, exist_ok=True)
  with open(cache_dir / ".lock", "a") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
      return _load_corpus(data, cache_dir)
    finally:
      fcntl.flock(lock, fcntl.LOCK_UN)


def tokenizer_settings(data: ml_collections.ConfigDict) -> dict:
  """Everything that decides the tokenizer, by content: its kind and recipe, the BPE's
  vocabulary size, or the SHA-256 of GPT-2's vocab and merges files (not their path: the
  same files anywhere give the same tokens, other files in the same folder do not)."""
  if data.tokenizer == "byte":
    return {"name": "byte", "recipe": BYTE_RECIPE}
  if data.tokenizer == "bpe":
    return {"name": "bpe", "recipe": BPE_RECIPE, "vocab_size": int(data.bpe_vocab_size)}
  vocab, merges = gpt2_files(data.gpt2_vocab_dir)
  return {"name": "gpt2", "vocab_sha256": corpus.file_sha256(vocab),
          "merges_sha256": corpus.file_sha256(merges)}


def split_rule(data: ml_collections.ConfigDict) -> str:
  """How the validation tokens are chosen (part of the cache key and the fingerprint)."""
  if data.source == "tfds" and data.tfds_validation_split:
    return (f"tfds-split-v1: the first data.validation_tokens tokens of split "
            f"{data.tfds_validation_split!r}")
  bytes_per_token = 1 if data.tokenizer == "byte" else _BYTES_PER_TOKEN_BOUND
  rule = (f"tail-v1: the first data.validation_tokens tokens of the last documents holding "
          f">= {bytes_per_token} bytes per validation token, at most half the corpus")
  return f"{rule}; {corpus.SPLIT_RULE}" if data.source == "embedded" else rule


def fingerprint_differences(recorded: dict, planned: dict) -> list[str]:
  """The data-fingerprint fields that differ ("train_sha256: ran 'ab..', planned 'cd..'"),
  over the fields both record: a fingerprint written before a field existed is compared
  on the rest (the token arrays' SHA-256 always among them)."""
  planned = json.loads(json.dumps(planned))  # As run.json stores it.
  return [f"data_fingerprint.{key}: ran {recorded[key]!r}, planned {planned[key]!r}"
          for key in sorted(set(recorded) & set(planned)) if recorded[key] != planned[key]]


def _load_corpus(data: ml_collections.ConfigDict, cache_dir: pathlib.Path) -> Corpus:
  documents = read_documents(data, cache_dir)
  source_digest = hashlib.sha256()
  for d in documents:
    source_digest.update(d.encode("utf-8"))
    source_digest.update(b"\0")
  settings = tokenizer_settings(data)
  rule = split_rule(data)
  # Every input of the token arrays, by content: the documents, the tokenizer (its files'
  # bytes for GPT-2), the validation size and the split rule.
  cache_key = hashlib.sha256(json.dumps(
      {"format": TOKEN_CACHE_FORMAT, "documents_sha256": source_digest.hexdigest(),
       "tokenizer": settings, "validation_tokens": int(data.validation_tokens),
       "split_rule": rule}, sort_keys=True).encode()).hexdigest()
  folder = cache_dir / "tokens" / cache_key[:16]
  meta_path = folder / "meta.json"
  if meta_path.exists():
    fingerprint = json.loads(meta_path.read_text())
    return Corpus(np.load(folder / "train.npy", mmap_mode="r"),
                  np.load(folder / "validation.npy", mmap_mode="r"),
                  load_tokenizer(folder / "tokenizer.json"), fingerprint)

  if data.source == "tfds" and data.tfds_validation_split:
    train_docs = documents
    # Enough documents for the validation tokens, not the whole split.
    holdout_docs = take_documents(tfds_documents(data, data.tfds_validation_split),
                                  max_bytes=data.validation_tokens * _BYTES_PER_TOKEN_BOUND)
  else:
    bytes_per_token = 1 if data.tokenizer == "byte" else _BYTES_PER_TOKEN_BOUND  # split_rule.
    train_docs, holdout_docs = split_documents(
        documents, data.validation_tokens * bytes_per_token,
        embedded_groups(data, documents) if data.source == "embedded" else None)
  if data.tokenizer == "byte":
    tokenizer = ByteTokenizer()
  elif data.tokenizer == "bpe":
    tokenizer = train_bpe(train_docs, data.bpe_vocab_size)
  else:
    tokenizer = gpt2_tokenizer(data.gpt2_vocab_dir)
  train_tokens = _encode_flat(tokenizer, train_docs)
  holdout_tokens = _encode_flat(tokenizer, holdout_docs)
  validation_tokens = holdout_tokens[: data.validation_tokens]
  fingerprint = {
      "source": data.source,
      "source_name": {"embedded": "embedded", "text": data.path,
                      "tfds": data.tfds_name}[data.source],
      "source_sha256": source_digest.hexdigest(),
      "documents_train": len(train_docs),
      "documents_validation": len(holdout_docs),
      "tokenizer": tokenizer.name,
      "vocab_size": tokenizer.vocab_size,
      "train_tokens": int(train_tokens.size),
      "validation_tokens": int(validation_tokens.size),
      "validation_tokens_requested": int(data.validation_tokens),
      "train_sha256": _sha256(train_tokens),
      "validation_sha256": _sha256(validation_tokens),
      "tokenizer_settings": settings,
      "split_rule": rule,
      "cache_key": cache_key,
  }
  if data.source == "embedded":
    fingerprint["embedded"] = corpus.DESCRIPTION
    fingerprint["split"] = corpus.SPLIT_RULE
  folder.mkdir(parents=True, exist_ok=True)
  tmp = folder.with_name(folder.name + ".tmp")
  tmp.mkdir(parents=True, exist_ok=True)
  np.save(tmp / "train.npy", train_tokens)
  np.save(tmp / "validation.npy", validation_tokens)
  tokenizer.save(tmp / "tokenizer.json")
  for name in ("train.npy", "validation.npy", "tokenizer.json"):
    os.replace(tmp / name, folder / name)
  (folder / "meta.json").write_text(json.dumps(fingerprint, indent=1))  # Written last.
  tmp.rmdir()
  return Corpus(train_tokens, validation_tokens, tokenizer, fingerprint)


# ---------------------------------------------------------------------------------------
# Batches.


@dataclasses.dataclass(frozen=True)
class TokenStream:
  """Training batches as a pure function of the step.

  Row r of every batch reads the r-th of `batch_size` contiguous segments of the training
  array; step t reads window t of each: inputs tokens[s + tL : s + tL + L], targets shifted
  by one. One epoch is `steps_per_epoch` steps; no token is an input twice within it.
  """
  train_tokens: np.ndarray
  batch_size: int
  sequence_length: int

  @property
  def segment_length(self) -> int:
    return self.train_tokens.size // self.batch_size

  @property
  def steps_per_epoch(self) -> int:
    return (self.segment_length - 1) // self.sequence_length

  @property
  def tokens_per_step(self) -> int:
    return self.batch_size * self.sequence_length

  def batch(self, step: int, rows: slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets), int32 [rows, L], for `step`; `rows` selects this host's rows."""
    if not 0 <= step < self.steps_per_epoch:
      raise DataError(f"train.tokens: step {step} is past the end of the training data "
                      f"({self.steps_per_epoch} steps of {self.tokens_per_step} tokens); "
                      "lower train.tokens or use a larger corpus")
    length = self.sequence_length
    starts = np.arange(self.batch_size)[rows] * self.segment_length + step * length
    window = starts[:, None] + np.arange(length + 1)[None, :]
    # Segments end inside the training array, so the validation tokens are out of reach.
    assert window.max() < self.train_tokens.size
    tokens = np.asarray(self.train_tokens[window])
    return tokens[:, :-1], tokens[:, 1:]


def validation_batches(validation_tokens: np.ndarray, batch_size: int, sequence_length: int,
                       streams: bool = False
                       ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """The fixed validation set as (inputs, targets, weights) batches of [batch_size, L].

  Non-overlapping windows of L inputs predicting the next L tokens; the last batch is
  padded with weight-0 rows, so every model scores exactly the same target tokens.

  streams=False: batch k holds windows kB .. kB + B - 1. streams=True (recurrent models):
  the same windows and padding, permuted so that row r of consecutive batches reads the r-th
  contiguous run of ceil(n / B) windows: each row is one stream of text across batches, and
  its padding (if any) comes at the end of the last rows' streams.
  """
  n_seq = (validation_tokens.size - 1) // sequence_length
  if n_seq == 0:
    raise DataError(f"data.validation_tokens: expected > data.sequence_length="
                    f"{sequence_length} validation tokens; the corpus gave "
                    f"{validation_tokens.size}")
  window = (np.arange(n_seq)[:, None] * sequence_length
            + np.arange(sequence_length + 1)[None, :])
  tokens = np.asarray(validation_tokens[window])
  weights = np.ones((n_seq, sequence_length), np.float32)
  pad = (-n_seq) % batch_size
  tokens = np.concatenate([tokens, np.zeros((pad, sequence_length + 1), np.int32)])
  weights = np.concatenate([weights, np.zeros((pad, sequence_length), np.float32)])
  if streams:  # Window r * n_batches + k goes to row r of batch k.
    n_batches = len(tokens) // batch_size
    order = np.arange(len(tokens)).reshape(batch_size, n_batches).T.reshape(-1)
    tokens, weights = tokens[order], weights[order]
  return [(tokens[i:i + batch_size, :-1], tokens[i:i + batch_size, 1:],
           weights[i:i + batch_size]) for i in range(0, len(tokens), batch_size)]
