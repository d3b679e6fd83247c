from __future__ import annotations

import pytest

from modelport.batch.options import JobOptions
from modelport.core.errors import InvalidName, ValidationError


def test_build_splits_comma_separated_columns() -> None:
    options = JobOptions.build(key="user_id, item_id", include=["region"], mode="upsert", chunk_size=10)
    assert options.key == ("user_id", "item_id")
    assert options.include == ("region",)
    assert options.mode == "upsert"


@pytest.mark.parametrize("name", ["id; DROP TABLE x", 'a"b', "1abc", "sch.col", ""])
def test_hostile_column_names_are_rejected(name: str) -> None:
    with pytest.raises(InvalidName, match="Invalid column name") as info:
        JobOptions.build(key=[name] if name else ["ok", ""])
    assert info.value.hint


def test_bad_values_raise_modelport_validation_error_naming_the_option() -> None:
    with pytest.raises(ValidationError, match="chunk_size") as info:
        JobOptions.build(chunk_size=0)
    assert "--help" in (info.value.hint or "")
    with pytest.raises(ValidationError, match="mode"):
        JobOptions.build(mode="merge")
    with pytest.raises(ValidationError, match="resume"):
        JobOptions.build(resume="../../etc")


def test_resume_keeps_stored_chunking_and_takes_new_error_budget() -> None:
    first = JobOptions.build(chunk_size=7, key="id", proba=True)
    resumed = JobOptions.build(chunk_size=999, max_errors=5, resume="a" * 32).for_resume(first.stored())
    assert (resumed.chunk_size, resumed.key, resumed.proba) == (7, ("id",), True)
    assert (resumed.max_errors, resumed.resume) == (5, "a" * 32)
    assert "resume" not in first.stored()
