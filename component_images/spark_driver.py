"""The SparkApplication's main file in the Spark image (/opt/gated-training/spark_driver.py): spark-submit runs
it with the step and the request URI (gated_training.steps.spark_driver)."""

from gated_training.steps.spark_driver import main

raise SystemExit(main())
