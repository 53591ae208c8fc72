"""The reference documentation builds as a site with no warning (issue 41): a link to a page or heading that does
not exist, a missing include (README's loop, benchmarks/RESULTS.md) or a page left out of the contents fails it."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # starts sphinx-build
def test_the_docs_build_strictly(tmp_path):
    result = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html",
                             str(ROOT / "docs"), str(tmp_path / "site")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "site" / "own-loop.html").read_text()
    assert "SANM in a plain PyTorch loop" in page  # README's loop, included
    assert "Measured results" in (tmp_path / "site" / "results.html").read_text()  # benchmarks/RESULTS.md, included
    built = {path.stem for path in (tmp_path / "site").glob("*.html")}
    assert {path.stem for path in (ROOT / "docs").glob("*.md")} <= built
