"""The export folder: a valid modelport bundle of flavor ``onnx`` that also runs without modelport.

Layout (every file listed with its sha256 in the manifest, so ``load_bundle`` and the registry
accept it like any bundle)::

    modelport.yaml            flavor onnx, the source signature, parity figures in metrics/tags
    artifacts/model.onnx      the model, its feeding description in the ONNX metadata
    artifacts/predict.py      standalone runner: onnxruntime + numpy only
    reference/stats.json      copied from the source bundle (drift detection keeps working)
    reference/sample.parquet  copied from the source bundle

The folder is written in a hidden staging folder next to its destination and renamed into
place, then packed into ``<folder>.tar.gz``; on any failure nothing is left behind.
"""

from __future__ import annotations

import getpass
import importlib.metadata
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelport.bundle.archive import pack
from modelport.bundle.flavors.base import InputFormat
from modelport.bundle.hashing import sha256_file
from modelport.bundle.io import verify_bundle
from modelport.bundle.loaded import LoadedBundle
from modelport.bundle.manifest import ARTIFACTS_DIR, MANIFEST_FILE, REFERENCE_DIR, ArtifactEntry, Manifest, Provenance
from modelport.core.errors import Conflict
from modelport.edge.spec import EdgeSpec

MODEL_FILE = f"{ARTIFACTS_DIR}/model.onnx"
SCRIPT_FILE = f"{ARTIFACTS_DIR}/predict.py"
_REFERENCE_FILES = (f"{REFERENCE_DIR}/stats.json", f"{REFERENCE_DIR}/sample.parquet")


def archive_path(out_dir: Path) -> Path:
    """Where the ``.tar.gz`` of ``out_dir`` goes: beside it, named after it."""
    return out_dir.parent / f"{out_dir.name}.tar.gz"


def check_free(out_dir: Path) -> None:
    """Refuse an ``out_dir`` that exists with content, or whose archive exists.

    Raises:
        Conflict: Naming the path in the way.
    """
    if out_dir.is_symlink() or (out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir()))):
        raise Conflict(
            f"Cannot export to {out_dir}: it already exists and is not an empty folder.",
            hint="Choose another --out folder, or delete the old export first.",
        )
    if archive_path(out_dir).exists():
        raise Conflict(
            f"Cannot export to {out_dir}: the archive {archive_path(out_dir)} already exists.",
            hint="Choose another --out folder, or delete the old archive first.",
        )


def feed_format(spec: EdgeSpec, signature_columns: tuple[str, ...]) -> tuple[InputFormat, list[str] | None]:
    """The ``input_format`` (and ``column_names``) for the ``onnx`` flavor's adapter to feed like ``spec``.

    One input per column takes a dict of columns (``arrays``); a matrix in signature order takes a
    2-D array; a matrix in another order (a booster's feature order) takes a frame it reorders.
    """
    if spec.layout == "columns" or len(spec.inputs) > 1:
        return "arrays", None
    if spec.layout == "matrix" and spec.inputs[0].sources != signature_columns:
        return "frame", list(spec.inputs[0].sources)
    return "array", None


def flavor_options(spec: EdgeSpec, signature_columns: tuple[str, ...], model: Any) -> dict[str, Any]:
    """The ``onnx`` flavor options that make its adapter feed and read the export like the spec says."""
    input_format, column_names = feed_format(spec, signature_columns)
    return {
        "intra_op_threads": 1,
        "classes": None if spec.classes is None else list(spec.classes),
        "input_format": input_format,
        "column_names": column_names,
        "proba_output": spec.proba_output,
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "opsets": {entry.domain or "ai.onnx": int(entry.version) for entry in model.opset_import},
        "external_data": False,
    }


def write_export(
    out_dir: Path,
    *,
    source: LoadedBundle,
    model_bytes: bytes,
    options: dict[str, Any],
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
    description: str,
    script: str,
    user: str | None = None,
) -> tuple[Manifest, Path]:
    """Write the export folder at ``out_dir`` and its archive; return the manifest and the archive path.

    Raises:
        Conflict: ``out_dir`` or its archive is taken.
    """
    check_free(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".staging", dir=out_dir.parent))
    archive = archive_path(out_dir)
    try:
        os.chmod(staging, 0o755)
        (staging / ARTIFACTS_DIR).mkdir()
        (staging / MODEL_FILE).write_bytes(model_bytes)
        (staging / SCRIPT_FILE).write_text(script, encoding="utf-8")
        listed = {entry.path for entry in source.manifest.artifacts}
        for rel in _REFERENCE_FILES:
            if rel in listed and (source.path / rel).is_file():
                (staging / rel).parent.mkdir(exist_ok=True)
                shutil.copyfile(source.path / rel, staging / rel)
        manifest = _manifest(source, staging, options, metrics, tags, description, user)
        (staging / MANIFEST_FILE).write_text(manifest.to_yaml(), encoding="utf-8")
        verify_bundle(staging)
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked above): os.replace cannot replace a folder on every platform
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        pack(out_dir, archive)
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    return manifest, archive


def _manifest(
    source: LoadedBundle,
    staging: Path,
    options: dict[str, Any],
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
    description: str,
    user: str | None,
) -> Manifest:
    files = sorted(p for p in staging.rglob("*") if p.is_file())
    for file in files:
        file.chmod(0o644)
    artifacts = tuple(
        ArtifactEntry(path=f.relative_to(staging).as_posix(), sha256=sha256_file(f), size=f.stat().st_size)
        for f in files
    )
    versions = {dist: _version(dist) for dist in ("onnx", "onnxruntime", "numpy")}
    origin = source.manifest
    return Manifest(
        name=origin.name,
        flavor="onnx",
        flavor_options=options,
        python_version=".".join(str(v) for v in sys.version_info[:3]),
        framework={"onnx": versions["onnx"], "onnxruntime": versions["onnxruntime"]},
        requirements=tuple(f"{dist}=={version.split('+')[0]}" for dist, version in sorted(versions.items())),
        signature=origin.signature,
        artifacts=artifacts,
        metrics={**origin.metrics, **metrics},
        tags={**origin.tags, **tags},
        description=description,
        redaction=dict(origin.redaction),
        provenance=Provenance(
            user=user or _user(),
            host=socket.gethostname(),
            created_at=datetime.now(UTC),
            training_data=origin.provenance.training_data,
        ),
    )


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "0"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
