"""Data: the split, the stream, tokenizers and the caches."""

import os

import numpy as np
import pytest

from algoprog.training import config as config_lib, data, tfds_text


def text_config(path, cache_dir, tokenizer="byte", validation_tokens=4096):
  c = config_lib.base_config()
  c.data.source = "text"
  c.data.path = str(path)
  c.data.cache_dir = str(cache_dir)
  c.data.tokenizer = tokenizer
  c.data.bpe_vocab_size = 512
  c.data.validation_tokens = validation_tokens
  return c.data


def test_validation_documents_are_disjoint_from_training(small_corpus, tmp_path):
  documents = data.read_documents(text_config(small_corpus, tmp_path), tmp_path)
  train_docs, held_out = data.split_documents(documents, 4096)  # byte: 1 token per byte.
  assert train_docs + held_out == documents
  assert sum(len(d) for d in held_out) >= 4096
  corpus = data.load_corpus(text_config(small_corpus, tmp_path))
  assert corpus.validation_tokens.size == 4096
  # The training array ends exactly where the held-out documents begin.
  expected_train = sum(len(d.encode()) + 1 for d in train_docs)
  assert corpus.train_tokens.size == expected_train


def test_stream_reads_each_training_token_once_in_order():
  tokens = np.arange(1000, dtype=np.int32)
  stream = data.TokenStream(tokens, batch_size=4, sequence_length=10)
  assert stream.segment_length == 250 and stream.steps_per_epoch == 24
  seen = []
  for step in range(stream.steps_per_epoch):
    inputs, targets = stream.batch(step)
    np.testing.assert_array_equal(targets[:, :-1], inputs[:, 1:])
    seen.append(inputs)
  inputs = np.concatenate(seen, axis=1)  # [rows, steps * L]: each row one contiguous stream.
  np.testing.assert_array_equal(inputs, np.arange(4)[:, None] * 250 + np.arange(240))
  assert len(np.unique(inputs)) == inputs.size
  with pytest.raises(data.DataError, match="train.tokens"):
    stream.batch(stream.steps_per_epoch)


def test_stream_rows_slice_for_hosts():
  stream = data.TokenStream(np.arange(1000, dtype=np.int32), 4, 10)
  full, _ = stream.batch(3)
  part, _ = stream.batch(3, slice(2, 4))
  np.testing.assert_array_equal(full[2:], part)


def test_validation_batches_cover_every_target_once():
  tokens = np.arange(1, 1 + 10 * 8 + 1, dtype=np.int32)  # 10 windows of 8, plus one.
  batches = data.validation_batches(tokens, batch_size=4, sequence_length=8)
  assert len(batches) == 3
  targets = np.concatenate([t[w > 0] for _, t, w in batches])
  np.testing.assert_array_equal(np.sort(targets), tokens[1:])


def test_bpe_is_trained_on_training_documents_only_and_cached(small_corpus, tmp_path):
  config = text_config(small_corpus, tmp_path, tokenizer="bpe")
  corpus = data.load_corpus(config)
  assert corpus.vocab_size == 512
  text = "The licenses for most software are designed to take away your freedom."
  ids = corpus.tokenizer.encode([text])[0]
  assert corpus.tokenizer.decode(ids) == text
  assert len(ids) < len(text) / 2  # Merges learned from English text compress it.
  again = data.load_corpus(config)  # Second call reads the cache.
  np.testing.assert_array_equal(again.train_tokens, corpus.train_tokens)
  assert again.fingerprint == corpus.fingerprint
  assert again.tokenizer.encode([text])[0] == ids


def test_gpt2_tokenizer_needs_local_files(tmp_path):
  with pytest.raises(data.DataError, match="data.gpt2_vocab_dir"):
    data.gpt2_tokenizer(str(tmp_path))


def test_local_text_is_prepared_once_as_array_record(small_corpus, tmp_path):
  files = sorted(small_corpus.iterdir())
  documents = tfds_text.prepare_and_read(files, tmp_path)
  assert list(tmp_path.rglob("*.array_record*"))
  expected = [d for f in files for d in tfds_text.split_into_documents(f.read_text())]
  assert documents == expected  # In order: tfds' shuffling is off.


def test_missing_and_empty_corpora_are_clear_errors(tmp_path):
  with pytest.raises(data.DataError, match="data.path"):
    data.load_corpus(text_config(tmp_path / "nope.txt", tmp_path))
  (tmp_path / "empty").mkdir()
  (tmp_path / "empty" / "a.txt").write_text("  \n\n ")
  with pytest.raises(data.DataError, match="no text"):
    data.load_corpus(text_config(tmp_path / "empty", tmp_path))


