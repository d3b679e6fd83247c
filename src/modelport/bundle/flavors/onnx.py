"""The ONNX flavor: ``onnx.ModelProto`` graphs (or ``.onnx`` files) run with ONNX Runtime.

The model is stored as ``artifacts/model.onnx``; a model too large for one protobuf keeps its
weights in ``artifacts/model.onnx.data``. External data is a known path-traversal door (a tensor
may name any file as its data), so every external location is checked — relative, no ``..``,
resolving inside the model's own folder — when saving, when loading and in
:meth:`OnnxAdapter.from_bytes`. Sessions run on ``CPUExecutionProvider`` with one intra-op
thread by default (low latency per request; set ``intra_op_threads`` in the options for more).

Inputs: one graph input takes an ``array``; several take ``arrays`` (a dict name → array), as
skl2onnx writes for pipelines with one input per column (``tensor(string)`` inputs of shape
``[N, 1]`` included); DataFrames are accepted too and split by column. Outputs: the first is
``predict``; an output holding class probabilities (a ``[N, k]`` float tensor, or skl2onnx's
ZipMap sequence of dicts) gives ``predict_proba``, with the classes taken from the options, the
graph's classifier node, or ``0..k-1``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from modelport.bundle.flavors._shared import import_framework, pin
from modelport.bundle.flavors.base import InputFormat, ModelInput, SavedArtifacts
from modelport.core.errors import IntegrityError, Unsupported, ValidationError

MODEL_FILE = "model.onnx"
DATA_FILE = "model.onnx.data"
EXTERNAL_DATA_THRESHOLD_BYTES = 1_800_000_000
"""Protobuf cannot serialise 2 GiB; models above this size keep their weights in ``model.onnx.data``."""

_INPUT_FORMATS = ("frame", "array", "arrays")
_CLASS_LABEL_ATTRIBUTES = ("classlabels_strings", "classlabels_int64s", "classlabels_ints")
_ORT_DTYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int16)": np.int16,
    "tensor(int8)": np.int8,
    "tensor(uint64)": np.uint64,
    "tensor(uint32)": np.uint32,
    "tensor(uint16)": np.uint16,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
    "tensor(string)": object,
}


def _import_onnx() -> ModuleType:
    return import_framework("onnx", "onnx")


def _import_onnxruntime() -> ModuleType:
    return import_framework("onnxruntime", "onnx")


# --- external data -------------------------------------------------------------------------------


def _graph_tensors(graph: Any) -> Iterator[Any]:
    """Every TensorProto a graph holds: initializers, sparse initializers, node attributes, subgraphs."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        yield from _attribute_tensors(node.attribute)


def _attribute_tensors(attributes: Sequence[Any]) -> Iterator[Any]:
    for attribute in attributes:
        if attribute.HasField("t"):
            yield attribute.t
        yield from attribute.tensors
        if attribute.HasField("g"):
            yield from _graph_tensors(attribute.g)
        for subgraph in attribute.graphs:
            yield from _graph_tensors(subgraph)


def _model_tensors(model: Any) -> Iterator[Any]:
    yield from _graph_tensors(model.graph)
    for function in model.functions:
        for node in function.node:
            yield from _attribute_tensors(node.attribute)


def external_locations(model: Any) -> list[str]:
    """The external-data locations a model's tensors refer to (empty when it is self-contained)."""
    onnx = _import_onnx()
    locations = []
    for tensor in _model_tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            entries = {entry.key: entry.value for entry in tensor.external_data}
            locations.append(entries.get("location", ""))
    return locations


def unsafe_location(location: str, base_dir: Path | None) -> str | None:
    """Why ``location`` may not be used as external data under ``base_dir`` (``None`` when it is safe)."""
    if not location or "\x00" in location:
        return "it is empty or contains a NUL byte"
    posix, windows = PurePosixPath(location), PureWindowsPath(location)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or location.startswith(("/", "\\")):
        return "it is an absolute path"
    if ".." in posix.parts or ".." in windows.parts:
        return "it contains '..'"
    if base_dir is not None:
        base = base_dir.resolve()
        if not (base / location).resolve().is_relative_to(base):
            return "it resolves outside the model's folder"
    return None


