"""The ``python`` flavor: a user class with ``load(artifacts_dir)`` and ``predict(frame)``.

Use it for custom pre/post-processing and for composing several models. The contract::

    class Churn:
        def save(self, artifacts_dir: Path) -> None:      # optional: write your own files
            save_bundle(self.scorer, artifacts_dir / "scorer", sample_input=...)
        def load(self, artifacts_dir: Path) -> None:      # called on a fresh Churn() at load time
            self.scorer = load_bundle(artifacts_dir / "scorer").adapter
        def predict(self, frame: pd.DataFrame) -> np.ndarray: ...
        def predict_proba(self, frame: pd.DataFrame) -> np.ndarray: ...   # optional
        classes = ("stay", "churn")                        # optional, with predict_proba
        input_format = "frame"                              # optional: "frame" (default), "array", "arrays"

``load`` may also be a classmethod or staticmethod that returns the instance. Files that
``save`` writes (in ``artifacts/model/``) are hashed like any artifact; sub-bundles saved there are
verified again when ``load`` loads them.

**How the class is found at load time, and why that is safe.** The manifest records the import
path ``module:qualname``. By default the class is imported from the *installed environment*
(``importlib.import_module``): a bundle names code, it never brings it, and the module's
distribution is pinned in the requirements. It must be a top-level class with a no-argument
constructor (or a ``load`` classmethod) and a ``predict`` method. Note that a bundle can name any
such class already installed, so load bundles from authors you trust as you would install code.

When the class lives in ``__main__`` (a script or notebook) or in a file that is not importable
by name, its module's source file is shipped in the bundle (``artifacts/code/<module>.py``).
Running shipped code is as dangerous as unpickling, so loading such a bundle requires the same
operator trust as pickle: ``trusted_pickle=True``, and it warns with
:class:`~modelport.bundle.flavors.base.PickleLoadWarning`. The source is hash-checked on the
bytes executed. Only that one file is shipped: whatever it imports must be installed, and the file
runs as a module when loaded, so keep script code under ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import sys
import types
import warnings
from pathlib import Path
from typing import Any, cast

from modelport.bundle.flavors.base import InputFormat, ModelAdapter, ModelInput, PickleLoadWarning, SavedArtifacts
from modelport.bundle.flavors.pickle import ObjectAdapter, distribution_pins, refuse_untrusted
from modelport.bundle.hashing import sha256_bytes
from modelport.bundle.manifest import MANIFEST_FILE, read_manifest
from modelport.core.errors import IntegrityError, MissingDependency, Unsupported, ValidationError

MODEL_DIR = "model"
CODE_DIR = "code"
_SHIPPED_PREFIX = "modelport_shipped_"
_SHIPPED_FILE = re.compile(rf"^{CODE_DIR}/[A-Za-z0-9_]+\.py$")
_IDENTIFIER_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class PythonFlavor:
    """User classes with ``load(artifacts_dir)`` and ``predict(frame)``, found by import path."""

    name = "python"
    extra = "python"

    def detect(self, model: object) -> bool:
        """An instance (not a class) with callable ``load`` and ``predict``."""
        return (
            not isinstance(model, type)
            and callable(getattr(model, "load", None))
            and callable(getattr(model, "predict", None))
        )

    def adapter(self, model: Any) -> ModelAdapter:
        """Wrap the instance; ``input_format`` defaults to ``"frame"``."""
        if not self.detect(model):
            raise Unsupported(
                f"A {type(model).__name__} is not a python-flavor model: it needs load(artifacts_dir) and "
                "predict(frame) methods.",
                hint="Add both methods to the class (see modelport.bundle.flavors.python).",
            )
        return ObjectAdapter(model, input_format=_input_format(model))

    def save(
        self,
        model: Any,
        artifacts_dir: Path,
        *,
        trusted_pickle: bool = False,
        sample_input: ModelInput | None = None,
    ) -> SavedArtifacts:
        """Record the import path, ship ``__main__`` source if needed, and call the model's ``save``."""
        cls = type(model)
        module, qualname = cls.__module__, cls.__qualname__
        if "<" in qualname:
            raise Unsupported(
                f"Class {qualname!r} is defined inside a function; it cannot be imported when the bundle loads.",
                hint="Define the class at the top level of a module.",
            )
        options: dict[str, Any] = {"module": module, "qualname": qualname, "input_format": _input_format(model)}
        files: list[str] = []
        if not _importable(module):
            files.append(_ship_source(cls, artifacts_dir, options))
        model_dir = artifacts_dir / MODEL_DIR
        model_dir.mkdir()
        if callable(getattr(model, "save", None)):
            model.save(model_dir)
        files.extend(p.relative_to(artifacts_dir).as_posix() for p in sorted(model_dir.rglob("*")) if p.is_file())
        pins = distribution_pins(module)
        framework, requirements = dict(pins), [f"{d}=={v}" for d, v in pins.items()]
        for manifest_path in sorted(model_dir.rglob(MANIFEST_FILE)):  # sub-bundles of a composition
            inner = read_manifest(manifest_path.parent)
            framework.update(inner.framework)
            requirements.extend(inner.requirements)
        return SavedArtifacts(
            files=tuple(files),
            options=options,
            framework=framework,
            requirements=tuple(dict.fromkeys(requirements)),
        )

    def load(self, artifacts_dir: Path, options: dict[str, Any], *, trusted_pickle: bool = False) -> ModelAdapter:
        """Import the class (or, with ``trusted_pickle``, run the shipped source), then call its ``load``."""
        module_name, qualname = str(options.get("module", "")), str(options.get("qualname", ""))
        if not _IDENTIFIER_PATH.match(module_name) or not _IDENTIFIER_PATH.match(qualname):
            raise IntegrityError(
                f"Invalid python-flavor import path {module_name}:{qualname} in the manifest.",
                hint="Re-save the model.",
            )
        if options.get("code"):
            if not trusted_pickle:
                raise refuse_untrusted(f"The shipped Python source {options['code']!r}")
            module = _exec_shipped(artifacts_dir, options)
        else:
            module = _import(module_name)
        cls = _resolve_class(module, module_name, qualname)
        model = _instantiate(cls, artifacts_dir / MODEL_DIR, qualname)
        return ObjectAdapter(model, input_format=options.get("input_format") or _input_format(model))


