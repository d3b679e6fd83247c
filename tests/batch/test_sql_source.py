from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from modelport.batch.sql_source import SqlSource
from modelport.core.errors import BadRequest, InvalidName, NotFound, ServiceUnavailable, ValidationError

from .conftest import frame


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'input.db'}"
    engine = sa.create_engine(url)
    data = frame(50).sample(frac=1.0, random_state=3)  # stored out of key order
    data.to_sql("leads", engine, index=False)
    engine.dispose()
    return url


def _ids(chunks: object) -> list[int]:
    return [v for c in chunks for v in c.table.column("id").to_pylist()]  # type: ignore[attr-defined]


def test_table_is_read_in_key_order_and_resumed_after_the_last_key(db_url: str) -> None:
    source = SqlSource(db_url, table="leads")
    source.open()
    assert source.count_rows() == 50
    chunks = list(source.read(20, columns=["a", "b"], order_by=["id"]))
    assert [c.num_rows for c in chunks] == [20, 20, 10]
    assert _ids(chunks) == list(range(50))
    assert chunks[0].position == {"rows": 20, "key": [19]}
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:  # rows arriving between the crash and the resume
        conn.execute(sa.text("INSERT INTO leads (id, a, b, c) VALUES (-5, 0, 0, 0), (500, 0, 0, 0)"))
    engine.dispose()
    resumed = list(SqlSource(db_url, table="leads").read(20, start=chunks[0].position, order_by=["id"]))
    assert _ids(resumed) == [*range(20, 50), 500]
    assert resumed[0].start_row == 20
    source.close()


def test_query_with_a_composite_key_resumes_by_row_value(db_url: str) -> None:
    query = "SELECT id % 5 AS grp, id, a FROM leads WHERE id < 30;"
    source = SqlSource(db_url, query=query)
    chunks = list(source.read(7, order_by=["grp", "id"]))
    keys = [(g, i) for c in chunks for g, i in zip(c.table.column("grp").to_pylist(), _ids([c]), strict=True)]
    assert keys == sorted((i % 5, i) for i in range(30))
    rest = list(SqlSource(db_url, query=query).read(7, start=chunks[1].position, order_by=["grp", "id"]))
    assert _ids(rest) == [i for _, i in keys[14:]]
    assert source.count_rows() is None


def test_without_a_key_resume_skips_the_rows_already_read(db_url: str) -> None:
    first = list(SqlSource(db_url, table="leads").read(15))
    again = list(SqlSource(db_url, table="leads").read(15, start=first[2].position))
    assert _ids(again) == _ids(first)[45:]


def test_names_and_arguments_are_checked(db_url: str) -> None:
    with pytest.raises(InvalidName, match="input table name"):
        SqlSource(db_url, table="leads; DROP TABLE leads")
    with pytest.raises(BadRequest, match="exactly one"):
        SqlSource(db_url)
    with pytest.raises(BadRequest, match="exactly one"):
        SqlSource(db_url, table="leads", query="SELECT 1")
    with pytest.raises(NotFound, match="No table 'prospects'"):
        SqlSource(db_url, table="prospects").open()
    with pytest.raises(ValidationError, match="Missing column 'zip'"):
        list(SqlSource(db_url, table="leads").read(10, columns=["id", "zip"]))
    with pytest.raises(ValidationError, match="key"):
        list(SqlSource(db_url, table="leads").read(10, order_by=["nope"]))


def test_unreachable_database_is_service_unavailable_with_password_hidden() -> None:
    url = "postgresql://scorer:s3cret-pw@127.0.0.1:1/crm"
    source = SqlSource(url, table="leads")
    with pytest.raises(ServiceUnavailable, match="input database") as info:
        source.open()
    assert "s3cret-pw" not in str(info.value)
    assert "scorer:***@127.0.0.1:1/crm" in str(info.value)
    assert "s3cret-pw" not in source.description
    source.close()
