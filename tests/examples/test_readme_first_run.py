"""README's first-run command, as printed after the install, runs offline and writes its summary."""

import json
import re
import shlex
import subprocess
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_readme_first_run_command_works_offline_and_repeats_exactly(tmp_path):
    """The command as README prints it, shortened to 2 of its 10 epochs on 128 of its 1,437 images (four batches)
    (its accuracy is a measurement, in README: the full run takes minutes); it ends by saying where the summary is
    and how to table it. README: runs are reproducible on one machine and thread count, not across them: the same
    command again with one thread, its figures not drawn, gives the same losses and accuracies to the last digit
    (drawing reads the run's state and leaves its random streams alone)."""
    readme = (ROOT / "README.md").read_text()
    install = re.search(r"```bash\n(python3 -m venv .*?)\n```", readme).group(1)
    command = shlex.split(install.split(" && ")[-1])  # the run itself; the install is CI's own step
    assert command[:2] == ["python", "-m"] and "+experiment=first_run" in command
    shortened = [sys.executable, *command[1:], "trainer.epochs=2", "method.warmup_epochs=1", "dataset.train_subset=128"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    records = []
    for attempt, extra in (("a", []), ("b", ["plots.enabled=false"])):
        out = subprocess.run([*shortened, *extra, f"output_root={tmp_path / attempt}"], cwd=ROOT, env=env, check=True,
                             capture_output=True, text=True, timeout=1800)  # a hang guard only
        summary_path = next((tmp_path / attempt).rglob("summary.json"))
        summary = json.loads(summary_path.read_text())
        assert summary["method"] == "dividemix" and summary["sanm"] == "on" and summary["noise"] == "sym_0.5"
        lines = out.stdout.strip().splitlines()
        root = tmp_path / attempt
        assert lines[-2] == f"table of the runs under {root}: python -m baselines.report {root}"
        assert lines[-1].endswith(f"summary in {summary_path}")
        metrics = next((tmp_path / attempt).rglob("metrics.jsonl")).read_text().splitlines()
        records.append([{k: v for k, v in json.loads(line).items() if "seconds" not in k} for line in metrics])
    assert len(records[0]) == 2 and records[0] == records[1]