def _check_external_data(model: Any, base_dir: Path | None, error: type[ValidationError | IntegrityError]) -> None:
    for location in external_locations(model):
        reason = unsafe_location(location, base_dir)
        if reason is not None:
            raise error(
                f"The ONNX model refers to external data at {location!r}, which is refused: {reason}.",
                hint="External data must be a relative file next to the model (e.g. 'model.onnx.data'); "
                "re-export the model with onnx.save_model(..., save_as_external_data=True).",
            )


# --- graph inspection ----------------------------------------------------------------------------


def graph_classes(model: Any) -> tuple[Any, ...] | None:
    """Class labels of the classifier node at the top of the graph (skl2onnx, onnxmltools), if any."""
    for node in reversed(model.graph.node):
        if node.domain != "ai.onnx.ml":
            continue
        for attribute in node.attribute:
            if attribute.name in _CLASS_LABEL_ATTRIBUTES:
                if attribute.name == "classlabels_strings":
                    return tuple(s.decode("utf-8") for s in attribute.strings)
                return tuple(int(i) for i in attribute.ints)
    return None


@dataclass(frozen=True)
class _Port:
    """One graph input or output as ONNX Runtime describes it."""

    name: str
    type: str
    shape: tuple[int | str | None, ...]

    @property
    def dtype(self) -> Any:
        if self.type not in _ORT_DTYPES:
            raise Unsupported(
                f"ONNX input {self.name!r} has type {self.type}, which modelport cannot feed.",
                hint=f"Use inputs of type {', '.join(_ORT_DTYPES)}.",
            )
        return _ORT_DTYPES[self.type]

    @property
    def is_probability_tensor(self) -> bool:
        return self.type in ("tensor(float)", "tensor(double)") and len(self.shape) == 2

    @property
    def is_zipmap(self) -> bool:
        return self.type.startswith("seq(map(")


def _ports(nodes: Sequence[Any]) -> tuple[_Port, ...]:
    return tuple(_Port(n.name, n.type, tuple(n.shape or ())) for n in nodes)


def _probability_output(outputs: Sequence[_Port]) -> _Port | None:
    return next((o for o in outputs[1:] if o.is_probability_tensor or o.is_zipmap), None)


# --- the adapter ---------------------------------------------------------------------------------


