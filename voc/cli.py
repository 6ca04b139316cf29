"""The `voc` command: run, backfill, train, evaluate, calibrate, serve, and (voc/results.py) the
commands that read the result tables: nps, drivers, themes, taxonomy promote, report.

User errors (a missing file, an unknown config key, a missing column, a run that quarantines
most of its records, a store still busy after store.lock_timeout) print one line starting with
"error:" and exit with status 2; there is no traceback for them.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from models import quiet_model_loading
from pipeline.errors import VocError
from pipeline.settings import Settings
from voc.common import parse_date, settings_from
from voc.output import PROGRESS, RUN_FORMAT, print_run_tables, progress_for
from voc.results import add_result_commands


def _load_model(settings: Settings, path: str | None = None) -> tuple[Any, Any]:
    """The taxonomy and the model the settings name (training the default model if needed)."""
    from models.registry import load_configured_model

    return load_configured_model(settings, path)


def _cmd_run(args: argparse.Namespace) -> int:
    from pipeline.ingest import describe_source, read_records
    from pipeline.job import DateScope, RunKind, run_job
    from pipeline.report import format_run_summary
    from pipeline.store import open_store

    settings = settings_from(args)
    # a missing file or a header without the mapped columns fails before the model loads
    source = describe_source(args.input, settings.source)
    next(read_records(source, settings.source), None)
    kind: RunKind = "backfill" if args.command == "backfill" else "run"
    if args.command == "backfill":
        scope = DateScope(args.start, args.end)
    else:
        scope = DateScope.single(args.date) if args.date else DateScope()
    taxonomy, model = _load_model(settings)
    with open_store(settings.store) as store:
        with progress_for(args) as progress:  # closed (bars drawn for the last time) before the summary
            summary = run_job(args.input, settings, model, taxonomy, scope, kind, args.source_name,
                              source=source, store=store, progress=progress)  # fmt: skip
        if args.format != "text":
            return print_run_tables(summary, store, settings, model.model_version, args.format)
        segments = list(settings.source.segments)
        print(format_run_summary(summary, store, segments, model.model_version, settings.nps.confidence,
                                 settings.drivers.windows))  # fmt: skip
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from models.classifier import CARD_FILE, TextClassifier
    from models.registry import DEFAULT_TRAINING_DATA, set_up_default_model, train_configured_model

    settings = settings_from(args)
    if args.retrain and not args.default:
        raise VocError("--retrain goes with --default: it retrains the shipped default heads")
    if args.default:
        with progress_for(args) as progress:
            folder = set_up_default_model(settings, args.retrain, progress)
        data = list(DEFAULT_TRAINING_DATA)
    else:
        if not args.data or args.out is None:
            raise VocError("give --data FILE (one or more) and --out FOLDER, or --default")
        overrides = _training_overrides(args, settings.model.encoder)
        with progress_for(args) as progress:
            folder = train_configured_model(
                settings,
                args.data,
                args.out,
                topic_data=args.topic_data or [],
                evaluation=args.eval or [],
                calibration=args.calibration or [],
                overrides=overrides,
                progress=progress,
            )
        data = [*args.data, *(args.topic_data or [])]
    card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
    trained = "trained" if args.retrain or not args.default else "committed heads, trained"
    _print_trained(card, folder, f"{trained} on {', '.join(p.name for p in data)}")
    if settings.model.inference == "fast":  # build the int8 encoder now, not in the first run
        fast = TextClassifier.load(folder, settings.model.cache_dir, "fast", settings.model.threads)
        print(f"  runs as {fast.model_version} (model.inference: fast)")
    return 0


def _training_overrides(args: argparse.Namespace, configured_encoder: str) -> dict[str, Any]:
    """The `TrainingArguments` fields ``voc train``'s options set."""
    from models.registry import shipped_adapter

    overrides: dict[str, Any] = {
        "seed": args.seed,
        "fine_tune": args.fine_tune,
        "adapter_rank": args.adapter_rank,
        "epochs": args.epochs,
        "max_steps": args.max_steps,
    }
    if args.name:
        overrides["name"] = args.name
    if args.encoder:
        overrides["encoder"] = args.encoder
    if args.learning_rate:
        overrides["learning_rate"] = args.learning_rate
    if args.from_default:
        if overrides.get("encoder", configured_encoder) != "default":
            raise VocError("--from-default starts from the embedded encoder: leave --encoder out")
        overrides["adapter_file"] = str(shipped_adapter())
    return overrides


