from __future__ import annotations

import pytest

from modelport.core.errors import InvalidName
from modelport.core.names import validate_name, validate_sql_identifier
from modelport.core.refs import ModelRef


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("churn", ModelRef(name="churn")),
        ("churn:3", ModelRef(name="churn", version=3)),
        ("churn@production", ModelRef(name="churn", alias="production")),
        ("./bundles/churn", ModelRef(path="./bundles/churn")),
        ("/tmp/churn", ModelRef(path="/tmp/churn")),
        ("churn.tar.gz", ModelRef(path="churn.tar.gz")),
    ],
)
def test_parse(text: str, expected: ModelRef) -> None:
    ref = ModelRef.parse(text)
    assert ref == expected
    assert str(ref) == text


@pytest.mark.parametrize("text", ["", "churn:0", "churn:x", "Churn", "ch urn", "churn@Prod", "a" * 129])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(InvalidName) as info:
        ModelRef.parse(text)
    assert info.value.hint


@pytest.mark.parametrize("name", ["../etc", "a/b", "a\\b", "..", "a..b", "-x", ".hidden", "", "x" * 200, "UPPER"])
def test_hostile_names_rejected(name: str) -> None:
    with pytest.raises(InvalidName, match="Invalid model name"):
        validate_name(name)


@pytest.mark.parametrize("name", ["m", "churn-model", "churn_model.v2", "0abc"])
def test_good_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["scores", "public.scores", "_t1"])
def test_sql_identifiers(name: str) -> None:
    assert validate_sql_identifier(name) == name


@pytest.mark.parametrize("name", ["x; DROP TABLE y", 'a"b', "a.b.c", "1abc", "", "a b", "t--"])
def test_hostile_sql_identifiers(name: str) -> None:
    with pytest.raises(InvalidName, match="Invalid table name"):
        validate_sql_identifier(name)
