"""The pickle flavor: plain pickle, only for models an operator explicitly trusts.

Unpickling runs whatever code the file names, so this flavor is never detected (pass
``flavor="pickle"``), needs ``trusted_pickle=True`` both to save and to load, and checks the
file's sha256 against the digest recorded at save time *on the very bytes it unpickles* (so a
file swapped after :func:`~modelport.bundle.io.verify_bundle` is still refused). Every load warns
with :class:`~modelport.bundle.flavors.base.PickleLoadWarning`. Without trust the file is never
opened.
"""

from __future__ import annotations

import importlib.metadata
import pickle
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from modelport.bundle.flavors.base import InputFormat, ModelAdapter, ModelInput, PickleLoadWarning, SavedArtifacts
from modelport.bundle.hashing import sha256_bytes
from modelport.core.errors import IntegrityError, MissingDependency, Unsupported, UntrustedArtifact

MODEL_FILE = "model.pkl"
PROTOCOL = 5


class ObjectAdapter:
    """Any object with ``predict`` (and optionally ``predict_proba`` and ``classes_``)."""

    def __init__(self, model: Any, *, input_format: InputFormat | None = None) -> None:
        self.model = model
        default: InputFormat = "frame" if hasattr(model, "feature_names_in_") else "array"
        self.input_format: InputFormat = input_format or getattr(model, "input_format", None) or default
        classes = getattr(model, "classes_", None)
        if classes is None:
            classes = getattr(model, "classes", None)
        self.classes: tuple[Any, ...] | None = (
            tuple(np.asarray(classes).tolist()) if classes is not None and not callable(classes) else None
        )
        self.has_proba: bool = callable(getattr(model, "predict_proba", None))

    def predict(self, data: ModelInput) -> np.ndarray:
        """The object's ``predict``."""
        return np.asarray(self.model.predict(data))

    def predict_proba(self, data: ModelInput) -> np.ndarray:
        """The object's ``predict_proba``."""
        if not self.has_proba:
            raise Unsupported(f"{type(self.model).__name__} has no predict_proba.", hint="Call predict instead.")
        return np.asarray(self.model.predict_proba(data))


def refuse_untrusted(what: str) -> UntrustedArtifact:
    """The error for an artifact that needs ``trusted_pickle`` (``what`` names it)."""
    return UntrustedArtifact(
        f"{what} can run arbitrary code when loaded, and trusted_pickle is not set.",
        hint="Pass trusted_pickle=True (MODELPORT_TRUSTED_PICKLE=true) only for bundles you made or whose author "
        "you trust; prefer a safe flavor (skops for scikit-learn, native formats for XGBoost/LightGBM).",
    )


def distribution_pins(module_name: str) -> dict[str, str]:
    """Installed distribution(s) → version providing the top-level package of ``module_name``."""
    top = module_name.partition(".")[0]
    if top in sys.stdlib_module_names or top == "__main__":
        return {}
    pins = {}
    for dist in importlib.metadata.packages_distributions().get(top, []):
        try:
            pins[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return pins


class PickleFlavor:
    """Plain pickle for trusted models only; never chosen by detection."""

    name = "pickle"
    extra = "pickle"

    def detect(self, model: object) -> bool:
        """Always ``False``: pickle is chosen explicitly with ``flavor="pickle"``."""
        return False

    def adapter(self, model: Any) -> ModelAdapter:
        """Wrap any object with ``predict``."""
        if not callable(getattr(model, "predict", None)):
            raise Unsupported(
                f"A {type(model).__name__} has no predict method.", hint="Bundle an object with predict(data)."
            )
        return ObjectAdapter(model)

    def save(
        self,
        model: Any,
        artifacts_dir: Path,
        *,
        trusted_pickle: bool = False,
        sample_input: ModelInput | None = None,
    ) -> SavedArtifacts:
        """Pickle ``model``; refused unless ``trusted_pickle``."""
        if not trusted_pickle:
            raise refuse_untrusted("A pickle-flavor bundle")
        try:
            data = pickle.dumps(model, protocol=PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise Unsupported(
                f"The {type(model).__name__} cannot be pickled: {exc}",
                hint="Define the model's classes and functions at module top level (no lambdas or local classes).",
            ) from exc
        (artifacts_dir / MODEL_FILE).write_bytes(data)
        pins = distribution_pins(type(model).__module__)
        return SavedArtifacts(
            files=(MODEL_FILE,),
            options={
                "file": MODEL_FILE,
                "sha256": sha256_bytes(data),
                "input_format": ObjectAdapter(model).input_format,
            },
            framework=pins,
            requirements=tuple(f"{d}=={v}" for d, v in pins.items()),
            pickle_files=(MODEL_FILE,),
        )

    def load(self, artifacts_dir: Path, options: dict[str, Any], *, trusted_pickle: bool = False) -> ModelAdapter:
        """Unpickle after checking trust and the sha256 of the bytes read; warns every time."""
        name = str(options.get("file", MODEL_FILE))
        if not trusted_pickle:
            raise refuse_untrusted(f"The pickle artifact {name!r}")
        path = artifacts_dir / name
        if path.parent != artifacts_dir or path.is_symlink():
            raise IntegrityError(f"Pickle artifact {name!r} is not a plain file of the bundle.", hint="Re-save it.")
        data = path.read_bytes()
        if sha256_bytes(data) != options.get("sha256"):
            raise IntegrityError(
                f"Pickle artifact {name!r} does not match the sha256 recorded when it was saved; it was not loaded.",
                hint="The bundle was modified; fetch or re-save a clean copy.",
            )
        warnings.warn(
            PickleLoadWarning(f"Loading pickle artifact {name!r}: it can run any code; trusted by the operator."),
            stacklevel=2,
        )
        try:
            model = pickle.loads(data)  # trusted by the operator, hash checked above
        except ModuleNotFoundError as exc:
            raise MissingDependency(
                f"The pickled model needs the '{exc.name}' module, which is not installed.",
                hint="Install the bundle's requirements (see its manifest).",
            ) from exc
        except Exception as exc:
            raise IntegrityError(
                f"Pickle artifact {name!r} could not be loaded: {type(exc).__name__}: {exc}",
                hint="Install the bundle's requirements, or re-save the model.",
            ) from exc
        return ObjectAdapter(model, input_format=options.get("input_format"))