def _print_trained(card: dict[str, Any], folder: Path, trained_on: str) -> None:
    """The trained model's version, data, time, evaluation metrics and calibration."""
    print(f"Model {card['model_version']} in {folder.resolve()}")
    print(f"  {trained_on} in {card['seconds']['total']:.0f} s")
    for name, metrics in card["metrics"].items():
        if "sentiment" in metrics:
            print(f"  {name}: sentiment macro-F1 {metrics['sentiment']['macro_f1']:.3f}")
        if "topics" in metrics:
            print(f"  {name}: topics micro-F1 {metrics['topics']['micro']['f1']:.3f}")
    calibration = card.get("calibration")
    if calibration:
        fitted_on = calibration["fitted_on"]
        source = ", ".join(fitted_on) if isinstance(fitted_on, list) else fitted_on
        print(
            f"  sentiment temperature {calibration['temperature']} (calibration error "
            f"{calibration['ece_before']:.3f} -> {calibration['ece_after']:.3f} on {source})"
        )
        _print_topic_threshold(calibration)


def _print_topic_threshold(calibration: dict[str, Any]) -> None:
    """The topic threshold calibration chose, when its sentences carried topics."""
    record = calibration.get("topic_threshold")
    if not record:
        return
    if record.get("applied", True):
        print(
            f"  topic threshold {record['threshold']} fitted on {record['sentences']} sentences: "
            f"topics micro-F1 {record['micro_f1_before']:.3f} -> {record['micro_f1_after']:.3f}"
        )
    else:
        print(
            f"  topic thresholds kept: on {record['sentences']} sentences no threshold did better "
            f"than their topics micro-F1 {record['micro_f1_before']:.3f}"
        )


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from models.evaluation import (
        format_by_domain,
        format_calibration,
        format_classification,
        format_multilabel,
    )
    from models.training import evaluate_model, read_examples

    settings = settings_from(args)
    taxonomy, model = _load_model(settings, args.model)
    examples = read_examples(args.data, taxonomy)
    metrics = evaluate_model(model, examples)
    print(f"Model {model.model_version} on {args.data} ({len(examples)} examples)")
    if "sentiment" in metrics:
        print("\nSentiment\n" + format_classification(metrics["sentiment"]))
        print("\nCalibration\n" + format_calibration(metrics["sentiment"]))
    if "sentiment_by_domain" in metrics:
        print("\nSentiment by domain\n" + format_by_domain(metrics["sentiment_by_domain"]))
    if "topics" in metrics:
        print("\n" + format_multilabel(metrics["topics"]))
    out = args.json or Path("output") / f"evaluation-{args.data.stem}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"model_version": model.model_version, "data": str(args.data), "metrics": metrics}
    out.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"\nMetrics written to {out}")
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from models.classifier import CARD_FILE
    from models.registry import calibrate_configured_model

    settings = settings_from(args)
    folder = calibrate_configured_model(settings, args.data, args.out, args.model)
    card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
    record = card["calibration"]
    print(f"Model {card['model_version']} in {folder.resolve()} (calibrated from {card['calibrated_from']})")
    print(
        f"  sentiment temperature {record['temperature']} fitted on {record['sentences']} sentences: "
        f"calibration error {record['ece_before']:.3f} -> {record['ece_after']:.3f}"
    )
    _print_topic_threshold(record)
    print(f"  use it with model.path: {folder.resolve()}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from flows.serve import serve_deployments

    serve_deployments(args.input, str(args.config) if args.config else None)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voc", description="Japanese-first voice-of-customer pipeline.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", type=Path, help="settings YAML (default: $VOC_CONFIG or configs/pipeline.yaml)"
    )
    common.add_argument(
        "--db", type=Path, help="DuckDB file for the result tables (overrides store.duckdb_path)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run_commands(sub, common)
    add_result_commands(sub, common)
    _add_train_command(sub, common)
    _add_evaluate_and_serve_commands(sub, common)
    return parser


def _add_run_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    options = [common, RUN_FORMAT, PROGRESS]
    run = sub.add_parser("run", parents=options, help="process a survey export (all dates, or one --date)")
    run.add_argument("input", type=Path, help="CSV/TSV (UTF-8 or CP932), JSONL or Parquet export")
    run.add_argument(
        "--date", type=parse_date, help="process only this response date (YYYY-MM-DD, Asia/Tokyo)"
    )
    run.add_argument("--source-name", help="name recorded for the input (default: the file name)")
    run.set_defaults(handler=_cmd_run)

    backfill = sub.add_parser("backfill", parents=options, help="re-process a date range from an export")
    backfill.add_argument("input", type=Path)
    backfill.add_argument("--start", type=parse_date, required=True)
    backfill.add_argument("--end", type=parse_date, required=True)
    backfill.add_argument("--source-name")
    backfill.set_defaults(handler=_cmd_run)


def _add_train_command(sub: Any, common: argparse.ArgumentParser) -> None:
    train = sub.add_parser(
        "train", parents=[common, PROGRESS], help="train sentiment and topic heads on labelled JSONL"
    )
    train.add_argument(
        "--default",
        action="store_true",
        help="set up the default model: the shipped heads on the embedded encoder, its int8 copy built once",
    )
    train.add_argument(
        "--retrain",
        action="store_true",
        help="with --default: retrain the shipped heads from data/labelled into models/default_model",
    )
    train.add_argument(
        "--data", type=Path, action="append", help="JSONL with text + label and/or topics (repeatable)"
    )
    train.add_argument(
        "--eval", type=Path, action="append", help="JSONL to evaluate on after training (repeatable)"
    )
    train.add_argument("--topic-data", type=Path, action="append", help="JSONL used only for the topic head")
    train.add_argument("--out", type=Path, help="model folder to write")
    train.add_argument("--name", help="model name (default: the folder name)")
    train.add_argument(
        "--encoder", help="'default', a local transformers folder or a hub id (default: model.encoder)"
    )
    train.add_argument(
        "--fine-tune", action="store_true", help="fine-tune the encoder before fitting the heads"
    )
    train.add_argument(
        "--from-default",
        action="store_true",
        help="start from the default model's encoder (the embedded one with its adapter merged in)",
    )
    train.add_argument(
        "--adapter-rank", type=int, help="fine-tune a low-rank adapter of this rank instead (e.g. 8)"
    )
    train.add_argument(
        "--learning-rate",
        type=float,
        help="of the fine-tuned weights (default 4e-5; use about 5e-4 for an adapter)",
    )
    train.add_argument(
        "--calibration",
        type=Path,
        action="append",
        help="labelled JSONL kept out of training that fits the sentiment temperature and, on "
        "lines with topics, the topic threshold (default: 5-fold cross-validation on the training "
        "data fits the temperature)",
    )
    train.add_argument("--epochs", type=int, default=3)
    train.add_argument("--max-steps", type=int, help="stop fine-tuning after this many steps")
    train.add_argument("--seed", type=int, default=13)
    train.set_defaults(handler=_cmd_train)


def _add_evaluate_and_serve_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    evaluate = sub.add_parser("evaluate", parents=[common], help="measure a model on labelled JSONL")
    evaluate.add_argument("--data", type=Path, required=True)
    evaluate.add_argument("--model", help="model folder (default: model.path from the config)")
    evaluate.add_argument(
        "--json", type=Path, help="where to write the metrics (default: output/evaluation-DATA.json)"
    )
    evaluate.set_defaults(handler=_cmd_evaluate)

    calibrate = sub.add_parser(
        "calibrate",
        parents=[common],
        help="refit a model's sentiment temperature (and topic threshold, on lines with topics) "
        "on labelled sentences from your own comments",
    )
    calibrate.add_argument(
        "--data", type=Path, action="append", required=True, help="labelled JSONL (repeatable)"
    )
    calibrate.add_argument("--model", help="model folder (default: model.path from the config)")
    calibrate.add_argument("--out", type=Path, required=True, help="folder for the calibrated copy")
    calibrate.set_defaults(handler=_cmd_calibrate)

    serve = sub.add_parser(
        "serve",
        help="serve the Prefect deployments: nightly at 02:30 Asia/Tokyo, backfill, process-date, train",
    )
    serve.add_argument(
        "--config", type=Path, help="settings YAML (default: $VOC_CONFIG or configs/pipeline.yaml)"
    )
    serve.add_argument(
        "--input",
        required=True,
        help="the export the nightly and backfill runs read; {date:%%Y%%m%%d} in it names one file per day",
    )
    serve.set_defaults(handler=_cmd_serve)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_model_loading()
    # warnings such as "waiting for output/voc.duckdb: another process is using it" as plain lines
    logging.basicConfig(format="%(message)s", level=logging.WARNING)
    if args.command == "backfill" and args.start > args.end:
        print(f"error: --start {args.start} is after --end {args.end}", file=sys.stderr)
        return 2
    try:
        return int(args.handler(args))
    except VocError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
