"""The scikit-learn flavor: any fitted estimator or Pipeline, stored with skops (never pickle).

skops lists the types a file would instantiate that it does not trust by default. modelport
decides which of those to trust with an allow-list kept in this module — never with anything
read from the bundle (a trust list shipped inside the artifact is no trust list):

* classes defined in scikit-learn (estimators and their internal state such as ``Tree``,
  ``TreePredictor``, kernels, losses, KD-trees), except those in its test and tooling modules;
* functions only from scikit-learn modules whose functions are used as estimator parameters
  (univariate feature scores, metrics, k-means internals) — a generic sklearn function could be
  handed attacker-chosen arguments by a ``FunctionTransformer``, so no blanket trust;
* numpy dtypes and a few numpy reductions (``numpy.mean`` ... as pooling functions), and the
  scipy types scikit-learn stores (``BSpline``).

Anything else (a user function in a ``FunctionTransformer``, a custom transformer class) is
refused at save time with :class:`~modelport.core.errors.Unsupported` and at load time with
:class:`~modelport.core.errors.UntrustedArtifact`, naming the types.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np

from modelport.bundle.flavors.base import InputFormat, ModelAdapter, ModelInput, SavedArtifacts
from modelport.core.errors import IntegrityError, MissingDependency, Unsupported, UntrustedArtifact, ValidationError

MODEL_FILE = "model.skops"

_SKLEARN_EXCLUDED_MODULES = re.compile(
    r"^sklearn\.(utils\._testing|utils\._show_versions|utils\._estimator_html_repr|externals|conftest|_build_utils|"
    r"_distributor_init)(\.|$)|\.tests(\.|$)"
)
_SKLEARN_FUNCTION_MODULES = (
    "sklearn.feature_selection._univariate_selection",
    "sklearn.metrics",
    "sklearn.cluster._kmeans",
    "sklearn.cluster._k_means_lloyd",
    "sklearn.cluster._k_means_elkan",
)
_NUMPY_FUNCTIONS = frozenset(
    f"numpy.{f}" for f in ("mean", "median", "max", "min", "sum", "std", "var", "nanmean", "nanmedian", "asarray")
)
_EXACT_TRUSTED = frozenset(
    {
        "numpy.dtype",
        "numpy.ndarray",
        "numpy.ma.core.MaskedArray",
        "scipy.interpolate._bsplines.BSpline",
        "scipy._lib.array_api_compat.numpy._aliases.asarray",
        "builtins.slice",
        "collections.OrderedDict",
        "collections.defaultdict",
    }
)
_DOTTED_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def is_trusted_type(type_name: str) -> bool:
    """Whether modelport's allow-list trusts the skops type ``type_name`` (e.g. ``sklearn.tree._tree.Tree``)."""
    if type_name in _EXACT_TRUSTED or type_name in _NUMPY_FUNCTIONS:
        return True
    if re.fullmatch(r"numpy\.dtypes\.[A-Za-z0-9]+DType", type_name):
        return True
    if not type_name.startswith("sklearn.") or not _DOTTED_NAME.match(type_name):
        return False
    module_name, _, attr = type_name.rpartition(".")
    if _SKLEARN_EXCLUDED_MODULES.search(module_name):
        return False
    target = _resolve_sklearn(module_name, attr)
    if isinstance(target, type):
        return target.__module__.startswith("sklearn.") and not _SKLEARN_EXCLUDED_MODULES.search(target.__module__)
    if callable(target):
        owner = getattr(target, "__module__", "") or ""
        return any(owner == m or owner.startswith(f"{m}.") for m in _SKLEARN_FUNCTION_MODULES)
    return False


def _resolve_sklearn(module_name: str, attr: str) -> object:
    try:
        module = importlib.import_module(module_name)  # only ever a module of the installed sklearn
    except ImportError:
        return None
    return getattr(module, attr, None)


class SklearnAdapter:
    """A fitted scikit-learn estimator, called with a DataFrame when it was fitted on one, else an array."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.input_format: InputFormat = "frame" if hasattr(model, "feature_names_in_") else "array"
        classes = getattr(model, "classes_", None)
        self.classes: tuple[Any, ...] | None = tuple(np.asarray(classes).tolist()) if classes is not None else None
        self.has_proba: bool = hasattr(model, "predict_proba")

    def predict(self, data: ModelInput) -> np.ndarray:
        """The estimator's ``predict``."""
        return np.asarray(self.model.predict(data))

    def predict_proba(self, data: ModelInput) -> np.ndarray:
        """The estimator's ``predict_proba``."""
        if not self.has_proba:
            raise Unsupported(f"{type(self.model).__name__} has no predict_proba.", hint="Call predict instead.")
        return np.asarray(self.model.predict_proba(data))


