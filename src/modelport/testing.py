"""Public test helpers, above every layer: the ``check_flavor`` battery every flavor passes.

:func:`check_flavor` takes a fitted model and a sample of its input, and checks the whole bundle
contract end to end: save, verify, load, identical predictions (in memory, after loading, through
the runtime :class:`~modelport.runtime.predictor.Predictor` and after an archive round trip),
refusal of a tampered and of an incomplete bundle, signature enforcement, and that a pickle whose
``__reduce__`` would run code is refused without running it. It raises ``AssertionError`` naming
the broken promise, so it works under any test runner.

Example:
    >>> def test_my_flavor(tmp_path):  # doctest: +SKIP
    ...     check_flavor(MyModel().fit(X, y), X[:20], tmp_path)
"""

from __future__ import annotations

import pickle
import shutil
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelport.bundle.archive import pack, unpack
from modelport.bundle.flavors.base import ModelInput, PickleLoadWarning
from modelport.bundle.flavors.table import FlavorTable
from modelport.bundle.hashing import sha256_file
from modelport.bundle.io import load_bundle, save_bundle, verify_bundle
from modelport.bundle.loaded import LoadedBundle
from modelport.bundle.manifest import ARTIFACTS_DIR, MANIFEST_FILE, ArtifactEntry, Manifest, read_manifest
from modelport.core.errors import IntegrityError, ModelportError, UntrustedArtifact, ValidationError
from modelport.runtime.predictor import Predictor

FLOAT_RTOL = 1e-6
FLOAT_ATOL = 1e-7


