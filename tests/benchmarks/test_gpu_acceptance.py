"""benchmarks/gpu_acceptance.py's parts that need no GPU and no training: which cells it runs, how it judges a run
directory, and how the sync check names and classifies a synchronisation (the whole script runs in quick mode in
test_benchmark_scripts.py)."""

import json
import re
import sys
import warnings
from collections import Counter
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import epoch_time  # noqa: E402
import gpu_acceptance  # noqa: E402
import sync_check  # noqa: E402
from baselines.registry import BASELINES  # noqa: E402


def test_the_full_run_checks_every_method_with_each_sanm_variant_under_each_precision():
    cells = gpu_acceptance.full_cells()
    assert {cell.method for cell in cells} == set(BASELINES)
    for method in BASELINES:
        variants = {(c.sanm, c.recipe) for c in cells if c.method == method}
        expected = {("off", "paper"), ("on", "paper"), ("official", "paper")}
        if method in ("dividemix", "c2d"):  # the methods with a recipe
            expected.add(("official", "official"))
        assert variants == expected, method
        for sanm, recipe in variants:
            mine = [(c.precision, c.channels_last, c.compile) for c in cells if (c.method, c.sanm, c.recipe) ==
                    (method, sanm, recipe)]
            assert sorted(mine) == [("32", False, "false"), ("bf16", False, "false"), ("bf16", True, "true"),
                                    ("fp16", False, "false")], (method, sanm, recipe)
    assert len({cell.name for cell in cells}) == len(cells)  # one run directory each


def test_every_configuration_of_the_full_check_composes_so_a_gpu_session_fails_on_nothing_but_the_gpu():
    device = torch.device("cuda")
    runs = [*gpu_acceptance.full_cells(), *(cell for _, cell in gpu_acceptance.sync_runs(quick=False))]
    # one per method and SANM variant, with every speed option (the precisions' values: test_acceleration.py)
    distinct = {(c.method, c.sanm, c.recipe): gpu_acceptance.Cell(c.method, c.sanm, c.recipe, "fp16", True, "true")
                for c in runs}
    for cell in distinct.values():
        cfg = epoch_time.compose_run(cell.method, [*gpu_acceptance.common_overrides(device), *cell.overrides()])
        assert (cfg.trainer.precision, cfg.trainer.compile, cfg.device) == ("fp16", True, "cuda"), cell
        assert (cfg.get("sanm") is None) == (cell.sanm == "off"), cell
    for variant in gpu_acceptance.TIMED:
        method, overrides = epoch_time.VARIANTS[variant]
        epoch_time.compose_run(method, overrides)


def test_a_cell_is_the_command_line_a_user_types():
    cell = gpu_acceptance.Cell("dividemix", "official", "official", "fp16", channels_last=True, compile="true")
    assert cell.overrides() == ["+sanm=official", "+recipe=official", "trainer.precision=fp16",
                                "trainer.channels_last=true", "trainer.compile=true"]
    assert cell.label == "dividemix +sanm=official +recipe=official"
    assert gpu_acceptance.Cell("ce").overrides()[0] == "trainer.precision=32"


def _write_run(folder: Path, state: str = "finished", losses: tuple = (2.3, 2.1)) -> None:
    folder.mkdir(parents=True)
    (folder / "status.json").write_text(json.dumps({"state": state}))
    records = [{"epoch": i + 1, "loss/total": loss, "gmm_auc": float("nan")} for i, loss in enumerate(losses)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_a_run_passes_when_finished_with_finite_losses_and_its_pretraining_counts_too(tmp_path):
    _write_run(tmp_path / "run")
    assert gpu_acceptance.judge_run(tmp_path / "run") == ("ok", "loss/total 2.100")  # NaN diagnostics are fine
    _write_run(tmp_path / "run" / "pretrain_simclr", losses=(1.0, float("inf")))
    status, _ = gpu_acceptance.judge_run(tmp_path / "run")
    assert status == "FAILED: epoch 2: non-finite loss/total"
    _write_run(tmp_path / "stopped", state="interrupted")
    assert gpu_acceptance.judge_run(tmp_path / "stopped")[0] == "FAILED: stopped is interrupted"
    assert gpu_acceptance.judge_run(tmp_path / "none")[0].startswith("FAILED: no run in")


def _synchronises() -> None:
    warnings.warn(sync_check.SYNC_WARNING + " (as CUDA words it)")


def test_a_sync_is_named_by_its_innermost_library_frame_and_allowed_only_where_listed(monkeypatch):
    monkeypatch.setattr(sync_check, "PROJECT", (ROOT / "tests",))  # this file stands in for the library
    with sync_check.SyncRecorder(torch.device("cpu")) as recorder:
        for _ in range(3):
            _synchronises()
    assert not recorder.active  # on CPU nothing switches the debug mode on; the warnings are recorded all the same
    site = sync_check.Site("tests/benchmarks/test_gpu_acceptance.py", "_synchronises",
                           "warnings.warn(sync_check.SYNC_WARNING + \" (as CUDA words it)\")")
    assert recorder.sites == Counter({site: 3})
    monkeypatch.setitem(sync_check.ALLOWED_SYNCS, site.key, sync_check.Allowed("a test", precisions=("fp16",)))
    assert sync_check.classify(recorder.sites, "fp16") == ({site: 3}, {})
    assert sync_check.classify(recorder.sites, "bf16") == ({}, {site: 3})  # fp16-only syncs fail elsewhere


def test_the_report_lists_each_sync_with_its_reason_or_as_a_failure():
    allowed = sync_check.Site("baselines/common/metrics.py", "EpochMeans.means", "return {...}")
    stray = sync_check.Site("baselines/x.py", "X.step", "if loss > 0:")
    good = sync_check.SyncReport("ce", "bf16", allowed={allowed: 2})
    bad = sync_check.SyncReport("ce +sanm=on", "bf16", allowed={allowed: 2}, unlisted={stray: 8})
    assert (good.status(), good.passed) == ("ok", True)
    assert (bad.status(), bad.passed) == ("FAILED: 8 unlisted sync(s)", False)
    assert sync_check.SyncReport("ce", "32", skipped="CPU").status() == "skipped: CPU"
    table = sync_check.sites_table([good, bad])
    assert "| baselines/x.py: X.step | `if loss > 0:` | NO | not listed: remove it, or add it to ALLOWED_SYNCS" in table
    assert re.search(r"\| baselines/common/metrics.py: EpochMeans.means \| .* \| yes \| the epoch's mean losses.* \| "
                     r"ce bf16: 2; ce \+sanm=on bf16: 2 \|", table), table


def test_every_allowed_sync_names_a_function_that_exists():
    for (file, function), _ in sync_check.ALLOWED_SYNCS.items():
        source = (ROOT / file).read_text()
        *owner, name = function.split(".")
        assert re.search(rf"^\s*def {name}\(", source, flags=re.M), (file, function)
        assert not owner or re.search(rf"^class {owner[0]}\b", source, flags=re.M), (file, function)
