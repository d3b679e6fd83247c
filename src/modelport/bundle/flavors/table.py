"""The flavor table: short flavor names mapped to import strings, built-ins plus entry points.

A :class:`FlavorTable` is an object the caller holds (never a module-level registry). Built-in
flavors and third-party ones (entry point group ``modelport.flavors``, value ``"module:Class"``)
come through the same door: a name, an import string, a class with a no-argument constructor.
Flavor modules are imported only when a flavor is asked for, and framework availability is
checked with :func:`importlib.util.find_spec`, which never imports the framework.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from modelport.bundle.flavors.base import Flavor
from modelport.core.errors import MissingDependency, Unsupported

ENTRY_POINT_GROUP = "modelport.flavors"

BUILTIN_FLAVORS: Mapping[str, str] = MappingProxyType(
    {
        "sklearn": "modelport.bundle.flavors.sklearn:SklearnFlavor",
        "xgboost": "modelport.bundle.flavors.xgboost:XGBoostFlavor",
        "lightgbm": "modelport.bundle.flavors.lightgbm:LightGBMFlavor",
        "onnx": "modelport.bundle.flavors.onnx:OnnxFlavor",
        "torch": "modelport.bundle.flavors.torch:TorchFlavor",
        "python": "modelport.bundle.flavors.python:PythonFlavor",
        "pickle": "modelport.bundle.flavors.pickle:PickleFlavor",
    }
)
"""Built-in flavor name → ``"module:Class"``."""

BUILTIN_REQUIRES: Mapping[str, tuple[tuple[str, str | None], ...]] = MappingProxyType(
    {
        "sklearn": (("sklearn", None), ("skops", None)),
        "xgboost": (("xgboost", "xgboost"),),
        "lightgbm": (("lightgbm", "lightgbm"),),
        "onnx": (("onnx", "onnx"), ("onnxruntime", "onnx")),
        "torch": (("torch", "torch"),),
    }
)
"""Built-in flavor name → ``(module, extra)`` pairs it needs installed (``None``: a core dependency)."""

DETECT_FIRST = ("onnx", "torch", "xgboost", "lightgbm", "sklearn")
"""Detection order of the built-ins: framework wrappers that look like sklearn estimators go first."""

DETECT_LAST = ("python",)
"""Tried after every other flavor: ``python`` matches any object with ``load`` and ``predict``."""

NEVER_DETECTED = frozenset({"pickle"})
"""Chosen only explicitly (``flavor="pickle"``), never by detection."""


class FlavorTable:
    """Flavors by short name, resolved lazily from import strings.

    Args:
        specs: Flavor name → ``"module:Class"`` import string, or a ready flavor instance.

    Example:
        >>> table = FlavorTable.default()
        >>> table.detect(fitted_pipeline).name  # doctest: +SKIP
        'sklearn'
    """

    def __init__(self, specs: Mapping[str, str | Flavor]) -> None:
        self._specs: dict[str, str | Flavor] = dict(specs)
        self._instances: dict[str, Flavor] = {}

    @classmethod
    def default(cls, *, entry_points: bool = True) -> FlavorTable:
        """The built-in flavors plus those installed under the ``modelport.flavors`` entry point group.

        A third-party entry point never replaces a built-in of the same name.
        """
        specs: dict[str, str | Flavor] = {}
        if entry_points:
            for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                specs[ep.name] = ep.value
        specs.update(BUILTIN_FLAVORS)
        return cls(specs)

    def with_flavor(self, name: str, spec: str | Flavor) -> FlavorTable:
        """A new table with ``name`` added or replaced (this table is left as it is)."""
        specs = dict(self._specs)
        specs[name] = spec
        return FlavorTable(specs)

    @property
    def names(self) -> tuple[str, ...]:
        """Known flavor names, sorted."""
        return tuple(sorted(self._specs))

    def get(self, name: str) -> Flavor:
        """The flavor called ``name``.

        Raises:
            Unsupported: No flavor of that name (the message lists the known ones).
            MissingDependency: The flavor's framework is not installed (the hint names the extra).
        """
        if name not in self._specs:
            raise Unsupported(
                f"Unknown flavor {name!r}; known flavors: {', '.join(self.names)}.",
                hint="Pick one of the known flavors, or install the package that provides this one "
                f"(entry point group '{ENTRY_POINT_GROUP}').",
            )
        for module, extra in BUILTIN_REQUIRES.get(name, ()):
            if self._specs[name] == BUILTIN_FLAVORS.get(name) and importlib.util.find_spec(module) is None:
                raise _missing(module, extra)
        return self._instance(name)

    def detect(self, model: object) -> Flavor:
        """The flavor ``model`` belongs to; never ``pickle`` (choose it explicitly with ``flavor="pickle"``).

        Raises:
            Unsupported: No flavor recognises the object.
        """
        for name in self._detect_order():
            flavor = self._instance(name)
            if flavor.detect(model):
                return flavor
        kind = f"{type(model).__module__}.{type(model).__qualname__}"
        raise Unsupported(
            f"No flavor recognises a model of type {kind}; known flavors: {', '.join(self.names)}.",
            hint="Wrap it in a class with load(artifacts_dir) and predict(frame) (the 'python' flavor), "
            "or, for a pickle you trust, pass flavor='pickle' with trusted_pickle=True.",
        )

    def _detect_order(self) -> Iterable[str]:
        first = [n for n in DETECT_FIRST if n in self._specs]
        last = [n for n in DETECT_LAST if n in self._specs]
        middle = sorted(set(self._specs) - set(first) - set(last) - NEVER_DETECTED)
        for name in (*first, *middle, *last):
            if self._is_available(name):
                yield name

    def _is_available(self, name: str) -> bool:
        if self._specs[name] != BUILTIN_FLAVORS.get(name):
            return True
        module_name = BUILTIN_FLAVORS[name].partition(":")[0]
        if importlib.util.find_spec(module_name) is None:
            return False
        return all(importlib.util.find_spec(module) is not None for module, _ in BUILTIN_REQUIRES.get(name, ()))

    def _instance(self, name: str) -> Flavor:
        if name in self._instances:
            return self._instances[name]
        spec = self._specs[name]
        flavor = _build(name, spec) if isinstance(spec, str) else spec
        self._instances[name] = flavor
        return flavor


def _missing(module: str, extra: str | None) -> MissingDependency:
    if extra is not None:
        return MissingDependency.for_extra(module, extra)
    return MissingDependency(
        f"The '{module}' package is not installed, though modelport depends on it.",
        hint="Reinstall modelport (pip install --force-reinstall modelport) to restore its dependencies.",
    )


def _build(name: str, import_string: str) -> Flavor:
    module_name, _, attr = import_string.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if missing == module_name or module_name.startswith(f"{missing}."):
            raise Unsupported(
                f"Flavor {name!r} points at module {module_name!r}, which cannot be imported.",
                hint="Reinstall the package that provides this flavor.",
            ) from exc
        raise MissingDependency(
            f"Flavor {name!r} needs the '{missing}' package, which is not installed.",
            hint=f"Install '{missing}' (pip install {missing}).",
        ) from exc
    target: Any = module
    for part in attr.split(".") if attr else ():
        target = getattr(target, part, None)
    flavor = target() if isinstance(target, type) else target
    required = ("name", "extra", "detect", "adapter", "save", "load")
    if target is None or target is module or not all(hasattr(flavor, a) for a in required):
        raise Unsupported(
            f"Flavor {name!r} ({import_string}) is not a flavor: it needs {', '.join(required)}.",
            hint="Implement modelport.bundle.flavors.base.Flavor.",
        )
    return flavor  # type: ignore[no-any-return]
