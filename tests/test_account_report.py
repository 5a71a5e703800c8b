"""launch.account's settings, staged writes and bad input (algoprog.analysis.account_report)."""

import json
import pathlib
import subprocess
import sys

import pytest

from algoprog.analysis import account, account_report
from algoprog.training import config as config_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "account_study.py"


@pytest.fixture(scope="module")
def config_dict():
  return config_lib.load_config_file(CONFIG).to_dict()


@pytest.fixture(scope="module")
def study(config_dict):
  return account.study_from_dict(config_dict)


def test_preset_settings(config_dict, study):
  settings = account_report.settings_from_dict(config_dict, study)
  assert settings.headline_years == (2023, 2025) and settings.end_year == 2025
  assert settings.fixed_compute == (1e16, 1e18, 1e20, 1e22, 1e24)
  assert settings.compute_range == (1e13, 1e25) and settings.confidence_level == 0.95
  assert settings.figure_formats == ("png", "svg")
  assert settings.sensitivity["laws.lstm.alpha"] == (-0.070, -0.060)


@pytest.mark.parametrize("value, expected", [
    (("png,svg",), ("png", "svg")),  # --config.figure_formats=png,svg
    (("png, svg", "pdf"), ("png", "svg", "pdf")),  # a comma list and a repeat
    ("pdf", ("pdf",)),
])
def test_figure_formats_take_comma_lists_and_repeats(config_dict, study, value, expected):
  settings = account_report.settings_from_dict({**config_dict, "figure_formats": value}, study)
  assert settings.figure_formats == expected


def test_numeric_fields_take_comma_lists(config_dict, study):
  settings = account_report.settings_from_dict(
      {**config_dict, "headline_years": ("2023, 2024", 2025), "fixed_compute": "1e18,1e20",
       "compute_range": "1e12,1e26"}, study)
  assert settings.headline_years == (2023, 2024, 2025)
  assert settings.fixed_compute == (1e18, 1e20) and settings.compute_range == (1e12, 1e26)


@pytest.mark.parametrize("field, value, message", [
    ("confidence_level", 0.0, "confidence_level: expected a coverage in (0, 1)"),
    ("confidence_level", 1.0, "confidence_level: expected a coverage in (0, 1)"),
    ("confidence_level", 95, "confidence_level: expected a coverage in (0, 1), e.g. 0.95, "
     "got 95"),
    ("compute_range", (1e20, 1e13), "compute_range: expected low < high FLOPs, got (1e+20, "
     "1e+13)"),
    ("compute_range", (1e20, 1e20), "compute_range: expected low < high FLOPs"),
    ("compute_range", (0.0, 1e20), "compute_range[0]: expected a finite compute > 0 FLOPs"),
    ("compute_range", (1e20,), "compute_range: expected (low, high) FLOPs"),
    ("fixed_compute", (1e18, 0.0), "fixed_compute[1]: expected a finite compute > 0 FLOPs, "
     "got 0.0"),
    ("fixed_compute", (-1e18,), "fixed_compute[0]: expected a finite compute > 0 FLOPs"),
    ("figure_formats", ("png", "docx"), "figure_formats: 'docx' is not a format matplotlib "
     "writes (supported: "),
    ("figure_formats", (".png",), "figure_formats: '.png' is not a format"),
    ("figure_formats", ("",), "figure_formats: expected at least one format"),
    ("headline_years", (), "headline_years: expected at least one year"),
    ("headline_years", "2023,soon", "headline_years: expected an integer year in [2012, "
     "2100], got 'soon'"),
    ("headline_years", (2023, 2005), "headline_years: expected an integer year in [2012, "),
    ("end_year", 2200, "end_year: expected an integer year in [2012, 2100]"),
    ("sensitivity", {"x": {"path": "laws.gru.alpha", "low": 0.0, "high": 1.0}},
     "laws.gru.alpha: no input named 'gru' there"),
])
def test_bad_settings_are_one_line_errors(config_dict, study, field, value, message):
  with pytest.raises(account.AccountError) as error:
    account_report.settings_from_dict({**config_dict, field: value}, study)
  assert message in str(error.value)
  assert "\n" not in str(error.value)


@pytest.mark.parametrize("growth", [1.0, 0.5])
def test_frontier_that_does_not_grow_is_an_error(config_dict, growth):
  bad = json.loads(json.dumps(config_dict))
  bad["trend"]["growth_per_year"] = growth
  with pytest.raises(account.AccountError, match=r"trend.growth_per_year: expected a growth "
                     rf"factor > 1 \(x/year\), got {growth}"):
    account.study_from_dict(bad)


def _report(figure_name="bars"):
  from matplotlib.figure import Figure
  figure = Figure(figsize=(1, 1))
  figure.add_subplot().plot([1, 2], [1, 2])
  return account_report.Report({"headline": [{"year": 2023, "total": 2.0}]},
                               {"interaction_exponent": 0.5}, {figure_name: figure}, "text")


def test_write_report_moves_everything_into_out(tmp_path):
  out = tmp_path / "out"
  written = account_report.write_report(_report(), out, ("png",))
  assert sorted(p.name for p in written) == ["bars.png", "headline.csv", "summary.json"]
  assert sorted(p.name for p in out.iterdir()) == ["bars.png", "headline.csv", "summary.json"]
  assert (out / "headline.csv").read_text() == "year,total\n2023,2.0\n"


def test_write_report_that_fails_keeps_the_earlier_results(tmp_path):
  out = tmp_path / "out"
  out.mkdir()
  (out / "headline.csv").write_text("earlier\n")
  with pytest.raises(ValueError):  # matplotlib cannot write the format: fails part-way.
    account_report.write_report(_report(), out, ("png", "nosuchformat"))
  assert sorted(p.name for p in out.iterdir()) == ["headline.csv"]  # No staging left.
  assert (out / "headline.csv").read_text() == "earlier\n"


def test_out_that_is_a_file_is_an_error(tmp_path):
  path = tmp_path / "results"
  path.write_text("keep me")
  with pytest.raises(account.AccountError, match="--out: .* is a file; expected a folder"):
    account_report.check_out(path)
  with pytest.raises(account.AccountError, match="is a file; expected a folder"):
    account_report.check_out(path / "inside")


def test_launcher_bad_format_in_a_comma_list_writes_nothing(tmp_path):
  out = tmp_path / "out"
  out.mkdir()
  (out / "summary.json").write_text('{"earlier": true}')
  result = subprocess.run(
      [sys.executable, "-m", "launch.account", f"--config={CONFIG}", f"--out={out}",
       "--config.figure_formats=png,docx"],
      cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode != 0
  assert result.stderr.strip().splitlines()[-1].startswith(
      "error: figure_formats: 'docx' is not a format matplotlib writes (supported: ")
  assert [p.name for p in out.iterdir()] == ["summary.json"]
  assert (out / "summary.json").read_text() == '{"earlier": true}'
