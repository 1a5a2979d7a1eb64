"""The Spark engine (``engine=spark``): the data-heavy steps' work on a Spark frame, with the pandas
engine's checks, fingerprints and split. pyspark is imported inside functions only."""

# The package's face: other packages import these names from here, never from its modules (tests/unit/test_layering.py).

from gated_training.spark import features, remote, training
from gated_training.spark.application import SparkResources
from gated_training.spark.drift import drift_tallies
from gated_training.spark.evaluation import SparkTestSplit
from gated_training.spark.facts import table_facts
from gated_training.spark.hashing import content_sha256, with_split_side
from gated_training.spark.remote import StepFiles, remote_settings, run_remotely
from gated_training.spark.session import java_available, spark_session
from gated_training.spark.tables import SparkTable, normalise_labels, read_table, spark_path

__all__ = [
    "SparkResources",
    "SparkTable",
    "SparkTestSplit",
    "StepFiles",
    "content_sha256",
    "drift_tallies",
    "features",
    "java_available",
    "normalise_labels",
    "read_table",
    "remote",
    "remote_settings",
    "run_remotely",
    "spark_path",
    "spark_session",
    "table_facts",
    "training",
    "with_split_side",
]