class OnnxAdapter:
    """An ONNX Runtime session reduced to the :class:`~modelport.bundle.flavors.base.ModelAdapter` calls.

    The constructor only stores; :meth:`from_bytes` and :meth:`from_path` build the session.

    Args:
        session: An ``onnxruntime.InferenceSession``.
        classes: Class labels in probability-column order (``None``: none known).
        input_format: What the runtime should hand over; ``None`` picks ``array`` for one graph
            input and ``arrays`` for several.
        column_names: Tabular column order: used to split a 2-D array into one-column inputs,
            and to order DataFrame columns for a single-input model.
        proba_output: Name of the output holding probabilities (``None``: detected).
        squeeze_predict: Flatten a ``[N, 1]`` predict output to ``[N]`` (as scikit-learn returns).
    """

    def __init__(
        self,
        session: Any,
        *,
        classes: Sequence[Any] | None = None,
        input_format: InputFormat | None = None,
        column_names: Sequence[str] | None = None,
        proba_output: str | None = None,
        squeeze_predict: bool = False,
    ) -> None:
        self._session = session
        self._inputs = _ports(session.get_inputs())
        self._outputs = _ports(session.get_outputs())
        self._column_names = None if column_names is None else tuple(column_names)
        self._squeeze = squeeze_predict
        proba = next((o for o in self._outputs if o.name == proba_output), None) if proba_output else None
        proba = proba or _probability_output(self._outputs)
        if classes is None and proba is not None and proba.is_probability_tensor and isinstance(proba.shape[1], int):
            classes = tuple(range(proba.shape[1]))
        self._proba = proba if classes is not None else None
        self.classes: tuple[Any, ...] | None = None if classes is None else tuple(classes)
        self.has_proba = self._proba is not None
        self.input_format: InputFormat = input_format or ("array" if len(self._inputs) == 1 else "arrays")

    @classmethod
    def from_bytes(
        cls,
        model_bytes: bytes,
        *,
        classes: Sequence[Any] | None = None,
        input_format: InputFormat | None = None,
        column_names: Sequence[str] | None = None,
        intra_op_threads: int = 1,
    ) -> OnnxAdapter:
        """Build an adapter from a serialised model (the server's fast path for converted models).

        Args:
            model_bytes: The ``ModelProto`` bytes; it must not refer to external data.
            classes: Class labels; ``None`` reads them from the graph's classifier node.
            input_format: See the class docstring.
            column_names: See the class docstring.
            intra_op_threads: ONNX Runtime intra-op threads (``0``: its default, all cores).

        Raises:
            IntegrityError: The bytes are not a valid ONNX model, or refer to external data.
        """
        onnx = _import_onnx()
        try:
            proto = onnx.load_from_string(bytes(model_bytes))
        except Exception as exc:  # protobuf's DecodeError has no stable import path across its backends
            raise _invalid_model("the given bytes", exc) from exc
        if external_locations(proto):
            raise IntegrityError(
                "The ONNX model bytes refer to external data files, which a model held in memory cannot use.",
                hint="Embed the weights in the model, or save it as a bundle with the 'onnx' flavor.",
            )
        session = _session(bytes(model_bytes), intra_op_threads, "the given bytes")
        return cls(
            session,
            classes=graph_classes(proto) if classes is None else classes,
            input_format=input_format,
            column_names=column_names,
            squeeze_predict=_is_sklearn_export(session),
        )

    @classmethod
    def from_path(
        cls,
        path: Path,
        *,
        classes: Sequence[Any] | None = None,
        input_format: InputFormat | None = None,
        column_names: Sequence[str] | None = None,
        intra_op_threads: int = 1,
        proba_output: str | None = None,
    ) -> OnnxAdapter:
        """Build an adapter from an ``.onnx`` file whose external data, if any, lies beside it.

        Raises:
            IntegrityError: The file is not a valid ONNX model, or its external data points elsewhere.
        """
        onnx = _import_onnx()
        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # protobuf's DecodeError and OSError-like failures
            raise _invalid_model(str(path), exc) from exc
        _check_external_data(proto, path.parent, IntegrityError)
        session = _session(str(path), intra_op_threads, str(path))
        return cls(
            session,
            classes=graph_classes(proto) if classes is None else classes,
            input_format=input_format,
            column_names=column_names,
            proba_output=proba_output,
            squeeze_predict=_is_sklearn_export(session),
        )

    # -- feeding ----------------------------------------------------------------------------------

    def _feeds(self, data: ModelInput) -> dict[str, Any]:
        if isinstance(data, Mapping):
            return {port.name: _as_input(_lookup(data, port.name), port) for port in self._inputs}
        if isinstance(data, pd.DataFrame):
            if len(self._inputs) == 1:
                frame = data if self._column_names is None else data[list(self._column_names)]
                return {self._inputs[0].name: _as_input(frame.to_numpy(), self._inputs[0])}
            return {port.name: _as_input(_lookup(data, port.name), port) for port in self._inputs}
        array = np.asarray(data)
        if len(self._inputs) == 1:
            return {self._inputs[0].name: _as_input(array, self._inputs[0])}
        columns = self._column_names or tuple(port.name for port in self._inputs)
        if array.ndim != 2 or array.shape[1] != len(columns):
            raise ValidationError(
                f"Expected a 2-D array with {len(columns)} columns {list(columns)}, got shape {array.shape}.",
                hint="Pass a DataFrame or a dict with one entry per model input.",
            )
        return {port.name: _as_input(array[:, columns.index(port.name)], port) for port in self._inputs}

    def _run(self, output: _Port, data: ModelInput) -> Any:
        feeds = self._feeds(data)
        try:
            return self._session.run([output.name], feeds)[0]
        except Exception as exc:  # onnxruntime raises its own classes, all direct Exception subclasses
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ValidationError(
                f"ONNX Runtime rejected the input: {first_line}",
                hint="Check the input against the model's signature: "
                + ", ".join(f"{p.name}: {p.type} {list(p.shape)}" for p in self._inputs),
            ) from exc

    # -- the ModelAdapter calls -------------------------------------------------------------------

    def predict(self, data: ModelInput) -> np.ndarray:
        """The first output of the graph (labels, values or a tensor)."""
        result = np.asarray(self._run(self._outputs[0], data))
        if self._squeeze and result.ndim == 2 and result.shape[1] == 1:
            return result.ravel()
        return result

    def predict_proba(self, data: ModelInput) -> np.ndarray:
        """Class probabilities, shape ``(rows, len(classes))``, from the probability output."""
        if self._proba is None or self.classes is None:
            raise Unsupported(
                "This ONNX model has no probability output with known classes.",
                hint="Convert classifiers with skl2onnx (zipmap=False is fastest), or pass classes in the options.",
            )
        result = self._run(self._proba, data)
        if self._proba.is_zipmap:
            return np.array([[row[c] for c in self.classes] for row in result], dtype=np.float32)
        return np.asarray(result)


