"""The PyTorch flavor: ``torch.export`` programs and TorchScript modules, never a pickled module.

Three kinds of model are accepted: an ``ExportedProgram`` (saved with ``torch.export.save`` as
``model.pt2``), a TorchScript ``ScriptModule`` (``torch.jit.save``, ``model.pt``), or a plain
``nn.Module``, which is first converted with the sample input — ``torch.export`` with a dynamic
batch dimension, falling back to TorchScript tracing — in eval mode, and only kept when it
answers like the eager module on the sample. The options say which (``format`` and
``converted_with``).

Loading a ``.pt2`` archive goes through a gate first: every pickled payload inside it must load
with ``torch.load(weights_only=True)`` (tensors and plain containers only), because
``torch.export.load`` itself falls back to full unpickling. Predictions run in
``torch.inference_mode()`` on a tensor built from the input array (floating input becomes
float32, integer input keeps its dtype) and come back as numpy arrays. Torch's thread count is
process-wide, so this module never changes it.
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from modelport.bundle.flavors._shared import import_framework, pin
from modelport.bundle.flavors.base import InputFormat, ModelInput, SavedArtifacts
from modelport.core.errors import IntegrityError, Unsupported, UntrustedArtifact, ValidationError

EXPORT_FILE = "model.pt2"
SCRIPT_FILE = "model.pt"
_FORMATS = {"export": EXPORT_FILE, "torchscript": SCRIPT_FILE}
_TEXT_MEMBERS = ("archive_format", "archive_version", "byteorder", ".data/version", ".data/serialization_id")
_PARITY_RTOL, _PARITY_ATOL = 1e-5, 1e-6


def _import_torch() -> ModuleType:
    return import_framework("torch", "torch")


def _kind(model: object) -> str:
    """``export``, ``torchscript`` or ``module`` (judged from the class hierarchy, without importing torch)."""
    names = {(cls.__module__, cls.__name__) for cls in type(model).__mro__}
    if ("torch.export.exported_program", "ExportedProgram") in names:
        return "export"
    if ("torch.jit._script", "ScriptModule") in names:
        return "torchscript"
    if ("torch.nn.modules.module", "Module") in names:
        return "module"
    raise Unsupported(
        f"The torch flavor cannot save a {type(model).__qualname__}.",
        hint="Pass a torch.nn.Module, a TorchScript module or a torch.export.ExportedProgram.",
    )


def _to_array(data: ModelInput) -> np.ndarray:
    if isinstance(data, dict):
        if len(data) != 1:
            raise ValidationError(
                f"This PyTorch model takes one input tensor; got {len(data)} ({', '.join(map(str, data))}).",
                hint="Send a single array.",
            )
        data = next(iter(data.values()))
    if isinstance(data, pd.DataFrame):
        return data.to_numpy()
    return np.asarray(data)


def _to_numpy(output: Any) -> np.ndarray:
    if isinstance(output, tuple | list) and output:
        output = output[0]
    if not hasattr(output, "detach"):
        raise Unsupported(
            f"The PyTorch model returned a {type(output).__qualname__}; modelport needs a tensor.",
            hint="Return a tensor (or a tuple whose first item is the prediction tensor) from forward().",
        )
    return np.asarray(output.detach().cpu().numpy())


class TorchAdapter:
    """A PyTorch callable reduced to the :class:`~modelport.bundle.flavors.base.ModelAdapter` calls.

    Args:
        module: The callable: a loaded program's module, a TorchScript module, or an ``nn.Module``.
        float_dtype: The dtype floating input is cast to (``float32`` unless the model is float64).
        eager: Whether ``module`` is a user's eager ``nn.Module``, switched to eval mode for each
            call and restored afterwards (its training flag is the user's, not ours).
    """

    input_format: InputFormat = "array"
    classes: tuple[Any, ...] | None = None
    has_proba = False

    def __init__(self, module: Any, *, float_dtype: str = "float32", eager: bool = False) -> None:
        self._module = module
        self._float_dtype = np.dtype(float_dtype)
        self._eager = eager

    def tensor(self, data: ModelInput) -> Any:
        """The input as a CPU tensor of the dtype the model expects."""
        torch = _import_torch()
        array = _to_array(data)
        if array.dtype.kind in "fc" or array.dtype == object:
            try:
                array = array.astype(self._float_dtype, copy=False)
            except (TypeError, ValueError) as exc:
                raise ValidationError(
                    f"Input cannot be cast to {self._float_dtype}: {exc}", hint="Send numeric arrays."
                ) from exc
        array = np.ascontiguousarray(array)
        if not array.flags.writeable:
            array = array.copy()
        return torch.from_numpy(array)

    def predict(self, data: ModelInput) -> np.ndarray:
        """The model's output tensor (the first one, when it returns several) as a numpy array."""
        torch = _import_torch()
        tensor = self.tensor(data)
        with torch.inference_mode():
            if not self._eager:
                return _to_numpy(self._module(tensor))
            was_training = self._module.training
            self._module.eval()
            try:
                return _to_numpy(self._module(tensor))
            finally:
                self._module.train(was_training)

    def predict_proba(self, data: ModelInput) -> np.ndarray:
        """Not available: tensor models return their raw output through :meth:`predict`."""
        raise Unsupported(
            "PyTorch models have no predict_proba in modelport.",
            hint="Use predict; apply softmax inside forward() if you want probabilities.",
        )


def _float_dtype(module: Any) -> str:
    """``float64`` when the model's first floating parameter is float64, else ``float32``."""
    parameters = getattr(module, "parameters", None)
    if parameters is not None:
        for parameter in parameters():
            if parameter.is_floating_point():
                return "float64" if str(parameter.dtype) == "torch.float64" else "float32"
    return "float32"


class TorchFlavor:
    """Saves PyTorch models with ``torch.export.save`` or ``torch.jit.save``."""

    name = "torch"
    extra = "torch"

    def detect(self, model: object) -> bool:
        """Whether ``model`` is an ``nn.Module``, TorchScript module or ExportedProgram (never imports torch)."""
        try:
            _kind(model)
        except Unsupported:
            return False
        return True

    def adapter(self, model: Any) -> TorchAdapter:
        """Wrap an in-memory model: eager modules run in eval mode, programs through ``module()``."""
        kind = _kind(model)
        if kind == "export":
            module = model.module()
            return TorchAdapter(module, float_dtype=_float_dtype(module))
        return TorchAdapter(model, float_dtype=_float_dtype(model), eager=kind == "module")

    def save(
        self,
        model: Any,
        artifacts_dir: Path,
        *,
        trusted_pickle: bool = False,
        sample_input: ModelInput | None = None,
    ) -> SavedArtifacts:
        """Write ``model.pt2`` (torch.export) or ``model.pt`` (TorchScript).

        Args:
            model: An ``ExportedProgram``, a ``ScriptModule`` or an ``nn.Module``.
            artifacts_dir: The empty folder to write to.
            trusted_pickle: Unused: this flavor never writes pickle.
            sample_input: Needed to convert a plain ``nn.Module``: a batch of real input.

        Raises:
            Unsupported: A plain module without ``sample_input``, or one that neither
                ``torch.export`` nor tracing can convert faithfully.
        """
        torch = _import_torch()
        kind = _kind(model)
        options: dict[str, Any] = {"converted_with": None}
        float_dtype = _float_dtype(model.module() if kind == "export" else model)
        if kind == "module":
            model, kind, options["converted_with"] = self._convert(model, sample_input, float_dtype)
        path = artifacts_dir / _FORMATS[kind]
        if kind == "export":
            torch.export.save(model, str(path))
        else:
            torch.jit.save(model, str(path))
        options.update({"format": kind, "float_dtype": float_dtype})
        return SavedArtifacts(
            files=(path.name,),
            options=options,
            framework={"torch": torch.__version__},
            requirements=(pin("torch", torch.__version__),),
        )

    def load(self, artifacts_dir: Path, options: dict[str, Any], *, trusted_pickle: bool = False) -> TorchAdapter:
        """Load the saved program or TorchScript module, on CPU."""
        torch = _import_torch()
        kind = options.get("format")
        float_dtype = options.get("float_dtype", "float32")
        if kind not in _FORMATS or float_dtype not in ("float32", "float64"):
            raise IntegrityError(
                f"The bundle records an invalid torch format {kind!r} or float dtype {float_dtype!r}.",
                hint="Expected format 'export' or 'torchscript' and dtype float32/float64; re-save the model.",
            )
        path = artifacts_dir / _FORMATS[kind]
        try:
            if kind == "export":
                check_weights_only(path)
                module = torch.export.load(str(path)).module()
            else:
                module = torch.jit.load(str(path), map_location="cpu")
                module.eval()
        except (RuntimeError, ValueError, KeyError, OSError, AssertionError, zipfile.BadZipFile) as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise IntegrityError(
                f"PyTorch could not load {path}: {first_line}",
                hint="The artifact is corrupted or was written by an incompatible torch; re-save the model.",
            ) from exc
        return TorchAdapter(module, float_dtype=float_dtype)

    def _convert(self, module: Any, sample_input: ModelInput | None, float_dtype: str) -> tuple[Any, str, str]:
        """Convert an eager module to a program (or a traced module) that answers like it on the sample."""
        torch = _import_torch()
        if sample_input is None:
            raise Unsupported(
                f"A plain {type(module).__qualname__} needs a sample input to be converted for saving.",
                hint="Export it first: torch.export.export(model.eval(), (example,)), and save the ExportedProgram.",
            )
        eager = TorchAdapter(module, float_dtype=float_dtype, eager=True)
        example = eager.tensor(sample_input)
        if example.ndim == 0 or example.shape[0] == 0:
            raise ValidationError("The sample input for a PyTorch model is empty.", hint="Pass at least one row.")
        if example.shape[0] == 1:  # torch.export specialises a batch of 1; two rows keep the batch free
            example = torch.cat([example, example])
        expected = eager.predict(example.numpy())
        was_training = module.training
        module.eval()
        try:
            return self._first_faithful(module, example, expected, float_dtype)
        finally:
            module.train(was_training)

    def _first_faithful(
        self, module: Any, example: Any, expected: np.ndarray, float_dtype: str
    ) -> tuple[Any, str, str]:
        reasons = []
        for converted, kind, how in self._candidates(module, example):
            if isinstance(converted, BaseException):
                reasons.append(f"{how}: {type(converted).__name__}: {str(converted).splitlines()[0][:200]}")
                continue
            program = converted.module() if kind == "export" else converted
            got = TorchAdapter(program, float_dtype=float_dtype).predict(example.numpy())
            if got.shape == expected.shape and np.allclose(got, expected, rtol=_PARITY_RTOL, atol=_PARITY_ATOL):
                return converted, kind, how
            reasons.append(f"{how}: its output differs from the eager module's on the sample")
        raise Unsupported(
            f"Could not convert the {type(module).__qualname__} faithfully ({'; '.join(reasons)}).",
            hint="Make forward() exportable (no data-dependent Python control flow), or pass an ExportedProgram.",
        )

    @staticmethod
    def _candidates(module: Any, example: Any) -> Iterator[tuple[Any, str, str]]:
        """torch.export with a dynamic batch, then TorchScript tracing; a failure is yielded as its exception."""
        torch = _import_torch()
        try:
            dynamic = ({0: torch.export.Dim.DYNAMIC},)
            yield torch.export.export(module, (example,), dynamic_shapes=dynamic), "export", "torch.export"
        except Exception as exc:  # export raises many unrelated classes (UserError, GuardOnDataDependentSymNode...)
            yield exc, "export", "torch.export"
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", torch.jit.TracerWarning)
                traced = torch.jit.trace(module, example)
            tracer_warnings = [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
            if tracer_warnings:
                raise RuntimeError(f"the trace would not generalise: {tracer_warnings[0].message}")
            yield traced, "torchscript", "torch.jit.trace"
        except Exception as exc:  # tracing raises RuntimeError, TypeError or the module's own errors
            yield exc, "torchscript", "torch.jit.trace"


def check_weights_only(archive: Path) -> None:
    """Refuse a ``.pt2`` archive holding pickled payloads beyond tensors and plain containers.

    Raw tensor payloads (listed with ``use_pickle: false`` in the archive's payload configs), JSON
    files and the archive's small text markers are skipped; every other member must load with
    ``torch.load(weights_only=True)``.

    Raises:
        UntrustedArtifact: A member holds anything else.
    """
    torch = _import_torch()
    with zipfile.ZipFile(archive) as bundle:
        names = bundle.namelist()
        raw = _raw_payloads(bundle, names)
        for name in names:
            relative = name.split("/", 1)[1] if "/" in name else name
            if name in raw or name.endswith("/") or name.endswith(".json") or relative in _TEXT_MEMBERS:
                continue
            try:
                torch.load(io.BytesIO(bundle.read(name)), weights_only=True)
            except Exception as exc:  # the weights-only unpickler's refusals have no common class
                raise UntrustedArtifact(
                    f"{archive.name} member {name!r} is not a plain tensor payload and is refused "
                    f"({type(exc).__name__}).",
                    hint="Save models with torch.export.save from plain tensors; custom objects are not loaded.",
                ) from exc


def _raw_payloads(bundle: zipfile.ZipFile, names: list[str]) -> set[str]:
    """Archive members that hold raw (non-pickled) tensor bytes, from the payload configs."""
    raw: set[str] = set()
    for name in names:
        if not name.endswith("_config.json"):
            continue
        folder = name.rsplit("/", 1)[0]
        try:
            config = json.loads(bundle.read(name)).get("config", {})
        except (ValueError, AttributeError):
            continue
        for payload in config.values() if isinstance(config, dict) else ():
            if isinstance(payload, dict) and payload.get("use_pickle") is False and "path_name" in payload:
                raw.add(f"{folder}/{payload['path_name']}")
    return raw
