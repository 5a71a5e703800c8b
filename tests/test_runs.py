"""Loading and validating tables of runs: run folders, CSV/JSONL with a column mapping."""

import json
import logging
import re
import pathlib

import numpy as np
import pytest

from algoprog.analysis import runs


def write_run(root: pathlib.Path, name: str, label: str, rows, status="completed",
              params=1000, failure_reason=None, run_id=None):
  d = root / name
  d.mkdir(parents=True)
  (d / "run.json").write_text(json.dumps({
      "run_id": run_id or pathlib.Path(name).name, "label": label, "status": status,
      "params_total": params, "params_nonembedding": params // 2,
      "flops_per_token": 6.0 * params, "flops_convention": "6N", "tokens_planned": 10_000,
      "seed": 0, "width": 32, "learning_rate": 1e-3, "config": {},
      "failure_reason": failure_reason}))
  with open(d / "metrics.jsonl", "w") as f:
    for step, (tokens, loss) in enumerate(rows, start=1):
      f.write(json.dumps({"step": step, "tokens": tokens, "flops": 6.0 * params * tokens,
                          "train_loss": loss, "validation_loss": loss, "wall_time_s": step,
                          "learning_rate": 1e-3}) + "\n")
  return d


def test_run_folder_loads_points_and_reports_excluded_runs(tmp_path):
  curve = [(100, 6.0), (200, 5.0), (400, 4.5)]
  write_run(tmp_path, "modern/w32", "modern", curve)
  write_run(tmp_path, "modern/w64", "modern", curve[:2], status="running", params=4000)
  write_run(tmp_path, "lstm/l32", "lstm", curve, status="failed",
            failure_reason="train loss is nan at step 3")
  write_run(tmp_path, "lstm/l64", "lstm", [(100, 6.0), (200, "nan")])
  write_run(tmp_path, "lstm/l128", "lstm", [])
  table = runs.load_runs(tmp_path)
  assert table.groups == ["modern"]
  assert table.run_ids == ["w32", "w64"]
  assert table.loss.size == 5
  np.testing.assert_allclose(table.compute[:3], [6e5, 1.2e6, 2.4e6])
  np.testing.assert_allclose(table.params[3:], 4000)
  reasons = {e.run_id: e.reason for e in table.excluded}
  assert reasons["l32"] == "status failed: train loss is nan at step 3"
  assert "nan" in reasons["l64"] and "step 2" in reasons["l64"]
  assert "no evaluations" in reasons["l128"]


def test_colliding_run_ids_become_relative_paths(tmp_path):
  write_run(tmp_path, "a/w32", "modern", [(100, 6.0), (200, 5.0)])
  write_run(tmp_path, "b/w32", "retro", [(100, 6.0), (200, 5.0)])
  assert runs.load_runs(tmp_path).run_ids == ["a/w32", "b/w32"]


def test_csv_with_column_mapping_and_derived_compute(tmp_path):
  path = tmp_path / "points.csv"
  path.write_text("arch,n,d,val\nx,100,2000,4.0\nx,200,4000,3.5\ny,100,2000,4.2\n")
  columns = runs.ColumnMapping.parse("compute=,loss=val,group=arch,params=n,tokens=d")
  table = runs.load_runs(path, columns)
  assert table.groups == ["x", "y"]
  np.testing.assert_allclose(table.compute, [6 * 100 * 2000, 6 * 200 * 4000, 6 * 100 * 2000])
  assert table.run_ids == ["row2", "row3", "row4"]  # no run column: one run per row


def test_jsonl_table(tmp_path):
  path = tmp_path / "points.jsonl"
  path.write_text('{"C": 1e15, "L": 4.0, "run": "r1"}\n{"C": 2e15, "L": 3.9, "run": "r1"}\n')
  table = runs.load_runs(path, runs.ColumnMapping(compute="C", loss="L", run="run"))
  assert table.run_ids == ["r1"] and table.groups == ["all"]


@pytest.mark.parametrize("text, columns, message", [
    ("C,L\n1e15,4.0\n", "compute=flops,loss=L", "column 'flops' (mapped to compute) not found"),
    ("C,L\n1e15,4.0\n-1,3.0\n", "compute=C,loss=L", "row 3: column C (compute) is -1.0"),
    ("C,L\n1e15,abc\n", "compute=C,loss=L", "row 2: column L is 'abc'; expected a number"),
    ("C,L\n1e15,inf\n", "compute=C,loss=L", "row 2: column L (loss) is inf"),
    ("C,L\n", "compute=C,loss=L", "no rows"),
])
def test_bad_tables_fail_with_one_line_naming_the_place(tmp_path, text, columns, message):
  path = tmp_path / "t.csv"
  path.write_text(text)
  with pytest.raises(runs.RunTableError, match=re.escape(message)) as error:
    runs.load_runs(path, runs.ColumnMapping.parse(columns))
  assert "\n" not in str(error.value)


