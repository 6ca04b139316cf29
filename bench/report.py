"""How long `voc report` takes and how big its page is, on the benchmark's stores.

    .venv/bin/python -m bench.report                          # 10,000 and 100,000 responses
    .venv/bin/python -m bench.report --responses 100000 --repeat 3

Each size's store is the one `python -m bench.run --responses N` left in output/bench (built here
with the same code when it is missing). Each build runs in a fresh process, as `voc report` does,
so it pays for loading the charting libraries and the Vega runtime; the smallest size is the
baseline the others are compared with, measured in the same command.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from bench.cpu import cpu_report, format_cpu
from pipeline.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
MB = 1_000_000
BAR_SECONDS, BAR_BYTES = 15.0, 3 * MB


def ensure_store(n: int, out: Path) -> Path:
    db = out / f"bench-{n}.duckdb"
    if not db.exists():
        from bench.run import bench_pipeline

        bench_pipeline(n, out, load_settings(REPO / "configs" / "pipeline.yaml"))
    return db


def time_report(db: Path, report_format: str, out: Path) -> float:
    """Seconds for `voc report` on ``db``, the command's own process included."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "voc", "report", "--db", str(db), "--format", report_format, "--out", str(out),
         "--segment", "channel"],
        check=True, capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    return time.perf_counter() - start


def measure(n: int, folder: Path, repeat: int) -> dict[str, Any]:
    db = ensure_store(n, folder)
    con = duckdb.connect(str(db), read_only=True)
    try:
        ((responses,),) = con.execute("SELECT count(*) FROM responses").fetchall()
    finally:
        con.close()
    page = folder / f"report-{n}.html"
    html = [time_report(db, "html", page) for _ in range(repeat)]
    png = [time_report(db, "png", folder / f"report-{n}-png") for _ in range(repeat)]
    return {"responses": int(responses), "html_seconds": min(html), "png_seconds": min(png),
            "html_bytes": page.stat().st_size}  # fmt: skip


def format_rows(rows: list[dict[str, Any]]) -> str:
    base = rows[0]
    lines = ["responses  html s  png s  page MB  html vs smallest  bar (< 15 s, < 3 MB)"]
    for r in rows:
        ok = r["html_seconds"] < BAR_SECONDS and r["html_bytes"] < BAR_BYTES
        lines.append(
            f"{r['responses']:>9,}  {r['html_seconds']:>6.1f}  {r['png_seconds']:>5.1f}  "
            f"{r['html_bytes'] / MB:>7.2f}  {r['html_seconds'] / base['html_seconds']:>15.2f}x  "
            f"{'met' if ok else 'MISSED'}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--responses", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=2, help="builds per size; the fastest counts")
    parser.add_argument("--out", type=Path, default=REPO / "output" / "bench")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [measure(n, args.out, args.repeat) for n in sorted(args.responses)]
    print(format_cpu(cpu_report()))
    print(format_rows(rows))
    (args.out / "report-bench.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0 if all(r["html_seconds"] < BAR_SECONDS and r["html_bytes"] < BAR_BYTES for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
