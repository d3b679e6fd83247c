"""Saving, verifying and loading bundles: the only code that writes or reads a bundle folder.

A bundle is written in a hidden staging folder next to its destination and renamed into place
in one step, so a reader never sees half a bundle. Loading first verifies every file against the
manifest (sha256 and size; a missing, extra, changed or linked file refuses the bundle), then
asks the flavor to load the model. Nothing is deserialised before its hash has matched.
"""

from __future__ import annotations

import getpass
import importlib.metadata
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError as PydanticValidationError

from modelport.bundle.flavors.base import Flavor, ModelAdapter, ModelInput, SavedArtifacts
from modelport.bundle.flavors.table import FlavorTable
from modelport.bundle.hashing import sha256_file
from modelport.bundle.loaded import LoadedBundle
from modelport.bundle.manifest import (
    ARTIFACTS_DIR,
    MANIFEST_FILE,
    REFERENCE_DIR,
    ArtifactEntry,
    Manifest,
    Provenance,
    read_manifest,
)
from modelport.bundle.reference import compute_reference, read_sample, subset_rows, tensor_arrays, write_sample
from modelport.bundle.signature import infer_input_signature, infer_outputs
from modelport.core.errors import Conflict, IntegrityError, NotFound, UntrustedArtifact, ValidationError
from modelport.core.names import validate_name
from modelport.core.types import Signature

STATS_FILE = f"{REFERENCE_DIR}/stats.json"
SAMPLE_FILE = f"{REFERENCE_DIR}/sample.parquet"
MAX_PREDICTION_ROWS = 10_000
"""Reference rows the model predicts on at save time, for the prediction statistics."""
GIT_TIMEOUT_S = 5.0
BASE_REQUIREMENTS = ("numpy", "pandas")
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[A-Za-z0-9._,\s-]*\])?\s*([=<>!~;@].*)?$")


class FrameworkVersionWarning(UserWarning):
    """A bundle was saved with a framework (or Python) version other than the installed one."""


def save_bundle(
    model: Any,
    path: Path | str,
    *,
    name: str = "model",
    sample_input: ModelInput,
    reference_data: ModelInput | None = None,
    requirements: Sequence[str] | None = None,
    metrics: Mapping[str, float] | None = None,
    tags: Mapping[str, str] | None = None,
    description: str | None = None,
    trusted_pickle: bool = False,
    flavor: str | None = None,
    redaction: Mapping[str, str] | None = None,
    flavors: FlavorTable | None = None,
    user: str | None = None,
    training_data: str | None = None,
) -> Manifest:
    """Write ``model`` as a bundle folder at ``path`` and return its manifest.

    Args:
        model: A fitted model of a supported framework, or a ``python``-flavor object.
        path: Destination folder; it must not exist, or be empty.
        name: Model name (lowercase letters, digits, ``.``, ``_``, ``-``).
        sample_input: A few rows of real input; the signature is inferred from it.
        reference_data: Training-like data for the reference statistics (default: ``sample_input``).
        requirements: Extra pip requirements, appended to (and overriding) the detected pins.
        metrics: Numbers to record (e.g. ``{"auc": 0.91}``).
        tags: Free-form string labels; ``tags["training_data"]`` is recorded in the provenance.
        description: A sentence for people.
        trusted_pickle: Allow flavors that write plain pickle (needed again at load time).
        flavor: Flavor name; detected from ``model`` when omitted (``pickle`` is never detected).
        redaction: Column → ``drop``/``hash``/``mask``, applied to prediction logs.
        flavors: The flavor table to use (default: :meth:`FlavorTable.default`).
        user: Author recorded in the provenance (default: the OS user).
        training_data: A reference to the training data (URI, table, dataset version).

    Raises:
        Conflict: ``path`` exists and is not an empty folder.
        ValidationError: The sample, reference data or an argument does not fit.
        Unsupported: No flavor recognises the model.
        UntrustedArtifact: The flavor needs pickle and ``trusted_pickle`` is false.

    Example:
        >>> save_bundle(fitted_pipeline, "bundles/churn", name="churn", sample_input=X.head(20))  # doctest: +SKIP
    """
    validate_name(name)
    target = Path(path)
    _check_destination(target)
    table = flavors or FlavorTable.default()
    chosen = table.get(flavor) if flavor else table.detect(model)
    adapter = chosen.adapter(model)
    signature = infer_input_signature(sample_input)
    sample_model_input = _model_input(sample_input, signature, adapter)
    outputs = infer_outputs(adapter, sample_model_input)
    signature = signature.model_copy(update={"outputs": outputs})
    _check_redaction(redaction, signature)
    requirement_list = _requirements(requirements)

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".staging", dir=target.parent))
    try:
        os.chmod(staging, 0o755)
        (staging / ARTIFACTS_DIR).mkdir()
        (staging / REFERENCE_DIR).mkdir()
        saved = chosen.save(
            model, staging / ARTIFACTS_DIR, trusted_pickle=trusted_pickle, sample_input=sample_model_input
        )
        reference = reference_data if reference_data is not None else sample_input
        _write_reference(
            staging, reference, signature, adapter, "reference_data" if reference_data is not None else "sample_input"
        )
        manifest = _build_manifest(
            name=name,
            flavor=chosen,
            saved=saved,
            signature=signature,
            artifacts=_list_artifacts(staging, saved),
            requirements=_merge_requirements(_pins(BASE_REQUIREMENTS), saved.requirements, requirement_list),
            metrics=metrics,
            tags=tags,
            description=description,
            redaction=redaction,
            provenance=_provenance(user, training_data or (tags or {}).get("training_data")),
        )
        (staging / MANIFEST_FILE).write_text(manifest.to_yaml(), encoding="utf-8")
        _move_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def verify_bundle(path: Path | str) -> Manifest:
    """Check every file of the bundle at ``path`` against its manifest and return the manifest.

    Every listed file must exist as a regular file with the recorded size and sha256, and no
    other file (nor any symbolic link) may be present.

    Raises:
        NotFound: ``path`` is not a bundle folder.
        IntegrityError: A file is missing, truncated, changed, unlisted or a link (the message names it).
    """
    root = Path(path)
    if not root.is_dir():
        raise NotFound(f"Bundle folder {root} does not exist.", hint="Check the path, or save a bundle there first.")
    manifest = read_manifest(root)
    listed: set[str] = set()
    for entry in manifest.artifacts:
        _check_entry_path(root, entry.path)
        if entry.path in listed:
            raise IntegrityError(f"Bundle {root} lists {entry.path!r} twice.", hint=_RESAVE)
        listed.add(entry.path)
        _verify_file(root, entry)
    present = _walk(root)
    unlisted = sorted(present - listed - {MANIFEST_FILE})
    if unlisted:
        raise IntegrityError(
            f"Bundle {root} holds a file its manifest does not list: {unlisted[0]!r}.",
            hint="Remove the extra file, or re-save the bundle; modelport refuses bundles with unlisted files.",
        )
    return manifest


