"""Every document the code, configs and README point to is shipped in the repository."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("baselines", "sanm_plugin", "conf", "benchmarks", "examples", "docs")


def _texts():
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".yaml", ".md", ".csv", ".sh") and path.is_file():
                yield path, path.read_text()
    yield ROOT / "README.md", (ROOT / "README.md").read_text()


def test_every_docs_reference_names_a_shipped_file():
    references = {(path, ref) for path, text in _texts() for ref in re.findall(r"\bdocs/[\w./-]+\.md\b", text)}
    assert references, "no docs/ references found: the pattern is wrong"
    missing = sorted(f"{path.relative_to(ROOT)}: {ref}" for path, ref in references if not (ROOT / ref).is_file())
    assert not missing, missing
