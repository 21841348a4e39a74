"""``stream-scorer models ...``: list, promote, roll back, set challenger traffic, shadow, compare.

Edits go to ``<MODEL_DIR>/<model>/routing.json`` after the versions they bring in load as serving would; every
running API process and worker picks the edit up within ``MODEL_RELOAD_INTERVAL`` (no restart).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import orjson

from stream_scorer.config import Settings, load_settings
from stream_scorer.errors import ScoringError


def _registry(settings: Settings) -> Any:
    from stream_scorer.bootstrap import MODEL_FEATURES
    from stream_scorer.models.registry import ModelRegistry

    return ModelRegistry(settings.model_dir, expected_features=MODEL_FEATURES, use_onnx=settings.use_onnx,
                         explain_method=settings.explain_method)


def _print(body: object) -> None:
    sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")


def _run(args: argparse.Namespace) -> int:
    from stream_scorer.models import admin

    settings = load_settings()
    registry = _registry(settings)
    try:
        if args.action == "status":
            names = [args.name] if args.name else list(registry.model_names)
            _print([admin.status(registry, n) for n in names])
            return 0
        if args.action == "compare":
            return _compare(settings, args)
        if args.action == "promote":
            routing = admin.promote(registry, args.name, args.version)
        elif args.action == "rollback":
            routing = admin.rollback(registry, args.name)
        elif args.action == "set-traffic":
            routing = admin.set_traffic(registry, args.name, args.version, args.share)
        else:
            routing = admin.set_shadows(registry, args.name, args.versions)
    except ScoringError as exc:
        print(f"stream-scorer models {args.action}: {exc.message}", file=sys.stderr)
        return 1
    _print({"model": args.name, "routing": routing.to_json()})
    print(f"{args.name}: routing updated; running processes switch within {settings.model_reload_interval} s",
          file=sys.stderr)
    return 0


def _compare(settings: Settings, args: argparse.Namespace) -> int:
    from stream_scorer.models.compare import compare, parse_labels, read_topic

    bootstrap = settings.kafka.bootstrap_servers

    async def read() -> tuple[list[bytes], list[bytes]]:
        shadow = await read_topic(bootstrap, settings.topics.shadow)
        labels = await read_topic(bootstrap, settings.topics.fraud_labels) if args.name == "fraud" else []
        return shadow, labels

    shadow_values, label_values = asyncio.run(read())
    records = [orjson.loads(v) for v in shadow_values]
    labels = parse_labels(label_values) if args.name == "fraud" else None
    results = compare(records, args.name, labels, args.versions)
    if not results:
        print(f"no shadow scores for {args.name} on {settings.topics.shadow} (set shadows with "
              f"`stream-scorer models shadow {args.name} vN`)", file=sys.stderr)
        return 1
    _print([r.to_json() for r in results])
    return 0


def register(sub: Any) -> None:
    models = sub.add_parser("models", help="model versions and routing: status, promote, rollback, set-traffic, "
                                           "shadow, compare")
    actions = models.add_subparsers(dest="action", required=True)
    status = actions.add_parser("status", help="routing and versions (all models, or one)")
    status.add_argument("name", nargs="?", choices=["fraud", "personalization"])
    promote = actions.add_parser("promote", help="make a version (default: the challenger) the champion")
    promote.add_argument("name", choices=["fraud", "personalization"])
    promote.add_argument("version", nargs="?", default=None)
    rollback = actions.add_parser("rollback", help="back to the previous champion")
    rollback.add_argument("name", choices=["fraud", "personalization"])
    traffic = actions.add_parser("set-traffic", help="route a stable share of cards/users to a challenger "
                                                     "(share 0 removes it)")
    traffic.add_argument("name", choices=["fraud", "personalization"])
    traffic.add_argument("version")
    traffic.add_argument("share", type=float)
    shadow = actions.add_parser("shadow", help="versions scoring in shadow (none: stop shadowing)")
    shadow.add_argument("name", choices=["fraud", "personalization"])
    shadow.add_argument("versions", nargs="*")
    comp = actions.add_parser("compare", help="shadow vs served on the recorded events of the shadow topic")
    comp.add_argument("name", choices=["fraud", "personalization"])
    comp.add_argument("versions", nargs="*", help="only these shadow versions")
    for parser in (status, promote, rollback, traffic, shadow, comp):
        parser.set_defaults(func=_run)