def load_bundle(path: Path | str, *, trusted_pickle: bool = False, flavors: FlavorTable | None = None) -> LoadedBundle:
    """Verify, then load the bundle at ``path``.

    Args:
        path: The bundle folder.
        trusted_pickle: Allow loading plain pickle (or shipped Python code) artifacts, after their
            hash matched. Only set it for bundles you made or trust.
        flavors: The flavor table to use (default: :meth:`FlavorTable.default`).

    Raises:
        IntegrityError: The bundle fails :func:`verify_bundle`.
        UntrustedArtifact: It holds pickle artifacts and ``trusted_pickle`` is false.
        MissingDependency: Its flavor's framework is not installed.

    Warns:
        FrameworkVersionWarning: A recorded framework or Python version differs from the installed one.
    """
    root = Path(path)
    manifest = verify_bundle(root)
    pickles = [a.path for a in manifest.artifacts if a.pickle]
    if pickles and not trusted_pickle:
        raise UntrustedArtifact(
            f"Bundle {root} holds pickle artifacts ({', '.join(pickles)}), which can run any code when loaded.",
            hint="Load it with trusted_pickle=True (MODELPORT_TRUSTED_PICKLE=true) only if you trust who made it.",
        )
    flavor = (flavors or FlavorTable.default()).get(manifest.flavor)
    _warn_on_version_drift(manifest)
    adapter = flavor.load(root / ARTIFACTS_DIR, dict(manifest.flavor_options), trusted_pickle=trusted_pickle)
    return LoadedBundle(path=root, manifest=manifest, adapter=adapter, reference=_read_stats(root))


def read_reference_sample(bundle_dir: Path | str) -> ModelInput | None:
    """The reference sample rows stored in the bundle (≤ 1,000), or ``None`` when it has none.

    Call it on a verified bundle (e.g. ``LoadedBundle.path``); it reads Parquet, never pickle.
    """
    path = Path(bundle_dir) / SAMPLE_FILE
    if not path.is_file():
        return None
    return read_sample(path, read_manifest(Path(bundle_dir)).signature)


def _read_stats(root: Path) -> dict[str, Any] | None:
    path = root / STATS_FILE
    if not path.is_file():
        return None
    try:
        stats = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IntegrityError(f"Bundle {root}: {STATS_FILE} is not valid JSON ({exc}).", hint=_RESAVE) from exc
    if not isinstance(stats, dict):
        raise IntegrityError(f"Bundle {root}: {STATS_FILE} is not a JSON object.", hint=_RESAVE)
    return stats


