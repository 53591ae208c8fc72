"""The quick subset (`python -m pytest -m "not slow"`, README) stays quick as tests are added: a test that trains
through the engine, starts a process or builds a package carries `@pytest.mark.slow` (or its module does)."""

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
# calls that train a network (the engine's run, the CLI, an example's main) or start a process
SLOW_CALLS = {"run", "cli", "Popen", "check_output", "check_call", "main", "run_example"}


def _marked_slow(decorators: list[ast.expr]) -> bool:
    return any(ast.unparse(d).startswith("pytest.mark.slow") for d in decorators)


def _called_names(node: ast.AST) -> set[str]:
    names = set()
    for call in ast.walk(node):
        if isinstance(call, ast.Call):
            func = call.func
            names.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
    return names


def unmarked_slow_tests(source: str) -> list[str]:
    """Test functions in `source` that call one of SLOW_CALLS, directly, through a helper defined in the same
    module or through a fixture of the module that does, without the slow mark on them or on the module."""
    tree = ast.parse(source)
    if any(isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in node.targets)
           and "slow" in ast.unparse(node.value) for node in tree.body):
        return []
    helpers = {node.name: node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
               and not node.name.startswith("test_")}
    slow_helpers = set()
    for _ in range(3):  # helpers that call helpers
        slow_helpers |= {name for name, node in helpers.items() if _called_names(node) & (SLOW_CALLS | slow_helpers)}
    slow_fixtures = {name for name in slow_helpers if any("fixture" in ast.unparse(d) for d in helpers[name].decorator_list)}

    def slow(node: ast.FunctionDef) -> bool:
        return bool(_called_names(node) & (SLOW_CALLS | slow_helpers)
                    or {arg.arg for arg in node.args.args} & slow_fixtures)

    return [node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
            and slow(node) and not _marked_slow(node.decorator_list)]


def test_the_guard_finds_an_unmarked_training_test_and_passes_a_marked_one():
    source = ("import pytest\ndef _train(x):\n    return run(x)\n@pytest.mark.slow\ndef test_a():\n    run(1)\n"
              "def test_b():\n    _train(1)\ndef test_c():\n    assert 1 + 1 == 2\n"
              "@pytest.fixture(scope='module')\ndef trained():\n    return _train(2)\ndef test_d(trained):\n    pass\n")
    assert unmarked_slow_tests(source) == ["test_b", "test_d"]


@pytest.mark.parametrize("path", sorted(TESTS.rglob("test_*.py")), ids=lambda p: str(p.relative_to(TESTS)))
def test_every_test_that_trains_or_starts_a_process_is_marked_slow(path):
    assert unmarked_slow_tests(path.read_text()) == [], f"add @pytest.mark.slow to these tests of {path.name}"