def _importable(module: str) -> bool:
    if module == "__main__" or module.startswith(_SHIPPED_PREFIX):
        return False
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _input_format(model: Any) -> InputFormat:
    value = getattr(model, "input_format", "frame")
    if value not in ("frame", "array", "arrays"):
        raise ValidationError(
            f"{type(model).__name__}.input_format is {value!r}.",
            hint="Use 'frame' (a DataFrame), 'array' (one ndarray) or 'arrays' (a dict of ndarrays).",
        )
    return cast(InputFormat, value)


def _ship_source(cls: type, artifacts_dir: Path, options: dict[str, Any]) -> str:
    try:
        source_file = inspect.getsourcefile(cls)
    except TypeError:  # the module is gone from sys.modules: find the file through a method's code
        codes = [f.__code__ for f in vars(cls).values() if inspect.isfunction(f)]
        source_file = codes[0].co_filename if codes else None
    if source_file is None or not Path(source_file).is_file():
        raise Unsupported(
            f"Class {cls.__qualname__} lives in {cls.__module__!r}, which is neither importable by name nor a "
            "source file modelport can ship (an interactive session?).",
            hint="Move the class into a module of an installed package, or into a .py file.",
        )
    data = Path(source_file).read_bytes()
    (artifacts_dir / CODE_DIR).mkdir()
    name = f"{CODE_DIR}/{Path(source_file).stem}.py"
    (artifacts_dir / name).write_bytes(data)
    options.update({"code": name, "code_sha256": sha256_bytes(data)})
    return name


def _exec_shipped(artifacts_dir: Path, options: dict[str, Any]) -> types.ModuleType:
    name = str(options["code"])
    path = artifacts_dir / name
    if not _SHIPPED_FILE.match(name) or path.is_symlink() or not path.is_file():
        raise IntegrityError(f"Shipped source {name!r} is not a plain file of the bundle.", hint="Re-save the model.")
    data = path.read_bytes()
    digest = sha256_bytes(data)
    if digest != options.get("code_sha256"):
        raise IntegrityError(
            f"Shipped source {name!r} does not match the sha256 recorded when it was saved; it was not run.",
            hint="The bundle was modified; fetch or re-save a clean copy.",
        )
    warnings.warn(
        PickleLoadWarning(f"Running Python source {name!r} shipped in the bundle: trusted by the operator."),
        stacklevel=3,
    )
    module_name = f"{_SHIPPED_PREFIX}{digest[:16]}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    module = types.ModuleType(module_name)
    module.__file__ = str(path)
    module.__spec__ = importlib.util.spec_from_loader(module_name, loader=None, origin=str(path))
    sys.modules[module_name] = module  # classes defined there must find their module (dataclasses, pickle)
    try:
        exec(compile(data, str(path), "exec"), module.__dict__)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def _import(module_name: str) -> types.ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise MissingDependency(
            f"The python-flavor model needs module {module_name!r}, which cannot be imported ({exc}).",
            hint="Install the package that provides it (see the bundle's requirements), or run from the project "
            "that defines it.",
        ) from exc


def _resolve_class(module: types.ModuleType, module_name: str, qualname: str) -> type:
    target: Any = module
    for part in qualname.split("."):
        target = getattr(target, part, None)
    if not isinstance(target, type) or not callable(getattr(target, "predict", None)):
        raise IntegrityError(
            f"{module_name}:{qualname} is not a class with a predict method.",
            hint="The class changed since the bundle was saved; install the matching version or re-save.",
        )
    return target


def _instantiate(cls: type, model_dir: Path, qualname: str) -> Any:
    load = inspect.getattr_static(cls, "load", None)
    if isinstance(load, classmethod | staticmethod):
        model = cls.load(model_dir)  # type: ignore[attr-defined]
        if model is None or not callable(getattr(model, "predict", None)):
            raise IntegrityError(
                f"{qualname}.load returned {type(model).__name__}, not a model with predict.",
                hint="Make the load classmethod return the loaded instance.",
            )
        return model
    if not inspect.isfunction(load):
        raise IntegrityError(f"{qualname} has no load method.", hint="Add load(self, artifacts_dir) to the class.")
    try:
        model = cls()
    except TypeError as exc:
        raise Unsupported(
            f"{qualname}() cannot be called without arguments: {exc}",
            hint="Give the class a no-argument constructor, or make load a classmethod returning the instance.",
        ) from exc
    returned = model.load(model_dir)
    return returned if returned is not None and callable(getattr(returned, "predict", None)) else model
