"""`python -m launch.fit` end to end on a tiny folder of runs, and its one-line errors."""

import json
import pathlib
import subprocess
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]


def write_runs(root: pathlib.Path, lr_sweep_runs: bool = False) -> None:
  """Two labels x 3 widths; each curve follows its label's law; one failed run. With
  `lr_sweep_runs`, each width also has a short LR-sweep run far above the law."""
  rng = np.random.default_rng(0)
  for label, (a, alpha) in {"modern": (88.0, -0.094), "lstm": (36.3, -0.065)}.items():
    for width, stage in [(w, s) for w in (32, 64, 128)
                         for s in (("full", "lr_sweep") if lr_sweep_runs else ("",))]:
      run = root / label / (f"w{width}" + ("_lrsweep" if stage == "lr_sweep" else ""))
      run.mkdir(parents=True)
      params = 20_000 * width
      info = {"run_id": run.name if stage else f"{label}-w{width}", "label": label,
              "status": "completed", "stage": stage,
              "data_fingerprint": {"train_sha256": "abc"},
              "params_total": params, "params_nonembedding": params // 2,
              "flops_per_token": 6.0 * params, "flops_convention": "6N",
              "tokens_planned": 40 * params, "seed": 123, "width": width,
              "learning_rate": 1e-3, "config": {}, "failure_reason": None}
      (run / "run.json").write_text(json.dumps(info))
      rows = []
      for step, tokens in enumerate(np.geomspace(1e3, 40 * params, 12).astype(int), 1):
        flops = 6.0 * params * tokens
        loss = (1.9 + a * flops**alpha) * np.exp(0.002 * rng.normal())
        loss *= 1.5 if stage == "lr_sweep" else 1.0
        rows.append(json.dumps({"step": step, "tokens": int(tokens), "flops": flops,
                                "train_loss": loss, "validation_loss": loss,
                                "wall_time_s": step, "learning_rate": 1e-3}))
      (run / "metrics.jsonl").write_text("\n".join(rows) + "\n")
  if lr_sweep_runs:
    return
  failed = root / "lstm" / "w256"
  failed.mkdir()
  (failed / "run.json").write_text(json.dumps({**info, "run_id": "lstm-w256",
                                               "status": "failed",
                                               "failure_reason": "train loss is nan"}))


def launch(*args) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", "launch.fit", *args], cwd=REPO,
                        capture_output=True, text=True, timeout=600)


def test_fit_command_end_to_end(tmp_path):
  write_runs(tmp_path / "runs")
  out = tmp_path / "out"
  done = launch(f"--runs={tmp_path / 'runs'}", f"--out={out}", "--reference=lstm",
                "--irreducible=shared", "--target_loss=6.0", "--ceg_compute=1e15",
                "--bootstrap=50", "--unigram_entropy=10", "--e_profile=always",
                "--e_profile_samples=30")
  assert done.returncode == 0, done.stderr
  assert "fitted laws" in done.stdout and "modern" in done.stdout
  assert "lstm-w256 (lstm): status failed: train loss is nan" in done.stdout
  for name in ("laws.csv", "laws.json", "ceg.csv", "raw_ceg.csv", "excluded.csv",
               "summary.json", "loss_vs_compute.png", "ceg_vs_compute.png",
               "e_profile.png", "raw_scale.png", "rollout.png", "rollout.csv"):
    assert (out / name).exists(), name
  # The uncertainty sections (on by default, E profile asked for) and the plateau points.
  for section in ("E profile (one shared E", "scale dependence without a law",
                  "rollout (largest size(s) held out", "excluded points on the unigram "
                  "plateau"):
    assert section in done.stdout, section
  excluded = (out / "excluded.csv").read_text()
  assert "lstm-w256" in excluded and "unigram plateau: loss above the unigram entropy" in excluded
  laws_json = json.loads((out / "laws.json").read_text())
  assert set(laws_json["laws"]) == {"modern", "lstm"}
  assert len(laws_json["bootstrap"]["lstm"]["alpha"]) == 50
  summary = json.loads((out / "summary.json").read_text())
  (raw,) = summary["raw_ceg"]
  assert raw["group"] == "modern" and raw["ceg"] > 1


