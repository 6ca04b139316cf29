"""The benchmark: N recombined survey responses through the whole pipeline into a fresh DuckDB
file, then the naive transformers baseline and each step of the classify path on the same model
and sentences. Figures are compared within one run, as ratios, so they compare like with like.

    .venv/bin/python -m bench.run                        # 10,000 responses, full report
    .venv/bin/python -m bench.run --responses 100000     # the same at 100,000
    .venv/bin/python -m bench.run --responses 10000 100000 --pipeline-only
                                                         # peak memory of each size, own process each

Prints a table and writes ``output/bench/bench-<N>.json`` (``--out`` to change the folder).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from bench.cpu import cpu_report, format_cpu
from bench.memory import StageMemory, current_rss, peak_rss
from bench.synthetic import build_responses
from models import quiet_model_loading
from models.fast_encoder import FAST_FOLDER_SUFFIX
from pipeline.errors import Stage
from pipeline.job import run_job
from pipeline.settings import Settings, StoreSettings, load_settings

REPO = Path(__file__).resolve().parents[1]
JRTE_DEV = REPO.parent / "shared" / "data" / "jrte_pn" / "dev.jsonl"
MB = 1024 * 1024

RunBatch = Callable[[np.ndarray, np.ndarray], np.ndarray]


# --------------------------------------------------------------------------- the whole pipeline


def bench_pipeline(n: int, out: Path, settings: Settings) -> dict[str, Any]:
    """Build the input, load the configured model, run the job; seconds and peak RSS per stage."""
    from models.registry import load_configured_model

    export = build_responses(n, out / f"responses-{n}.csv")
    db = out / f"bench-{n}.duckdb"
    db.unlink(missing_ok=True)
    settings = settings.model_copy(update={"store": StoreSettings(duckdb_path=db)})
    with StageMemory() as memory:
        memory.enter("model_load")
        start = time.perf_counter()
        taxonomy, model = load_configured_model(settings)
        model_load = time.perf_counter() - start
        memory.enter(None)
        summary = run_job(export, settings, model, taxonomy, stage_listener=memory.enter)
    con = duckdb.connect(str(db), read_only=True)
    try:
        ((sentences, distinct),) = con.execute(
            "SELECT count(*), count(DISTINCT sentence_text) FROM sentences"
        ).fetchall()
    finally:
        con.close()
    total = sum(summary.seconds_by_stage.values())
    return {
        "responses": n,
        "rows_in": summary.rows_in,
        "published": summary.rows_published,
        "quarantined": summary.rows_quarantined,
        "sentences": int(sentences),
        "distinct_sentences": int(distinct),
        "predictions_computed": summary.predictions_computed,
        "model_version": model.model_version,
        "model_load_seconds": round(model_load, 2),
        "model_load_peak_rss_mb": round(memory.peaks.get("model_load", 0) / MB),
        "stages": {
            stage.value: {
                "seconds": round(seconds, 3),
                "responses_per_s": round(summary.rows_in / seconds, 1) if seconds else None,
                "peak_rss_mb": round(memory.peaks.get(stage, 0) / MB),
            }
            for stage, seconds in summary.seconds_by_stage.items()
        },
        "total_seconds": round(total, 2),
        "responses_per_s": round(summary.rows_in / total, 1),
        "peak_rss_mb": round(peak_rss() / MB),
        "store": str(db),
    }


# --------------------------------------------------------------------------- the classify path


def _distinct_sentences(db: Path, count: int, seed: int = 7) -> list[str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        texts = [
            t for (t,) in con.execute("SELECT DISTINCT sentence_text FROM sentences ORDER BY 1").fetchall()
        ]
    finally:
        con.close()
    return random.Random(seed).sample(texts, min(count, len(texts)))


def _torch_run(encoder: Any) -> RunBatch:
    import torch

    from models.embedding import mean_pool

    def run(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        mask = torch.from_numpy(attention_mask)
        with torch.inference_mode():
            states = encoder(input_ids=torch.from_numpy(input_ids), attention_mask=mask).last_hidden_state
            return mean_pool(states, mask).numpy()

    return run


class _Steps:
    """Each classify step on the same sentences: sentences/s and × naive, padding waste, how
    often its labels are the reference path's, and how many change when the same sentences are
    batched with others (every other sentence alone)."""

    def __init__(
        self, texts: list[str], batch: int, prefix: str, hidden: int, naive_rate: float, heads: Any
    ) -> None:
        self.texts, self.batch, self.prefix, self.hidden = texts, batch, prefix, hidden
        self.naive_rate, self.heads = naive_rate, heads
        self.repeats = 2
        self.reference: tuple[np.ndarray, np.ndarray] | None = None  # sentiment labels, topic sets
        self.rows: list[dict[str, Any]] = []

    def _labels(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sentiment, topics = self.heads.apply(vectors)
        return sentiment.argmax(axis=1), topics >= self.heads.topic_threshold

    def measure(self, name: str, run: RunBatch, tokenizer: Any, sort: bool = True) -> np.ndarray:
        from models.embedding import PaddingStats, embed_with

        def embed(texts: list[str], padding: PaddingStats | None = None) -> np.ndarray:
            return embed_with(run, texts, tokenizer, self.hidden, self.batch, self.prefix, padding, sort)

        embed(self.texts[: self.batch])  # warm-up: first-call allocations are not throughput
        seconds = float("inf")
        for _ in range(self.repeats):  # the best pass: the least disturbed by other work
            padding = PaddingStats()
            start = time.perf_counter()
            vectors = embed(self.texts, padding)
            seconds = min(seconds, time.perf_counter() - start)
        rate = len(self.texts) / seconds
        sentiment, topics = self._labels(vectors)
        if self.reference is None:
            self.reference = sentiment, topics
        rebatched = embed(self.texts[::2])
        self.rows.append({
            "step": name,
            "sentences_per_s": round(rate, 1),
            "vs_naive": round(rate / self.naive_rate, 2),
            "padding_waste": round(padding.waste, 3),
            "same_sentiment_as_reference": round(float((sentiment == self.reference[0]).mean()), 4),
            "same_topics_as_reference": round(float((topics == self.reference[1]).all(axis=1).mean()), 4),
            "rebatched_max_difference": float(np.abs(rebatched - vectors[::2]).max()),
            "rebatched_sentiment_changes": int((self._labels(rebatched)[0] != sentiment[::2]).sum()),
        })  # fmt: skip
        return vectors


def _onnx_dynamic_int8(base: Path, folder: Path) -> Any:
    """ONNX Runtime's own dynamic quantization (one activation range per tensor) of the same
    export, as the alternative the fast path is measured against."""
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from models.fast_encoder import available_cores, export_onnx

    fp32, int8 = folder / "fp32.onnx", folder / "dynamic-int8.onnx"
    export_onnx(base, fp32)
    root = logging.getLogger()
    level, root.level = root.level, logging.ERROR  # the quantizer's advice to pre-process
    try:
        quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8, per_channel=True)
    finally:
        root.setLevel(level)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = available_cores(), 1
    session = ort.InferenceSession(str(int8), options, providers=["CPUExecutionProvider"])
    return lambda ids, mask: session.run(None, {"input_ids": ids, "attention_mask": mask})[0]


def bench_classify(settings: Settings, db: Path, baseline_n: int, study_n: int) -> dict[str, Any]:
    """The naive baseline, then each step of the fast path, on the same distinct sentences."""
    import tempfile
    import warnings

    import torch

    from bench.baseline import run_naive
    from models.fast_encoder import OnnxEncoder
    from models.registry import load_configured_model
    from models.vocabulary import trim_vocabulary
    from pipeline.contracts import SENTIMENT_LABELS

    study = _distinct_sentences(db, study_n)
    _, reference = load_configured_model(_with_inference(settings, "reference"))
    _, fast = load_configured_model(_with_inference(settings, "fast"))
    assert isinstance(fast.encoder, OnnxEncoder)
    naive_seconds, naive_labels = run_naive(reference, study[:baseline_n])
    naive_rate = min(baseline_n, len(study)) / naive_seconds
    steps = _Steps(
        study, settings.model.batch_size, reference.card["encoder"]["prefix"],
        int(reference.encoder.config.hidden_size), naive_rate, reference.heads,
    )  # fmt: skip

    batch = settings.model.batch_size
    steps.measure(f"batches of {batch} in arrival order (PyTorch float32)", _torch_run(reference.encoder),
                  reference.tokenizer, sort=False)  # fmt: skip
    full = steps.measure(
        "+ batches sorted by token count", _torch_run(reference.encoder), reference.tokenizer
    )
    trimmed_model, trimmed_tokenizer = trim_vocabulary(reference.encoder, reference.tokenizer)
    trimmed = steps.measure("+ vocabulary trimmed to Japanese", _torch_run(trimmed_model), trimmed_tokenizer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notices
        torch_int8 = torch.ao.quantization.quantize_dynamic(
            trimmed_model, {torch.nn.Linear}, dtype=torch.qint8
        )
    steps.measure("  alternative: PyTorch dynamic int8", _torch_run(torch_int8), trimmed_tokenizer)
    onnx = fast.encoder
    trimmed_folder = onnx.folder.with_name(onnx.folder.name.removesuffix(FAST_FOLDER_SUFFIX))
    with tempfile.TemporaryDirectory() as scratch:
        dynamic = _onnx_dynamic_int8(trimmed_folder, Path(scratch))
        steps.measure("  alternative: ONNX Runtime dynamic int8", dynamic, onnx.tokenizer)
    steps.measure(f"+ int8 per token, ONNX Runtime, {onnx.threads} threads: fast path", onnx.run_batch,
                  onnx.tokenizer)  # fmt: skip
    for count in (1, 2 * onnx.threads):
        other = OnnxEncoder(onnx.folder, threads=count)
        label = "oversubscribed" if count > onnx.threads else "one core"
        steps.measure(
            f"  the same on {count} thread{'s' * (count > 1)} ({label})", other.run_batch, other.tokenizer
        )
    if onnx.kernel == "u8s8":  # what a CPU without VNNI runs, timed here
        unsigned = OnnxEncoder(onnx.folder, kernel="u8u8")
        steps.measure("  the same in u8×u8 (CPUs without VNNI)", unsigned.run_batch, unsigned.tokenizer)

    # the baseline runs the same model: its labels are the reference path's
    assert steps.reference is not None
    reference_labels = [SENTIMENT_LABELS[int(i)] for i in steps.reference[0][: len(naive_labels)]]
    same_as_naive = float(np.mean([a == b for a, b in zip(naive_labels, reference_labels, strict=True)]))
    result: dict[str, Any] = {
        "naive_sentences": min(baseline_n, len(study)),
        "naive_same_labels_as_reference": round(same_as_naive, 4),
        "naive_sentences_per_s": round(naive_rate, 1),
        "study_sentences": len(study),
        "steps": steps.rows,
        "trimmed_vs_full_max_abs_difference": float(np.abs(trimmed - full).max()),
        "vocabulary": {
            "full": int(reference.encoder.config.vocab_size),
            "trimmed": int(trimmed_model.config.vocab_size),
        },
        "encoder_files_mb": _encoder_sizes(onnx.folder),
    }
    if JRTE_DEV.exists():
        result["jrte_dev_macro_f1"] = _jrte_f1(reference, fast)
    return result


def _with_inference(settings: Settings, inference: str) -> Settings:
    return settings.model_copy(update={"model": settings.model.model_copy(update={"inference": inference})})


def _encoder_sizes(fast_folder: Path) -> dict[str, float]:
    """Weight files of the full encoder, its trimmed copy and the int8 ONNX file, in MB."""
    from models.fast_encoder import ONNX_FILE

    sizes = {"onnx_int8": (fast_folder / ONNX_FILE).stat().st_size}
    trimmed = fast_folder.with_name(fast_folder.name.removesuffix(FAST_FOLDER_SUFFIX))
    full = trimmed.with_name(trimmed.name.removesuffix("-ja"))
    for name, folder in (("full_fp16", full), ("trimmed_fp16", trimmed)):
        if (folder / "model.safetensors").exists():
            sizes[name] = (folder / "model.safetensors").stat().st_size
    return {name: round(size / MB, 1) for name, size in sizes.items()}


def _jrte_f1(reference: Any, fast: Any) -> dict[str, float]:
    """Sentiment macro-F1 of both paths on the licensed jrte dev set (read here, never copied)."""
    from models.evaluation import classification_metrics
    from pipeline.contracts import SENTIMENT_LABELS
    from pipeline.normalize import clean_comment

    rows = [json.loads(line) for line in JRTE_DEV.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts = [clean_comment(r["text"]).text for r in rows]
    gold = [r["label"] for r in rows]
    scores = {}
    for name, model in (("reference", reference), ("fast", fast)):
        predicted = [SENTIMENT_LABELS[int(i)] for i in model.predict(texts).sentiment.argmax(axis=1)]
        scores[name] = round(classification_metrics(gold, predicted, SENTIMENT_LABELS)["macro_f1"], 4)
    scores["change_points"] = round(100 * (scores["fast"] - scores["reference"]), 2)
    return scores


# --------------------------------------------------------------------------- the report


def targets(report: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """The issue's targets, each with the measured value and whether it is met."""
    stages = report["stages"]
    n = report["rows_in"]
    text_rate = n / (stages["normalize"]["seconds"] + stages["tokenize"]["seconds"])
    classify_rate = stages["classify"]["responses_per_s"]
    whole = report["responses_per_s"]
    rows = [
        ("normalise + tokenize ≥ 5,000 responses/s", f"{text_rate:,.0f}/s", text_rate >= 5000),
        ("whole pipeline ≥ ½ classify stage", f"{whole:,.0f} vs {classify_rate:,.0f} responses/s",
         whole >= classify_rate / 2),
        ("peak RSS < 3 GB", f"{report['peak_rss_mb']:,} MB", report["peak_rss_mb"] < 3 * 1024),
    ]  # fmt: skip
    study = report.get("classify_study")
    if study:
        stage_rate = report["sentences"] / stages["classify"]["seconds"]
        ratio = stage_rate / study["naive_sentences_per_s"]
        rows.append((
            "classify stage ≥ 6× naive pipeline",
            f"{ratio:.1f}× ({stage_rate:,.0f} vs {study['naive_sentences_per_s']:,.0f} sentences/s)",
            ratio >= 6,
        ))  # fmt: skip
        fast = next(row for row in study["steps"] if row["step"].endswith("fast path"))
        rows.append((
            "fast path ≥ 97% of sentiment labels as float32, on this CPU",
            f"{fast['same_sentiment_as_reference']:.1%}",
            fast["same_sentiment_as_reference"] >= 0.97,
        ))  # fmt: skip
        if "jrte_dev_macro_f1" in study:
            f1 = study["jrte_dev_macro_f1"]
            rows.append((
                "jrte dev macro-F1 within 1 point",
                f"{f1['reference']:.3f} → {f1['fast']:.3f} ({f1['change_points']:+.2f} points)",
                abs(f1["change_points"]) <= 1,
            ))  # fmt: skip
    return rows


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"{report['responses']:,} responses ({report['rows_in']:,} records: {report['published']:,} "
        f"published, {report['quarantined']:,} quarantined); {report['sentences']:,} sentences, "
        f"{report['distinct_sentences']:,} distinct",
        f"model {report['model_version']}: loaded in {report['model_load_seconds']} s",
        format_cpu(report["cpu"]),
        "",
        f"{'stage':<12} {'seconds':>8} {'responses/s':>12} {'peak RSS MB':>12}",
    ]
    for stage, row in report["stages"].items():
        rate = f"{row['responses_per_s']:,.0f}" if row["responses_per_s"] else "-"
        lines.append(f"{stage:<12} {row['seconds']:>8.2f} {rate:>12} {row['peak_rss_mb']:>12,}")
    lines.append(
        f"{'total':<12} {report['total_seconds']:>8.2f} {report['responses_per_s']:>12,.0f} "
        f"{report['peak_rss_mb']:>12,}"
    )
    lines.append(
        f"the classify stage encoded {report['predictions_computed']:,} distinct sentences of "
        f"{report['sentences']:,} (identical sentences once per run)"
    )
    study = report.get("classify_study")
    if study:
        lines += [
            "",
            f"classify path on {study['study_sentences']:,} distinct sentences; naive baseline: a "
            f"transformers text-classification pipeline, one sentence a call, on "
            f"{study['naive_sentences']:,} of them",
            f"{'step':<56} {'sentences/s':>11} {'× naive':>7} {'padding':>7} {'same labels':>11} "
            f"{'same topics':>11} {'rebatched':>9}",
            f"{'naive baseline (float32, full vocabulary)':<56} {study['naive_sentences_per_s']:>11,.1f} "
            f"{1.0:>7.2f} {'-':>7} {study['naive_same_labels_as_reference']:>11.1%} {'-':>11} {'-':>9}",
        ]
        for row in study["steps"]:
            lines.append(
                f"{row['step']:<56} {row['sentences_per_s']:>11,.1f} {row['vs_naive']:>7.2f} "
                f"{row['padding_waste']:>7.1%} {row['same_sentiment_as_reference']:>11.1%} "
                f"{row['same_topics_as_reference']:>11.1%} {row['rebatched_sentiment_changes']:>9,}"
            )
        lines.append(
            "same labels / topics: sentiment label / topic set equal to the float32 reference path's; "
            f"rebatched: of {(study['study_sentences'] + 1) // 2:,} sentences batched with other "
            "sentences, how many sentiment labels change"
        )
        vocab, sizes = study["vocabulary"], study["encoder_files_mb"]
        lines.append(
            f"vocabulary {vocab['full']:,} → {vocab['trimmed']:,} pieces; trimmed vs full sentence vectors: "
            f"max |difference| {study['trimmed_vs_full_max_abs_difference']:.1e}"
        )
        lines.append("weights on disk: " + ", ".join(f"{name} {mb:,.1f} MB" for name, mb in sizes.items()))
    lines += ["", "targets:"]
    lines += [f"  [{'ok' if ok else 'MISSED'}] {name}: {value}" for name, value, ok in targets(report)]
    return "\n".join(lines)


