"""FlavorTable: built-ins by short name, entry points, detection order, and its errors."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bundle.models import Doubler, Ensemble, NoPredict
from modelport.bundle.flavors.python import PythonFlavor
from modelport.bundle.flavors.table import BUILTIN_FLAVORS, FlavorTable
from modelport.core.errors import MissingDependency, Unsupported


class ThirdPartyFlavor(PythonFlavor):
    """A third-party flavor that claims objects with a ``third_party`` marker."""

    name = "thirdparty"

    def detect(self, model: object) -> bool:
        return getattr(model, "third_party", False) is True


def test_default_has_every_builtin() -> None:
    assert set(BUILTIN_FLAVORS) <= set(FlavorTable.default().names)
    assert FlavorTable.default().names == tuple(sorted(FlavorTable.default().names))


def test_get_returns_instances_by_name() -> None:
    table = FlavorTable.default()
    assert table.get("sklearn").name == "sklearn"
    assert table.get("python").name == "python"
    assert table.get("pickle") is table.get("pickle")


def test_unknown_flavor_lists_the_known_ones() -> None:
    with pytest.raises(Unsupported, match=r"Unknown flavor 'tensorflow'.*sklearn") as info:
        FlavorTable.default().get("tensorflow")
    assert info.value.hint


def test_missing_framework_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "xgboost" else real(name, *a))
    with pytest.raises(MissingDependency, match=r"'xgboost'") as info:
        FlavorTable.default().get("xgboost")
    assert info.value.hint is not None
    assert "modelport[xgboost]" in info.value.hint


def test_detects_sklearn_python_and_never_pickle(iris: Any) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = iris
    table = FlavorTable.default()
    assert table.detect(LogisticRegression(max_iter=200).fit(x, y)).name == "sklearn"
    assert table.detect(Ensemble()).name == "python"
    assert table.detect(Doubler()).name == "python"
    with pytest.raises(Unsupported, match=r"NoPredict") as info:
        table.detect(NoPredict())
    assert info.value.hint is not None
    assert "flavor='pickle'" in info.value.hint
    with pytest.raises(Unsupported):
        table.detect(np.zeros(3))


def test_classes_are_not_python_models() -> None:
    with pytest.raises(Unsupported):
        FlavorTable.default().detect(Doubler)


def test_import_string_and_instance_specs() -> None:
    table = FlavorTable({"thirdparty": f"{__name__}:ThirdPartyFlavor", "python": PythonFlavor()})

    class Marked(Doubler):
        third_party = True

    assert table.detect(Marked()).name == "thirdparty"
    assert table.detect(Doubler()).name == "python"  # python is always tried last


def test_entry_points_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    point = importlib.metadata.EntryPoint(
        name="thirdparty", value=f"{__name__}:ThirdPartyFlavor", group="modelport.flavors"
    )
    clash = importlib.metadata.EntryPoint(
        name="sklearn", value=f"{__name__}:ThirdPartyFlavor", group="modelport.flavors"
    )
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [point, clash])
    table = FlavorTable.default()
    assert "thirdparty" in table.names
    assert isinstance(table.get("thirdparty"), ThirdPartyFlavor)
    assert not isinstance(table.get("sklearn"), ThirdPartyFlavor)  # never replaces a built-in
    assert "thirdparty" not in FlavorTable.default(entry_points=False).names


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("no_such_module_xyz:Flavor", "cannot be imported"),
        (f"{__name__}:NotThere", "is not a flavor"),
        (f"{__name__}:Path", "is not a flavor"),
    ],
)
def test_broken_specs_are_unsupported(spec: str, match: str) -> None:
    with pytest.raises(Unsupported, match=match):
        FlavorTable({"broken": spec}).get("broken")


def test_with_flavor_leaves_the_original_alone() -> None:
    table = FlavorTable.default(entry_points=False)
    extended = table.with_flavor("thirdparty", ThirdPartyFlavor())
    assert "thirdparty" in extended.names
    assert "thirdparty" not in table.names


def test_flavor_needing_a_missing_package_is_a_missing_dependency(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "needs_missing_flavor.py").write_text("import definitely_not_installed_pkg\nclass F: ...\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MissingDependency, match=r"definitely_not_installed_pkg"):
        FlavorTable({"x": "needs_missing_flavor:F"}).get("x")