def test_tfds_catalog_source_reads_a_prepared_dataset(small_corpus, tmp_path):
  # A dataset prepared in data_dir beforehand (here by our own builder) is read by name
  # through tfds' array_record data source: what a TPU VM with a prepared data_dir does.
  files = sorted(small_corpus.iterdir())
  expected = tfds_text.prepare_and_read(files, tmp_path / "tfds")
  (name,) = [p.name for p in (tmp_path / "tfds" / "local_text").iterdir()]
  c = config_lib.base_config()
  c.data.source = "tfds"
  c.data.tfds_name = f"local_text/{name}"
  c.data.tfds_data_dir = str(tmp_path / "tfds")
  c.data.max_documents = 10
  assert data.read_documents(c.data, tmp_path) == expected[:10]
  c.data.tfds_name = "no_such_dataset"
  with pytest.raises(data.DataError, match="data.tfds_name"):
    data.read_documents(c.data, tmp_path)


def test_take_documents_pulls_no_document_past_its_bounds():
  def stream(n):
    for i in range(n):
      if i >= limit[0]:
        raise AssertionError(f"document {i} was read past the bound")
      yield f"doc{i}" * 10  # 40-41 bytes each.
  limit = [3]
  assert data.take_documents(stream(100), max_documents=3) == [f"doc{i}" * 10 for i in range(3)]
  limit = [2]
  assert len(data.take_documents(stream(100), max_bytes=41)) == 2  # Stops once 41 are read.
  limit = [5]
  assert len(data.take_documents(stream(5))) == 5  # No bound: the whole (finite) stream.


def test_tfds_reads_are_bounded_and_lazy(small_corpus, tmp_path, monkeypatch):
  # A c4-sized catalog dataset must never be listed whole: wrap tfds' data source so that
  # reading any record past what the bounds need fails the test.
  import tensorflow_datasets as tfds
  files = sorted(small_corpus.iterdir())
  expected = tfds_text.prepare_and_read(files, tmp_path / "tfds")
  (name,) = [p.name for p in (tmp_path / "tfds" / "local_text").iterdir()]
  real_data_source = tfds.data_source
  reads = []

  class Guarded:
    def __init__(self, source, allowed):
      self.source, self.allowed = source, allowed

    def __len__(self):
      return len(self.source)

    def __getitem__(self, i):
      if i >= self.allowed:
        raise AssertionError(f"record {i} read; the bound needs only {self.allowed}")
      reads.append(i)
      return self.source[i]

  allowed = [0]
  monkeypatch.setattr(tfds, "data_source",
                      lambda *a, **k: Guarded(real_data_source(*a, **k), allowed[0]))
  c = config_lib.base_config()
  c.data.source, c.data.tfds_name = "tfds", f"local_text/{name}"
  c.data.tfds_data_dir = str(tmp_path / "tfds")
  sizes = np.cumsum([len(d.encode("utf-8")) for d in expected])
  c.data.max_bytes = int(sizes[4]) - 1  # Reached by the 5th document.
  allowed[0] = 5
  assert data.read_documents(c.data, tmp_path) == expected[:5]
  assert reads == list(range(5))
  c.data.max_bytes, c.data.max_documents = 0, 7
  allowed[0], reads[:] = 7, []
  assert data.read_documents(c.data, tmp_path) == expected[:7]
  # Validation from its own split: only the documents its tokens need are read.
  c.data.max_documents, c.data.max_bytes = 0, int(sizes[9])
  c.data.tfds_validation_split, c.data.tokenizer = "train", "byte"
  c.data.validation_tokens = 100
  c.data.cache_dir = str(tmp_path / "cache")
  allowed[0], reads[:] = 10, []
  corpus = data.load_corpus(c.data)
  assert corpus.validation_tokens.size == 100 and corpus.fingerprint["documents_train"] == 10
  assert max(reads) < 10


def gpt2_files_from_bpe(small_corpus, folder, vocab_size):
  """GPT-2-format vocab.json + merges.txt of a BPE trained on the small corpus."""
  documents = [f.read_text() for f in sorted(small_corpus.iterdir())]
  folder.mkdir(parents=True, exist_ok=True)
  data.train_bpe(documents, vocab_size)._tokenizer.model.save(str(folder))
  assert {p.name for p in folder.iterdir()} >= {"vocab.json", "merges.txt"}
  return folder


