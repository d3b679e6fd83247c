"""The LightGBM flavor: scikit-learn wrappers and Boosters in LightGBM's native text format.

A fitted ``LGBMClassifier``, ``LGBMRegressor``, ``LGBMRanker`` or raw ``lightgbm.Booster`` is
written with ``booster.save_model("model.txt")`` (never pickle) and always loaded back as a
``Booster``. The loaded adapter reproduces the wrapper's answers exactly: a binary classifier's
Booster returns the positive-class probability, which becomes ``[1 - p, p]``; a multiclass
Booster returns the probability matrix as is; labels are ``classes[argmax(proba)]`` with the
classes (and their dtype) recorded in the options. Categorical features (pandas ``category``
columns at training time) are recorded by name, so string columns are turned into categories
with the training categories the model file stores.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from modelport.bundle.flavors._shared import (
    estimator_name,
    from_package,
    import_framework,
    jsonable,
    pin,
    recorded_input_format,
    select_columns,
)
from modelport.bundle.flavors.base import InputFormat, ModelInput, SavedArtifacts
from modelport.core.errors import IntegrityError, Unsupported, ValidationError

MODEL_FILE = "model.txt"
_WRAPPERS = ("LGBMClassifier", "LGBMRegressor", "LGBMRanker")
_BOOSTER = "Booster"


def _import_lightgbm() -> ModuleType:
    return import_framework("lightgbm", "lightgbm")


def _estimator_name(model: object) -> str:
    return estimator_name(model, "lightgbm", (*_WRAPPERS, _BOOSTER), "LightGBM")


def _restore_classes(classes: list[Any], dtype: str | None) -> np.ndarray:
    """The classes array with the dtype the wrapper's label encoder had (object for strings)."""
    kind = np.dtype(dtype).kind if dtype and dtype != "object" else "O"
    if kind in "biuf":
        return np.asarray(classes, dtype=dtype)
    return np.asarray(classes, dtype=object)


class LightGBMAdapter:
    """A LightGBM model reduced to the :class:`~modelport.bundle.flavors.base.ModelAdapter` calls.

    In memory, a scikit-learn wrapper is called directly (its answers are the truth the loaded
    Booster must reproduce); after loading, ``model`` is a ``Booster`` and ``classes`` tells
    whether it was a classifier.

    Args:
        model: A fitted wrapper or a Booster.
        input_format: ``frame`` or ``array``.
        classes: Class labels of a classifier loaded as a Booster, else ``None``.
        feature_names: Training column names for ``frame`` models (columns are selected in this order).
        categorical: Names of categorical features, in training column order.
    """

    def __init__(
        self,
        model: Any,
        *,
        input_format: InputFormat,
        classes: np.ndarray | None = None,
        feature_names: tuple[str, ...] = (),
        categorical: tuple[str, ...] = (),
    ) -> None:
        self._model = model
        self._is_booster = _estimator_name(model) == _BOOSTER
        if not self._is_booster and hasattr(model, "classes_"):
            classes = np.asarray(model.classes_)
        self._classes = classes
        self.input_format: InputFormat = input_format
        self.classes: tuple[Any, ...] | None = None if classes is None else tuple(jsonable(classes))
        self.has_proba = classes is not None
        self._feature_names = feature_names
        self._categorical = categorical

    def _prepare(self, data: ModelInput) -> Any:
        if isinstance(data, dict):
            data = pd.DataFrame(data)
        if not isinstance(data, pd.DataFrame):
            return data
        if self._feature_names:
            data = select_columns(data, self._feature_names, "LightGBM")
        if not self._categorical:
            return data
        categories = (self._model if self._is_booster else self._model.booster_).pandas_categorical or []
        converted = {
            name: pd.Categorical(data[name], categories=cats)
            for name, cats in zip(self._categorical, categories, strict=False)
            if not isinstance(data[name].dtype, pd.CategoricalDtype) or list(data[name].cat.categories) != cats
        }
        return data.assign(**converted) if converted else data

    def _booster_proba(self, data: Any) -> np.ndarray:
        raw = np.asarray(self._model.predict(data))
        return np.vstack((1.0 - raw, raw)).transpose() if raw.ndim == 1 else raw

    def predict(self, data: ModelInput) -> np.ndarray:
        """Labels (classifiers), values (regressors, rankers) or a raw Booster's output."""
        prepared = self._prepare(data)
        if not self._is_booster:
            return np.asarray(self._model.predict(prepared))
        if self._classes is None:
            return np.asarray(self._model.predict(prepared))
        return np.asarray(self._classes[np.argmax(self._booster_proba(prepared), axis=1)])

    def predict_proba(self, data: ModelInput) -> np.ndarray:
        """Class probabilities, shape ``(rows, len(classes))``; classifiers only."""
        if not self.has_proba:
            raise Unsupported(
                "This LightGBM model has no predict_proba.",
                hint="Only LGBMClassifier models give probabilities; use predict.",
            )
        prepared = self._prepare(data)
        if not self._is_booster:
            return np.asarray(self._model.predict_proba(prepared))
        return self._booster_proba(prepared)