class SklearnFlavor:
    """scikit-learn estimators and pipelines, saved with skops against modelport's allow-list."""

    name = "sklearn"
    extra = "sklearn"

    def detect(self, model: object) -> bool:
        """Any scikit-learn estimator (only checked when sklearn is already imported)."""
        if "sklearn" not in sys.modules:
            return False
        from sklearn.base import BaseEstimator

        return isinstance(model, BaseEstimator) and hasattr(model, "predict")

    def adapter(self, model: Any) -> ModelAdapter:
        """Wrap a fitted estimator; raises :class:`ValidationError` when it is not fitted."""
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted

        if not hasattr(model, "predict"):
            raise Unsupported(
                f"{type(model).__name__} has no predict method.",
                hint="Bundle an estimator or a Pipeline that ends in one.",
            )
        try:
            check_is_fitted(model)
        except NotFittedError as exc:
            raise ValidationError(
                f"The {type(model).__name__} is not fitted.", hint="Call fit(X, y) before saving it."
            ) from exc
        return SklearnAdapter(model)

    def save(
        self,
        model: Any,
        artifacts_dir: Path,
        *,
        trusted_pickle: bool = False,
        sample_input: ModelInput | None = None,
    ) -> SavedArtifacts:
        """Dump with skops; refuse models that would need types outside the allow-list to load."""
        skops_io = _skops_io()
        adapter = SklearnAdapter(model)
        path = artifacts_dir / MODEL_FILE
        skops_io.dump(model, path)
        refused = [t for t in skops_io.get_untrusted_types(file=path) if not is_trusted_type(t)]
        if refused:
            path.unlink()
            raise Unsupported(
                f"The {type(model).__name__} holds types modelport does not trust to load safely: "
                f"{', '.join(refused)}.",
                hint="Use scikit-learn's own classes and functions only; wrap custom code in a 'python' flavor "
                "class, or save with flavor='pickle' and trusted_pickle=True if you accept pickle's risks. "
                "If a scikit-learn type is missing from the allow-list, please report it.",
            )
        feature_names = getattr(model, "feature_names_in_", None)
        return SavedArtifacts(
            files=(MODEL_FILE,),
            options={
                "file": MODEL_FILE,
                "input_format": adapter.input_format,
                "feature_names": [str(f) for f in feature_names] if feature_names is not None else None,
            },
            framework=_versions("scikit-learn", "skops"),
            requirements=tuple(f"{d}=={v}" for d, v in _versions("scikit-learn", "skops", "scipy").items()),
        )

    def load(self, artifacts_dir: Path, options: dict[str, Any], *, trusted_pickle: bool = False) -> ModelAdapter:
        """Load with skops, trusting only the file's types that modelport's allow-list trusts."""
        skops_io = _skops_io()
        path = artifacts_dir / str(options.get("file", MODEL_FILE))
        try:
            needed = skops_io.get_untrusted_types(file=path)
        except Exception as exc:  # skops raises zipfile/json/key errors on a file that is not skops
            raise IntegrityError(
                f"{path.name} is not a readable skops file: {type(exc).__name__}: {exc}",
                hint="Re-save the model with modelport.",
            ) from exc
        refused = [t for t in needed if not is_trusted_type(t)]
        if refused:
            raise UntrustedArtifact(
                f"{path.name} would instantiate types modelport does not trust: {', '.join(refused)}.",
                hint="Re-save the model with scikit-learn types only, or as flavor='pickle' with "
                "trusted_pickle=True if you trust its author. If a scikit-learn type is refused, please report it.",
            )
        try:
            model = skops_io.load(path, trusted=needed)
        except Exception as exc:
            raise IntegrityError(
                f"{path.name} could not be loaded with skops: {type(exc).__name__}: {exc}",
                hint="Install the scikit-learn version recorded in the bundle's requirements, or re-save the model.",
            ) from exc
        return SklearnAdapter(model)


def _skops_io() -> types.ModuleType:
    try:
        skops_io = importlib.import_module("skops.io")
    except ModuleNotFoundError as exc:
        raise MissingDependency(
            f"The '{exc.name or 'skops'}' package is not installed, though modelport depends on it.",
            hint="Reinstall modelport (pip install --force-reinstall modelport) to restore its dependencies.",
        ) from exc
    return skops_io


def _versions(*dists: str) -> dict[str, str]:
    found = {}
    for dist in dists:
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found