def test_bad_mapping_and_missing_inputs(tmp_path):
  with pytest.raises(runs.RunTableError, match="expected FIELD=COLUMN"):
    runs.ColumnMapping.parse("flops")
  with pytest.raises(runs.RunTableError, match="no such file"):
    runs.load_runs(tmp_path / "missing.csv")
  with pytest.raises(runs.RunTableError, match="no runs found"):
    runs.load_runs(tmp_path)
  (tmp_path / "r").mkdir()
  (tmp_path / "r" / "run.json").write_text('{"run_id": "r"}')
  with pytest.raises(runs.RunTableError, match="missing field.*label"):
    runs.load_runs(tmp_path)


def test_only_failed_runs_is_an_error_listing_them(tmp_path):
  write_run(tmp_path, "w32", "lstm", [(100, 6.0)], status="failed", failure_reason="oom")
  with pytest.raises(runs.RunTableError, match="no usable runs.*w32: status failed: oom"):
    runs.load_runs(tmp_path)


def test_stages_from_run_json_manifest_or_run_id(tmp_path):
  curve = [(100, 6.0), (200, 5.0)]
  sweep = tmp_path / "sweep"
  (sweep / "runs").mkdir(parents=True)
  # An older sweep: no stage in run.json; its manifest names one LR-sweep run by id.
  (sweep / "manifest.json").write_text(json.dumps({"runs": [
      {"run_id": "m_w32_s1_lrsweep0.01", "stage": "lr_sweep"},
      {"run_id": "odd_name", "stage": "lr_sweep"}, {"run_id": "m_w32_s1", "stage": "full"}]}))
  write_run(sweep / "runs", "m_w32_s1", "m", curve)
  write_run(sweep / "runs", "m_w32_s1_lrsweep0.01", "m", curve)
  write_run(sweep / "runs", "odd_name", "m", curve)
  d = write_run(sweep / "runs", "new_full", "m", curve)
  info = json.loads((d / "run.json").read_text())
  (d / "run.json").write_text(json.dumps({**info, "stage": "full"}))
  for root in (sweep, sweep / "runs"):  # The sweep directory or its runs/ folder.
    full = runs.load_runs(root, stages=runs.FULL_STAGES)
    assert full.run_ids == ["m_w32_s1", "new_full"]
    assert {e.run_id: e.reason for e in full.other_stages} == {
        "m_w32_s1_lrsweep0.01": "stage lr_sweep", "odd_name": "stage lr_sweep"}
    assert full.run_info["new_full"]["stage"] == "full"
  everything = runs.load_runs(sweep)
  assert len(everything.run_ids) == 4 and not everything.other_stages
  # Without a manifest the run id's "_lrsweep" part tells.
  (sweep / "manifest.json").unlink()
  assert runs.load_runs(sweep, stages=runs.FULL_STAGES).run_ids == [
      "m_w32_s1", "new_full", "odd_name"]


# ----------------------------------------------------------------------------------------
# Bad input in tables: one line naming the file, the row and the column.


def _raises_one_line(path, columns, message):
  with pytest.raises(runs.RunTableError, match=re.escape(message)) as error:
    runs.load_runs(path, columns)
  assert "\n" not in str(error.value)
  return str(error.value)


@pytest.mark.parametrize("line, kind", [("[1e15, 4.0]", "list"), ("7", "int"),
                                        ('"C"', "str"), ("null", "NoneType")])
def test_jsonl_line_that_is_not_an_object_is_an_error(tmp_path, line, kind):
  path = tmp_path / "points.jsonl"
  path.write_text(f'{{"C": 1e15, "L": 4.0}}\n{line}\n')
  _raises_one_line(path, runs.ColumnMapping(compute="C", loss="L"),
                   f"{path} line 2: expected a JSON object")


def test_csv_with_a_byte_order_mark_loads(tmp_path):
  path = tmp_path / "excel.csv"
  path.write_bytes("\ufeffC,L,run\n1e15,4.0,a\n2e15,3.9,a\n".encode("utf-8"))
  table = runs.load_runs(path, runs.ColumnMapping(compute="C", loss="L", run="run"))
  np.testing.assert_allclose(table.compute, [1e15, 2e15])
  assert table.run_ids == ["a"]