class Tripwire:
    """An object whose unpickling creates ``marker``: proof that a pickle was (not) run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return (open, (str(self.marker), "w"))


def check_flavor(
    model: Any,
    sample_input: ModelInput,
    tmp_path: Path,
    *,
    flavor: str | None = None,
    trusted_pickle: bool = False,
    flavors: FlavorTable | None = None,
) -> LoadedBundle:
    """Run the bundle battery on ``model`` and return the loaded bundle.

    Args:
        model: A fitted model of the flavor under test.
        sample_input: A few rows it accepts (DataFrame, ndarray or dict of ndarrays).
        tmp_path: An empty scratch folder (pytest's ``tmp_path``).
        flavor: Flavor name, when it must not be detected (``"pickle"``).
        trusted_pickle: Pass for flavors that need it (``pickle``, shipped python code).
        flavors: The flavor table (default: :meth:`FlavorTable.default`).

    Raises:
        AssertionError: A promise of the bundle contract is broken; the message says which.
    """
    table = flavors or FlavorTable.default()
    bundle_dir = tmp_path / "bundle"
    manifest = save_bundle(
        model,
        bundle_dir,
        name="checked",
        sample_input=sample_input,
        flavor=flavor,
        trusted_pickle=trusted_pickle,
        flavors=table,
    )
    _expect(verify_bundle(bundle_dir) == manifest, "verify_bundle returns the manifest save_bundle wrote")
    _expect(read_manifest(bundle_dir) == manifest, "the manifest reads back equal")
    expected_flavor = flavor or table.detect(model).name
    _expect(manifest.flavor == expected_flavor, f"flavor recorded as {expected_flavor!r}, got {manifest.flavor!r}")
    with _pickle_warnings(manifest, trusted_pickle):
        loaded = load_bundle(bundle_dir, trusted_pickle=trusted_pickle, flavors=table)
    _expect(loaded.reference is not None, "the bundle holds reference statistics")

    _check_parity(model, sample_input, loaded, table, "after load")
    archive = pack(bundle_dir, tmp_path / "bundle.tar.gz")
    with _pickle_warnings(manifest, trusted_pickle):
        unpacked = load_bundle(unpack(archive, tmp_path / "unpacked"), trusted_pickle=trusted_pickle, flavors=table)
    _check_parity(model, sample_input, unpacked, table, "after an archive round trip")

    _check_tampered(bundle_dir, manifest, tmp_path / "tampered", trusted_pickle, table)
    _check_incomplete(bundle_dir, manifest, tmp_path / "incomplete", trusted_pickle, table)
    _check_signature_enforced(loaded, sample_input)
    _check_pickle_not_run(bundle_dir, manifest, tmp_path / "evil", table)
    return loaded


def _expect(condition: bool, promise: str) -> None:
    if not condition:
        raise AssertionError(f"check_flavor: expected {promise}.")


@contextmanager
def _pickle_warnings(manifest: Manifest, trusted_pickle: bool) -> Iterator[None]:
    """Expect a PickleLoadWarning exactly when trusted pickle or shipped code is loaded."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PickleLoadWarning)
        yield
    pickled = [w for w in caught if issubclass(w.category, PickleLoadWarning)]
    for other in caught:
        if not issubclass(other.category, PickleLoadWarning):
            warnings.warn_explicit(other.message, other.category, other.filename, other.lineno)
    if any(a.pickle for a in manifest.artifacts):
        _expect(bool(pickled), "a PickleLoadWarning on every load of a pickle artifact")
    elif not trusted_pickle:
        _expect(not pickled, "no PickleLoadWarning for a bundle without pickle")


def _check_parity(model: Any, sample_input: ModelInput, loaded: LoadedBundle, table: FlavorTable, when: str) -> None:
    original = table.get(loaded.manifest.flavor).adapter(model)
    predictor = Predictor(loaded)
    model_input = predictor.coerce(sample_input)
    _same(original.predict(model_input), loaded.adapter.predict(model_input), f"identical predict {when}")
    _same(original.predict(model_input), predictor.predict(sample_input), f"identical Predictor.predict {when}")
    _expect(original.has_proba == loaded.adapter.has_proba, f"predict_proba availability kept {when}")
    if original.has_proba:
        expected = original.predict_proba(model_input)
        _same(expected, loaded.adapter.predict_proba(model_input), f"identical predict_proba {when}")
        _same(expected, predictor.predict_proba(sample_input), f"identical Predictor.predict_proba {when}")
        _expect(
            original.classes is None or tuple(original.classes) == tuple(loaded.adapter.classes or ()),
            f"the same classes {when}",
        )


def _same(expected: Any, actual: Any, promise: str) -> None:
    left, right = np.asarray(expected), np.asarray(actual)
    _expect(left.shape == right.shape, f"{promise} (shape {left.shape} vs {right.shape})")
    if left.dtype.kind in "fc" and right.dtype.kind in "fc":
        _expect(bool(np.allclose(left, right, rtol=FLOAT_RTOL, atol=FLOAT_ATOL, equal_nan=True)), promise)
    else:
        _expect(bool(np.array_equal(left.astype(str), right.astype(str))), promise)


def _main_artifact(manifest: Manifest) -> ArtifactEntry:
    """The largest file under artifacts/ (the model), else the largest file of the bundle."""
    entries = [a for a in manifest.artifacts if a.path.startswith(f"{ARTIFACTS_DIR}/")] or list(manifest.artifacts)
    _expect(bool(entries), "at least one file listed in the manifest")
    return max(entries, key=lambda a: a.size)


def _expect_refused(
    path: Path, named: str, trusted_pickle: bool, table: FlavorTable, error: type[ModelportError]
) -> None:
    for attempt in (
        lambda: verify_bundle(path),
        lambda: load_bundle(path, trusted_pickle=trusted_pickle, flavors=table),
    ):
        try:
            attempt()
        except error as exc:
            _expect(named in str(exc), f"the {error.__name__} to name {named!r} (got: {exc})")
        else:
            raise AssertionError(f"check_flavor: expected {error.__name__} for {named!r} in {path}.")


def _check_tampered(bundle_dir: Path, manifest: Manifest, copy: Path, trusted: bool, table: FlavorTable) -> None:
    shutil.copytree(bundle_dir, copy)
    entry = _main_artifact(manifest)
    target = copy / entry.path
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    _expect_refused(copy, entry.path, trusted, table, IntegrityError)
    target.write_bytes(bytes(data[: len(data) // 2]))
    _expect_refused(copy, entry.path, trusted, table, IntegrityError)


def _check_incomplete(bundle_dir: Path, manifest: Manifest, copy: Path, trusted: bool, table: FlavorTable) -> None:
    shutil.copytree(bundle_dir, copy)
    entry = _main_artifact(manifest)
    (copy / entry.path).unlink()
    _expect_refused(copy, entry.path, trusted, table, IntegrityError)
    shutil.rmtree(copy)
    shutil.copytree(bundle_dir, copy)
    (copy / ARTIFACTS_DIR / "extra.bin").write_bytes(b"not listed")
    _expect_refused(copy, f"{ARTIFACTS_DIR}/extra.bin", trusted, table, IntegrityError)


def _check_signature_enforced(loaded: LoadedBundle, sample_input: ModelInput) -> None:
    predictor = Predictor(loaded)
    wrong: Any
    if isinstance(sample_input, pd.DataFrame):
        wrong = sample_input.drop(columns=[sample_input.columns[0]])
        what = f"a missing column {sample_input.columns[0]!r}"
    else:
        arrays = sample_input if isinstance(sample_input, dict) else {"": sample_input}
        reshaped = {k: np.asarray(v)[..., np.newaxis] for k, v in arrays.items()}
        wrong = reshaped if isinstance(sample_input, dict) else reshaped[""]
        what = "an input with the wrong shape"
    try:
        predictor.predict(wrong)
    except ValidationError:
        return
    raise AssertionError(f"check_flavor: expected ValidationError from Predictor.predict for {what}.")


def _check_pickle_not_run(bundle_dir: Path, manifest: Manifest, root: Path, table: FlavorTable) -> None:
    """Swap the main artifact for a code-running pickle, re-hash the manifest, and load without trust."""
    marker = root / "pwned"
    payload = pickle.dumps(Tripwire(marker))
    variants = {
        "as-is": (manifest.flavor, False),
        "pickle-flagged": ("pickle", True),
        "pickle-unflagged": ("pickle", False),
    }
    for label, (flavor_name, flagged) in variants.items():
        copy = root / label
        shutil.copytree(bundle_dir, copy)
        entry = _main_artifact(manifest)
        if flavor_name == "pickle" and not entry.path.startswith(f"{ARTIFACTS_DIR}/"):
            entry = ArtifactEntry(path=f"{ARTIFACTS_DIR}/model.pkl", sha256="", size=0)
        file = copy / entry.path
        file.write_bytes(payload)
        forged = _forge(manifest, entry, file, flavor_name, flagged)
        (copy / MANIFEST_FILE).write_text(forged.to_yaml(), encoding="utf-8")
        outcome: BaseException | None = None
        try:
            load_bundle(copy, trusted_pickle=False, flavors=table)
        except Exception as exc:
            outcome = exc
        _expect(not marker.exists(), f"a refused pickle ({label}) never to run (it created {marker})")
        _expect(outcome is not None, f"a code-running pickle ({label}) to be refused without trust")
        _expect(
            isinstance(outcome, ModelportError),
            f"a ModelportError refusing the pickle ({label}), not {type(outcome).__name__}: {outcome}",
        )
        if flavor_name == "pickle":
            _expect(isinstance(outcome, UntrustedArtifact), f"UntrustedArtifact for the pickle ({label})")


def _forge(manifest: Manifest, entry: ArtifactEntry, file: Path, flavor_name: str, flagged: bool) -> Manifest:
    forged_entry = entry.model_copy(
        update={"sha256": sha256_file(file), "size": file.stat().st_size, "pickle": flagged}
    )
    artifacts = tuple(forged_entry if a.path == entry.path else a for a in manifest.artifacts)
    if entry not in manifest.artifacts:
        artifacts = (*artifacts, forged_entry)
    options = dict(manifest.flavor_options)
    if flavor_name == "pickle":
        options = {"file": Path(entry.path).relative_to(ARTIFACTS_DIR).as_posix(), "sha256": forged_entry.sha256}
    return manifest.model_copy(update={"artifacts": artifacts, "flavor": flavor_name, "flavor_options": options})
