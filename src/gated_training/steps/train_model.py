"""train-model: cross-validate and fit the estimator on the training split, tracked in MLflow.

The fitted preprocessor and the estimator are joined into one ``Pipeline``: the artifact that
is deployed turns raw rows into predictions, so serving never re-implements features.
"""

from __future__ import annotations

import json
import math
import re
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
import pandas as pd

from gated_training.config import ENGINES, ModelSettings, check_spark_training, require_choice
from gated_training.data import detached_head, json_safe, read_parquet, split_features_target
from gated_training.errors import DataError
from gated_training.tracking import runs as tracking

# scikit-learn (with SciPy, ~1.3 s) and the gate are imported where they are used, after the training split is read:
# the step's start-up before its first read is the executor, pandas and this package (docs/benchmarks.md).
if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from gated_training.gate import Scores

PERMUTATION_SAMPLE_ROWS = 2000
INPUT_EXAMPLE_ROWS = 5
TRANSFORM_CHUNK_ROWS = 25_000
EARLY_STOPPING_MIN_ROWS = 10_000  # HistGradientBoosting's early_stopping="auto" holds rows out above this


@dataclass(frozen=True, kw_only=True)
class TrainingOutcome:
    mlflow_run_id: str
    mlflow_model_uri: str
    tracking_uri: str
    cv_accuracy_mean: float
    cv_accuracy_std: float
    cv_rows: int  # below the training rows when cv_max_rows sampled them
    train: dict[str, float]
    test: dict[str, float]
    overfit_gap: float
    # Leakage across two columns: lookup models on pairs of the most important inputs (leakage.py).
    pair_feature_scores: list[dict[str, Any]] = field(default_factory=list)
    pair_scored_rows: int = 0

    def to_json(self) -> dict[str, Any]:
        return json_safe(asdict(self))


def outcome_from_record(record: dict[str, Any]) -> TrainingOutcome:
    """The training report a SparkApplication's driver wrote, built only when it has the report's shape: every
    field and no other, its numbers finite numbers, its scores named numbers (or None)."""
    expected = {f.name for f in fields(TrainingOutcome)}
    if set(record) != expected:
        raise ValueError(f"fields {sorted(set(record) ^ expected)} differ from the training report's")

    from gated_training import spark

    def number(name: str, value: Any) -> float:
        checked = spark.remote.finite_number(name, value)
        assert checked is not None  # None only when optional
        return checked

    def scores(name: str) -> dict[str, Any]:
        return spark.remote.named_numbers(name, record[name])

    for name in ("mlflow_run_id", "mlflow_model_uri", "tracking_uri"):
        if not isinstance(record[name], str) or not record[name]:
            raise ValueError(f"{name}: not a non-empty text")
    if not isinstance(record["cv_rows"], int) or isinstance(record["cv_rows"], bool) or record["cv_rows"] < 1:
        raise ValueError(f"cv_rows: {record['cv_rows']!r} is not a count of rows")
    if not isinstance(record["pair_scored_rows"], int) or isinstance(record["pair_scored_rows"], bool):
        raise ValueError("pair_scored_rows: not a count of rows")
    if not isinstance(record["pair_feature_scores"], list) or not all(
        isinstance(item, dict) for item in record["pair_feature_scores"]
    ):
        raise ValueError("pair_feature_scores: not a list of objects")
    return TrainingOutcome(
        mlflow_run_id=record["mlflow_run_id"],
        mlflow_model_uri=record["mlflow_model_uri"],
        tracking_uri=record["tracking_uri"],
        cv_accuracy_mean=number("cv_accuracy_mean", record["cv_accuracy_mean"]),
        cv_accuracy_std=number("cv_accuracy_std", record["cv_accuracy_std"]),
        cv_rows=record["cv_rows"],
        train=scores("train"),
        test=scores("test"),
        overfit_gap=number("overfit_gap", record["overfit_gap"]),
        pair_feature_scores=record["pair_feature_scores"],
        pair_scored_rows=record["pair_scored_rows"],
    )


def build_estimator(settings: ModelSettings, categorical: list[bool] | None = None) -> Any:
    """The estimator; ``categorical`` marks the engineered columns HistGradientBoosting splits as categories
    (categorical_encoding=native), otherwise every column is split as a number."""
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

    max_depth = settings.max_depth or None
    if settings.estimator == "xgboost":
        from gated_training.boosted import BoostedTrees

        return BoostedTrees(
            n_estimators=settings.n_estimators,
            max_depth=settings.max_depth,
            learning_rate=settings.learning_rate,
            random_state=settings.random_state,
            categorical=categorical if categorical and any(categorical) else None,
        )
    if settings.estimator == "random_forest":
        return RandomForestClassifier(
            n_estimators=settings.n_estimators,
            max_depth=max_depth,
            min_samples_split=settings.min_samples_split,
            random_state=settings.random_state,
            n_jobs=-1,
        )
    return HistGradientBoostingClassifier(
        max_iter=settings.n_estimators,
        max_depth=max_depth,
        learning_rate=settings.learning_rate,
        random_state=settings.random_state,
        categorical_features=categorical if categorical and any(categorical) else None,
    )


