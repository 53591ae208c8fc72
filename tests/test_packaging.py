"""A regular (non-editable) install works: the wheel carries the Hydra configs and its CLI runs from anywhere, and the
library alone (`pip install sanm-plugin`, no extra) needs only torch, numpy and scikit-learn."""

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(wheel, site): the project's wheel, and a folder it is installed into without its dependencies."""
    tmp_path = tmp_path_factory.mktemp("wheel")
    subprocess.run([*PIP, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(ROOT)],
                   check=True, capture_output=True)
    wheel, = (tmp_path / "dist").glob("sanm_plugin-*.whl")
    site = tmp_path / "site"
    subprocess.run([*PIP, "install", "--no-deps", "--target", str(site), str(wheel)], check=True, capture_output=True)
    return wheel, site


@pytest.mark.slow
def test_a_wheel_install_runs_the_smoke_preset(installed, tmp_path):
    _, site = installed
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


def _requirements(wheel: Path) -> dict[str, set[str]]:
    """{extra ('' = none): the distribution names it requires}, from the wheel's METADATA."""
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        lines = archive.read(metadata).decode().splitlines()
    required: dict[str, set[str]] = {}
    for line in lines:
        if line.startswith("Requires-Dist: "):
            spec = line[len("Requires-Dist: "):]
            extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", spec)
            name = re.match(r"[A-Za-z0-9_.-]+", spec).group(0).lower()
            required.setdefault(extra.group(1) if extra else "", set()).add(name)
    return required


# Simulates an environment with the library's dependencies only: the packages the extras bring cannot be imported.
_WITHOUT_EXTRAS = '''
import importlib.abc, sys
EXTRAS = {"hydra", "omegaconf", "torchvision", "tqdm", "lightning", "pytorch_lightning"}
class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in EXTRAS:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NotInstalled())
'''

_USE_THE_LIBRARY = _WITHOUT_EXTRAS + '''
import torch, torch.nn.functional as F
import sanm_plugin
from sanm_plugin import LabelQuality, SANMAugmenter
print(sanm_plugin.__file__)
model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 2, 1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                            torch.nn.Flatten(), torch.nn.Linear(8, 4))
x, y, idx = torch.randn(8, 3, 16, 16), torch.arange(8) % 4, torch.arange(8)
sanm = SANMAugmenter.for_model(model, (3, 16, 16))
quality = LabelQuality(8)
logits, feats = sanm.tap(x)
quality.record(idx, F.cross_entropy(logits.detach(), y, reduction="none"))
quality.refresh()
(F.cross_entropy(logits, y) + sanm.loss(x, y, quality[idx], logits, feats).total).backward()
print(sorted(m for m in sys.modules if m.split(".")[0] in EXTRAS | {"baselines"}))
try:
    import sanm_plugin.lightning
except ImportError as error:
    print(error)
'''


@pytest.mark.slow
def test_the_library_alone_needs_torch_numpy_and_scikit_learn(installed, tmp_path):
    wheel, site = installed
    required = _requirements(wheel)
    assert required[""] == {"torch", "numpy", "scikit-learn"}
    assert required["baselines"] == {"torchvision", "hydra-core", "omegaconf", "tqdm"}
    assert required["lightning"] == {"lightning"}
    assert required["baselines"] | required["lightning"] <= required["dev"]  # the suite's install has them all
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", _USE_THE_LIBRARY], cwd=tmp_path, env=env, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    where, imported, lightning_error = result.stdout.splitlines()
    assert where == str(site / "sanm_plugin" / "__init__.py") and imported == "[]"
    assert 'pip install "sanm-plugin[lightning]"' in lightning_error
