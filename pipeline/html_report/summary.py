"""The report's headline as text: for the terminal after `voc report` and for the nightly flow's
Prefect artifact."""

from __future__ import annotations

from pathlib import Path

from pipeline.html_report.data import Headline, ReportData


def change_text(h: Headline) -> str:
    if h.change is None or h.change_ci is None:
        return "no responses in the previous window to compare with"
    verdict = "more than noise" if h.change_is_real else "within noise"
    low, high = h.change_ci
    return (
        f"{h.change:+.1f} points against {h.previous_start} .. {h.previous_end} "
        f"({low:+.1f} to {high:+.1f}: {verdict})"
    )


def headline_text(data: ReportData) -> str:
    h = data.headline
    level = f"{data.confidence:.0%}"
    nps = "-" if h.current.nps is None else f"{h.current.nps:+.1f}"
    interval = f"{level} interval {h.current.ci_low:+.1f} to {h.current.ci_high:+.1f}"
    return (
        f"NPS {h.start} .. {h.end}: {nps} ({interval}), {h.current.n:,} responses\n  change: {change_text(h)}"
    )


def headline_markdown(data: ReportData, path: Path) -> str:
    """The nightly artifact: the headline numbers, the top drivers' names and where the page is."""
    h = data.headline
    level = f"{data.confidence:.0%}"
    nps = "–" if h.current.nps is None else f"{h.current.nps:+.1f}"
    lines = [
        f"# NPS report, {h.start} .. {h.end}",
        "",
        "| NPS | interval | responses | change against the previous window |",
        "|---:|---|---:|---|",
        f"| {nps} | {level}: {h.current.ci_low:+.1f} to {h.current.ci_high:+.1f} | {h.current.n:,} "
        f"| {change_text(h)} |",
        "",
    ]
    down = [d for d in data.drivers if d["impact"] < 0][:3]
    if down:
        lines.append(
            "Pulling NPS down most: " + ", ".join(f"{d['label_ja']} ({d['impact']:+.1f})" for d in down)
        )
        lines.append("")
    lines.append(f"The full report (one HTML file, works offline): `{path.resolve()}`")
    lines.append(f"[open it]({path.resolve().as_uri()})")
    return "\n".join(lines)