_RESAVE = "The bundle is corrupted or was modified after saving; fetch or re-save a clean copy."


def _check_destination(target: Path) -> None:
    if target.is_symlink() or (target.exists() and (not target.is_dir() or any(target.iterdir()))):
        raise Conflict(
            f"Cannot save a bundle to {target}: it already exists and is not an empty folder.",
            hint="Choose a new path, or delete the old bundle first.",
        )


def _move_into_place(staging: Path, target: Path) -> None:
    try:
        os.replace(staging, target)
    except OSError as exc:
        raise Conflict(
            f"Cannot save a bundle to {target}: {exc.strerror or exc}.",
            hint="Another process may have written there meanwhile; choose a new path.",
        ) from exc


def _model_input(data: ModelInput, signature: Signature, adapter: ModelAdapter) -> ModelInput:
    if signature.kind == "tabular":
        if not isinstance(data, pd.DataFrame):
            raise ValidationError(
                f"Reference data of type {type(data).__name__} does not fit a tabular signature.",
                hint="Pass a DataFrame with the same columns as sample_input.",
            )
        missing = [c for c in signature.column_names if c not in data.columns]
        if missing:
            raise ValidationError(
                f"Reference data lacks column {missing[0]!r} of the signature.",
                hint=f"Pass reference_data with the columns {list(signature.column_names)}.",
            )
        frame = data[list(signature.column_names)]
        return frame.to_numpy() if adapter.input_format == "array" else frame
    arrays = tensor_arrays(data, signature)
    if adapter.input_format == "arrays" or len(arrays) > 1:
        return arrays
    return next(iter(arrays.values()))


def _write_reference(staging: Path, data: ModelInput, signature: Signature, adapter: ModelAdapter, source: str) -> None:
    model_input = _model_input(data, signature, adapter)
    subset = subset_rows(model_input, MAX_PREDICTION_ROWS)
    predictions: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    error: str | None = None
    try:
        predictions = np.asarray(adapter.predict(subset))
        probabilities = np.asarray(adapter.predict_proba(subset)) if adapter.has_proba else None
    except Exception as exc:  # the reference may hold values the sample had not: record, never fail
        error = f"{type(exc).__name__}: {exc}"
        warnings.warn(
            f"The model could not predict on the {source} ({error}); the bundle has no prediction statistics.",
            UserWarning,
            stacklevel=3,
        )
    stats = compute_reference(data, signature, predictions=predictions, probabilities=probabilities)
    stats["source"] = source
    if error is not None:
        stats["predictions_error"] = error
    (staging / STATS_FILE).write_text(json.dumps(stats, allow_nan=False), encoding="utf-8")
    write_sample(data, signature, staging / SAMPLE_FILE)


def _list_artifacts(staging: Path, saved: SavedArtifacts) -> tuple[ArtifactEntry, ...]:
    pickles = {f"{ARTIFACTS_DIR}/{PurePosixPath(p)}" for p in saved.pickle_files}
    for rel in sorted(_walk(staging)):
        (staging / rel).chmod(0o644)
    return tuple(
        ArtifactEntry(
            path=rel, sha256=sha256_file(staging / rel), size=(staging / rel).stat().st_size, pickle=rel in pickles
        )
        for rel in sorted(_walk(staging))
    )


def _walk(root: Path) -> set[str]:
    found: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for entry in (*dirnames, *filenames):
            full = Path(dirpath) / entry
            rel = full.relative_to(root).as_posix()
            if full.is_symlink():
                raise IntegrityError(f"Bundle {root} holds a symbolic link: {rel!r}.", hint=_RESAVE)
            if entry in filenames:
                if not full.is_file():
                    raise IntegrityError(f"Bundle {root} holds {rel!r}, which is not a regular file.", hint=_RESAVE)
                found.add(rel)
    return found


def _check_entry_path(root: Path, rel: str) -> None:
    parts = PurePosixPath(rel).parts
    if (
        not parts
        or PurePosixPath(rel).is_absolute()
        or "\\" in rel
        or any(p in ("", ".", "..") for p in parts)
        or parts[0] not in (ARTIFACTS_DIR, REFERENCE_DIR)
        or len(parts) < 2
    ):
        raise IntegrityError(
            f"Bundle {root} lists an artifact outside its artifacts/ and reference/ folders: {rel!r}.",
            hint=_RESAVE,
        )


