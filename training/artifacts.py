"""Versioned model artifacts: ``<model_dir>/<name>/v<N>/`` (the contract with the serving code).

A version folder is written under a hidden staging name and renamed into place once complete, so a registry
watching ``<model_dir>/<name>/`` never sees a half-written version; ``metadata.json`` is written last.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

ArtifactName = Literal["fraud", "personalization"]
METADATA_FILE = "metadata.json"
_VERSION = re.compile(r"^v(\d+)$")


def existing_versions(model_dir: Path, name: str) -> list[int]:
    folder = model_dir / name
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if p.is_dir() and (m := _VERSION.match(p.name)))


def next_version(model_dir: Path, name: str) -> str:
    """``v1`` for the first artifact, else one more than the highest existing version."""
    return f"v{max(existing_versions(model_dir, name), default=0) + 1}"


def write_artifact(model_dir: Path, name: ArtifactName, metadata: dict[str, Any],
                   write_files: Callable[[Path, str], None], attempts: int = 5) -> Path:
    """Create the next version folder of ``name``: ``write_files(folder, version)`` writes the model, report
    and plots; then ``metadata.json`` (``metadata`` plus ``name`` and ``version``) is written and the folder is
    moved into place. Returns the final folder."""
    parent = model_dir / name
    parent.mkdir(parents=True, exist_ok=True)
    for _ in range(attempts):
        version = next_version(model_dir, name)
        staging = Path(tempfile.mkdtemp(prefix=f".staging-{version}-", dir=parent))
        try:
            write_files(staging, version)
            full = {"name": name, "version": version, **{k: v for k, v in metadata.items()
                                                         if k not in ("name", "version")}}
            (staging / METADATA_FILE).write_text(json.dumps(full, indent=2, sort_keys=False, allow_nan=False) + "\n")
            target = parent / version
            if target.exists():  # another trainer took this version meanwhile: try the next one
                continue
            staging.rename(target)
            return target
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    raise RuntimeError(f"could not claim a new version under {parent} after {attempts} attempts")


def read_metadata(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / METADATA_FILE).read_text())
    return data
