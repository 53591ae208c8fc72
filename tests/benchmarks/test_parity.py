"""benchmarks/parity.py keeps working without the official code: it runs against stand-ins written here with the
official scripts' interface (tests/benchmarks/official_standin/), never running their module level. With
model.softmax_output=true our ResNet-18 agrees with the stand-in's SupCEResNet, which returns probabilities."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STANDIN = Path(__file__).resolve().parent / "official_standin"
sys.path.insert(0, str(ROOT / "benchmarks"))
import parity  # noqa: E402


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return parity.compare(STANDIN / "sanm", STANDIN / "dividemix", batch=2, workdir=tmp_path_factory.mktemp("parity"))


@pytest.mark.slow  # the harness's whole-step rows: two width-64 ResNet-18 steps, about a minute
def test_every_compared_quantity_agrees_with_the_stand_in(table):
    rows, _ = table
    assert {row.part for row in rows} == {
        "SANM eval_train", "SANM(DivideMix) step", "deliberate: paper preset",
        "official network, model.softmax_output=true", "deliberate: model.softmax_output=false",
        "DivideMix eval_train", "DivideMix step"}
    outside = [f"{row.part}: {row.quantity} {row.diffs}" for row in rows if not row.within and not row.deliberate]
    assert not outside
    quantities = {row.quantity for row in rows if row.part == "SANM(DivideMix) step"}
    assert {"peak boxes (top, bottom, left, right)", "NLR targets", "reconstruction term (0.02 x both MSEs)",
            "mixed batch (12B rows)", "L_u", "ramp: lambda_u(t)", "prior penalty", "loss"} <= quantities


@pytest.mark.slow  # the harness's whole-step rows: two width-64 ResNet-18 steps, about a minute
def test_deliberate_differences_are_measured_not_hidden(table):
    rows, _ = table
    deliberate = [row for row in rows if row.deliberate]
    assert deliberate and all(row.diffs[0] > 0 for row in deliberate)
    assert "| deliberate: model.softmax_output=false | loss |" in parity.markdown(rows)


@pytest.mark.slow  # the harness's whole-step rows: two width-64 ResNet-18 steps, about a minute
def test_a_copy_outside_a_git_checkout_has_no_commit(table):
    _, commits = table
    assert commits == {"SANM": "unknown (not a git checkout)", "DivideMix": "unknown (not a git checkout)"}


def test_only_definitions_and_their_imports_are_taken():
    official = parity.load_definitions(STANDIN / "sanm" / "Train_cifar.py")
    assert {"train", "eval_train", "attention_erase_map", "SemiLoss"} <= set(official.namespace)
    assert "create_model_noself" not in official.namespace  # its default reads the module level, which never ran
    assert "dataloader" not in official.namespace and "num_classes" not in official.namespace
    with pytest.raises(SystemExit, match="defines no 'ResNet18'"):
        official["ResNet18"]


def test_a_missing_checkout_is_one_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="checkout of the official repository"):
        parity.load_definitions(tmp_path / "Train_cifar.py")


def test_rows_measure_relative_to_the_official_scale():
    row = parity.Row("p", "q", [1.0, 2.0 + 4e-5], [1.0, 2.0])
    assert row.diffs == pytest.approx((4e-5, 2e-5)) and not row.within
    assert parity.Row("p", "q", [3, 0], [3, 0]).within
    with pytest.raises(ValueError, match="ours has"):
        _ = parity.Row("p", "q", [1.0], [1.0, 2.0]).diffs