def _verify_file(root: Path, entry: ArtifactEntry) -> None:
    file = root / entry.path
    if file.is_symlink() or not file.is_file():
        what = "a symbolic link" if file.is_symlink() else "missing"
        raise IntegrityError(f"Bundle {root}: artifact {entry.path!r} is {what}.", hint=_RESAVE)
    size = file.stat().st_size
    if size != entry.size:
        raise IntegrityError(
            f"Bundle {root}: artifact {entry.path!r} has {size} bytes, the manifest records {entry.size} "
            "(truncated or modified).",
            hint=_RESAVE,
        )
    if sha256_file(file) != entry.sha256:
        raise IntegrityError(
            f"Bundle {root}: artifact {entry.path!r} does not match its sha256 in the manifest "
            "(tampered or corrupted).",
            hint=_RESAVE,
        )


def _check_redaction(redaction: Mapping[str, str] | None, signature: Signature) -> None:
    if not redaction:
        return
    known = set(signature.column_names) | {t.name for t in signature.tensors}
    for column in redaction:
        if column not in known:
            raise ValidationError(
                f"Redaction rule for column {column!r}, which is not an input of the model.",
                hint=f"Name one of the inputs: {sorted(known)}.",
            )


def _build_manifest(
    *,
    name: str,
    flavor: Flavor,
    saved: SavedArtifacts,
    signature: Signature,
    artifacts: tuple[ArtifactEntry, ...],
    requirements: tuple[str, ...],
    metrics: Mapping[str, float] | None,
    tags: Mapping[str, str] | None,
    description: str | None,
    redaction: Mapping[str, str] | None,
    provenance: Provenance,
) -> Manifest:
    try:
        return Manifest.model_validate(
            {
                "name": name,
                "flavor": flavor.name,
                "flavor_options": dict(saved.options),
                "python_version": _python_version(),
                "framework": dict(saved.framework),
                "requirements": requirements,
                "signature": signature,
                "artifacts": artifacts,
                "metrics": dict(metrics or {}),
                "tags": dict(tags or {}),
                "description": description,
                "redaction": dict(redaction or {}),
                "provenance": provenance,
            }
        )
    except PydanticValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise ValidationError(
            f"Invalid {where}: {error['msg']} (got {error.get('input')!r}).",
            hint="metrics take numbers, tags take strings, redaction takes 'drop', 'hash' or 'mask'.",
        ) from exc


def _python_version() -> str:
    return ".".join(str(v) for v in sys.version_info[:3])


def _provenance(user: str | None, training_data: str | None) -> Provenance:
    if user is None:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown"
    return Provenance(
        user=user,
        host=socket.gethostname(),
        created_at=datetime.now(UTC),
        git_commit=_git_commit(Path.cwd()),
        training_data=training_data,
    )


def _git_commit(cwd: Path) -> str | None:
    """The commit checked out in ``cwd``'s git repository, or ``None`` (no git, no repo, timeout)."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", commit) else None


def _pins(distributions: Sequence[str]) -> tuple[str, ...]:
    pins = []
    for dist in distributions:
        try:
            pins.append(f"{dist}=={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return tuple(pins)


def _requirements(requirements: Sequence[str] | None) -> tuple[str, ...]:
    if requirements is None:
        return ()
    if isinstance(requirements, str):
        requirements = [requirements]
    for requirement in requirements:
        if not isinstance(requirement, str) or not _REQUIREMENT.match(requirement):
            raise ValidationError(
                f"Invalid requirement {requirement!r}.",
                hint="Use pip requirement syntax, e.g. 'scikit-learn==1.5.2' or 'my-features>=2'.",
            )
    return tuple(r.strip() for r in requirements)


def _merge_requirements(*groups: Sequence[str]) -> tuple[str, ...]:
    """Requirements by project name, in first-seen order; a later group overrides an earlier pin."""
    merged: dict[str, str] = {}
    for group in groups:
        for requirement in group:
            match = _REQUIREMENT.match(requirement)
            key = re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else requirement
            merged[key] = requirement
    return tuple(merged.values())


def _warn_on_version_drift(manifest: Manifest) -> None:
    drift = []
    for dist, recorded in manifest.framework.items():
        try:
            installed = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            installed = "none"
        if installed != recorded:
            drift.append(f"{dist} {recorded} (installed: {installed})")
    if manifest.python_version.split(".")[:2] != _python_version().split(".")[:2]:
        drift.append(f"Python {manifest.python_version} (installed: {_python_version()})")
    if drift:
        warnings.warn(
            FrameworkVersionWarning(
                f"Bundle {manifest.name!r} was saved with {', '.join(drift)}; predictions may differ. "
                f"Install the recorded versions (see the manifest's requirements) or re-save the model."
            ),
            stacklevel=3,
        )
