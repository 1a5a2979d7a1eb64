"""The Spark session the Spark engine's steps share: ``local[N]`` on a laptop, in CI and in ``make run
ENGINE=spark``; the cluster's master inside a SparkApplication's driver (spark-submit configured it).

pyspark is imported inside functions only (it costs seconds of start-up, and only the Spark engine uses it).
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

from gated_training.errors import ConfigError

MASTER_ENV = "GATED_TRAINING_SPARK_MASTER"
DEFAULT_LOCAL_MASTER = "local[2]"
DRIVER_MEMORY_ENV = "GATED_TRAINING_SPARK_DRIVER_MEMORY"
DEFAULT_DRIVER_MEMORY = "2g"
# What every session runs with, on every master: Arrow between the JVM and pandas (the hashing and the
# facts), UTC (timestamps read alike in every pod), no UI port, a stable ANSI mode (casts that fail raise,
# so the engine's own typing uses try_cast), case-sensitive names, and modest shuffles for a 2-core driver.
SESSION_CONFIG = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.ansi.enabled": "true",
    "spark.sql.caseSensitive": "true",  # "Age" and "age" are two columns, as in pandas
    # Every field of a CSV record is parsed, so a record with more fields than the header is always seen.
    "spark.sql.csv.parser.columnPruning.enabled": "false",
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.adaptive.enabled": "true",
}


def java_available() -> bool:
    return bool(os.environ.get("JAVA_HOME")) or shutil.which("java") is not None


def spark_session(app_name: str = "gated-training") -> Any:  # -> pyspark.sql.SparkSession
    """The process's session: an existing one (a SparkApplication's driver, or an earlier step in this
    process), else a new one on ``GATED_TRAINING_SPARK_MASTER`` (default ``local[2]``)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise ConfigError(
            "engine=spark needs pyspark in this environment: on a cluster compile the pipeline with SPARK_IMAGE and "
            "SPARK_STAGING_URI, and the Spark steps submit a SparkApplication (docs/scaling.md); locally install it "
            "with `make spark-venv`"
        ) from exc
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if not java_available():
        raise ConfigError(
            "engine=spark needs a Java runtime (17 or later): on Debian `apt-get install openjdk-17-jre-headless`, "
            "which `make spark-venv` does; the Spark image has one"
        )
    master = os.environ.get(MASTER_ENV, "").strip() or DEFAULT_LOCAL_MASTER
    # Python workers run this interpreter (its environment has this package), not the first python3 on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if not os.environ.get("PYSPARK_GATEWAY_PORT"):  # set when spark-submit launched this driver: its master wins
        builder = builder.master(master).config(
            "spark.driver.memory", os.environ.get(DRIVER_MEMORY_ENV, "").strip() or DEFAULT_DRIVER_MEMORY
        )
    for key, value in SESSION_CONFIG.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session
