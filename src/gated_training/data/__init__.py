"""Tables in and out: reading a batch (CSV or Parquet, local or gs://) with its fingerprints, the
stable split, storage, and the synthetic tables of the tests and the bench."""

# The package's face: other packages import these names from here, never from its modules (tests/unit/test_layering.py).

from gated_training.data import storage, synthetic
from gated_training.data.facts import (
    FLOAT32_MAX,
    MAX_LISTED_CLASSES,
    ColumnFacts,
    TableFacts,
    sorted_classes,
    table_facts,
)
from gated_training.data.split import SplitRule, held_out_by, in_test_split, rule_for
from gated_training.data.statistics import (
    ColumnStatistics,
    column_statistics,
    fit_on_statistics,
    statistics_frame,
    summarisable,
)
from gated_training.data.tables import (
    LoadedTable,
    detached_head,
    is_numeric_feature,
    json_safe,
    label_key,
    load_table,
    normalise_labels,
    read_parquet,
    row_hashes,
    sha256_hex,
    split_features_target,
    table_format,
    write_parquet,
)

__all__ = [
    "FLOAT32_MAX",
    "MAX_LISTED_CLASSES",
    "ColumnFacts",
    "ColumnStatistics",
    "TableFacts",
    "LoadedTable",
    "SplitRule",
    "column_statistics",
    "detached_head",
    "fit_on_statistics",
    "held_out_by",
    "in_test_split",
    "is_numeric_feature",
    "json_safe",
    "label_key",
    "load_table",
    "normalise_labels",
    "read_parquet",
    "row_hashes",
    "rule_for",
    "sha256_hex",
    "split_features_target",
    "storage",
    "sorted_classes",
    "statistics_frame",
    "summarisable",
    "synthetic",
    "table_format",
    "table_facts",
    "write_parquet",
]
