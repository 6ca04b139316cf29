"""Topics from the taxonomy's examples alone: heads trained without any labelled topic file,
measured on data/labelled/topics_eval.jsonl.

    .venv/bin/python -m bench.topics_from_examples
    .venv/bin/python -m bench.topics_from_examples --taxonomy my_taxonomy.yaml --threads 2

Training reads data/labelled/sentiment_train.jsonl only: its labels train the sentiment head, and
its sentences, which carry no topic labels, are the unlabelled text that every topic's weak labels
are drawn from (`models.training.fit_topic_heads`). topics_train.jsonl is not read, so every
topic is learnt from its examples and seed terms; topics_eval.jsonl is only scored. Prints
micro-F1, per-topic precision and recall, the CPU and the training time.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models import quiet_model_loading

REPO = Path(__file__).resolve().parents[1]
UNLABELLED = REPO / "data" / "labelled" / "sentiment_train.jsonl"
EVALUATION = REPO / "data" / "labelled" / "topics_eval.jsonl"
BAR = 0.70  # micro-F1 a topic set learnt from examples alone should reach


def cpu_model() -> str:
    """`lscpu`'s Model name (the CPU's own name where lscpu is missing)."""
    try:
        listing = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or platform.machine()
    names = [line.split(":", 1)[1].strip() for line in listing.splitlines() if line.startswith("Model name")]
    return names[0] if names else platform.processor() or platform.machine()


def measure(taxonomy_path: Path, cache_dir: Path | None, threads: int | None) -> dict[str, Any]:
    """Train on the examples (and unlabelled sentences) in a temporary folder; score topics_eval."""
    from models.classifier import TextClassifier, configure_threads
    from models.training import TrainingArguments, evaluate_model, read_examples, train_model
    from pipeline.taxonomy import load_taxonomy

    taxonomy = load_taxonomy(taxonomy_path)
    configure_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        folder = train_model(
            [UNLABELLED], Path(tmp) / "examples-only", taxonomy, TrainingArguments(name="examples-only"),
            cache_dir=cache_dir,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        model = TextClassifier.load(folder, cache_dir)
        metrics = evaluate_model(model, read_examples(EVALUATION, taxonomy))["topics"]
    return {"taxonomy": taxonomy.version, "card": model.card, "seconds": seconds, "topics": metrics}


def report(result: dict[str, Any]) -> str:
    card, topics = result["card"], result["topics"]
    micro = topics["micro"]
    lines = [
        f"taxonomy {result['taxonomy']}: {card['examples']['taxonomy_examples']} examples, "
        f"{card['examples']['unlabelled']} unlabelled sentences, no labelled topic rows "
        f"({len(card['topics_from_examples'])}/{len(card['topics'])} topics learnt from examples)",
        f"topics_eval.jsonl ({topics['n']} sentences, {micro['support']} topic labels), "
        f"threshold {card['arguments']['topic_threshold']}:",
        f"  micro  P {micro['precision']:.3f}  R {micro['recall']:.3f}  F1 {micro['f1']:.3f}"
        f"  ({'meets' if micro['f1'] >= BAR else 'below'} the {BAR:.2f} bar)"
        f"; macro-F1 {topics['macro_f1']:.3f}",
    ]
    for topic, m in topics["per_topic"].items():
        lines.append(
            f"  {topic:22s} P {m['precision']:.2f}  R {m['recall']:.2f}  F1 {m['f1']:.2f}  n {m['support']}"
        )
    recall = min(topics["per_topic"].items(), key=lambda item: item[1]["recall"])
    lines.append(f"  lowest recall: {recall[0]} {recall[1]['recall']:.2f}")
    lines.append(f"CPU {cpu_model()}; trained in {result['seconds']:.1f} s (encoder load, embedding, heads)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.topics_from_examples", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--taxonomy", type=Path, default=REPO / "configs" / "taxonomy.yaml")
    parser.add_argument("--cache-dir", type=Path, help="model cache (default: the usual one)")
    parser.add_argument("--threads", type=int, help="intra-op threads (default: every core)")
    args = parser.parse_args(argv)
    quiet_model_loading()
    print(report(measure(args.taxonomy, args.cache_dir, args.threads)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