class LightGBMFlavor:
    """Saves LightGBM models in their native text format and loads them as Boosters."""

    name = "lightgbm"
    extra = "lightgbm"

    def detect(self, model: object) -> bool:
        """Whether ``model`` is a LightGBM wrapper or Booster (never imports lightgbm)."""
        return from_package(model, "lightgbm")

    def adapter(self, model: Any) -> LightGBMAdapter:
        """Wrap a fitted in-memory LightGBM model."""
        booster = self._booster(model)
        names = _feature_names(model, booster)
        return LightGBMAdapter(
            model,
            input_format="frame" if names else "array",
            feature_names=names,
            categorical=_categorical_features(booster),
        )

    def save(
        self,
        model: Any,
        artifacts_dir: Path,
        *,
        trusted_pickle: bool = False,
        sample_input: ModelInput | None = None,
    ) -> SavedArtifacts:
        """Write ``model.txt`` and record the wrapper, classes, features and categorical columns."""
        lightgbm = _import_lightgbm()
        estimator = _estimator_name(model)
        booster = self._booster(model)
        if callable(getattr(model, "objective", None)):
            raise Unsupported(
                f"This {estimator} uses a custom objective function, which a saved model cannot reproduce.",
                hint="Train with a built-in objective, or save the model with the 'python' flavor.",
            )
        path = artifacts_dir / MODEL_FILE
        booster.save_model(str(path))
        names = _feature_names(model, booster)
        options: dict[str, Any] = {
            "estimator": estimator,
            "input_format": "frame" if names else "array",
            "feature_names": list(names),
            "categorical_features": list(_categorical_features(booster)),
        }
        if estimator == "LGBMClassifier":
            classes = np.asarray(model.classes_)
            options["classes"] = jsonable(classes)
            options["classes_dtype"] = str(classes.dtype)
        return SavedArtifacts(
            files=(MODEL_FILE,),
            options=options,
            framework={"lightgbm": lightgbm.__version__},
            requirements=(pin("lightgbm", lightgbm.__version__),),
        )

    def load(self, artifacts_dir: Path, options: dict[str, Any], *, trusted_pickle: bool = False) -> LightGBMAdapter:
        """Read ``model.txt`` as a Booster that answers like the saved model."""
        lightgbm = _import_lightgbm()
        path = artifacts_dir / MODEL_FILE
        try:
            booster = lightgbm.Booster(model_file=str(path))
        except lightgbm.basic.LightGBMError as exc:
            raise IntegrityError(
                f"LightGBM could not read {path}: {str(exc).splitlines()[0]}",
                hint="The artifact is corrupted or was written by an incompatible LightGBM; re-save the model.",
            ) from exc
        classes = options.get("classes")
        return LightGBMAdapter(
            booster,
            input_format=recorded_input_format(options, "LightGBM"),
            classes=None if classes is None else _restore_classes(classes, options.get("classes_dtype")),
            feature_names=tuple(str(n) for n in options.get("feature_names", ())),
            categorical=tuple(str(n) for n in options.get("categorical_features", ())),
        )

    @staticmethod
    def _booster(model: Any) -> Any:
        if _estimator_name(model) == _BOOSTER:
            return model
        lightgbm = _import_lightgbm()
        try:
            return model.booster_
        except (lightgbm.compat.LGBMNotFittedError, ValueError, AttributeError) as exc:
            raise ValidationError(
                f"The {type(model).__name__} is not fitted.",
                hint="Call fit() before saving the model.",
            ) from exc


def _feature_names(model: Any, booster: Any) -> tuple[str, ...]:
    """Training column names when the model was fitted on a DataFrame, else ``()``."""
    if _estimator_name(model) != _BOOSTER:
        names = getattr(model, "feature_names_in_", None)
        return () if names is None else tuple(str(n) for n in names)
    names = [str(n) for n in booster.feature_name()]
    auto = [f"Column_{i}" for i in range(len(names))]
    return () if names == auto else tuple(names)


def _categorical_features(booster: Any) -> tuple[str, ...]:
    """Categorical feature names: those LightGBM lists category values for (numeric ones have none)."""
    infos = booster.dump_model(num_iteration=1).get("feature_infos", {})
    return tuple(str(name) for name, info in infos.items() if info.get("values"))
