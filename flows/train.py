"""The train flow: an analyst's labelled JSONL in, a model folder with its card out.

The same training as ``voc train`` (both call `models.registry.train_configured_model`); as a
deployment it runs on the machine that serves it, and the model card's metrics appear as an
artifact. Point ``model.path`` at the folder to use it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.common import flow_settings
from models.classifier import CARD_FILE
from models.registry import train_configured_model
from pipeline.progress import LogLines


@task(task_run_name="fit-{out}", cache_policy=NO_CACHE)
def fit_model(
    data: list[str],
    out: str,
    config: str | None,
    topic_data: list[str],
    evaluation: list[str],
    overrides: dict[str, Any],
    calibration: list[str],
) -> str:
    """Train and save the model folder; CPU-bound, so no retries (a second try fails the same way)."""
    folder = train_configured_model(
        flow_settings(config),
        [Path(p) for p in data],
        Path(out),
        topic_data=[Path(p) for p in topic_data],
        evaluation=[Path(p) for p in evaluation],
        calibration=[Path(p) for p in calibration],
        overrides=overrides,
        progress=LogLines(get_run_logger().info),  # encoding and fine-tuning in the task's run log
    )
    return str(folder)


def card_markdown(card: dict[str, Any]) -> str:
    """The card's headline metrics, one row per evaluation file."""
    lines = [f"# Model {card['model_version']}", "", f"Trained in {card['seconds']['total']:.0f} s.", ""]
    lines += ["| evaluated on | sentiment macro-F1 | topics micro-F1 |", "|---|---:|---:|"]
    for name, metrics in card["metrics"].items():
        sentiment = metrics.get("sentiment", {}).get("macro_f1")
        topics = metrics.get("topics", {}).get("micro", {}).get("f1")
        lines.append(f"| {name} | {_metric(sentiment)} | {_metric(topics)} |")
    return "\n".join(lines)


@flow(name="train")
def train(
    data: list[str],
    out: str,
    config: str | None = None,
    topic_data: list[str] | None = None,
    evaluation: list[str] | None = None,
    encoder: str | None = None,
    fine_tune: bool = False,
    epochs: int = 3,
    max_steps: int | None = None,
    seed: int = 13,
    calibration: list[str] | None = None,
) -> str:
    """Train heads (optionally fine-tuning the encoder) on ``data``, the sentiment temperature
    and topic threshold fitted on ``calibration`` when given; returns the model folder."""
    overrides: dict[str, Any] = {
        "fine_tune": fine_tune,
        "epochs": epochs,
        "max_steps": max_steps,
        "seed": seed,
    }
    if encoder:
        overrides["encoder"] = encoder
    folder = fit_model(data, out, config, topic_data or [], evaluation or [], overrides, calibration or [])
    card = json.loads((Path(folder) / CARD_FILE).read_text(encoding="utf-8"))
    create_markdown_artifact(card_markdown(card), key="model-card", description=card["model_version"])
    return folder


def _metric(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
