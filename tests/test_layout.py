"""The package's layout holds: no import cycles, the seam between training and analysis,
and one owner of the run directory's file names.

Imports are read from the source (every `import`/`from ... import` anywhere in a module,
function-level ones included: a lazy import that closes a cycle is still a cycle).
"""

import ast
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "algoprog"


def _module_name(path: pathlib.Path) -> str:
  name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
  return name.removesuffix(".__init__")


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str) -> set[str]:
  """The algoprog modules (not packages) `name` imports."""
  found = set()
  for node in ast.walk(ast.parse(MODULES[name].read_text())):
    if isinstance(node, ast.Import):
      found.update(a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      for alias in node.names:
        full = f"{node.module}.{alias.name}"
        found.add(full if full in MODULES else node.module)
  return {m for m in found if m in MODULES and m != name
          and MODULES[m].name != "__init__.py"}


GRAPH = {name: _imports(name) for name in MODULES}


def test_the_import_graph_has_no_cycles():
  finished, on_path, cycles = set(), [], []

  def visit(name):
    on_path.append(name)
    for dependency in sorted(GRAPH[name]):
      if dependency in on_path:
        cycles.append(" -> ".join(on_path[on_path.index(dependency):] + [dependency]))
      elif dependency not in finished:
        visit(dependency)
    on_path.pop()
    finished.add(name)

  for name in sorted(GRAPH):
    if name not in finished:
      visit(name)
  assert not cycles, cycles


def test_analysis_reads_run_directories_and_never_imports_training():
  """The seam: training writes run directories, analysis only reads them (through
  algoprog.rundir), so a fit never needs jax's model code, the data pipeline or a config."""
  crossing = {name: sorted(m for m in deps if m.startswith("algoprog.training"))
              for name, deps in GRAPH.items() if name.startswith("algoprog.analysis")}
  assert not {k: v for k, v in crossing.items() if v}
  assert not any(m.startswith(("algoprog.analysis", "algoprog.reproduce"))
                 for name, deps in GRAPH.items() if name.startswith("algoprog.training")
                 for m in deps)


def test_only_rundir_names_the_run_directory_files():
  """run.json, config.json and metrics.jsonl are named in algoprog.rundir alone: every
  other module reads and writes them through it (docstrings may mention them)."""
  literal = re.compile(r"""(["'])(run\.json|config\.json|metrics\.jsonl)\1""")
  offenders = []
  for name, path in MODULES.items():
    if name == "algoprog.rundir":
      continue
    for number, line in enumerate(path.read_text().splitlines(), 1):
      if literal.search(line):
        offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
  assert not offenders, offenders


def test_loading_a_preset_imports_neither_the_analysis_nor_matplotlib_nor_jax():
  """configs/*.py build configs only (the study's through algoprog.study): loading one
  pulls in no analysis, no figures and no jax. One fresh interpreter loads them all, each
  checked right after it loads."""
  script = (
      "import sys\n"
      "from algoprog.training import config as config_lib\n"
      "for path in sys.argv[1:]:\n"
      "  config_lib.load_config_file(path)\n"
      "  loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'jax')\n"
      "                  or m.startswith(('algoprog.analysis', 'algoprog.reproduce')))\n"
      "  if loaded:\n"
      "    sys.exit(f'{path}: imports {loaded[:5]}')\n")
  presets = sorted(str(p) for p in (ROOT / "configs").glob("*.py"))
  assert presets
  result = subprocess.run([sys.executable, "-c", script, *presets], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]


def test_the_study_design_stays_apart_from_the_analysis():
  """algoprog.study (the configs' builder) imports no analysis and no orchestration."""
  assert not any(m.startswith(("algoprog.analysis", "algoprog.reproduce"))
                 for m in GRAPH["algoprog.study"])
