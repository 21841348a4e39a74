"""The routing file of a model: which version is champion, which is challenger (and its traffic share), which
versions score in shadow. ``<model_dir>/<name>/routing.json``, edited by ``stream-scorer models ...`` and by the
admin HTTP endpoints; every API process and worker watches it and swaps models without a restart.

No routing file means "the latest version is champion", so a fresh ``make train`` serves its model at once.
A version is a folder name (``v3``) or an MLflow URI (``models:/fraud/champion``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROUTING_FILE = "routing.json"
MAX_HISTORY = 20


class RoutingError(ValueError):
    """An edit that cannot be applied (unknown version, nothing to roll back to, bad share)."""


@dataclass(frozen=True)
class Challenger:
    version: str
    share: float
    """Fraction of entities (cards, users) routed to the challenger, by a stable hash of the entity id."""


@dataclass(frozen=True)
class Routing:
    champion: str | None = None
    """``None``: the latest version."""
    challenger: Challenger | None = None
    shadows: tuple[str, ...] = ()
    previous: tuple[str, ...] = ()
    """Earlier champions, most recent last (what ``rollback`` returns to)."""
    updated_at: str | None = None
    history: tuple[dict[str, Any], ...] = field(default=(), repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "champion": self.champion,
            "challenger": None if self.challenger is None else {"version": self.challenger.version,
                                                                 "share": self.challenger.share},
            "shadows": list(self.shadows), "previous": list(self.previous), "updated_at": self.updated_at,
            "history": list(self.history),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any], path: Path) -> Routing:
        try:
            challenger = raw.get("challenger")
            return cls(
                champion=_version_or_none(raw.get("champion")),
                challenger=None if not challenger else Challenger(str(challenger["version"]),
                                                                 _share(challenger["share"])),
                shadows=tuple(str(v) for v in raw.get("shadows") or ()),
                previous=tuple(str(v) for v in raw.get("previous") or ()),
                updated_at=raw.get("updated_at"), history=tuple(raw.get("history") or ()),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RoutingError(f"{path}: not a valid routing file ({type(exc).__name__}: {exc})") from None


def routing_path(model_dir: Path, name: str) -> Path:
    return model_dir / name / ROUTING_FILE


def read_routing(model_dir: Path, name: str) -> Routing:
    path = routing_path(model_dir, name)
    try:
        raw = json.loads(path.read_bytes())
    except FileNotFoundError:
        return Routing()
    except (OSError, ValueError) as exc:  # unreadable (permissions), not UTF-8, not JSON
        raise RoutingError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from None
    if not isinstance(raw, dict):
        raise RoutingError(f"{path}: expected a JSON object")
    return Routing.from_json(raw, path)


def write_routing(model_dir: Path, name: str, routing: Routing) -> None:
    """Atomic: a watcher never reads half a file."""
    path = routing_path(model_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".routing-", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # readable by the services whoever edits it (mkstemp makes 0600)
        with os.fdopen(fd, "w") as out:
            json.dump(routing.to_json(), out, indent=2)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextmanager
def _locked(model_dir: Path, name: str) -> Iterator[None]:
    """One editor at a time (CLI and admin endpoints may race)."""
    lock = model_dir / name / ".routing.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


Check = Callable[[str], None]
"""Raises when a version cannot be served (the edit is then refused); see ``ModelRegistry.check``."""


def edit_routing(model_dir: Path, name: str, action: str, change: Callable[[Routing], Routing],
                 check: Check | None = None) -> Routing:
    """Read, change, check every version the change brings in, write: under a lock, all or nothing."""
    with _locked(model_dir, name):
        current = read_routing(model_dir, name)
        updated = change(current)
        if check is not None:
            for version in _new_versions(current, updated):
                check(version)
        now = datetime.now(UTC).isoformat()
        entry = {"at": now, "action": action, "champion": updated.champion,
                 "challenger": None if updated.challenger is None else updated.challenger.version,
                 "share": None if updated.challenger is None else updated.challenger.share,
                 "shadows": list(updated.shadows)}
        updated = replace(updated, updated_at=now, history=(*current.history, entry)[-MAX_HISTORY:])
        write_routing(model_dir, name, updated)
        return updated


def _new_versions(current: Routing, updated: Routing) -> list[str]:
    before = {current.champion, current.challenger.version if current.challenger else None, *current.shadows}
    after = [updated.champion, updated.challenger.version if updated.challenger else None, *updated.shadows]
    return [v for v in dict.fromkeys(after) if v is not None and v not in before]


def promote(model_dir: Path, name: str, version: str | None, *, latest: Callable[[], str | None],
            check: Check | None = None) -> Routing:
    """Make ``version`` (default: the challenger) the champion; the old champion can be rolled back to."""

    def change(r: Routing) -> Routing:
        target = version or (r.challenger.version if r.challenger else None)
        if target is None:
            raise RoutingError(f"{name}: no version given and no challenger to promote")
        old = r.champion or latest()
        if old == target:
            raise RoutingError(f"{name}: {target} is already the champion")
        challenger = None if r.challenger is None or r.challenger.version == target else r.challenger
        previous = r.previous if old is None else (*r.previous, old)[-MAX_HISTORY:]
        return replace(r, champion=target, challenger=challenger, previous=previous)

    return edit_routing(model_dir, name, f"promote {version or 'challenger'}", change, check)


def rollback(model_dir: Path, name: str, *, check: Check | None = None) -> Routing:
    """Back to the champion before the current one."""

    def change(r: Routing) -> Routing:
        if not r.previous:
            raise RoutingError(f"{name}: no earlier champion to roll back to")
        return replace(r, champion=r.previous[-1], previous=r.previous[:-1])

    return edit_routing(model_dir, name, "rollback", change, check)


def set_traffic(model_dir: Path, name: str, version: str | None, share: float, *,
                latest: Callable[[], str | None] = lambda: None, check: Check | None = None) -> Routing:
    """Route ``share`` of the entities to ``version`` as challenger; share 0 removes it; no version changes the
    current challenger's share. The champion is pinned (a later ``train`` must not swap the control side)."""
    share = _share(share)

    def change(r: Routing) -> Routing:
        if share == 0:
            return replace(r, challenger=None)
        target = version or (r.challenger.version if r.challenger else None)
        if target is None:
            raise RoutingError(f"{name}: no challenger to give a share to (name a version)")
        champion = r.champion or latest()
        if target == champion:
            raise RoutingError(f"{name}: {target} is the champion; a challenger must be another version")
        return replace(r, champion=champion, challenger=Challenger(target, share))

    return edit_routing(model_dir, name, f"traffic {version or 'challenger'} {share}", change, check)


def set_shadows(model_dir: Path, name: str, versions: Sequence[str], *, check: Check | None = None) -> Routing:
    """Versions that score every event in shadow (their scores never change a decision)."""
    unique = tuple(dict.fromkeys(versions))
    return edit_routing(model_dir, name, f"shadow {' '.join(unique) or '-'}",
                        lambda r: replace(r, shadows=unique), check)


def _share(value: object) -> float:
    share = float(value)  # type: ignore[arg-type]
    if not 0.0 <= share <= 1.0:
        raise RoutingError(f"traffic share must be within [0, 1], got {share}")
    return share


def _version_or_none(value: object) -> str | None:
    return None if value in (None, "", "latest") else str(value)
