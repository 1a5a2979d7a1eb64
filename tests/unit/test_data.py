import numpy as np
import pandas as pd
import pytest

from gated_training.data.tables import (
    content_sha256,
    detached_head,
    load_table,
    normalise_string_columns,
    parse_table,
    sha256_hex,
)
from gated_training.errors import DataError
from tests.conftest import SAMPLE_DATA


def test_loads_the_sample_with_its_fingerprint():
    table = load_table(str(SAMPLE_DATA))
    assert table.frame.shape == (1000, 10)
    assert table.file_sha256 == sha256_hex(SAMPLE_DATA.read_bytes())
    assert table.sha256 == content_sha256(table.frame) != table.file_sha256
    assert table.frame["saving_accounts"].isna().sum() == 183  # missing values survive
    assert table.frame["sex"].dtype == object  # text as object: GX type checks rely on it


def test_parquet_round_trip(tmp_path, sample_frame):
    path = tmp_path / "batch.parquet"
    sample_frame.to_parquet(path, index=False)
    loaded = load_table(str(path)).frame
    assert loaded.shape == sample_frame.shape
    assert list(loaded.columns) == list(sample_frame.columns)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: no such file"):
        load_table(str(tmp_path / "nope.csv"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"   \n", "the file is empty"),
        (b"a,b,label\n", r"has a header \(a, b, label\) but no rows"),
    ],
)
def test_unusable_tables_are_named(content, message):
    with pytest.raises(DataError, match=message):
        parse_table("batch.csv", content)


def test_non_utf8_names_byte_and_line():
    raw = "name,label\nok,1\n".encode() + "Müller,0\n".encode("latin-1")
    with pytest.raises(DataError, match=r"batch\.csv: not valid UTF-8 at byte 17 \(line 3\): bytes fc"):
        parse_table("batch.csv", raw)


def test_corrupt_parquet_is_named():
    with pytest.raises(DataError, match=r"x\.parquet: not a readable Parquet file"):
        parse_table("x.parquet", b"not parquet at all")


def test_duplicate_csv_columns_are_refused_not_renamed():
    with pytest.raises(DataError, match=r"dup\.csv: duplicate column names \['a'\]"):
        parse_table("dup.csv", b"a,b,a\n1,2,3\n")


@pytest.mark.parametrize("dtype", ["str", "string"])  # NaN and pd.NA as the missing marker
def test_text_becomes_object_with_equal_values_and_one_string_per_distinct_value(dtype):
    frame = pd.DataFrame({"colour": pd.array(["red", None, "blue", "red", None], dtype=dtype), "n": [1, 2, 3, 4, 5]})
    expected = frame.astype({"colour": object})
    normalised = normalise_string_columns(frame)
    pd.testing.assert_frame_equal(normalised, expected)
    assert normalised["colour"].iloc[0] is normalised["colour"].iloc[3]  # shared, not a string per cell
    assert normalised is frame and normalised["n"].dtype == expected["n"].dtype  # converted in place: freed as it goes


def _text_buffer_bytes(frame: pd.DataFrame) -> int:
    return frame["colour"].array.__arrow_array__().get_total_buffer_size()  # Arrow counts whole buffers, not the slice


def test_detached_head_equals_head_without_holding_the_other_rows():
    frame = pd.DataFrame(
        {"colour": pd.array([f"colour-{i}" for i in range(50_000)], dtype="str"), "n": range(50_000)},
        index=range(7, 50_007),
    )
    head = detached_head(frame, 5)
    pd.testing.assert_frame_equal(head, frame.head(5))
    assert _text_buffer_bytes(frame.head(5).copy()) > 500_000  # the premise: a copied head keeps every row
    assert _text_buffer_bytes(head) < 1_000
    assert len(detached_head(frame.head(3), 5)) == 3


def test_the_content_fingerprint_ignores_format_bom_order_and_compression(tmp_path, sample_frame):
    import bz2
    import gzip

    raw = SAMPLE_DATA.read_bytes()
    variants = {"bom.csv": b"\xef\xbb\xbf" + raw, "same.csv.gz": gzip.compress(raw), "same.csv.bz2": bz2.compress(raw)}
    for name, data in variants.items():
        (tmp_path / name).write_bytes(data)
    sample_frame.to_parquet(tmp_path / "same.parquet", index=False)
    sample_frame.sample(frac=1, random_state=3).to_csv(tmp_path / "shuffled.csv", index=False)
    reference = load_table(str(SAMPLE_DATA))
    for name in [*variants, "same.parquet", "shuffled.csv"]:
        table = load_table(str(tmp_path / name))
        assert list(table.frame.columns) == list(reference.frame.columns), name  # no "\ufeffrisk"
        assert table.sha256 == reference.sha256, name
    changed = sample_frame.copy()
    changed.loc[5, "age"] += 1
    changed.to_csv(tmp_path / "changed.csv", index=False)
    assert load_table(str(tmp_path / "changed.csv")).sha256 != reference.sha256