def test_sweep_folder_fits_full_runs_only_with_diagnostics_and_shared_E(tmp_path):
  write_runs(tmp_path / "sweep" / "runs", lr_sweep_runs=True)
  # The sweep's LR record: modern's choice at 64 won by less than twice the seed noise.
  (tmp_path / "sweep" / "lr_choices.json").write_text(json.dumps({
      "modern/64": {"chosen_learning_rate": 1e-3, "chosen_at_grid_edge": False,
                    "margin_to_next_best": 0.01},
      "lstm/64": {"chosen_learning_rate": 1e-2, "chosen_at_grid_edge": False,
                  "margin_to_next_best": 0.5}}))
  out = tmp_path / "out"
  done = launch(f"--runs={tmp_path / 'sweep'}", f"--out={out}", "--reference=lstm",
                "--ceg_compute=1e15", "--bootstrap=20")
  assert done.returncode == 0, done.stderr
  assert "left out 6 runs of other stages (stage lr_sweep)" in done.stdout
  summary = json.loads((out / "summary.json").read_text())
  assert summary["options"]["irreducible"] == "shared"  # auto: one data fingerprint
  assert summary["sensitivity"]["irreducible"] == "fit"
  assert all(r["fit_points"] > 0 for r in summary["laws"])
  reasons = summary["diagnostics"]["modern"]["reasons"]
  assert any(r.startswith("LR within seed noise: the choice at modern/64") for r in reasons)
  assert summary["diagnostics"]["lstm"]["reasons"] == []
  (row,) = [r for r in summary["ceg"] if r["quantity"] == "ceg_at_compute"]
  assert row["not_determined"].startswith("modern: LR within seed noise: the choice at modern/64")
  assert "not determined: modern: LR within seed noise" in done.stdout
  (pair,) = summary["exponent_pairs"]
  assert pair["distinguishable"] is None and pair["not_determined"]
  # --all_stages fits the LR-sweep runs too (here far above the law: they change the fit).
  again = launch(f"--runs={tmp_path / 'sweep' / 'runs'}", f"--out={tmp_path / 'all'}",
                 "--all_stages", "--bootstrap=0", "--irreducible=fit")
  assert again.returncode == 0, again.stderr
  assert "left out" not in again.stdout
  assert "12 runs" in again.stdout


def test_fit_command_errors_are_one_line(tmp_path):
  done = launch(f"--runs={tmp_path / 'nothing'}", f"--out={tmp_path / 'out'}")
  assert done.returncode != 0
  assert done.stderr.strip().splitlines()[-1].startswith("error: ")
  assert "no such file or folder" in done.stderr


def test_bad_flag_values_stop_before_reading_any_run(tmp_path):
  a_file = tmp_path / "a_file"
  a_file.write_text("")
  # The runs folder does not exist: each flag error must come first, as one line.
  for flags, expected in (
      (["--bootstrap=-1"], "flag --bootstrap=-1: expected a number of refits >= 0"),
      (["--level=1.5"], "flag --level=1.5: expected a confidence level in (0, 1)"),
      (["--huber_delta=0"], "flag --huber_delta=0.0: expected a positive number"),
      (["--irreducible=-0.5"], "flag --irreducible=-0.5: expected 'auto', 'fit'"),
      ([f"--out={a_file}"], "expected a folder (created if missing); it is a file"),
      (["--min_compute=1e12", "--max_compute=1e10"],
       "--min_compute must be below --max_compute")):
    done = launch(f"--runs={tmp_path / 'nothing'}",
                  *([f"--out={tmp_path / 'out'}"] if "--out" not in flags[0] else []), *flags)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and expected in last, last


