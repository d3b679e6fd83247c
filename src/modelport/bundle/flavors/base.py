"""The ``Flavor`` protocol: how one framework's models are detected, saved, loaded and called.

A flavor turns a framework object into files under a bundle's ``artifacts/`` folder and back,
and wraps the loaded object in a :class:`ModelAdapter` that the runtime calls. Flavors import
their framework lazily and raise :class:`~modelport.core.errors.MissingDependency` naming the
extra to install when it is absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import pandas as pd

InputFormat = Literal["frame", "array", "arrays"]
"""How a model wants its input: a DataFrame, one 2-D/N-D array, or a dict of named arrays."""

ModelInput = pd.DataFrame | np.ndarray | dict[str, np.ndarray]


class PickleLoadWarning(UserWarning):
    """Emitted on every load of plain pickle (or shipped Python source) that an operator trusted.

    Such an artifact can run any code when loaded; its sha256 was checked first, but only the
    operator's trust makes it safe.
    """


@runtime_checkable
class ModelAdapter(Protocol):
    """A loaded model, reduced to what the runtime needs.

    Attributes:
        input_format: What ``predict`` expects (see :data:`InputFormat`).
        classes: Class labels for classifiers, in ``predict_proba`` column order, else ``None``.
        has_proba: Whether ``predict_proba`` is available.
    """

    input_format: InputFormat
    classes: tuple[Any, ...] | None
    has_proba: bool

    def predict(self, data: ModelInput) -> np.ndarray:
        """Predictions, one per row (labels, values, or an N-D tensor for tensor models)."""
        ...

    def predict_proba(self, data: ModelInput) -> np.ndarray:
        """Class probabilities, shape ``(rows, len(classes))``."""
        ...


@dataclass(frozen=True)
class SavedArtifacts:
    """What a flavor reports after writing a model's files.

    Attributes:
        files: Paths written, relative to the ``artifacts/`` folder.
        options: Flavor-specific settings needed to load (stored in the manifest).
        framework: Framework name → installed version, recorded in the manifest.
        requirements: Pinned pip requirements of what the model actually uses.
        pickle_files: Files among ``files`` that are plain pickle and need ``trusted_pickle``.
    """

    files: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)
    framework: dict[str, str] = field(default_factory=dict)
    requirements: tuple[str, ...] = ()
    pickle_files: tuple[str, ...] = ()


class Flavor(Protocol):
    """One framework's way to save and load models.

    Attributes:
        name: Short name stored in the manifest (``sklearn``, ``xgboost``, ...).
        extra: The pip extra that installs the framework (``modelport[<extra>]``).
    """

    name: str
    extra: str

    def detect(self, model: object) -> bool:
        """Whether ``model`` belongs to this flavor. Must not import the framework if absent."""
        ...

    def adapter(self, model: Any) -> ModelAdapter:
        """Wrap an in-memory model object (used at save time to infer outputs, and by load)."""
        ...

    def save(
        self,
        model: Any,
        artifacts_dir: Path,
        *,
        trusted_pickle: bool = False,
        sample_input: ModelInput | None = None,
    ) -> SavedArtifacts:
        """Write ``model`` into ``artifacts_dir`` (which exists and is empty).

        ``sample_input`` is the sample in the model's input format, for flavors that must trace or
        export the model (a plain PyTorch module); others ignore it.
        """
        ...

    def load(self, artifacts_dir: Path, options: dict[str, Any], *, trusted_pickle: bool = False) -> ModelAdapter:
        """Load the model from ``artifacts_dir``; every file's hash has already been verified."""
        ...
