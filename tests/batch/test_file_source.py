from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelport.batch.file_source import FileSource, format_of
from modelport.batch.sources import rechunk
from modelport.core.errors import NotFound, Unsupported, ValidationError

from .conftest import frame


def _ids(source: FileSource, chunk_size: int, **kwargs: object) -> list[list[int]]:
    return [c.table.column("id").to_pylist() for c in source.read(chunk_size, **kwargs)]  # type: ignore[arg-type]


def test_rechunk_makes_exact_chunks_across_pieces() -> None:
    pieces = [pa.table({"x": list(range(i * 7, i * 7 + 7))}) for i in range(5)]
    sizes = [t.num_rows for t in rechunk(pieces, 10)]
    assert sizes == [10, 10, 10, 5]
    assert [v for t in rechunk(pieces, 10) for v in t.column("x").to_pylist()] == list(range(35))


@pytest.mark.parametrize("suffix", ["csv", "parquet", "jsonl"])
def test_each_format_reads_in_order_and_resumes_from_a_position(tmp_path: Path, suffix: str) -> None:
    data = frame(95)
    path = tmp_path / f"in.{suffix}"
    if suffix == "csv":
        data.to_csv(path, index=False)
    elif suffix == "parquet":
        data.to_parquet(path, row_group_size=20)
    else:
        data.to_json(path, orient="records", lines=True)
    source = FileSource(path)
    chunks = list(source.read(30, columns=["id", "a"]))
    assert [c.num_rows for c in chunks] == [30, 30, 30, 5]
    assert [c.start_row for c in chunks] == [0, 30, 60, 90]
    assert chunks[0].table.column_names == ["id", "a"]
    assert [v for c in chunks for v in c.table.column("id").to_pylist()] == list(range(95))
    resumed = _ids(FileSource(path), 30, start=chunks[1].position)
    assert resumed == [list(range(60, 90)), list(range(90, 95))]


def test_parquet_count_and_resume_skip_whole_files_and_row_groups(tmp_path: Path) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    for i in range(3):
        frame(40, start=i * 40).to_parquet(folder / f"part-{i}.parquet", row_group_size=15)
    (folder / "_SUCCESS").write_text("")
    (folder / ".hidden.parquet").write_text("not parquet")
    source = FileSource(folder)
    assert source.count_rows() == 120
    assert _ids(source, 50, start={"rows": 85}) == [list(range(85, 120))]


def test_glob_reads_matching_files_sorted(tmp_path: Path) -> None:
    frame(3, start=10).to_csv(tmp_path / "b.csv", index=False)
    frame(3, start=0).to_csv(tmp_path / "a.csv", index=False)
    frame(3, start=99).to_csv(tmp_path / "other.txt", index=False)
    assert _ids(FileSource(str(tmp_path / "*.csv")), 100) == [[0, 1, 2, 10, 11, 12]]
    assert FileSource(tmp_path / "a.csv").count_rows() is None


def test_csv_as_text_keeps_bad_values_for_row_level_rejects(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("id,a\n1,1.5\n2,oops\n3,\n")
    table = next(FileSource(path).read(10, as_text=["a"])).table
    assert table.column("a").to_pylist() == ["1.5", "oops", None]
    assert table.column("id").type == pa.int64()


def test_jsonl_with_mixed_types_in_a_column_keeps_them_as_text(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": 1, "a": 1.5}\n\n{"id": 2, "a": "oops"}\n{"id": 3}\n')
    table = next(FileSource(path).read(10, columns=["id", "a"])).table
    assert table.column("a").to_pylist() == ["1.5", "oops", None]


def test_missing_column_is_named(tmp_path: Path) -> None:
    frame(5).to_parquet(tmp_path / "in.parquet")
    with pytest.raises(ValidationError, match="Missing column 'zip'") as info:
        list(FileSource(tmp_path / "in.parquet").read(10, columns=["id", "zip"]))
    assert "id" in (info.value.hint or "")
    (tmp_path / "in.csv").write_text("id\n1\n")
    with pytest.raises(ValidationError, match="Missing column 'a'"):
        list(FileSource(tmp_path / "in.csv").read(10, columns=["id", "a"]))


def test_bad_inputs_get_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="No input files") as info:
        FileSource(tmp_path / "nope.csv").open()
    assert info.value.hint
    (tmp_path / "data.bin").write_text("x")
    with pytest.raises(Unsupported, match="format"):
        FileSource(tmp_path / "data.bin").open()
    with pytest.raises(Unsupported, match="Unknown file format 'xml'"):
        format_of("x.csv", "xml")
    (tmp_path / "bad.jsonl").write_text('{"id": 1}\n{oops\n')
    with pytest.raises(ValidationError, match="line 2"):
        list(FileSource(tmp_path / "bad.jsonl").read(10))


def test_format_given_explicitly_overrides_the_suffix(tmp_path: Path) -> None:
    path = tmp_path / "scores.data"
    pq.write_table(pa.Table.from_pandas(frame(4), preserve_index=False), path)
    table = next(FileSource(path, format="parquet").read(10)).table
    assert table.to_pandas()["id"].tolist() == [0, 1, 2, 3]
    assert isinstance(table.to_pandas(), pd.DataFrame)


def test_memory_held_while_reading_does_not_grow_with_the_file(tmp_path: Path) -> None:
    peaks = []
    for rows in (100_000, 800_000):
        path = tmp_path / f"wide-{rows}.parquet"
        data = pa.table({f"f{j}": np.random.default_rng(j).normal(size=rows) for j in range(20)})
        pq.write_table(data, path, row_group_size=20_000)
        del data
        baseline, peak = pa.total_allocated_bytes(), 0
        for chunk in FileSource(path).read(10_000):
            peak = max(peak, pa.total_allocated_bytes() - baseline)
            del chunk
        peaks.append(peak)
    chunk_bytes = 10_000 * 20 * 8
    assert peaks[1] < 20 * chunk_bytes  # a few row groups and chunks: a quarter of the file (80 chunks)
    assert peaks[1] < 1.5 * peaks[0] + chunk_bytes