def _compare_sizes(sizes: Sequence[int], args: argparse.Namespace) -> int:
    """Each size in a process of its own, so each peak is that size's alone."""
    reports = []
    for n in sizes:
        command = [sys.executable, "-m", "bench.run", "--responses", str(n), "--out", str(args.out),
                   "--config", str(args.config)]  # fmt: skip
        command += ["--pipeline-only"] if args.pipeline_only else []
        subprocess.run(command, check=True, cwd=REPO)
        reports.append(json.loads((args.out / f"bench-{n}.json").read_text(encoding="utf-8")))
    base = reports[0]
    print("\npeak RSS by size (each in its own process):")
    for report in reports:
        ratio = report["peak_rss_mb"] / base["peak_rss_mb"]
        print(
            f"  {report['responses']:>9,} responses: {report['peak_rss_mb']:>6,} MB ({ratio:.2f}× "
            f"{base['responses']:,}), {report['responses_per_s']:,.0f} responses/s"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--responses", type=int, nargs="+", default=[10_000])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "pipeline.yaml")
    parser.add_argument("--out", type=Path, default=REPO / "output" / "bench")
    parser.add_argument(
        "--pipeline-only", action="store_true", help="skip the baseline and the classify steps"
    )
    parser.add_argument("--baseline-sentences", type=int, default=300)
    parser.add_argument("--study-sentences", type=int, default=2000)
    args = parser.parse_args(argv)
    quiet_model_loading()
    args.config, args.out = args.config.resolve(), args.out.resolve()
    if len(args.responses) > 1:
        return _compare_sizes(args.responses, args)
    os.chdir(REPO)  # the config's relative paths (taxonomy) are from the repository root
    args.out.mkdir(parents=True, exist_ok=True)
    settings = load_settings(args.config)
    n = args.responses[0]
    report = bench_pipeline(n, args.out, settings)
    report["cpu"] = cpu_report()
    if not args.pipeline_only:
        report["classify_study"] = bench_classify(
            settings, Path(report["store"]), args.baseline_sentences, args.study_sentences
        )
    report["rss_at_end_mb"] = round(current_rss() / MB)
    report["stage_names"] = [stage.value for stage in Stage]
    path = args.out / f"bench-{n}.json"
    path.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    print(format_report(report))
    print(f"\nwritten {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