def test_table_that_is_not_utf8_is_an_error(tmp_path):
  path = tmp_path / "latin.csv"
  path.write_bytes("C,L,run\n1e15,4.0,caf\xe9\n".encode("latin-1"))
  _raises_one_line(path, runs.ColumnMapping(compute="C", loss="L", run="run"),
                   f"{path}: not UTF-8 text")


def test_compute_that_decreases_along_a_run_is_an_error_naming_run_and_rows(tmp_path):
  path = tmp_path / "t.csv"
  # Runs interleaved: run a's points are rows 2, 4, 5 (row order is the run's order).
  path.write_text("C,L,r\n1e15,4.0,a\n1e15,4.1,b\n3e15,3.8,a\n2e15,3.9,a\n")
  _raises_one_line(path, runs.ColumnMapping(compute="C", loss="L", run="r"),
                   f"run a: column C (compute) decreases from 3e+15 to 2e+15 ({path} row 4 "
                   "and row 5)")


def test_compute_that_decreases_in_a_run_folder_is_an_error(tmp_path):
  d = write_run(tmp_path, "w32", "modern", [(100, 6.0), (300, 5.0), (200, 4.8)])
  _raises_one_line(tmp_path, None, f"run w32: column flops (compute) decreases from "
                   f"1.8e+06 to 1.2e+06 ({d / 'metrics.jsonl'} step 2 and step 3)")


def test_exact_duplicate_rows_are_dropped_with_a_warning(tmp_path, caplog):
  path = tmp_path / "t.csv"
  path.write_text("C,L,r\n1e15,4.0,a\n2e15,3.9,a\n2e15,3.9,a\n2e15,3.9,a\n1e15,4.0,b\n")
  with caplog.at_level(logging.WARNING):
    table = runs.load_runs(path, runs.ColumnMapping(compute="C", loss="L", run="r"))
  assert table.run_id.tolist() == ["a", "a", "b"]  # b's point equals a's: another run.
  np.testing.assert_allclose(table.compute, [1e15, 2e15, 1e15])
  assert f"{path}: dropped 2 duplicate row(s)" in caplog.text
  assert f"{path} row 4" in caplog.text


def test_duplicate_final_points_without_a_run_column_are_dropped(tmp_path, caplog):
  path = tmp_path / "t.csv"
  # Rows 2 and 4 are one point written twice; row 3 is another model at the same compute
  # (an IsoFLOP sweep), which stays.
  path.write_text("C,L\n1e15,4.0\n1e15,4.2\n1e15,4.0\n")
  with caplog.at_level(logging.WARNING):
    table = runs.load_runs(path, runs.ColumnMapping(compute="C", loss="L"))
  assert table.run_ids == ["row2", "row3"]
  assert "dropped 1 duplicate row(s)" in caplog.text


def test_two_losses_at_one_compute_of_a_run_is_an_error(tmp_path):
  path = tmp_path / "t.csv"
  path.write_text("C,L,r\n1e15,4.0,a\n2e15,3.9,a\n2e15,3.7,a\n")
  _raises_one_line(path, runs.ColumnMapping(compute="C", loss="L", run="r"),
                   f"run a: two losses at column C (compute) = 2e+15 ({path} row 3 and row 4:")


def test_empty_run_cell_is_an_error(tmp_path):
  path = tmp_path / "t.csv"
  path.write_text("C,L,r\n1e15,4.0,a\n2e15,3.9,\n")
  _raises_one_line(path, runs.ColumnMapping(compute="C", loss="L", run="r"),
                   f"{path} row 3: column r is empty")


def test_jsonl_row_without_the_run_column_is_an_error(tmp_path):
  path = tmp_path / "t.jsonl"
  path.write_text('{"C": 1e15, "L": 4.0, "r": "a"}\n{"C": 2e15, "L": 3.9}\n')
  _raises_one_line(path, runs.ColumnMapping(compute="C", loss="L", run="r"),
                   f"{path} row 2: column r is empty")


# ----------------------------------------------------------------------------------------
# Run directories: read through algoprog.rundir; torn last rows dropped, the rest errors.


