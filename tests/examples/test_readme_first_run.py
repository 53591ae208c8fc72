"""README's first-run command, as printed after the install, runs offline and writes its summary."""

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_first_run_command_works_offline(tmp_path):
    readme = (ROOT / "README.md").read_text()
    install = re.search(r"```bash\n(python3 -m venv .*?)\n```", readme).group(1)
    command = shlex.split(install.split(" && ")[-1])  # the run itself; the install is CI's own step
    assert command[:2] == ["python", "-m"] and "+experiment=smoke" in command
    subprocess.run([sys.executable, *command[1:], f"output_root={tmp_path}"], cwd=ROOT, check=True,
                   capture_output=True, timeout=300)
    summary = json.loads(next(tmp_path.rglob("summary.json")).read_text())
    assert summary["method"] == "dividemix" and summary["sanm"] == "on" and summary["noise"] == "sym_0.9"