def _lookup(data: Mapping[str, Any] | pd.DataFrame, name: str) -> Any:
    if name not in data:
        raise ValidationError(
            f"Missing input {name!r} for this ONNX model.",
            hint="Provide one entry (or column) per model input.",
        )
    return data[name]


def _as_input(values: Any, port: _Port) -> np.ndarray:
    """``values`` as the dtype and rank ONNX Runtime expects for ``port``."""
    dtype = port.dtype
    try:
        if isinstance(values, pd.Series | pd.DataFrame):
            array = values.to_numpy(dtype=object) if dtype is object else values.to_numpy(dtype=dtype)
        else:
            array = np.asarray(values, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"Input {port.name!r} cannot be cast to {port.type}: {exc}",
            hint="Send values of the type the model expects.",
        ) from exc
    if array.ndim == 1 and len(port.shape) == 2 and (port.shape[1] == 1 or not isinstance(port.shape[1], int)):
        array = array.reshape(-1, 1)
    return array


def _is_sklearn_export(session: Any) -> bool:
    return bool(session.get_modelmeta().producer_name == "skl2onnx")


def _invalid_model(source: str, exc: BaseException) -> IntegrityError:
    first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return IntegrityError(
        f"Not a valid ONNX model ({source}): {first_line}",
        hint="The file is corrupted or truncated; export the model again.",
    )


def _session(source: bytes | str, intra_op_threads: int, what: str) -> Any:
    ort = _import_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's errors (InvalidProtobuf, Fail, ...) derive from Exception only
        raise _invalid_model(what, exc) from exc


# --- the flavor ----------------------------------------------------------------------------------


