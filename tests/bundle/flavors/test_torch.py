"""The PyTorch flavor: torch.export programs and TorchScript modules, converted and loaded safely."""

from __future__ import annotations

import pickle
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from modelport.bundle.flavors.torch import EXPORT_FILE, SCRIPT_FILE, TorchFlavor
from modelport.core.errors import IntegrityError, MissingDependency, Unsupported, UntrustedArtifact, ValidationError
from modelport.testing import Tripwire, check_flavor


class Net(nn.Module):
    """Dropout and batch norm: different answers in train and eval mode."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.dropout = nn.Dropout(0.5)
        self.norm = nn.BatchNorm1d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.norm(self.dropout(self.linear(x))), dim=-1)


class Branchy(nn.Module):
    """Data-dependent Python control flow: neither exportable nor traceable faithfully."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)
        if float(y.sum()) > 0:
            return y * 2
        return y


class Embedder(nn.Module):
    """Integer token ids in, a tuple out (the first item is the prediction)."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(10, 3)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        vectors = self.embedding(ids).mean(dim=1)
        return vectors, vectors.sum(dim=1)


@pytest.fixture
def batch() -> np.ndarray:
    return np.random.default_rng(5).normal(size=(8, 4))


def exported(module: nn.Module, example: np.ndarray) -> torch.export.ExportedProgram:
    tensor = torch.from_numpy(example.astype(np.float32))
    return torch.export.export(module.eval(), (tensor,), dynamic_shapes=({0: torch.export.Dim.DYNAMIC},))


def test_exported_program_passes_the_battery(batch: np.ndarray, tmp_path: Path) -> None:
    torch.manual_seed(0)
    program = exported(Net(), batch)
    loaded = check_flavor(program, batch.astype(np.float32), tmp_path)

    assert loaded.manifest.flavor_options["format"] == "export"
    assert [a.path for a in loaded.manifest.artifacts if a.path.startswith("artifacts/")] == [
        f"artifacts/{EXPORT_FILE}"
    ]
    output = loaded.manifest.signature.output("predict")
    assert output is not None
    assert output.kind == "tensor"
    expected = program.module()(torch.from_numpy(batch.astype(np.float32))).detach().numpy()
    np.testing.assert_array_equal(loaded.adapter.predict(batch), expected)
    assert loaded.adapter.predict(batch[:1]).shape == (1, 3)


def test_torchscript_module_passes_the_battery(batch: np.ndarray, tmp_path: Path) -> None:
    torch.manual_seed(0)
    traced = torch.jit.trace(nn.Sequential(nn.Linear(4, 5), nn.ReLU()).eval(), torch.ones(2, 4))
    loaded = check_flavor(traced, batch.astype(np.float32), tmp_path)

    assert loaded.manifest.flavor_options["format"] == "torchscript"
    assert loaded.manifest.flavor_options["converted_with"] is None
    assert loaded.adapter.predict(batch).dtype == np.float32
    with pytest.raises(Unsupported, match="predict_proba"):
        loaded.adapter.predict_proba(batch)


def test_plain_module_passes_the_battery_through_save_bundle(batch: np.ndarray, tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = Net()
    loaded = check_flavor(module, batch.astype(np.float32), tmp_path)
    assert loaded.manifest.flavor_options["format"] in {"export", "torchscript"}
    expected = module.eval()(torch.from_numpy(batch.astype(np.float32))).detach().numpy()
    np.testing.assert_allclose(loaded.adapter.predict(batch), expected, rtol=1e-6)


def test_plain_module_is_exported_in_eval_mode_and_left_as_it_was(batch: np.ndarray, tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = Net().train()
    flavor = TorchFlavor()
    saved = flavor.save(module, tmp_path, sample_input=batch[:1])

    assert saved.files == (EXPORT_FILE,)
    assert saved.options == {"converted_with": "torch.export", "format": "export", "float_dtype": "float32"}
    assert module.training, "saving must not leave the caller's module in eval mode"
    loaded = flavor.load(tmp_path, saved.options)
    in_memory = flavor.adapter(module)
    np.testing.assert_array_equal(loaded.predict(batch), in_memory.predict(batch))
    with torch.no_grad():
        expected = module.eval()(torch.from_numpy(batch.astype(np.float32))).numpy()
    np.testing.assert_array_equal(loaded.predict(batch), expected)
    assert saved.requirements == (f"torch=={torch.__version__.split('+')[0]}",)
    assert saved.framework == {"torch": torch.__version__}


def test_plain_module_falls_back_to_tracing_when_export_fails(
    batch: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("export unavailable")

    monkeypatch.setattr(torch.export, "export", refuse)
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(4, 2), nn.Tanh())
    flavor = TorchFlavor()
    saved = flavor.save(module, tmp_path, sample_input=batch)

    assert saved.files == (SCRIPT_FILE,)
    assert saved.options["converted_with"] == "torch.jit.trace"
    np.testing.assert_array_equal(
        flavor.load(tmp_path, saved.options).predict(batch), flavor.adapter(module).predict(batch)
    )


def test_modules_that_cannot_be_converted_faithfully_are_refused(batch: np.ndarray, tmp_path: Path) -> None:
    flavor = TorchFlavor()
    with pytest.raises(Unsupported, match="Branchy") as caught:
        flavor.save(Branchy(), tmp_path, sample_input=batch)
    assert "torch.export" in str(caught.value)
    assert "torch.jit.trace" in str(caught.value)
    with pytest.raises(Unsupported, match="needs a sample input"):
        flavor.save(Net(), tmp_path)
    with pytest.raises(ValidationError, match="empty"):
        flavor.save(Net(), tmp_path, sample_input=batch[:0])


def test_integer_input_keeps_its_dtype_and_tuple_output_gives_the_first_item(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ids = np.random.default_rng(6).integers(0, 10, size=(5, 7))
    flavor = TorchFlavor()
    module = Embedder()
    saved = flavor.save(module, tmp_path, sample_input=ids)
    loaded = flavor.load(tmp_path, saved.options)

    predicted = loaded.predict(ids)
    assert predicted.shape == (5, 3)
    np.testing.assert_array_equal(predicted, module(torch.from_numpy(ids))[0].detach().numpy())
    with pytest.raises(ValidationError, match="one input tensor"):
        loaded.predict({"a": ids, "b": ids})


def test_float64_models_get_float64_input(batch: np.ndarray, tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = nn.Linear(4, 1).double()
    flavor = TorchFlavor()
    saved = flavor.save(module, tmp_path, sample_input=batch)
    assert saved.options["float_dtype"] == "float64"
    expected = module(torch.from_numpy(batch)).detach().numpy()
    np.testing.assert_array_equal(flavor.load(tmp_path, saved.options).predict(batch), expected)


def test_a_pickled_payload_inside_the_archive_is_refused_without_running(batch: np.ndarray, tmp_path: Path) -> None:
    flavor = TorchFlavor()
    saved = flavor.save(exported(Net(), batch), tmp_path)
    archive = tmp_path / EXPORT_FILE
    marker = tmp_path / "pwned"
    with zipfile.ZipFile(archive) as original:
        prefix = original.namelist()[0].split("/", 1)[0]
    with zipfile.ZipFile(archive, "a") as appended:
        appended.writestr(f"{prefix}/data/constants/evil.pt", pickle.dumps(Tripwire(marker)))

    with pytest.raises(UntrustedArtifact, match=r"evil\.pt"):
        flavor.load(tmp_path, saved.options)
    assert not marker.exists()


@pytest.mark.parametrize(("fmt", "file"), [("export", EXPORT_FILE), ("torchscript", SCRIPT_FILE)])
def test_corrupted_files_and_bad_options_are_integrity_errors(tmp_path: Path, fmt: str, file: str) -> None:
    flavor = TorchFlavor()
    (tmp_path / file).write_bytes(b"PK\x03\x04 definitely not a zip archive")
    with pytest.raises(IntegrityError, match=file):
        flavor.load(tmp_path, {"format": fmt})
    with pytest.raises(IntegrityError, match="'pickle'"):
        flavor.load(tmp_path, {"format": "pickle"})
    with pytest.raises(IntegrityError, match="'int8'"):
        flavor.load(tmp_path, {"format": fmt, "float_dtype": "int8"})


def test_detect_recognises_torch_objects_without_importing_torch(batch: np.ndarray) -> None:
    flavor = TorchFlavor()
    assert flavor.detect(Net())
    assert flavor.detect(exported(Net(), batch))
    assert flavor.detect(torch.jit.trace(nn.Linear(4, 1), torch.ones(1, 4)))
    assert not flavor.detect(torch.ones(3))
    assert not flavor.detect(object())
    code = (
        "import sys\n"
        "from modelport.bundle.flavors.torch import TorchFlavor\n"
        "assert not TorchFlavor().detect(object())\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_missing_torch_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingDependency) as caught:
        TorchFlavor().load(tmp_path, {"format": "export"})
    assert "modelport[torch]" in str(caught.value.hint)
