"""A regular (non-editable) install works: the wheel carries the Hydra configs and its CLI runs from anywhere."""

import subprocess
import sys
import pytest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_wheel_install_runs_the_smoke_preset(tmp_path):
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(ROOT)],
                   check=True, capture_output=True)
    wheel, = (tmp_path / "dist").glob("sanm_plugin-*.whl")
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True, capture_output=True)
    # outside the checkout, with the installed copy first on the path (torch & co. come from this environment)
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    where = subprocess.run([sys.executable, "-c", "import baselines, baselines.common.cli as c; "
                            "print(baselines.__file__); print(c.config_path())"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert where == [str(site / "baselines" / "__init__.py"), "pkg://baselines.conf"]
    result = subprocess.run([sys.executable, "-m", "baselines.ce", "+experiment=smoke", "output_root=out"],
                            cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "ce" / "digits" / "none" / "off" / "seed0" / "summary.json").is_file()
    # the report reads the paper's figures from the installed package
    report = subprocess.run([sys.executable, "-m", "baselines.report", "out"], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert report.returncode == 0 and "| ce | digits | none | off |" in report.stdout, report.stderr
