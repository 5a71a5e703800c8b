"""`python -m launch.plan` end to end on stated assumptions and on a run table (tiny grids,
few simulations), and its one-line errors."""

import csv
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from algoprog.analysis import laws, planner

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = ["--width_max=64", "--width_count=3", "--seeds=1", "--tokens_per_param=20",
        "--simulations=4", "--bootstrap=20"]


def launch(*args) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", "launch.plan", *args], cwd=REPO,
                        capture_output=True, text=True, timeout=300)


def test_plan_on_stated_assumptions(tmp_path):
  done = launch("--law=lstm:a=36.3,alpha=-0.065,E=1.9,kind=lstm",
                "--law=modern:a=88.0,alpha=-0.094,E=1.9", "--seed_noise=0.03",
                "--accelerators=cpu,h100", f"--out={tmp_path}", *TINY)
  assert done.returncode == 0, done.stderr
  out = done.stdout
  assert "planning the exponent difference alpha_modern - alpha_lstm" in out
  assert "true value under the assumed laws: -0.029" in out
  assert "lstm (lstm): L = 1.9 + 36.3 * C^-0.065" in out
  header = next(l for l in out.splitlines() if l.startswith("widths"))
  assert header.split()[:5] == ["widths", "seeds", "tok/param", "decades", "power"]
  assert header.split()[-4:] == ["cpu", "h", "h100", "h"]
  assert "32,48,64" in out
  assert "to determine the exponent difference alpha_modern - alpha_lstm you need" in out
  plan = json.loads((tmp_path / "plan.json").read_text())
  assert plan["true_value"] == pytest.approx(-0.029)
  (row,) = plan["designs"]
  assert row["widths"] == "32,48,64" and row["simulations"] == 4
  assert (tmp_path / "plan.csv").exists()


def test_plan_on_a_run_table(tmp_path):
  truth = planner.Assumptions(
      (planner.GroupAssumption("ref", laws.PowerLaw(88.0, -0.094, 1.9)),
       planner.GroupAssumption("new", laws.PowerLaw(88.0, -0.11, 1.9), "lstm")),
      planner.Noise(seed=0.03, point=0.005))
  table = planner.simulate_table(truth, planner.Design((32, 64, 128), 2, 20.0),
                                 np.random.default_rng(0))
  path = tmp_path / "runs.csv"
  with path.open("w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["run", "arch", "flops", "val_loss", "n", "d"])
    writer.writerows(zip(table.run_id, table.group, table.compute, table.loss, table.params,
                         table.tokens))
  done = launch(f"--runs={path}", "--columns=run=run,group=arch,compute=flops,"
                "loss=val_loss,params=n,tokens=d", "--kinds=new=lstm", "--reference=ref",
                "--hypothesis=ceg", "--ceg_compute=1e14", "--accelerators=v5e", *TINY)
  assert done.returncode == 0, done.stderr
  out = done.stdout
  assert f"planning the CEG of new over ref at 1e+14 FLOPs from laws fitted to {path}" in out
  assert "new (lstm)" in out and "ref (transformer)" in out
  assert "seed noise" not in out or "configuration" in out
  assert "measured: frontier scatter" in out
  assert "to determine the CEG of new over ref at 1e+14 FLOPs" in out


@pytest.mark.parametrize("args, message", [
    ([], "error: --runs / --law: give a run table"),
    (["--law=a:a=1,alpha=-0.1,E=1"], "error: --law: expected at least two groups"),
    (["--law=a:a=1,alpha=-0.1,E=1", "--law=b:a=1,alpha=0.1,E=1"], "error: group 'b:a=1"),
    (["--law=a:a=1,alpha=-0.1,E=1", "--law=b:a=1,alpha=-0.2,E=1", "--mfu=2"],
     "error: --mfu=2.0: expected a number in (0, 1]"),
    (["--law=a:a=1,alpha=-0.1,E=1", "--law=b:a=1,alpha=-0.2,E=1", "--seeds=0"],
     "error: --seeds=0: expected positive numbers"),
    (["--law=a:a=1,alpha=-0.1,E=1", "--law=b:a=1,alpha=-0.2,E=1", "--bootstrap=3"],
     "error: --bootstrap=3: expected at least 10"),
    (["--law=a:a=1,alpha=-0.1,E=1", "--law=b:a=1,alpha=-0.2,E=1", "--hypothesis=ceg"],
     "error: --ceg_compute: required with --hypothesis=ceg"),
    (["--law=a:a=1,alpha=-0.1,E=1", "--law=b:a=1,alpha=-0.2,E=1", "--accelerators=b200"],
     "error: --accelerators: accelerator 'b200': expected one of"),
    (["--law=a:a=1,alpha=-0.1,E=1", "--law=b:a=1,alpha=-0.2,E=1", "--group=c"],
     "error: group 'c': not among the assumed groups (a, b)"),
    (["--runs=/nonexistent.csv"], "error: /nonexistent.csv: no such file or folder"),
    (["--law=a:a=1,alpha=-0.1,E=1", "--law=b:a=1,alpha=-0.2,E=1", "--irreducible=some"],
     "error: --irreducible=some: expected auto, shared, fit or a number of nats"),
    (["--law=a:a=1,alpha=-0.1,E=1", "--law=b:a=1,alpha=-0.2,E=1", "--width_max=x"],
     "error: --width_max=x: expected numbers"),
])
def test_bad_flags_give_one_line(args, message):
  done = launch(*args)
  assert done.returncode != 0
  lines = done.stderr.strip().splitlines()
  assert lines[-1].startswith(message), done.stderr
  assert "Traceback" not in done.stderr