def test_multi_valued_flags_take_repeats_and_comma_lists(tmp_path):
  write_runs(tmp_path / "runs")
  out = tmp_path / "out"
  done = launch(f"--runs={tmp_path / 'runs'}", f"--out={out}", "--reference=lstm",
                "--ceg_compute=1e15,1e16", "--ceg_compute=1e17", "--target_loss=6.0, 5.9",
                "--bootstrap=0", "--nosensitivity")
  assert done.returncode == 0, done.stderr
  summary = json.loads((out / "summary.json").read_text())
  at_compute = [r["at"] for r in summary["ceg"] if r["quantity"] == "ceg_at_compute"]
  assert at_compute == [1e15, 1e16, 1e17]
  assert [r["target_loss"] for r in summary["raw_ceg"]] == [6.0, 5.9]
  for flag, value in (("ceg_compute", "1e15,lots"), ("target_loss", "6,,5")):
    bad = launch(f"--runs={tmp_path / 'runs'}", f"--out={tmp_path / 'bad'}",
                 f"--{flag}={value}")
    assert bad.returncode != 0
    last = bad.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: --{flag}: expected finite numbers"), last


def test_launch_fit_and_reproduce_run_one_analysis_and_agree(tmp_path):
  """The same table and options through launch.fit and through reproduce's options give
  the same laws and exponent differences (one scaling analysis, not two)."""
  import ml_collections
  from algoprog import reproduce, rundir
  from algoprog.analysis import diagnostics, runs, scaling
  write_runs(tmp_path / "runs")
  out = tmp_path / "out"
  done = launch(f"--runs={tmp_path / 'runs'}", f"--out={out}", "--reference=lstm",
                "--irreducible=shared", "--bootstrap=20", "--seed=3")
  assert done.returncode == 0, done.stderr
  from_launcher = json.loads((out / "summary.json").read_text())
  analysis = ml_collections.ConfigDict(dict(
      reference="lstm", irreducible="shared", sensitivity_irreducible="fit",
      shared_exponent=False, frontier="envelope", skip_fraction=0.0, bootstrap=20,
      resample="runs", seed=3, level=0.95, ceg_compute=(), extra_ceg_compute=()))
  table = runs.load_runs(tmp_path / "runs")
  evidence = scaling.Evidence(None, diagnostics.seed_noise(table.run_info.values()))
  result = scaling.analyse_scaling(table, table.groups,
                                   reproduce.scaling_options(analysis, table), evidence)
  from_reproduce = rundir.json_safe(result.to_json())
  for key in ("laws", "exponent_pairs", "diagnostics"):
    assert from_reproduce[key] == from_launcher[key], key
  assert from_reproduce["sensitivity"]["laws"] == from_launcher["sensitivity"]["laws"]


def test_scaling_result_is_typed_and_round_trips_through_json(tmp_path):
  from algoprog import rundir
  from algoprog.analysis import diagnostics, report, runs, scaling
  write_runs(tmp_path / "runs")
  table = runs.load_runs(tmp_path / "runs")
  options = scaling.ScalingOptions(reference="lstm", irreducible="shared",
                                   sensitivity="fit", bootstrap=10, computes=None,
                                   target_losses=(6.0,))
  result = scaling.analyse_scaling(
      table, ["lstm", "modern"], options,
      scaling.Evidence({}, diagnostics.seed_noise(table.run_info.values())))
  assert isinstance(result.main, scaling.FrontierFit)
  assert isinstance(result.coverage[0], scaling.CoverageRow)
  assert all(isinstance(r, scaling.FittedCeg) for r in result.ceg)
  assert len(result.computes) == 3  # None: low, middle and high end of the coverage.
  data = rundir.json_safe(result.to_json())
  assert json.loads(json.dumps(data)) == data
  assert set(data) >= {"groups", "laws", "diagnostics", "coverage", "ceg", "exponent_pairs",
                       "sensitivity", "raw_ceg", "chinchilla", "warnings"}
  assert [r["group"] for r in data["laws"]] == ["lstm", "modern"]
  assert data["sensitivity"]["irreducible"] == "fit"
  assert "fitted laws" in report.fit_text(result, table, "envelope")
