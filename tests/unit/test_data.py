import pandas as pd
import pytest

from gated_training.data import detached_head, load_table, normalise_string_columns, parse_table, sha256_hex
from gated_training.errors import DataError
from tests.conftest import SAMPLE_DATA


def test_loads_the_sample_with_its_fingerprint():
    table = load_table(str(SAMPLE_DATA))
    assert table.frame.shape == (1000, 10)
    assert table.sha256 == sha256_hex(SAMPLE_DATA.read_bytes())
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
    normalised = normalise_string_columns(frame)
    pd.testing.assert_frame_equal(normalised, frame.astype({"colour": object}))
    assert normalised["colour"].iloc[0] is normalised["colour"].iloc[3]  # shared, not a string per cell
    assert normalised["n"].dtype == frame["n"].dtype and frame["colour"].dtype != object  # input untouched


def _text_buffer_bytes(frame: pd.DataFrame) -> int:
    return frame["colour"].array.__arrow_array__().get_total_buffer_size()  # Arrow counts whole buffers, not the slice


def test_detached_head_equals_head_without_holding_the_other_rows():
    frame = pd.DataFrame({"colour": pd.array([f"colour-{i}" for i in range(50_000)], dtype="str"),
                          "n": range(50_000)}, index=range(7, 50_007))
    head = detached_head(frame, 5)
    pd.testing.assert_frame_equal(head, frame.head(5))
    assert _text_buffer_bytes(frame.head(5).copy()) > 500_000  # the premise: a copied head keeps every row
    assert _text_buffer_bytes(head) < 1_000
    assert len(detached_head(frame.head(3), 5)) == 3
