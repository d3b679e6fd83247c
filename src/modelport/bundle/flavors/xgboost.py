"""The XGBoost flavor: scikit-learn wrappers and raw Boosters in XGBoost's native JSON format.

A fitted ``XGBClassifier``, ``XGBRegressor``, ``XGBRanker``, ``XGBRFClassifier``,
``XGBRFRegressor`` or a raw ``xgboost.Booster`` is written with ``save_model("model.json")``
(never pickle) and read back into the same wrapper class, chosen from an allow-list kept here.
The options record the wrapper, its classes, the input format (``frame`` when the model was
trained on a DataFrame with feature names, else ``array``) and which features are categorical,
so that string columns can be turned into categories before prediction. A raw Booster predicts
its objective's raw output (margins, probabilities or values) and has no ``predict_proba``; wrap
it in ``XGBClassifier`` for labels and probabilities.
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

MODEL_FILE = "model.json"
_WRAPPERS = ("XGBClassifier", "XGBRegressor", "XGBRanker", "XGBRFClassifier", "XGBRFRegressor")
_CLASSIFIERS = frozenset({"XGBClassifier", "XGBRFClassifier"})
_BOOSTER = "Booster"


def _import_xgboost() -> ModuleType:
    return import_framework("xgboost", "xgboost")


def _estimator_name(model: object) -> str:
    """The allow-listed xgboost class ``model`` is (or derives from)."""
    return estimator_name(model, "xgboost", (*_WRAPPERS, _BOOSTER), "XGBoost")


class XGBoostAdapter:
    """An XGBoost model reduced to the :class:`~modelport.bundle.flavors.base.ModelAdapter` calls.

    Args:
        model: A fitted scikit-learn wrapper or a raw ``xgboost.Booster``.
        input_format: ``frame`` or ``array``.
        feature_names: Training column names of a ``frame`` model: DataFrame columns are selected
            in this order.
        categorical: Names of categorical features: non-category columns with these names are
            converted to ``category`` dtype (XGBoost re-codes them with its stored categories).
    """

    def __init__(
        self,
        model: Any,
        *,
        input_format: InputFormat,
        feature_names: tuple[str, ...] = (),
        categorical: tuple[str, ...] = (),
    ) -> None:
        self._model = model
        self._feature_names = feature_names
        self._is_booster = _estimator_name(model) == _BOOSTER
        self.input_format: InputFormat = input_format
        self._categorical = categorical
        classes = None if self._is_booster else getattr(model, "classes_", None)
        self.classes: tuple[Any, ...] | None = None if classes is None else tuple(jsonable(classes))
        self.has_proba = self.classes is not None and hasattr(model, "predict_proba")

    def _prepare(self, data: ModelInput) -> Any:
        if isinstance(data, dict):
            data = pd.DataFrame(data)
        if isinstance(data, pd.DataFrame) and self._feature_names:
            data = select_columns(data, self._feature_names, "XGBoost")
        if isinstance(data, pd.DataFrame) and self._categorical:
            to_convert = [c for c in self._categorical if c in data.columns and data[c].dtype != "category"]
            if to_convert:
                data = data.assign(**{c: data[c].astype("category") for c in to_convert})
        return data

    def predict(self, data: ModelInput) -> np.ndarray:
        """Labels (classifiers), values (regressors) or the Booster's raw output, one per row."""
        prepared = self._prepare(data)
        if self._is_booster:
            xgboost = _import_xgboost()
            matrix = xgboost.DMatrix(prepared, enable_categorical=bool(self._categorical))
            return np.asarray(self._model.predict(matrix))
        return np.asarray(self._model.predict(prepared))

    def predict_proba(self, data: ModelInput) -> np.ndarray:
        """Class probabilities, shape ``(rows, len(classes))``; classifiers only."""
        if not self.has_proba:
            raise Unsupported(
                "This XGBoost model has no predict_proba.",
                hint="Only XGBClassifier/XGBRFClassifier models give probabilities; use predict.",
            )
        return np.asarray(self._model.predict_proba(self._prepare(data)))