class OnnxFlavor:
    """Saves ONNX models as ``model.onnx`` and runs them with ONNX Runtime.

    Accepts an ``onnx.ModelProto``, its serialised ``bytes`` (with ``flavor="onnx"``), or a
    ``pathlib.Path`` to an ``.onnx`` file whose external data lies beside it.

    Args:
        external_data_threshold_bytes: Models larger than this keep their weights in
            ``model.onnx.data``.
    """

    name = "onnx"
    extra = "onnx"

    def __init__(self, *, external_data_threshold_bytes: int = EXTERNAL_DATA_THRESHOLD_BYTES) -> None:
        self._threshold = external_data_threshold_bytes

    def detect(self, model: object) -> bool:
        """Whether ``model`` is an ``onnx.ModelProto`` or a ``Path`` to an ``.onnx`` file (never imports onnx)."""
        if isinstance(model, Path):
            return model.suffix == ".onnx" and model.is_file()
        return any(
            cls.__module__.split(".")[0] == "onnx" and cls.__name__ == "ModelProto" for cls in type(model).__mro__
        )

    def adapter(self, model: Any) -> OnnxAdapter:
        """Wrap an in-memory model (a ModelProto, bytes or a path) in a session."""
        if isinstance(model, str | os.PathLike):
            return OnnxAdapter.from_path(Path(model))
        if isinstance(model, bytes | bytearray | memoryview):
            return OnnxAdapter.from_bytes(bytes(model))
        return OnnxAdapter.from_bytes(self._proto(model).SerializeToString())

    def save(
        self,
        model: Any,
        artifacts_dir: Path,
        *,
        trusted_pickle: bool = False,
        sample_input: ModelInput | None = None,
    ) -> SavedArtifacts:
        """Write ``model.onnx`` (and ``model.onnx.data`` for large models), checked by ``onnx.checker``."""
        onnx = _import_onnx()
        ort = _import_onnxruntime()
        proto = self._proto(model)
        path = artifacts_dir / MODEL_FILE
        files = [MODEL_FILE]
        if proto.ByteSize() > self._threshold:
            external = onnx.ModelProto()
            external.CopyFrom(proto)  # save_model moves the weights out of the proto it is given: never the caller's
            onnx.save_model(
                external, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=DATA_FILE
            )
            files.append(DATA_FILE)
        else:
            path.write_bytes(proto.SerializeToString())
        try:
            onnx.checker.check_model(str(path))
        except onnx.checker.ValidationError as exc:
            raise ValidationError(
                f"The ONNX model is not valid: {str(exc).splitlines()[0]}",
                hint="Fix the exporter's output; onnx.checker.check_model(model) shows the full report.",
            ) from exc
        classes = graph_classes(proto)
        options: dict[str, Any] = {
            "intra_op_threads": 1,
            "classes": None if classes is None else list(classes),
            "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
            "opsets": {entry.domain or "ai.onnx": int(entry.version) for entry in proto.opset_import},
            "external_data": len(files) > 1,
        }
        return SavedArtifacts(
            files=tuple(files),
            options=options,
            framework={"onnx": onnx.__version__, "onnxruntime": ort.__version__},
            requirements=(pin("onnx", onnx.__version__), pin("onnxruntime", ort.__version__)),
        )

    def load(self, artifacts_dir: Path, options: dict[str, Any], *, trusted_pickle: bool = False) -> OnnxAdapter:
        """Open ``model.onnx`` in an ONNX Runtime session, after checking its external data locations."""
        input_format = options.get("input_format")
        if input_format is not None and input_format not in _INPUT_FORMATS:
            raise IntegrityError(
                f"The bundle records an invalid ONNX input format {input_format!r}.",
                hint=f"Expected one of {', '.join(_INPUT_FORMATS)}; re-save the model.",
            )
        threads = options.get("intra_op_threads", 1)
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 0:
            raise IntegrityError(
                f"The bundle records an invalid intra_op_threads {threads!r}.",
                hint="Use a whole number >= 0 (0: all cores).",
            )
        classes = options.get("classes")
        column_names = options.get("column_names")
        return OnnxAdapter.from_path(
            artifacts_dir / MODEL_FILE,
            classes=None if classes is None else tuple(classes),
            input_format=input_format,
            column_names=None if column_names is None else tuple(column_names),
            intra_op_threads=threads,
            proba_output=options.get("proba_output"),
        )

    @staticmethod
    def _proto(model: Any) -> Any:
        """``model`` as a self-contained ModelProto (external data read in, after checking where it is)."""
        onnx = _import_onnx()
        if isinstance(model, str | os.PathLike):
            path = Path(model)
            if not path.is_file():
                raise ValidationError(f"ONNX model file {str(path)!r} does not exist.", hint="Check the path.")
            try:
                proto = onnx.load(str(path), load_external_data=False)
            except Exception as exc:  # protobuf's DecodeError
                raise ValidationError(
                    f"{path} is not a valid ONNX model: {exc}", hint="Export the model again."
                ) from exc
            _check_external_data(proto, path.parent, ValidationError)
            if external_locations(proto):
                onnx.load_external_data_for_model(proto, str(path.parent))
            return proto
        if isinstance(model, bytes | bytearray | memoryview):
            try:
                model = onnx.load_from_string(bytes(model))
            except Exception as exc:  # protobuf's DecodeError
                raise ValidationError(
                    f"The given bytes are not a valid ONNX model: {exc}", hint="Export the model again."
                ) from exc
        if not isinstance(model, onnx.ModelProto):
            raise Unsupported(
                f"The onnx flavor cannot save a {type(model).__qualname__}.",
                hint="Pass an onnx.ModelProto, its serialised bytes, or a pathlib.Path to an .onnx file.",
            )
        _check_external_data(model, None, ValidationError)
        if external_locations(model):
            raise Unsupported(
                "The ONNX model's weights are still in external files that were not loaded.",
                hint="Pass the path to the .onnx file instead, or load it with onnx.load(path).",
            )
        return model