def native_categories(feature_metadata: dict[str, Any]) -> list[bool] | None:
    """For categorical_encoding=native: which engineered columns are category codes (engineer-features lists
    them); None for the other encodings."""
    if feature_metadata.get("settings", {}).get("features", {}).get("categorical_encoding") != "native":
        return None
    codes = set(feature_metadata.get("categorical_features") or [])
    return [name in codes for name in feature_metadata["engineered_features"]]


def early_stopping_rows(estimator: Any, labels: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """The training rows HistGradientBoosting would fit on and the ones it would hold out for early stopping:
    the split its ``fit`` draws (the same seed from ``random_state``, the same stratified split of the same
    labels), or None when it would hold none out. Given to ``fit`` as ``X``/``X_val``, each part transformed
    on its own, the model is the same and the estimator never copies the whole matrix into two."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state

    if not isinstance(estimator, HistGradientBoostingClassifier) or estimator.validation_fraction is None:
        return None
    if estimator.early_stopping is False or (
        estimator.early_stopping == "auto" and len(labels) <= EARLY_STOPPING_MIN_ROWS
    ):
        return None
    seed = check_random_state(estimator.random_state).randint(np.iinfo(np.uint32).max, dtype="u8")
    codes = np.unique(labels.to_numpy(), return_inverse=True)[1]  # the label encoder's codes: same order
    fit_rows, held_out = train_test_split(
        np.arange(len(labels)), test_size=estimator.validation_fraction, stratify=codes, random_state=seed
    )
    return fit_rows, held_out


def training_dtype(estimator: Any) -> Any:
    """The dtype ``estimator`` converts its training matrix to, when it converts: a random forest fits on float32
    (scikit-learn's tree ``DTYPE``) and so does ``BoostedTrees``. Transforming straight into it gives the same
    numbers (one rounding of each float64) without the float64 matrix beside the estimator's copy. None: the
    preprocessor's own dtype (HistGradientBoosting bins float64)."""
    from sklearn.ensemble import RandomForestClassifier

    from gated_training.boosted import BoostedTrees

    return np.float32 if isinstance(estimator, (RandomForestClassifier, BoostedTrees)) else None


def transformed_rows(preprocessor: Pipeline, frame: pd.DataFrame, rows: np.ndarray, dtype: Any = None) -> np.ndarray:
    """``preprocessor.transform(frame.iloc[rows])``, a chunk of rows at a time into one array of ``dtype`` (by
    default the transform's own): neither the selected raw rows nor a second matrix are ever held whole."""
    first = np.asarray(preprocessor.transform(frame.iloc[rows[:TRANSFORM_CHUNK_ROWS]]))
    result = np.empty((len(rows), first.shape[1]), dtype=dtype or first.dtype)
    result[: len(first)] = first
    del first
    for start in range(TRANSFORM_CHUNK_ROWS, len(rows), TRANSFORM_CHUNK_ROWS):
        chunk = rows[start : start + TRANSFORM_CHUNK_ROWS]
        result[start : start + len(chunk)] = preprocessor.transform(frame.iloc[chunk])
    return result


class BatchesDiffer(Exception):
    """The file's batches do not read as the frame did (other dtypes, or other rows): transform the frame."""


def row_parts(row_sets: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """For each row of the split (by position): the index of the row set holding it, and its place in that set."""
    total = sum(len(rows) for rows in row_sets)
    part_of = np.empty(total, dtype=np.int8)
    place = np.empty(total, dtype=np.int64)
    for index, rows in enumerate(row_sets):
        part_of[rows] = index
        place[rows] = np.arange(len(rows))
    return part_of, place


def transformed_batches(
    preprocessor: Pipeline, path: str, target: str, dtypes: pd.Series, row_sets: list[np.ndarray]
) -> Callable[..., Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """The engineered rows of the Parquet file ``path``, a batch at a time, each with the row set every row
    belongs to and its place there (``row_parts``); called again, it reads the file again. Given ``keep`` (a mask
    from a batch's sets and places), only those rows of each batch are engineered and yielded. The transform is
    row by row, so each row's numbers are the same as from the whole frame. Raises ``BatchesDiffer`` when a batch
    does not have the frame's dtypes or the file holds other rows than ``row_sets``."""
    part_of, place = row_parts(row_sets)

    def batches(keep: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None) -> Iterator[Any]:
        start = 0
        for frame in split_batches(path, target):
            if not frame.dtypes.equals(dtypes) or start + len(frame) > len(part_of):
                raise BatchesDiffer(path)
            stop = start + len(frame)
            parts, places = part_of[start:stop], place[start:stop]
            start = stop
            if keep is not None:
                wanted = keep(parts, places)
                frame, parts, places = frame[wanted], parts[wanted], places[wanted]
            if len(frame):
                yield np.asarray(preprocessor.transform(frame)), parts, places
            del frame
        if start != len(part_of):
            raise BatchesDiffer(path)

    return batches


def streamed_rows(
    preprocessor: Pipeline, path: str, target: str, dtypes: pd.Series, row_sets: list[np.ndarray], dtype: Any = None
) -> list[np.ndarray] | None:
    """``transformed_rows`` of each of ``row_sets`` (positions in the split), read from the Parquet file
    ``path`` a batch of rows at a time (``transformed_batches``): the raw training rows are never held whole
    beside the engineered matrix, only one batch of them. None (the caller transforms the frame) when a batch
    does not have the frame's dtypes."""
    results: list[np.ndarray] = []
    try:
        for matrix, part, place in transformed_batches(preprocessor, path, target, dtypes, row_sets)():
            if not results:
                results = [np.empty((len(rows), matrix.shape[1]), dtype=dtype or matrix.dtype) for rows in row_sets]
            for index, result in enumerate(results):
                mine = part == index
                result[place[mine]] = matrix[mine]
    except BatchesDiffer:
        return None
    return results


def split_batches(path: str, target: str) -> Iterator[pd.DataFrame]:
    """The features of the Parquet file (or folder) ``path``, ``TRANSFORM_CHUNK_ROWS`` rows at a time, in the
    order pandas' reader reads them: a folder (the Spark engine writes one) file by file."""
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    for file in ds.dataset(path, format="parquet").files:
        with pq.ParquetFile(file) as source:
            for batch in source.iter_batches(batch_size=TRANSFORM_CHUNK_ROWS):
                yield batch.to_pandas(split_blocks=True).drop(columns=[target])


def training_batches(preprocessor: Pipeline, path: str, target: str, *, streamed: bool, dtype: Any) -> Iterator[Any]:
    """The training split's engineered rows once more, in its order, a chunk at a time, with the numbers the fit
    had (the transform is row by row; each chunk cast to ``dtype`` as ``streamed_rows`` casts): from the file's
    batches when ``streamed_rows`` read them (``streamed``), otherwise from the split read whole."""
    if streamed:
        for frame in split_batches(path, target):
            yield np.asarray(preprocessor.transform(frame), dtype=dtype)
        return
    x_train = read_parquet(path).drop(columns=[target])
    for start in range(0, len(x_train), TRANSFORM_CHUNK_ROWS):
        yield np.asarray(preprocessor.transform(x_train.iloc[start : start + TRANSFORM_CHUNK_ROWS]), dtype=dtype)


def fit_lean(estimator: Any, parts: list[tuple[np.ndarray, np.ndarray]]) -> bool:
    """Fit on the first part; a second part is the early-stopping hold-out (``early_stopping_rows``). True when
    the estimator took the one part out of ``parts`` and freed its matrix before training
    (``BoostedTrees.fit_consuming``): the training rows are then scored from a new transform."""
    if len(parts) == 1 and hasattr(estimator, "fit_consuming"):
        estimator.fit_consuming(parts)
        return True
    if len(parts) == 1:
        estimator.fit(*parts[0])
        return False
    (x_fit, y_fit), (x_val, y_val) = parts
    with held_out_for_early_stopping(estimator):
        estimator.fit(x_fit, y_fit, X_val=x_val, y_val=y_val)
    return False


def fit_binned(
    estimator: Any,
    batches: Callable[..., Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]],
    part_labels: list[np.ndarray],
) -> bool:
    """Fit HistGradientBoosting on numbers from the bins of ``batches()`` (``transformed_batches``; a second part
    is the early-stopping hold-out), the model ``fit_lean`` gives on the whole matrices (``histogram_fit``). False,
    the estimator unfitted, when it is another estimator, or the file's batches differ from the frame: the caller
    fits it from matrices."""
    from gated_training import histogram_fit

    if not histogram_fit.covers(estimator):
        return False
    source = iter(batches())
    try:
        first = next(source)
    except (StopIteration, BatchesDiffer):
        return False
    width = first[0].shape[1]
    del first, source
    try:
        with held_out_for_early_stopping(estimator, len(part_labels) > 1):
            histogram_fit.fit_from_chunks(estimator, batches, part_labels, width)
    except BatchesDiffer:
        return False
    return True


@contextmanager
def held_out_for_early_stopping(estimator: Any, held_out: bool = True) -> Iterator[None]:
    """``early_stopping=True`` while ``fit`` is given the hold-out (``"auto"`` would count the fit part's rows,
    not all of them), the configured value again after."""
    if not held_out:
        yield
        return
    configured = estimator.early_stopping
    estimator.set_params(early_stopping=True)
    try:
        yield
    finally:
        estimator.set_params(early_stopping=configured)


def cross_validation_rows(x: pd.DataFrame, y: pd.Series, settings: ModelSettings) -> tuple[pd.DataFrame, pd.Series]:
    """The training split, or above ``cv_max_rows`` a stratified sample of that many rows: K fits
    on a sample estimate the accuracy and its spread as well, at a fraction of K fits on it all."""
    from sklearn.model_selection import train_test_split

    if not settings.cv_max_rows or len(x) <= settings.cv_max_rows:
        return x, y
    sample_x, _, sample_y, _ = train_test_split(
        x, y, train_size=settings.cv_max_rows, stratify=y, random_state=settings.random_state
    )
    return sample_x, sample_y


def cross_validate_accuracy(
    preprocessor: Pipeline, estimator: Any, x: pd.DataFrame, y: pd.Series, settings: ModelSettings
) -> np.ndarray:
    """K-fold CV on the given rows; the preprocessor is refitted inside every fold."""
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import Pipeline

    smallest_class = int(y.value_counts().min())
    if smallest_class < settings.cv_folds:
        raise DataError(
            f"cv_folds={settings.cv_folds} needs at least that many training rows per class; "
            f"the smallest class among the {len(x)} cross-validation rows has {smallest_class} "
            "(lower cv_folds, or raise cv_max_rows if it sampled them)"
        )
    unfitted = Pipeline([("preprocess", clone(preprocessor)), ("model", clone(estimator))])
    folds = StratifiedKFold(n_splits=settings.cv_folds, shuffle=True, random_state=settings.random_state)
    return cross_val_score(unfitted, x, y, cv=folds, scoring="accuracy")


def feature_importances(
    model: Pipeline, x_test: pd.DataFrame, y_test: pd.Series, random_state: int
) -> list[dict[str, Any]]:
    """Impurity importances per engineered feature for forests; permutation importance per input otherwise."""
    estimator = model.named_steps["model"]
    if hasattr(estimator, "feature_importances_"):
        names = model.named_steps["preprocess"].get_feature_names_out()
        values, kind = estimator.feature_importances_, "impurity"
    else:
        from gated_training.gate import permutation_importances

        sample = x_test.sample(min(len(x_test), PERMUTATION_SAMPLE_ROWS), random_state=random_state)
        values = permutation_importances(model, sample, y_test.loc[sample.index], random_state)
        names, kind = x_test.columns, "permutation"
    ranked = sorted(zip(map(str, names), map(float, values)), key=lambda item: -item[1])
    return [{"feature": name, "importance": value, "kind": kind} for name, value in ranked]


def _metrics_for_mlflow(prefix: str, scores: Scores) -> dict[str, float]:
    return {f"{prefix}_{name}": value for name, value in scores.headline().items()}


def drift_metrics(drift: dict[str, Any] | None) -> dict[str, float]:
    """The drift step's numbers as MLflow metrics (names limited to MLflow's character set)."""
    report = (drift or {}).get("report")
    if not report:
        return {}
    metrics = {"drift_drifted_share": float(report["drifted_share"])}
    if isinstance(report.get("max_psi"), (int, float)) and math.isfinite(report["max_psi"]):
        metrics["drift_max_psi"] = float(report["max_psi"])
    for feature in report["features"]:
        if isinstance(feature.get("psi"), (int, float)) and math.isfinite(feature["psi"]):
            metrics[f"drift_psi.{re.sub(r'[^A-Za-z0-9_.-]', '_', feature['feature'])}"] = float(feature["psi"])
    return metrics


def signature_from_metadata(feature_metadata: dict[str, Any], classes: list[Any]) -> Any:
    """Inputs typed from engineer-features' metadata, not inferred from a few example rows: numeric
    features are doubles (a missing value is NaN, never an HTTP 400), text and flag columns strings
    and booleans, and every feature the model was trained on is required. Outputs: the label and
    one ``probability.<class>`` per class (``mlflow_model.GatedTrainingClassifier``)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    def input_type(column: dict[str, Any]) -> str:
        if column["role"] == "numeric":
            return "double"
        return "boolean" if column.get("dtype") == "bool" else "string"

    inputs = Schema(
        [ColSpec(input_type(column), column["name"], required=True) for column in feature_metadata["inputs"]]
    )
    label_type = (
        "long" if classes and all(isinstance(c, int) and not isinstance(c, bool) for c in classes) else "string"
    )
    outputs = Schema([ColSpec(label_type, "label"), *(ColSpec("double", f"probability.{c}") for c in classes)])
    return ModelSignature(inputs=inputs, outputs=outputs)


def boosted_requirements(model: Pipeline) -> list[str]:
    """XGBoost's pin for a model whose last step is ``BoostedTrees`` (the package this environment has)."""
    from importlib.metadata import PackageNotFoundError, version

    from gated_training.boosted import BoostedTrees

    if not isinstance(model.steps[-1][1], BoostedTrees):
        return []
    for package in ("xgboost-cpu", "xgboost"):
        try:
            return [f"{package}=={version(package)}"]
        except PackageNotFoundError:
            continue
    return []


def run_name(estimator: str, data_sha256: str) -> str:
    """A name a person can read in the MLflow UI: model, data, time."""
    from datetime import datetime, timezone

    return f"{estimator}-data-{(data_sha256 or 'unknown')[:8]}-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}"


def run_tags(*, data_sha256: str, kfp_run_id: str, target: str, pipeline_version: str) -> dict[str, str]:
    """Where the run came from: data, KFP run, pipeline version, package version, image and commit."""
    import os

    from gated_training import __version__

    tags = {
        "data_sha256": data_sha256,
        "kfp_run_id": kfp_run_id,
        "target": target,
        "gated_training.package_version": __version__,
        "gated_training.pipeline_version": pipeline_version,
        "gated_training.image": os.environ.get("GATED_TRAINING_IMAGE", ""),
        "mlflow.source.git.commit": os.environ.get("GATED_TRAINING_REVISION", ""),
    }
    return {key: value for key, value in tags.items() if value}


def dataset_sample(x_train: pd.DataFrame, y_train: pd.Series, target: str) -> pd.DataFrame:
    """The first 100 rows (target included) in buffers of their own: the MLflow dataset's schema comes from them."""
    return detached_head(x_train, 100).assign(
        **{target: detached_head(y_train.to_frame(), 100)[y_train.name].to_numpy()}
    )


def training_dataset(sample: pd.DataFrame, *, data_uri: str, data_sha256: str, target: str) -> Any:
    """The batch as an MLflow dataset input: its source URI, content SHA-256 (the digest) and schema
    (from a few rows, :func:`dataset_sample`: the schema is the columns and types, not the data).
    Built when the run is logged: MLflow is imported after the fit, not held through it."""
    import warnings

    import mlflow.data

    with warnings.catch_warnings():  # "integer columns cannot hold missing values": a dataset record, not a signature
        warnings.simplefilter("ignore", UserWarning)
        # MLflow allows a 36-character digest; the full SHA-256 is the data_sha256 tag.
        return mlflow.data.from_pandas(  # type: ignore[attr-defined]
            sample,
            source=data_uri or None,
            targets=target,
            name=f"batch-{(data_sha256 or 'unknown')[:8]}",
            digest=(data_sha256[:32] or None),
        )


def serving_example(x_train: pd.DataFrame, rows: int) -> pd.DataFrame:
    """Complete rows for the logged input example: MLflow writes it as JSON, and a NaN would be a
    bare ``NaN``, which is not JSON. Falls back to the first rows with missing numbers as 0."""
    head = detached_head(x_train, 1000)  # never a copy of the whole split
    complete = head.dropna()
    example = detached_head(complete if len(complete) else head, rows)
    if example.isna().any().any():
        example = example.apply(
            lambda column: column.fillna(0) if pd.api.types.is_numeric_dtype(column) else column.fillna("missing")
        )
    # Numbers as the signature types them (double): MLflow refuses an int64 example for a double column.
    numeric = [
        c
        for c in example.columns
        if pd.api.types.is_numeric_dtype(example[c]) and not pd.api.types.is_bool_dtype(example[c])
    ]
    return example.astype({c: "float64" for c in numeric})


def _log_to_mlflow(
    *,
    tracking_uri: str,
    experiment_id: str,
    model: Pipeline,
    settings: ModelSettings,
    feature_metadata: dict[str, Any],
    metrics: dict[str, float],
    importances: list[dict[str, Any]],
    tags: dict[str, str],
    example: pd.DataFrame,
    cv_rows: int,
    drift: dict[str, Any] | None = None,
    run_name: str = "",
    dataset: Any = None,
) -> tuple[str, str]:
    import shutil
    import tempfile

    import mlflow
    import sklearn
    import skops.io

    from gated_training import boosted, missing_values
    from gated_training.tracking import mlflow_model

    with tracking.tracking_errors(tracking_uri, "logging the training run"), tracking.global_uris(tracking_uri):
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name or None) as run:
            if dataset is not None:
                mlflow.log_input(dataset, context="training")
            mlflow.log_params(
                {
                    **asdict(settings),
                    **{f"features.{k}": v for k, v in feature_metadata["settings"]["features"].items()},
                    **{f"split.{k}": v for k, v in feature_metadata["settings"]["split"].items()},
                    "train_rows": feature_metadata["rows"]["train"],
                    "test_rows": feature_metadata["rows"]["test"],
                    "cv_rows": cv_rows,
                }
            )
            mlflow.log_metrics(metrics)
            mlflow.set_tags(tags)
            mlflow.log_dict({"feature_importances": importances}, "feature_importances.json")
            mlflow.log_dict(feature_metadata, "feature_metadata.json")
            if drift is not None:
                mlflow.log_metrics(drift_metrics(drift))
                mlflow.set_tags(
                    {
                        "drift_decision": drift["decision"],
                        "drift_action": drift["drift_action"],
                        "drift_drifted": str(drift["drifted"]).lower(),
                    }
                )
                mlflow.log_dict(drift, "drift_report.json")
            # The MLflow champion: a models-from-code pyfunc (mlflow_model.py, our code) around the
            # pipeline saved with skops; skops refuses types it does not know, and these come from
            # the model we just built.
            with tempfile.TemporaryDirectory() as scratch:
                skops_path, trusted_path = Path(scratch, "model.skops"), Path(scratch, "trusted_types.json")
                skops_path.write_bytes(skops.io.dumps(model))
                trusted_path.write_text(json.dumps(skops.io.get_untrusted_types(data=skops_path.read_bytes())))
                # The pipeline's first step names gated_training.missing_values.as_nan: ship that
                # module (in a package of its own) so any MLflow client can load the model.
                shipped = Path(scratch, "code", "gated_training")
                shipped.mkdir(parents=True)
                (shipped / "__init__.py").write_text('"""The parts of gated-training a logged model needs."""\n')
                for module in (missing_values, boosted):  # import paths a pickled pipeline may name
                    shutil.copyfile(str(module.__file__), shipped / Path(str(module.__file__)).name)
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=mlflow_model.__file__,
                    code_paths=[str(shipped)],
                    artifacts={"model": str(skops_path), "trusted_types": str(trusted_path)},
                    signature=signature_from_metadata(feature_metadata, list(model.classes_)),
                    input_example=example,
                    pip_requirements=[
                        f"mlflow=={mlflow.__version__}",
                        f"scikit-learn=={sklearn.__version__}",
                        f"pandas=={pd.__version__}",
                        f"numpy=={np.__version__}",
                        f"skops=={skops.__version__}",
                        *boosted_requirements(model),
                    ],
                )
            return run.info.run_id, info.model_uri


@dataclass(frozen=True, kw_only=True)
class Fit:
    """What either engine's fit hands to the tracking and the report."""

    model: Pipeline
    cv_scores: np.ndarray
    cv_rows: int
    train_scores: Scores
    test_scores: Scores
    importances: list[dict[str, Any]]
    pair_train: pd.DataFrame  # the rows the pair-leakage scores fit on (target included) ...
    pair_test: pd.DataFrame  # ... and score on (gate.leakage samples them)
    example: pd.DataFrame
    dataset: pd.DataFrame  # dataset_sample's rows: the MLflow dataset input is built from them at logging time


def _fit_on_pandas(
    *,
    train_path: str,
    test_path: str,
    target: str,
    ready: Callable[[], tuple[Pipeline, Any]],
    settings: ModelSettings,
    feature_metadata: dict[str, Any],
) -> Fit:
    """Cross-validate, fit and score in this process on the splits read whole. ``ready()`` is called once the
    training split is read: it waits for the MLflow experiment and returns the preprocessor and the estimator."""
    x_train, y_train = split_features_target(read_parquet(train_path), target)
    preprocessor, estimator = ready()  # nothing CPU-heavy before MLflow answered
    from sklearn.pipeline import Pipeline

    from gated_training.gate import SAMPLE_ROWS, predict_labels_and_proba, score_model, score_predictions

    example = serving_example(x_train, INPUT_EXAMPLE_ROWS)  # own buffers, so `del x_train` below frees the rows
    # A fixed sample of the training rows for the pair-leakage scores (after the fit), in buffers of its own.
    pair_rows = x_train.sample(min(len(x_train), SAMPLE_ROWS), random_state=0)
    pair_train = pair_rows.assign(**{target: y_train.loc[pair_rows.index].to_numpy()}).reset_index(drop=True)
    del pair_rows
    dataset = dataset_sample(x_train, y_train, target)
    # The preprocessor is already fitted on this same training split (step 2): reuse it, a chunk of rows at a
    # time, the early-stopping hold-out apart (see early_stopping_rows).
    held_out = early_stopping_rows(estimator, y_train)
    row_sets = list(held_out) if held_out is not None else [np.arange(len(y_train))]
    labels = y_train.to_numpy()
    dtype, dtypes = training_dtype(estimator), x_train.dtypes
    # Cross-validation on its sample (a copy above cv_max_rows) after the whole split is freed; the final fit's
    # rows are read again from the file, a batch at a time (streamed_rows). A file whose batches read with other
    # dtypes is transformed from the frame, read again whole.
    cv_x, cv_y = cross_validation_rows(x_train, y_train, settings)
    del x_train, y_train
    cv_scores, cv_rows = cross_validate_accuracy(preprocessor, estimator, cv_x, cv_y, settings), len(cv_x)
    del cv_x, cv_y
    part_labels = [labels[rows] for rows in row_sets]
    del labels
    # HistGradientBoosting on numbers: binned from the file's batches, never the float64 matrix whole (histogram_fit).
    consumed = streamed = fit_binned(
        estimator, transformed_batches(preprocessor, train_path, target, dtypes, row_sets), part_labels
    )
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    if not consumed:
        matrices = streamed_rows(preprocessor, train_path, target, dtypes, row_sets, dtype)
        streamed = matrices is not None
        if matrices is None:
            x_train = read_parquet(train_path).drop(columns=[target])
            matrices = [transformed_rows(preprocessor, x_train, rows, dtype) for rows in row_sets]
            del x_train
        parts = list(zip(matrices, part_labels, strict=True))
        del matrices
        consumed = fit_lean(estimator, parts)
    model = Pipeline([("preprocess", preprocessor), ("model", estimator)])

    # The estimator on the transformed rows is exactly the Pipeline on the raw rows, one transform fewer; every
    # training row is scored once, in chunks (with native categories the estimator re-encodes what it predicts on).
    # An estimator that freed its matrix during the fit, or never held it (XGBoost, HistGradientBoosting binned
    # from the batches), scores the rows transformed again, a chunk at a time, in the split's order; their
    # answers are then put in the parts' order, the labels' (an identity with one part).
    chunks = (
        training_batches(preprocessor, train_path, target, streamed=streamed, dtype=dtype)
        if consumed
        else (
            rows[start : start + TRANSFORM_CHUNK_ROWS]
            for rows, _ in parts
            for start in range(0, len(rows), TRANSFORM_CHUNK_ROWS)
        )
    )
    predicted, proba = zip(*(predict_labels_and_proba(estimator, chunk) for chunk in chunks))
    del chunks, parts  # the engineered matrix: freed before the scores' statistics allocate theirs
    train_labels = pd.Series(np.concatenate(part_labels))
    del part_labels
    order = np.concatenate(row_sets) if consumed else slice(None)
    train_scores = score_predictions(
        train_labels,
        np.concatenate(predicted)[order],
        np.concatenate(proba)[order] if proba[0] is not None else None,
        np.asarray(estimator.classes_),
    )
    del train_labels, predicted, proba
    x_test, y_test = split_features_target(read_parquet(test_path), target)  # read after the fit's peak
    test_scores = score_model(model, x_test, y_test)
    return Fit(
        model=model,
        cv_scores=cv_scores,
        cv_rows=cv_rows,
        train_scores=train_scores,
        test_scores=test_scores,
        importances=feature_importances(model, x_test, y_test, settings.random_state),
        pair_train=pair_train,
        pair_test=x_test.assign(**{target: y_test.to_numpy()}),
        example=example,
        dataset=dataset,
    )


def _fit_on_spark(
    *,
    train_path: str,
    test_path: str,
    target: str,
    ready: Callable[[], tuple[Pipeline, Any]],
    settings: ModelSettings,
    feature_metadata: dict[str, Any],
) -> Fit:
    """The pandas engine's fit with the rows in Spark (``spark.training``): cross-validation on the same
    stratified sample (its rows fetched by position), the booster trained by xgboost.spark on every training row,
    both splits scored in Spark's workers; the driver holds labels, probabilities and fixed samples."""
    preprocessor, estimator = ready()
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline

    from gated_training import spark
    from gated_training.boosted import BoostedTrees, feature_types
    from gated_training.gate import SAMPLE_ROWS, score_predictions
    from gated_training.spark import training

    session = spark.spark_session()

    train_rows, dtypes, y_train = training.read_split(session, train_path, target)
    test_rows, test_dtypes, y_test = training.read_split(session, test_path, target)
    try:
        positions = np.arange(len(y_train))
        if len(y_train) > settings.cv_max_rows:  # cross_validation_rows' sample, drawn over positions
            positions = train_test_split(
                positions, train_size=settings.cv_max_rows, stratify=y_train, random_state=settings.random_state
            )[0]
        cv_frame = training.rows_at(train_rows, positions, dtypes)
        cv_x, cv_y = split_features_target(cv_frame, target)
        cv_scores, cv_rows = cross_validate_accuracy(preprocessor, estimator, cv_x, cv_y, settings), len(cv_x)
        del cv_frame, cv_x, cv_y
        head = training.rows_at(train_rows, np.arange(min(len(y_train), 1000)), dtypes)
        head_x, head_y = split_features_target(head, target)
        example = serving_example(head_x, INPUT_EXAMPLE_ROWS)
        dataset = dataset_sample(head_x, head_y, target)

        def sample(rows: Any, frame_dtypes: dict[str, str], count: int) -> pd.DataFrame:
            """``gate.leakage``'s fixed sample (``DataFrame.sample(random_state=0)``) of a split, by position."""
            at = (
                np.arange(count)
                if count <= SAMPLE_ROWS
                else pd.Series(np.arange(count)).sample(SAMPLE_ROWS, random_state=0).to_numpy()
            )
            return training.rows_at(rows, at, frame_dtypes)

        pair_train, pair_test = sample(train_rows, dtypes, len(y_train)), sample(test_rows, test_dtypes, len(y_test))
        classes = np.unique(y_train.to_numpy())
        engineered_train = training.engineered(train_rows, preprocessor, target, classes, dtypes)
        width = len(feature_metadata["engineered_features"])
        raw = training.fit_booster(
            engineered_train,
            estimator.params(len(classes)),
            estimator.n_estimators,
            feature_types(estimator.categorical, width),
            training.training_workers(session),
        )
        booster = BoostedTrees.from_booster(raw, classes, width, **estimator.get_params())
        model = Pipeline([("preprocess", preprocessor), ("model", booster)])

        def scores(rows: Any, frame_dtypes: dict[str, str], labels: pd.Series) -> Scores:
            """The pandas engine's ``score_model``: every row scored in Spark, the labels in position order."""
            engineered_rows = training.engineered(rows, preprocessor, target, classes, frame_dtypes)
            _, proba = training.probabilities(engineered_rows, booster, width)
            return score_predictions(labels, classes[np.argmax(proba, axis=1)], proba, classes)

        train_scores = scores(train_rows, dtypes, y_train)
        test_scores = scores(test_rows, test_dtypes, y_test)
    finally:
        train_rows.unpersist()
        test_rows.unpersist()
    return Fit(
        model=model,
        cv_scores=cv_scores,
        cv_rows=cv_rows,
        train_scores=train_scores,
        test_scores=test_scores,
        # permutation importances on the fetched sample: the whole test split never reaches the driver
        importances=feature_importances(
            model, pair_test.drop(columns=target), pair_test[target], settings.random_state
        ),
        pair_train=pair_train,
        pair_test=pair_test,
        example=example,
        dataset=dataset,
    )


def train_model(
    *,
    train_path: str,
    test_path: str,
    preprocessor_path: str,
    feature_metadata_path: str,
    target: str,
    settings: ModelSettings,
    tracking_uri: str,
    experiment: str,
    data_sha256: str,
    kfp_run_id: str,
    model_out: str,
    report_out: str,
    importances_out: str,
    drift_report_path: str = "",
    data_uri: str = "",
    pipeline_version: str = "",
    engine: str = "pandas",
    train_uri: str = "",
    test_uri: str = "",
) -> TrainingOutcome:
    """Cross-validate on the training split (a stratified sample above ``cv_max_rows``), fit the
    final model on all of it, score both splits and log everything to MLflow.

    Args:
        train_path, test_path: the splits from engineer-features (Parquet, raw rows).
        preprocessor_path: the preprocessor fitted on the training split (joblib).
        feature_metadata_path: engineer-features' metadata, logged with the run.
        target: the label column.
        settings: the estimator and CV settings.
        tracking_uri, experiment: MLflow (an empty URI resolves as ``tracking.resolve_tracking_uri``).
        data_sha256, kfp_run_id: tagged on the MLflow run.
        model_out: the fitted ``Pipeline`` (preprocessor + estimator, joblib): the deployable artifact.
        report_out, importances_out: the training report and feature importances (JSON).
        drift_report_path: the drift gate's record, logged as metrics and an artifact.
        data_uri, pipeline_version: the batch's source (the MLflow dataset input) and the pipeline
            version, tagged on the run.
        engine: ``pandas``, or ``spark``: estimator=xgboost trained by xgboost.spark on the splits in Spark,
            cross-validated on the pandas engine's sample, both splits scored in Spark (``spark.training``).
        train_uri, test_uri: where the splits are stored (the artifacts' URIs), which a SparkApplication on the
            cluster reads; the paths when empty.

    Returns:
        The outcome: MLflow run and model URI, CV accuracy, train and test scores, overfit gap.
    """
    require_choice("engine", engine, ENGINES)
    if engine == "spark":
        check_spark_training(settings)
    resolved_uri = tracking.resolve_tracking_uri(tracking_uri)
    # The experiment is asked for once the training split is read, before anything is trained: a dead tracking
    # server still fails the step before it spends CPU on training (ready() below). A server or SQLite file that
    # answers clearly is read without MLflow (tracking.probe_experiment), whose import and store then come after
    # the fit's peak; anything else goes through MLflow's client as before.
    experiment_id = ""
    if engine == "spark":
        experiment_id = tracking.ensure_experiment(resolved_uri, experiment)
        from gated_training import spark

        outcome = spark.remote.run_on_cluster(
            "train-model",
            {
                "train_path": train_uri or train_path,
                "test_path": test_uri or test_path,
                "target": target,
                "settings": asdict(settings),
                "tracking_uri": resolved_uri,
                "experiment": experiment,
                "data_sha256": data_sha256,
                "kfp_run_id": kfp_run_id,
                "data_uri": data_uri,
                "pipeline_version": pipeline_version,
            },
            spark.StepFiles(
                inputs={
                    "preprocessor_path": preprocessor_path,
                    "feature_metadata_path": feature_metadata_path,
                    "drift_report_path": drift_report_path,
                },
                files={"model_out": model_out, "report_out": report_out, "importances_out": importances_out},
            ),
            record=report_out,
            build=outcome_from_record,
        )
        if outcome is not None:  # on the cluster: the whole step runs in a SparkApplication's driver
            return outcome
    feature_metadata = json.loads(Path(feature_metadata_path).read_text())
    probed: str | None = None

    def ready() -> tuple[Pipeline, Any]:
        import joblib

        nonlocal experiment_id, probed
        if not experiment_id:  # MLflow itself only when the probe has no clear answer (tracking.probe_experiment)
            probed = tracking.probe_experiment(resolved_uri, experiment)
            experiment_id = tracking.ensure_experiment(resolved_uri, experiment) if probed is None else probed
        preprocessor: Pipeline = joblib.load(preprocessor_path)
        return preprocessor, build_estimator(settings, native_categories(feature_metadata))

    fit = (_fit_on_spark if engine == "spark" else _fit_on_pandas)(
        train_path=train_path,
        test_path=test_path,
        target=target,
        ready=ready,
        settings=settings,
        feature_metadata=feature_metadata,
    )
    from gated_training.gate import input_columns_by_importance, pair_feature_scores

    pairs, pair_scored_rows = pair_feature_scores(
        fit.pair_train,
        fit.pair_test,
        target,
        input_columns_by_importance(fit.importances, [str(c) for c in fit.pair_test.columns if c != target]),
        feature_metadata.get("single_feature_scores") or {},
    )
    overfit_gap = fit.train_scores.accuracy - fit.test_scores.accuracy
    metrics = {
        "cv_accuracy_mean": float(fit.cv_scores.mean()),
        "cv_accuracy_std": float(fit.cv_scores.std()),
        **_metrics_for_mlflow("train", fit.train_scores),
        **_metrics_for_mlflow("test", fit.test_scores),
        "overfit_gap": overfit_gap,
    }
    if probed == tracking.TO_BE_CREATED:  # the store had no such experiment when the split was read
        experiment_id = tracking.ensure_experiment(resolved_uri, experiment)
    run_id, model_uri = _log_to_mlflow(
        tracking_uri=resolved_uri,
        experiment_id=experiment_id,
        model=fit.model,
        settings=settings,
        feature_metadata=feature_metadata,
        metrics=metrics,
        importances=fit.importances,
        tags=run_tags(data_sha256=data_sha256, kfp_run_id=kfp_run_id, target=target, pipeline_version=pipeline_version),
        example=fit.example,
        cv_rows=fit.cv_rows,
        drift=json.loads(Path(drift_report_path).read_text()) if drift_report_path else None,
        run_name=run_name(settings.estimator, data_sha256),
        dataset=training_dataset(fit.dataset, data_uri=data_uri, data_sha256=data_sha256, target=target),
    )
    import joblib

    joblib.dump(fit.model, model_out)
    Path(importances_out).write_text(json.dumps(fit.importances, indent=2))
    outcome = TrainingOutcome(
        mlflow_run_id=run_id,
        mlflow_model_uri=model_uri,
        tracking_uri=resolved_uri,
        cv_accuracy_mean=metrics["cv_accuracy_mean"],
        cv_accuracy_std=metrics["cv_accuracy_std"],
        cv_rows=fit.cv_rows,
        train=fit.train_scores.headline(),
        test=fit.test_scores.headline(),
        overfit_gap=overfit_gap,
        pair_feature_scores=pairs,
        pair_scored_rows=pair_scored_rows,
    )
    Path(report_out).write_text(json.dumps(outcome.to_json(), indent=2))
    return outcome
