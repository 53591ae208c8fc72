"""docs/adding-a-method.md shows baselines/gce.py and conf/gce.yaml as shipped, and the example runs
as printed, with and without SANM."""

import json
import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from baselines.common.engine import run

ROOT = Path(__file__).resolve().parents[2]


def _block(language: str, first_line: str) -> str:
    page = (ROOT / "docs" / "adding-a-method.md").read_text()
    blocks = re.findall(rf"```{language}\n({re.escape(first_line)}.*?)```", page, flags=re.S)
    assert len(blocks) == 1, "docs/adding-a-method.md's example moved; update this test"
    return blocks[0]


def _without_docstring(source: str) -> str:
    """The module's code after its docstring and `from __future__` line (the page leaves both out)."""
    body = source.split('"""', 2)[2]
    return body.replace("from __future__ import annotations\n", "").strip() + "\n"


def test_the_page_shows_the_shipped_gce_module_and_yaml():
    shown = _block("python", "# baselines/gce.py\n").split("\n", 1)[1]
    assert shown == _without_docstring((ROOT / "baselines" / "gce.py").read_text())
    yaml = (ROOT / "conf" / "gce.yaml").read_text().split("\n", 1)[1]  # less its usage comment
    assert _block("yaml", "defaults:\n  - ce\n") == yaml


@pytest.mark.slow
@pytest.mark.parametrize("sanm", [None, "on"])
def test_the_method_example_trains_through_the_engine(tmp_path, sanm):
    namespace = {"__name__": "gce_example"}
    exec(compile(_block("python", "# baselines/gce.py\n"), "docs/adding-a-method.md", "exec"), namespace)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="gce", overrides=["+experiment=smoke", "noise=sym_0.5", "method.q=0.5",
                                                     *([f"+sanm={sanm}"] if sanm else [])])
    summary = run(cfg, namespace["GCE"], run_dir=tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert summary["epochs"] == 2 and ("loss/supervised" in records[0])
    assert ("mask_ratio_clean" in records[1]) == bool(sanm)
