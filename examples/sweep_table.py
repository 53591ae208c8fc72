"""One Markdown table of every finished run under a folder (a sweep's output_root), read from summary.json.

    python examples/sweep_table.py outputs/sweep

Rows are sorted by method, dataset, noise, SANM preset and seed; `at best val` is filled for runs with a
noisy validation split (CDR). Runs without summary.json (unfinished, or killed: resume=true continues them)
are counted, not listed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

COLUMNS = ("method", "dataset", "noise", "sanm", "seed", "best", "last", "mean last 10", "at best val", "wrong labels fitted")


def rows(root: Path) -> list[tuple]:
    """(method, dataset, noise, sanm, seed, best, last, mean10, at best val, fitted wrong) per finished run."""
    found = []
    for path in sorted(root.rglob("summary.json")):
        summary = json.loads(path.read_text())
        seed = path.parent.name.removeprefix("seed")
        found.append((summary["method"], summary["dataset"], summary["noise"], summary["sanm"], seed,
                      summary["best_test_acc"], summary["last_test_acc"], summary["mean_last10_test_acc"],
                      summary.get("test_acc_at_best_val"), summary.get("fitted_wrong_labels")))
    return sorted(found, key=lambda row: tuple(str(value) for value in row[:5]))


def table(root: Path) -> str:
    def cell(value) -> str:
        if value is None:
            return "-"
        return f"{value:.2f}" if isinstance(value, float) else str(value)

    found = rows(root)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in found:
        *head, fitted = row
        lines.append("| " + " | ".join(cell(v) for v in head) + f" | {'-' if fitted is None else f'{fitted:.1%}'} |")
    unfinished = sum(1 for p in root.rglob("metrics.jsonl") if not (p.parent / "summary.json").exists())
    lines.append(f"\n{len(found)} finished runs under {root}" + (f"; {unfinished} unfinished" if unfinished else ""))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="a sweep's output_root")
    args = parser.parse_args()
    if not args.root.is_dir():
        raise SystemExit(f"error: {args.root} is not a folder; pass the sweep's output_root")
    print(table(args.root))


if __name__ == "__main__":
    main()