def test_inputs_must_be_regular_files_within_the_size_limit(tmp_path):
    import os
    import time

    fifo = tmp_path / "feed.csv"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(DataError, match=r"feed\.csv: is not a regular file \(a FIFO, device or socket\)"):
        load_table(str(fifo))
    assert time.monotonic() - started < 5  # refused, not read: a FIFO with no writer would block forever
    with pytest.raises(DataError, match=r"/dev/zero: is not a regular file"):
        load_table("/dev/zero")
    with pytest.raises(
        DataError,
        match=r"german_credit\.csv: 45,648 bytes is more than the limit of 10,486 bytes "
        r"\(max_input_mb=0\.01\)",
    ):
        load_table(str(SAMPLE_DATA), max_input_mb=0.01)


def test_a_small_file_that_inflates_without_end_is_refused(tmp_path):
    import gzip

    bomb = tmp_path / "bomb.csv.gz"
    bomb.write_bytes(gzip.compress(b"a,b\n" + b"1,2\n" * 3_000_000))  # 12 MB inflated from ~12 KB
    with pytest.raises(DataError, match=r"bomb\.csv\.gz: decompresses to more than the limit of 1,048,576 bytes"):
        load_table(str(bomb), max_input_mb=1)
    (tmp_path / "x.csv.zip").write_bytes(b"PK")
    with pytest.raises(DataError, match=r"x\.csv\.zip: \.zip archives are not read"):
        load_table(str(tmp_path / "x.csv.zip"))
    (tmp_path / "broken.csv.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match=r"broken\.csv\.gz: not a readable gzip file"):
        load_table(str(tmp_path / "broken.csv.gz"))


def test_nested_parquet_columns_are_named(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"risk": [0, 1], "address": [{"city": "a"}, {"city": "b"}], "tags": [[1], [2, 3]]})
    pq.write_table(table, tmp_path / "nested.parquet")
    with pytest.raises(
        DataError,
        match=r"nested\.parquet: nested Parquet columns cannot be features: "
        r"address \(struct<city: string>\), tags \(list<element: int64>\)",
    ):
        load_table(str(tmp_path / "nested.parquet"))


def test_labels_are_one_type_before_anything_counts_them():
    from gated_training.data.tables import label_key, normalise_labels

    as_float = normalise_labels(pd.Series([1.0, 0.0, 1.0]))
    assert as_float.dtype == "int64" and as_float.tolist() == [1, 0, 1]
    assert normalise_labels(pd.Series([0.5, 1.0])).dtype == "float64"  # not whole numbers: left alone
    assert normalise_labels(pd.Series(["a", "b"])).tolist() == ["a", "b"]
    assert label_key(1.0) == label_key(1) == label_key(np.int64(1)) == "1" and label_key("yes") == "yes"


def test_row_hashes_a_column_at_a_time_equal_pandas_whole_frame_hash():
    """The split's and the fingerprint's row hashes are computed a column at a time (no canonical copy of the
    frame); they must equal pandas' hash of the whole canonical frame, or every stored split rule and content
    fingerprint would move."""
    import numpy as np

    from gated_training.data.tables import canonical_frame, row_hashes

    frame = pd.DataFrame(
        {
            "b_text": pd.array(["x", None, "ünï", "", "x"], dtype="str"),
            "a_float": [1.5, np.nan, -0.0, 0.0, 1e308],
            "c_int": [1, 2, 3, 4, 5],
            "flag": [True, False, True, True, False],
            10: ["1", "2", None, "4", "5"],  # a non-text column name sorts as text
            "obj": pd.Series([1, "a", None, 2.5, "1"], dtype=object),
        }
    )
    expected = pd.util.hash_pandas_object(canonical_frame(frame), index=False).to_numpy(dtype=np.uint64)
    assert (row_hashes(frame) == expected).all()
    subset = ["flag", "b_text"]
    expected_subset = pd.util.hash_pandas_object(canonical_frame(frame[subset]), index=False).to_numpy(np.uint64)
    assert (row_hashes(frame, subset) == expected_subset).all()
    empty = pd.util.hash_pandas_object(canonical_frame(frame[[]]), index=False).to_numpy(dtype=np.uint64)
    assert (row_hashes(frame, []) == empty).all()