class XGBoostFlavor:
    """Saves and loads XGBoost models in their native JSON format.

    Example:
        >>> flavor = XGBoostFlavor()
        >>> saved = flavor.save(fitted_model, artifacts_dir)  # doctest: +SKIP
        >>> adapter = flavor.load(artifacts_dir, saved.options)  # doctest: +SKIP
    """

    name = "xgboost"
    extra = "xgboost"

    def detect(self, model: object) -> bool:
        """Whether ``model`` is an XGBoost wrapper or Booster (never imports xgboost)."""
        return from_package(model, "xgboost")

    def adapter(self, model: Any) -> XGBoostAdapter:
        """Wrap a fitted in-memory XGBoost model."""
        booster = self._booster(model)
        return XGBoostAdapter(
            model,
            input_format=_input_format(booster),
            feature_names=tuple(str(n) for n in booster.feature_names or ()),
            categorical=_categorical(booster),
        )

    def save(
        self,
        model: Any,
        artifacts_dir: Path,
        *,
        trusted_pickle: bool = False,
        sample_input: ModelInput | None = None,
    ) -> SavedArtifacts:
        """Write ``model`` as ``model.json`` and describe how to load it."""
        xgboost = _import_xgboost()
        estimator = _estimator_name(model)
        booster = self._booster(model)
        model.save_model(str(artifacts_dir / MODEL_FILE))
        options: dict[str, Any] = {
            "estimator": estimator,
            "input_format": _input_format(booster),
            "feature_names": None if booster.feature_names is None else list(booster.feature_names),
            "categorical_features": list(_categorical(booster)),
        }
        if estimator in _CLASSIFIERS:
            options["classes"] = jsonable(model.classes_)
        return SavedArtifacts(
            files=(MODEL_FILE,),
            options=options,
            framework={"xgboost": xgboost.__version__},
            requirements=(pin("xgboost", xgboost.__version__),),
        )

    def load(self, artifacts_dir: Path, options: dict[str, Any], *, trusted_pickle: bool = False) -> XGBoostAdapter:
        """Read ``model.json`` into the recorded wrapper class (or a Booster)."""
        xgboost = _import_xgboost()
        estimator = options.get("estimator", _BOOSTER)
        if estimator not in (*_WRAPPERS, _BOOSTER):
            raise IntegrityError(
                f"The bundle names an unknown XGBoost estimator {estimator!r}.",
                hint=f"Expected one of {', '.join((*_WRAPPERS, _BOOSTER))}; re-save the model.",
            )
        model = getattr(xgboost, estimator)()
        path = artifacts_dir / MODEL_FILE
        try:
            model.load_model(str(path))
        except (xgboost.core.XGBoostError, UnicodeDecodeError, ValueError, OSError) as exc:
            raise IntegrityError(
                f"XGBoost could not read {path}: {str(exc).splitlines()[0]}",
                hint="The artifact is corrupted or was written by an incompatible XGBoost; re-save the model.",
            ) from exc
        return XGBoostAdapter(
            model,
            input_format=recorded_input_format(options, "XGBoost"),
            feature_names=tuple(str(n) for n in options.get("feature_names") or ()),
            categorical=tuple(str(c) for c in options.get("categorical_features", ())),
        )

    @staticmethod
    def _booster(model: Any) -> Any:
        if _estimator_name(model) == _BOOSTER:
            return model
        xgboost = _import_xgboost()
        try:
            return model.get_booster()
        except (xgboost.core.XGBoostError, ValueError, AttributeError) as exc:
            raise ValidationError(
                f"The {type(model).__name__} is not fitted.",
                hint="Call fit() before saving the model.",
            ) from exc


def _input_format(booster: Any) -> InputFormat:
    return "array" if booster.feature_names is None else "frame"


def _categorical(booster: Any) -> tuple[str, ...]:
    names, types = booster.feature_names, booster.feature_types
    if names is None or types is None:
        return ()
    return tuple(str(n) for n, t in zip(names, types, strict=True) if t == "c")
