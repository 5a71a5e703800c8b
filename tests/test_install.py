"""A non-editable install (a Colab, a TPU VM): the wheel holds the package, the launchers
and the shipped configs; the console scripts and `python -m launch.train
--config=configs/...` work from a directory that is not the checkout."""

import configparser
import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

import conftest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPTS = ("train", "sweep", "reproduce", "fit", "account", "flops", "corpus", "aot",
           "plan")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> pathlib.Path:
  """The wheel pip builds from a copy of the sources (a build in the checkout would leave
  build/ behind), offline and with this environment's setuptools."""
  setuptools = pytest.importorskip("setuptools", reason="the dev extra installs it")
  if (importlib.util.find_spec("wheel") is None
      and tuple(int(x) for x in setuptools.__version__.split(".")[:2]) < (70, 1)):
    pytest.skip("setuptools < 70.1 builds wheels only with the wheel package (dev extra)")
  source = tmp_path_factory.mktemp("source")
  for name in ("pyproject.toml", "README.md"):
    shutil.copy(ROOT / name, source / name)
  for name in ("algoprog", "launch", "configs"):
    shutil.copytree(ROOT / name, source / name,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
  out = tmp_path_factory.mktemp("wheel")
  result = subprocess.run(
      [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
       "--no-index", "-q", "-w", str(out), str(source)],
      capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  (built,) = out.glob("algoprog-*.whl")
  return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> pathlib.Path:
  """The wheel installed (not editable) into a folder of its own, scripts in bin/."""
  target = tmp_path_factory.mktemp("site")
  result = subprocess.run(
      [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
       "--target", str(target), str(wheel)], capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  return target


def environment(site: pathlib.Path) -> dict:
  """A user's shell: the installed copy first on the path, no test-only JAX settings."""
  env = {k: v for k, v in os.environ.items() if k not in ("JAX_PLATFORMS", "PYTHONPATH")}
  return dict(env, PYTHONPATH=str(site), XLA_FLAGS="")


def test_wheel_holds_the_package_launchers_configs_and_scripts(wheel):
  names = set(zipfile.ZipFile(wheel).namelist())
  for folder in ("algoprog", "launch", "configs"):
    expected = {p.relative_to(ROOT).as_posix() for p in (ROOT / folder).rglob("*.py")
                if "__pycache__" not in p.parts}
    assert expected and expected <= names, sorted(expected - names)
  assert not any(n.startswith(("tests/", "benchmarks/", "docs/", "colabs/")) for n in names)
  (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
  parser = configparser.ConfigParser()
  parser.read_string(zipfile.ZipFile(wheel).read(entry_points).decode())
  scripts = dict(parser["console_scripts"])
  assert scripts == {f"algoprog-{s}": f"launch.scripts:{s}" for s in SCRIPTS}
  import launch.scripts
  for name in SCRIPTS:  # Each points at a launcher that exists, with a main().
    assert callable(getattr(launch.scripts, name))
    assert (ROOT / "launch" / f"{name}.py").exists()


def test_installed_launchers_run_outside_the_checkout(installed, small_corpus, tmp_path):
  elsewhere = tmp_path / "elsewhere"  # Not the checkout: no configs/ or launch/ here.
  elsewhere.mkdir()
  env = environment(installed)
  where = subprocess.run([sys.executable, "-c", "import algoprog, launch; "
                          "print(algoprog.__file__); print(launch.__file__)"],
                         cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
  assert where.stdout.split() == [str(installed / "algoprog" / "__init__.py"),
                                  str(installed / "launch" / "__init__.py")], where.stderr
  # A console script, reading the installed presets (launch.flops' --configs default).
  plan = subprocess.run([str(installed / "bin" / "algoprog-flops"), "--mode=plan",
                         "--width=32", "--vocab_size=4096"],
                        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
  assert plan.returncode == 0, plan.stderr[-2000:]
  assert plan.stdout.split()[:4] == ["width", "32", "layers", "2"], plan.stdout
  bad = subprocess.run([str(installed / "bin" / "algoprog-flops"), "--widths=32,x"],
                       cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
  assert bad.returncode != 0 and "Traceback" not in bad.stderr
  assert bad.stderr.strip().splitlines()[-1] == (
      "error: flag --widths=32,x: expected a comma list of integers >= 1; got 'x'")
  # The README's command, with a shipped config named relative to the checkout.
  train = subprocess.run(
      conftest.tiny_train_command(sys.executable, tmp_path / "run", small_corpus,
                                  tmp_path / "cache", 2048),
      cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
  assert train.returncode == 0, train.stderr[-2000:]
  assert (tmp_path / "run" / "metrics.jsonl").read_text()
  assert "finished" in train.stderr
