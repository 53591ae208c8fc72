"""README's "Adding your own method" example runs as printed, with and without SANM."""

import json
import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from baselines.common.engine import run
from baselines.registry import BASELINES  # noqa: F401  (registers the ce schema the example composes)

ROOT = Path(__file__).resolve().parents[2]


def _example_source() -> str:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(# baselines/mymethod.py\n.*?)```", readme, flags=re.S)
    assert len(blocks) == 1, "README's method example moved; update this test"
    return blocks[0]


@pytest.mark.parametrize("sanm", [None, "on"])
def test_readme_method_example_trains_through_the_engine(tmp_path, sanm):
    namespace = {"__name__": "mymethod_example"}
    exec(compile(_example_source(), "README.md", "exec"), namespace)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="ce", overrides=["+experiment=smoke", "noise=sym_0.5",
                                                    *([f"+sanm={sanm}"] if sanm else [])])
    summary = run(cfg, namespace["MyMethod"], run_dir=tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert summary["epochs"] == 2 and "loss" in records[1]
    assert ("mask_ratio_clean" in records[1]) == bool(sanm)
