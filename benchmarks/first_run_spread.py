"""How far README's first run moves between seeds and CPU thread counts (issue 44).

CPU kernels reduce in an order that depends on the thread count (and the processor), and ten epochs on 1,437
digits amplify those last-bit differences, so the same command on another machine or thread count follows
another trajectory. This runs README's first-run command for each seed x thread count and prints best and last
test accuracy per run, then their range: the band README states.

    python benchmarks/first_run_spread.py                         # seeds 0 1 2, 1 and 2 threads (about 20 CPU-min)
    python benchmarks/first_run_spread.py --seeds 0 --threads 1 2 4
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRST_RUN = ["baselines.dividemix", "+sanm=on", "noise=sym_0.5", "+experiment=first_run"]  # README's command


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--output", type=Path, default=ROOT / "outputs" / "first_run_spread")
    args = parser.parse_args()
    rows = []
    for threads in args.threads:
        for seed in args.seeds:
            root = args.output / f"threads{threads}"
            env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
            command = [sys.executable, "-m", *FIRST_RUN, f"seed={seed}", f"output_root={root}", "resume=true",
                       "progress=false", "plots.enabled=false"]
            out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"seed {seed}, {threads} threads failed:\n{out.stderr[-2000:]}")
            summary = json.loads(next(root.rglob(f"seed{seed}/summary.json")).read_text())
            rows.append((threads, seed, summary["best_test_acc"], summary["last_test_acc"]))
            print(f"threads {threads} seed {seed}: best {rows[-1][2]:.2f} last {rows[-1][3]:.2f}", flush=True)
    print("\n| threads | seed | best | last |\n|---|---|---|---|")
    for threads, seed, best, last in rows:
        print(f"| {threads} | {seed} | {best:.2f} | {last:.2f} |")
    bests, lasts = [r[2] for r in rows], [r[3] for r in rows]
    print(f"\nbest {min(bests):.2f}-{max(bests):.2f}, last {min(lasts):.2f}-{max(lasts):.2f} over {len(rows)} runs")


if __name__ == "__main__":
    main()
