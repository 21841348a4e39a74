"""``stream-scorer``: the one command-line entry point (also ``python -m stream_scorer``)."""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from typing import Any

from stream_scorer.config import Settings, SettingsError, load_settings
from stream_scorer.logging import configure_logging


def _settings(service: str) -> Settings:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"stream-scorer: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level, service)
    return settings


def _worker(args: argparse.Namespace) -> int:
    from stream_scorer.worker.app import run_worker

    run_worker(_settings("worker"))
    return 0


def _api(args: argparse.Namespace) -> int:
    import uvicorn

    from http_api.app import create_app
    from stream_scorer.metrics import multiprocess_dir, prepare_multiprocess

    settings = _settings("api")
    options: dict[str, Any] = {
        "host": args.host or settings.api.host, "port": args.port or settings.api.port, "log_config": None,
        "access_log": False, "loop": "uvloop", "http": "httptools", "server_header": False,
    }
    metrics_dir = None
    if settings.api.workers > 1 or multiprocess_dir() is not None:
        metrics_dir = prepare_multiprocess()  # one /metrics for all the processes, none of an earlier run's values
    if settings.api.workers > 1:  # each process builds its app (and its clients) from the environment
        try:
            uvicorn.run("http_api.app:create_app_from_env", factory=True, workers=settings.api.workers, **options)
        finally:
            if metrics_dir is not None:
                shutil.rmtree(metrics_dir, ignore_errors=True)
    else:
        uvicorn.run(create_app(settings), **options)
    return 0


def _produce(args: argparse.Namespace) -> int:
    from stream_scorer.producer import run_producer

    return run_producer(_settings("producer"), args)


def _tail(args: argparse.Namespace) -> int:
    from stream_scorer.tail import run_tail

    return run_tail(load_settings(), args)


def _schemas(args: argparse.Namespace) -> int:
    from pathlib import Path

    import orjson

    from schemas.export import asyncapi, json_schemas

    settings = load_settings()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, schema in json_schemas().items():
        (out / f"{name}.schema.json").write_bytes(orjson.dumps(schema, option=orjson.OPT_INDENT_2))
    topics = settings.topics.model_dump(exclude={"input_partitions"})
    (out / "asyncapi.json").write_bytes(orjson.dumps(asyncapi(topics, settings.kafka.bootstrap_servers),
                                                     option=orjson.OPT_INDENT_2))
    print(f"wrote {len(json_schemas())} JSON Schemas and asyncapi.json to {out}/")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stream-scorer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    worker = sub.add_parser("worker", help="run one faust worker (run twice for two workers in one group)")
    worker.set_defaults(func=_worker)

    api = sub.add_parser("api", help="serve the HTTP API with uvicorn")
    api.add_argument("--host", default=None)
    api.add_argument("--port", type=int, default=None)
    api.set_defaults(func=_api)

    produce = sub.add_parser("produce", help="write simulated events to Kafka")
    produce.add_argument("kind", choices=["transactions", "sessions", "mixed"])
    produce.add_argument("--rate", type=float, default=50.0, help="events per second (0: as fast as possible)")
    produce.add_argument("--count", type=int, default=0, help="stop after N events (0: run until Ctrl-C)")
    produce.add_argument("--data-dir", default="data", help="history to draw cards, merchants and users from")
    produce.add_argument("--fraud-share", type=float, default=0.02, help="share of fraud-like demo events")
    produce.add_argument("--seed", type=int, default=None)
    produce.add_argument("--quiet", action="store_true", help="no progress bar")
    produce.set_defaults(func=_produce)

    schemas = sub.add_parser("schemas", help="write the JSON Schemas of events and decisions and an AsyncAPI doc")
    schemas.add_argument("--out", default="schemas-out")
    schemas.set_defaults(func=_schemas)

    tail = sub.add_parser("tail", help="print a topic's records as JSON lines")
    tail.add_argument("topic")
    tail.add_argument("--from-beginning", action="store_true")
    tail.add_argument("--count", type=int, default=0, help="stop after N records")
    tail.set_defaults(func=_tail)

    from stream_scorer.models_cli import register as register_models

    register_models(sub)

    try:
        from training.cli import register
    except ImportError:  # pragma: no cover - the training package is part of the project
        pass
    else:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