def test_torn_last_metrics_row_is_dropped_with_a_warning(tmp_path, caplog):
  d = write_run(tmp_path, "w32", "modern", [(100, 6.0), (200, 5.0)])
  with open(d / "metrics.jsonl", "a") as f:
    f.write('{"step": 3, "tokens": 300, "fl')  # A writer killed mid-row.
  with caplog.at_level(logging.WARNING):
    table = runs.load_runs(tmp_path)
  assert table.loss.size == 2
  assert "line 3: not a metrics row" in caplog.text


@pytest.mark.parametrize("bad_row, message", [
    ('{"step": 2, "tokens": 200, "flops": 1.2e6}', "line 2: missing field(s) validation_loss"),
    ("[2, 200, 1.2e6, 5.0]", "line 2: expected a JSON object, got list"),
    ('{"step": 2, "tok', "line 2: not valid JSON"),  # Not the last row: not torn by a kill.
])
def test_malformed_metrics_row_is_an_error_naming_file_and_line(tmp_path, bad_row, message):
  d = write_run(tmp_path, "w32", "modern", [(100, 6.0), (300, 5.0), (400, 4.0)])
  lines = (d / "metrics.jsonl").read_text().splitlines()
  lines[1] = bad_row
  (d / "metrics.jsonl").write_text("\n".join(lines) + "\n")
  _raises_one_line(tmp_path, None, f"{d / 'metrics.jsonl'} {message}")


@pytest.mark.parametrize("text, message", [
    ('{"run_id": "r", "label"', "run.json: not valid JSON"),
    ('["r", "modern"]', "run.json: expected a JSON object, got list"),
    ('{"run_id": "r", "label": "m"}', "run.json: missing field(s) status"),
])
def test_malformed_run_json_is_an_error_naming_the_file(tmp_path, text, message):
  (tmp_path / "r").mkdir()
  (tmp_path / "r" / "run.json").write_text(text)
  _raises_one_line(tmp_path, None, f"{tmp_path / 'r'}/{message}")


def test_data_fingerprints_group_runs_by_their_training_data(tmp_path):
  curve = [(100, 6.0), (200, 5.0)]
  for name, fingerprint in [("a", {"source": "x", "vocab": 300}),
                            ("b", {"vocab": 300, "source": "x"}),  # Key order is no difference.
                            ("c", {"source": "x", "vocab": 600}), ("d", None)]:
    d = write_run(tmp_path, name, "modern" if name != "d" else "retro", curve)
    info = json.loads((d / "run.json").read_text())
    if fingerprint is not None:
      (d / "run.json").write_text(json.dumps({**info, "data_fingerprint": fingerprint}))
  write_run(tmp_path, "e", "modern", curve, status="failed")  # Not loaded: not counted.
  same = runs.fingerprint_key({"source": "x", "vocab": 300})
  other = runs.fingerprint_key({"source": "x", "vocab": 600})
  assert runs.data_fingerprints(tmp_path) == {same: ["a", "b"], other: ["c"], "null": ["d"]}
  table = runs.load_runs(tmp_path)
  assert runs.data_fingerprints(table, groups=["modern"]) == {same: ["a", "b"], other: ["c"]}
  assert runs.data_fingerprints(table.only_groups(["retro"])) == {"null": ["d"]}
  path = tmp_path / "t.csv"
  path.write_text("C,L\n1e15,4.0\n")
  assert runs.data_fingerprints(runs.load_runs(path, runs.ColumnMapping("C", "L"))) == {}


def test_run_folder_value_that_is_not_a_number_is_an_error(tmp_path):
  d = write_run(tmp_path, "w32", "modern", [(100, 6.0), (200, 5.0)])
  rows = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
  rows[1]["tokens"] = "lots"
  (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  _raises_one_line(tmp_path, None, f"{d / 'metrics.jsonl'} step 2: column tokens is 'lots'; "
                   "expected a number")


def test_fingerprint_key_is_the_tokens_not_the_bookkeeping():
  """A run recorded before the fingerprint gained cache_key/tokenizer_settings and a run
  recorded after, on the same tokens, are the same data; other tokens are not."""
  old = {"train_sha256": "ab", "validation_sha256": "cd", "tokenizer": "byte",
         "vocab_size": 257, "documents_train": 10}
  new = {**old, "cache_key": "k1", "tokenizer_settings": {"kind": "byte"}, "documents_train": 11}
  assert runs.fingerprint_key(old) == runs.fingerprint_key(new)
  assert runs.fingerprint_key(old) != runs.fingerprint_key({**old, "train_sha256": "ef"})
  assert runs.fingerprint_key(old) != runs.fingerprint_key({**old, "vocab_size": 600})
