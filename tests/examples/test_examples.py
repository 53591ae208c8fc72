"""Run the examples with tiny settings so the documentation cannot drift from the code."""

import importlib.util
import re
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_own_training_loop_runs_the_three_hooks_and_says_each_epoch(capsys):
    result = _load("own_training_loop").main(epochs=2, train_size=64, batch_size=32, test_size=50)
    assert 0.0 <= result["test_acc"] <= 100.0
    assert result["distinct_peaks"] >= 1  # SANM was active in the second epoch
    lines = capsys.readouterr().out.splitlines()
    epochs = [line for line in lines if line.startswith("epoch ")]  # one per epoch, as it ends
    assert [line.split(":")[0] for line in epochs] == ["epoch 1/2", "epoch 2/2"]
    pattern = r"epoch \d/2: loss \d+\.\d{3}, test accuracy \d+\.\d%, \d+\.\d s"
    assert all(re.fullmatch(pattern, line) for line in epochs), epochs
    assert "distinct peak positions" in lines[-1]


@pytest.mark.slow
def test_sweep_script_runs_two_seeds_and_reports_mean_std_and_gain(tmp_path):
    """examples/sweep.sh with one method, one noise, SANM off/on and seeds 0, 1: four finished runs, two groups
    of two seeds, SANM's gain over CE in the report."""
    import json
    import os
    import re
    import subprocess
    import sys

    env = {**os.environ, "METHODS": "ce", "NOISES": "sym_0.2", "SANM": "off,on", "SEEDS": "0,1",
           "OUTPUT_ROOT": str(tmp_path), "PYTHON": sys.executable}
    # a hang guard only: four smoke runs take well under a minute even on a loaded 2-core machine
    result = subprocess.run(["bash", str(EXAMPLES / "sweep.sh"), "+experiment=smoke", "trainer.epochs=2"],
                            env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout + result.stderr
    def cells(line):
        return [cell.strip() for cell in line.strip().strip("|").split("|")]

    header = cells(next(line for line in result.stdout.splitlines() if line.startswith("| method |")))
    rows = [dict(zip(header, cells(line))) for line in result.stdout.splitlines() if line.startswith("| ce |")]
    assert [row["SANM"] for row in rows] == ["off", "on"] and all(row["seeds"] == "2 (0, 1)" for row in rows)
    assert all(re.fullmatch(r"[\d.]+ ± [\d.]+", row["best"]) for row in rows), rows
    assert re.fullmatch(r"[+-][\d.]+", rows[1]["gain best"]) and rows[0]["gain best"] == "-"
    assert "4 finished runs in 2 groups" in result.stdout
    states = {json.loads(p.read_text())["state"] for p in tmp_path.rglob("status.json")}
    assert states == {"finished"}