def test_token_cache_is_keyed_on_the_gpt2_vocabulary_files(small_corpus, tmp_path):
  small = gpt2_files_from_bpe(small_corpus, tmp_path / "v300", 300)
  large = gpt2_files_from_bpe(small_corpus, tmp_path / "v600", 600)
  config = text_config(small_corpus, tmp_path / "cache", tokenizer="gpt2")
  config.gpt2_vocab_dir = str(small)
  first = data.load_corpus(config)
  config.gpt2_vocab_dir = str(large)
  second = data.load_corpus(config)  # Same cache folder, other vocabulary: not reused.
  assert (first.vocab_size, second.vocab_size) == (300, 600)
  assert first.fingerprint["train_sha256"] != second.fingerprint["train_sha256"]
  assert (first.fingerprint["tokenizer_settings"]["vocab_sha256"]
          != second.fingerprint["tokenizer_settings"]["vocab_sha256"])
  assert data.fingerprint_differences(first.fingerprint, second.fingerprint)
  # The 300 folder rewritten in place with the 600 files: its tokens follow the content.
  for name in ("vocab.json", "merges.txt"):
    (small / name).write_bytes((large / name).read_bytes())
  config.gpt2_vocab_dir = str(small)
  rewritten = data.load_corpus(config)
  assert rewritten.vocab_size == 600
  np.testing.assert_array_equal(rewritten.train_tokens, second.train_tokens)
  assert rewritten.fingerprint == second.fingerprint  # Content, not the folder, is the key.


def test_a_text_rewrite_with_the_same_size_and_mtime_is_noticed(small_corpus, tmp_path):
  folder = tmp_path / "text"
  folder.mkdir()
  file = folder / "a.txt"
  original = (sorted(small_corpus.iterdir())[0]).read_text()
  file.write_text(original)
  stat = file.stat()
  config = text_config(folder, tmp_path / "cache")
  before = data.load_corpus(config)
  changed = original.replace("the", "THE")  # Same length in bytes.
  assert changed != original and len(changed.encode()) == len(original.encode())
  file.write_text(changed)
  os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
  assert (file.stat().st_size, file.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
  after = data.load_corpus(config)
  assert after.fingerprint["source_sha256"] != before.fingerprint["source_sha256"]
  assert after.fingerprint["train_sha256"] != before.fingerprint["train_sha256"]
  text = after.tokenizer.decode(after.train_tokens[:5000])
  assert " THE " in text and " the " not in text  # The new text, not the prepared old one.


def test_broken_gpt2_vocab_json_names_the_file_and_the_format(small_corpus, tmp_path):
  folder = gpt2_files_from_bpe(small_corpus, tmp_path / "v", 300)
  vocab = folder / "vocab.json"
  for content, what in (("{not json", "not valid UTF-8 JSON"),
                        ('["a", "b"]', "holds a JSON list"),
                        ('{"a": "zero"}', "maps to 'zero'")):
    vocab.write_text(content)
    with pytest.raises(data.DataError) as e:
      data.gpt2_tokenizer(str(folder))
    message = str(e.value)
    assert message.startswith(f"data.gpt2_vocab_dir: {vocab}") and what in message
    assert "a JSON object mapping each token to its integer id" in message
    assert "\n" not in message


def test_latin1_text_names_the_file_and_the_byte_offset(tmp_path):
  folder = tmp_path / "text"
  folder.mkdir()
  good = folder / "a.txt"
  # A two-byte character across the 1 MB read boundary is fine...
  good.write_bytes(b"x" * ((1 << 20) - 1) + "é".encode() + b" fine\n")
  assert data.text_file_sha256(good)
  bad = folder / "b.txt"
  prefix = b"Plain prose. " * 100_000  # Past the first 1 MB block.
  bad.write_bytes(prefix + "Café au lait.\n".encode("latin-1"))
  with pytest.raises(data.DataError) as e:
    data.load_corpus(text_config(folder, tmp_path / "cache"))
  offset = len(prefix) + len("Caf")
  assert str(e.value).startswith(f"data.path: expected UTF-8 text; {bad} has a byte that is "
                                 f"not UTF-8 at byte offset {offset} (0xe9")
  bad.write_bytes(b"ends inside a character \xc3")
  with pytest.raises(data.DataError, match="at byte offset 24 "):
    data.text_file_sha256(bad)


def test_data_and_corpus_import_no_cycle():
  import ast
  import pathlib
  package = pathlib.Path(data.__file__).parent
  for module in ("corpus", "tfds_text", "data_error"):
    tree = ast.parse((package / f"{module}.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                for alias in node.names if node.module == "algoprog.training"}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "data" not in imported and "algoprog.training.data" not in imported, module
  from algoprog.training import corpus
  assert corpus.DataError is data.DataError
