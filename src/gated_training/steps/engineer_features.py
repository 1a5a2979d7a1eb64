"""engineer-features: split the batch (stable hash split), then fit the preprocessing pipeline on the training
split only.

The reference design fitted imputation, encoding and SelectKBest on all rows before the
split, which leaks test rows into training. Here the split comes first, and the fitted
preprocessor later becomes the first stage of the one deployed ``Pipeline``.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib
import numpy as np
import pandas as pd

from gated_training.config import ENGINES, FeatureSettings, SplitSettings, require_choice
from gated_training.data import (
    SplitRule,
    column_statistics,
    fit_on_statistics,
    in_test_split,
    is_numeric_feature,
    json_safe,
    label_key,
    read_parquet,
    rule_for,
    split_features_target,
    statistics_frame,
    summarisable,
    write_parquet,
)
from gated_training.errors import ConfigError, DataError
from gated_training.missing_values import as_nan

if TYPE_CHECKING:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

# scikit-learn (1 s of imports with SciPy) and the gate's leakage scores are imported where they are used, after
# the dataset is read: the step's start-up before its first read is the executor, pandas and this package.

MAX_LISTED_CATEGORIES = 200  # feature_metadata.json lists a capped column's levels only this far
CATEGORY_GROUPS = ("categorical__", "flags__", "capped__")  # the ColumnTransformer's groups that encode categories


@dataclass(frozen=True, kw_only=True)
class ColumnRoles:
    numeric: list[str]
    categorical: list[str]
    capped: list[str] = field(default_factory=list)  # categorical columns with more levels than max_categories
    flags: list[str] = field(default_factory=list)  # boolean columns: never missing, encoded without an imputer

    @property
    def uncapped(self) -> list[str]:
        return [column for column in self.categorical if column not in self.capped and column not in self.flags]


@dataclass(frozen=True, kw_only=True)
class FeatureOutcome:
    train_rows: int
    test_rows: int
    input_features: int
    engineered_features: int
    classes: list[Any]


def outcome_of(metadata: dict[str, Any]) -> FeatureOutcome:
    """The step's outcome, as its feature metadata records it."""
    return FeatureOutcome(
        train_rows=metadata["rows"]["train"],
        test_rows=metadata["rows"]["test"],
        input_features=len(metadata["inputs"]),
        engineered_features=len(metadata["engineered_features"]),
        classes=metadata["classes"],
    )


def infer_column_roles(features: pd.DataFrame, max_categories: int = 0) -> ColumnRoles:
    """Numbers are numeric; strings, categories and booleans are categorical. A categorical column
    with more than ``max_categories`` distinct values (a key, free text) is capped."""
    numeric, categorical, capped, flags = [], [], [], []
    for column in features.columns:
        if is_numeric_feature(features[column]):
            numeric.append(str(column))
            continue
        categorical.append(str(column))
        if pd.api.types.is_bool_dtype(features[column]):  # SimpleImputer refuses bool arrays; they hold no nulls
            flags.append(str(column))
        elif max_categories and features[column].nunique() > max_categories:
            capped.append(str(column))
    return ColumnRoles(numeric=numeric, categorical=categorical, capped=capped, flags=flags)


def build_preprocessor(roles: ColumnRoles, settings: FeatureSettings) -> Pipeline:
    """Impute (median / most frequent), encode (unseen categories tolerated), optionally expand and select.

    A categorical column with more than ``max_categories`` levels (``roles.capped``: a key, free
    text) keeps at most that many, the rest, and levels seen in fewer than ``min_category_frequency``
    training rows, pooled into one "infrequent" level: it costs at most ``max_categories`` columns,
    not one per row. Other categorical columns encode every level (the cap's bookkeeping costs
    seconds per fit at a million rows, so it is paid only where it bounds memory).
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_selection import SelectKBest, f_classif
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, PolynomialFeatures

    def encoder(capped: bool) -> Any:
        caps = (
            {
                "max_categories": settings.max_categories or None,
                "min_frequency": settings.min_category_frequency or None,
            }
            if capped
            else {}
        )
        if settings.categorical_encoding == "onehot":
            # 0 and 1 are exact in float32: the encoder's own dense matrix is half the size (317 -> 159 MiB at
            # 800k rows), and stacked beside the float64 numbers the output is float64, the same values.
            return OneHotEncoder(
                handle_unknown="infrequent_if_exist" if capped else "ignore",
                sparse_output=False,
                dtype=np.float32,
                **caps,
            )
        return OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, **caps)

    def categorical(capped: bool) -> Pipeline:
        return Pipeline([("impute", SimpleImputer(strategy="most_frequent")), ("encode", encoder(capped))])

    groups: list[tuple[str, Any, list[str]]] = [
        ("numeric", SimpleImputer(strategy="median"), roles.numeric),
        ("categorical", categorical(False), roles.uncapped),
        ("flags", encoder(False), roles.flags),
        ("capped", categorical(True), roles.capped),
    ]
    columns = ColumnTransformer([group for group in groups if group[2]], verbose_feature_names_out=True)
    # First: None (how servers decode a JSON null in a text column) becomes NaN, the one missing
    # value the imputers know, so a served row is answered as at gate time (missing_values.as_nan).
    steps: list[tuple[str, Any]] = [
        ("missing", FunctionTransformer(as_nan, feature_names_out="one-to-one")),
        ("columns", columns),
    ]
    if settings.interaction_features or settings.polynomial_degree > 1:
        steps.append(
            (
                "expand",
                PolynomialFeatures(
                    degree=max(2, settings.polynomial_degree),
                    interaction_only=settings.polynomial_degree == 1,
                    include_bias=False,
                ),
            )
        )
    if settings.select_k_best:
        steps.append(("select", SelectKBest(f_classif, k=settings.select_k_best)))
    return Pipeline(steps)


def fit_preprocessor(preprocessor: Pipeline, roles: ColumnRoles, features: pd.DataFrame, labels: pd.Series) -> Pipeline:
    """Fit ``preprocessor`` on the training rows. The imputers and encoders are fitted from the columns'
    statistics, a column at a time (``data.fit_on_statistics``: the same fitted object), because
    ``ColumnTransformer.fit`` is a ``fit_transform`` that builds the whole dense engineered matrix only to drop it
    (409 MiB at 800k rows × 67 columns). SelectKBest, when set, scores that matrix: it is built once for it.
    Columns whose statistics do not say everything (nullable and categorical dtypes) are fitted on the rows."""
    selecting = "select" in preprocessor.named_steps
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*greater than n_features.*")  # reported below instead
        if not summarisable(features):
            preprocessor.fit(features, labels)
        else:
            statistics = column_statistics(features, roles.numeric, roles.categorical)
            prefix = preprocessor[:-1] if selecting else preprocessor
            fit_on_statistics(prefix, statistics, list(features.columns), len(features))
            if selecting:
                preprocessor.named_steps["select"].fit(prefix.transform(features), labels)
    if selecting:
        available = preprocessor.named_steps["select"].n_features_in_
        if preprocessor.named_steps["select"].k > available:
            raise ConfigError(
                f"parameter select_k_best={preprocessor.named_steps['select'].k}: only {available} engineered "
                "features exist"
            )
    return preprocessor


def check_class_counts(counts: pd.Series, target: str) -> None:
    """Every class needs two rows, one on each side of the split."""
    too_small = counts[counts < 2]
    if not too_small.empty:
        raise DataError(
            f"target column {target!r}: classes {json_safe(too_small.index.tolist()[:10])} have fewer than 2 rows, "
            "so a train/test split is impossible"
        )


def check_training_classes(counts: pd.Series, train_classes: Any, train_rows: int, rows: int, target: str) -> None:
    """A class absent from the training split cannot be learnt: that fails here. A test split short of a
    class (a tiny table) still trains: the model gate's minimum-evidence checks then block the run and
    say how many rows a decision needs."""
    absent = sorted(set(map(label_key, counts.index)) - set(map(label_key, train_classes)))
    if absent:
        raise DataError(
            f"the training split has no rows of class(es) {absent[:10]} of {target!r} ({train_rows} training rows of "
            f"{rows}); provide more rows of those classes"
        )


def split_dataset(
    frame: pd.DataFrame, target: str, split: SplitSettings, *, consume: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame, SplitRule]:
    """The stable split (``gated_training.data.split``): a row's side follows from a hash of its features
    (or of ``split_key``). Every class needs rows on both sides. With ``consume``, ``frame`` is emptied as its
    columns move to the splits (``_move_rows``): the batch is never held beside both splits."""
    counts = frame[target].value_counts()
    check_class_counts(counts, target)
    rule = rule_for(frame, target, split.test_size, split.split_key)
    in_test = in_test_split(frame, rule)
    rows = len(frame)
    if consume:
        train, test = _move_rows(frame, in_test)
    else:
        train, test = frame[~in_test].reset_index(drop=True), frame[in_test].reset_index(drop=True)
    check_training_classes(counts, train[target].unique(), len(train), rows, target)
    return train, test, rule


def _move_rows(frame: pd.DataFrame, in_test: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training and the test rows, in order, each split with a fresh index. The batch is consumed: its
    columns move to the two splits one at a time, so no more than one column is held twice (a frame read by
    ``data.read_parquet`` keeps each column in its own block, which is freed as it moves; the caller's frame is
    left without columns)."""
    if not frame.columns.is_unique:  # pop() needs unique names; the readers refuse duplicates before this
        train, test = frame[~in_test].reset_index(drop=True), frame[in_test].reset_index(drop=True)
        frame.drop(columns=frame.columns, inplace=True)
        return train, test
    positions = {False: np.flatnonzero(~in_test), True: np.flatnonzero(in_test)}
    sides: dict[bool, dict[Any, pd.Series]] = {False: {}, True: {}}
    for name in list(frame.columns):
        column = frame.pop(name)
        for test, rows in positions.items():
            sides[test][name] = column.take(rows).reset_index(drop=True)
        del column
    # copy=False keeps each column its own block: a consolidating constructor would stack them into a copy.
    return pd.DataFrame(sides[False], copy=False), pd.DataFrame(sides[True], copy=False)


def describe_preprocessor(
    preprocessor: Pipeline, roles: ColumnRoles, features: pd.DataFrame, encoding: str
) -> dict[str, Any]:
    from sklearn.pipeline import Pipeline

    columns: ColumnTransformer = preprocessor.named_steps["columns"]
    categories: dict[str, list[Any]] = {}
    for group, names in (("categorical", roles.uncapped), ("flags", roles.flags), ("capped", roles.capped)):
        if names:
            fitted = columns.named_transformers_[group]
            encoder = fitted.named_steps["encode"] if isinstance(fitted, Pipeline) else fitted
            categories.update(
                {col: json_safe(list(cats)[:MAX_LISTED_CATEGORIES]) for col, cats in zip(names, encoder.categories_)}
            )
    medians = (
        dict(zip(roles.numeric, json_safe(list(columns.named_transformers_["numeric"].statistics_))))
        if roles.numeric
        else {}
    )
    engineered = [str(n) for n in preprocessor.get_feature_names_out()]
    return {
        "inputs": [
            {
                "name": c,
                "dtype": str(features[c].dtype),
                "role": "numeric" if c in roles.numeric else "categorical",
                **({"capped": True} if c in roles.capped else {}),
            }
            for c in features.columns
        ],
        "engineered_features": engineered,
        # The engineered columns that hold category codes (ordinal and native encodings): categorical_encoding=native
        # has HistGradientBoosting split them as categories.
        "categorical_features": [n for n in engineered if encoding != "onehot" and n.startswith(CATEGORY_GROUPS)],
        "categories": categories,
        "numeric_medians": medians,
        "steps": [name for name, _ in preprocessor.steps],
    }


def split_record(
    *,
    target: str,
    classes: list[Any],
    train_counts: pd.Series,
    test_counts: pd.Series,
    rows: tuple[int, int],
    settings: tuple[FeatureSettings, SplitSettings],
    rule: SplitRule,
    dropped: list[str],
    scores: dict[str, float],
) -> dict[str, Any]:
    """What feature_metadata.json records of the split beside the preprocessor (either engine)."""
    return {
        "target": target,
        "classes": classes,
        "class_counts": {"train": json_safe(train_counts.to_dict()), "test": json_safe(test_counts.to_dict())},
        "rows": {"train": rows[0], "test": rows[1]},
        "settings": {"features": asdict(settings[0]), "split": asdict(settings[1])},
        "split": rule.to_json(),
        "dropped_columns": dropped,
        "single_feature_scores": scores,
    }


def ignored_columns(drift_report_path: str) -> list[str]:
    """New columns the drift gate's schema contract dropped (new_columns=ignore)."""
    if not drift_report_path:
        return []
    return list(json.loads(Path(drift_report_path).read_text()).get("ignored_columns") or [])


def engineer_features(
    *,
    dataset_path: str,
    target: str,
    feature_settings: FeatureSettings,
    split_settings: SplitSettings,
    train_out: str,
    test_out: str,
    preprocessor_out: str,
    metadata_out: str,
    drift_report_path: str = "",
    engine: str = "pandas",
    dataset_uri: str = "",
) -> FeatureOutcome:
    """Split the batch (stable hash split), fit the preprocessor on the training split only, and
    score each feature alone for leakage.

    Args:
        dataset_path: the validated batch (Parquet).
        target: the label column.
        feature_settings, split_settings: typed settings (``config``).
        train_out, test_out: where the raw training and test rows go (Parquet).
        preprocessor_out: the fitted, unfitted-estimator-free preprocessor (joblib).
        metadata_out: feature metadata JSON: inputs (the schema contract), categories, the split
            rule, single-feature scores.
        drift_report_path: the drift gate's record; its ``ignored_columns`` are dropped first.
        engine: ``pandas``, or ``spark``: the split, the preprocessor's statistics and the leakage sample
            computed in Spark (``spark.features``), the same preprocessor, splits and metadata.
        dataset_uri: where the batch is stored (the artifact's URI), which a SparkApplication on the cluster
            reads; ``dataset_path`` when empty.

    Returns:
        Row counts of both splits, input and engineered feature counts, and the classes.
    """
    require_choice("engine", engine, ENGINES)
    if engine == "spark":
        from gated_training import spark

        outcome = spark.remote.run_on_cluster(
            "engineer-features",
            {
                "dataset_path": dataset_uri or dataset_path,
                "target": target,
                "feature_settings": asdict(feature_settings),
                "split_settings": asdict(split_settings),
            },
            spark.StepFiles(
                inputs={"drift_report_path": drift_report_path},
                files={"preprocessor_out": preprocessor_out, "metadata_out": metadata_out},
                folders={"train_out": train_out, "test_out": test_out},
            ),
            record=metadata_out,
            build=outcome_of,
        )
        if outcome is not None:  # on the cluster: the split and the statistics are computed in a SparkApplication
            return outcome
        return _engineer_on_spark(
            dataset_path=dataset_path,
            target=target,
            feature_settings=feature_settings,
            split_settings=split_settings,
            train_out=train_out,
            test_out=test_out,
            preprocessor_out=preprocessor_out,
            metadata_out=metadata_out,
            drift_report_path=drift_report_path,
        )
    frame = read_parquet(dataset_path)
    split_features_target(frame, target)  # names the column if it is missing
    dropped = [column for column in ignored_columns(drift_report_path) if column in frame.columns]
    if dropped:
        frame = frame.drop(columns=dropped)
    classes = json_safe(sorted(frame[target].unique().tolist(), key=label_key))
    train, test, rule = split_dataset(frame, target, split_settings, consume=True)
    del frame  # emptied by the split
    x_train, y_train = split_features_target(train, target)
    roles = infer_column_roles(x_train, feature_settings.max_categories)
    preprocessor = fit_preprocessor(build_preprocessor(roles, feature_settings), roles, x_train, y_train)
    metadata = describe_preprocessor(preprocessor, roles, x_train, feature_settings.categorical_encoding)
    from gated_training.gate import single_feature_scores

    metadata.update(
        split_record(
            target=target,
            classes=classes,
            train_counts=y_train.value_counts(),
            test_counts=test[target].value_counts(),
            rows=(len(train), len(test)),
            settings=(feature_settings, split_settings),
            rule=rule,
            dropped=dropped,
            scores=single_feature_scores(train, test, target),
        )
    )
    write_parquet(train, train_out)
    write_parquet(test, test_out)
    joblib.dump(preprocessor, preprocessor_out)
    Path(metadata_out).write_text(json.dumps(metadata, indent=2))
    return outcome_of(metadata)


def _ordered_counts(rows: list[Any], key: str) -> pd.Series:
    """Class counts as ``value_counts`` lists them: most rows first (ties by label)."""
    counts = {row[key]: int(row["count"]) for row in rows if row[key] is not None}
    ordered = sorted(counts, key=lambda label: (-counts[label], label_key(label)))
    return pd.Series([counts[label] for label in ordered], index=pd.Index(ordered, dtype=object), dtype=np.int64)


def _select_on_spark(
    preprocessor: Pipeline,
    train: Any,
    dtypes: dict[str, str],
    target: str,
    classes: list[Any],
    feature_settings: FeatureSettings,
) -> None:
    """Fit the preprocessor's SelectKBest as the pandas engine's fit would: ANOVA F of every engineered feature
    over the training rows, from per-class counts, sums and sums of squares computed in Spark's workers
    (``spark.features.class_moments``); the same k best kept (scores within the last few bits of scikit-learn's,
    so only an exact tie could choose differently, and a tie is broken the same stable way)."""
    from gated_training.spark import features

    prefix, select = preprocessor[:-1], preprocessor.named_steps["select"]
    width = len(prefix.get_feature_names_out())
    if feature_settings.select_k_best > width:
        raise ConfigError(
            f"parameter select_k_best={feature_settings.select_k_best}: only {width} engineered features exist"
        )
    moments = features.class_moments(train, prefix.transform, dtypes, target, classes)
    scores, pvalues = features.anova_f(moments, width, len(classes))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # two placeholder rows: constant features; their scores are replaced
        select.fit(np.zeros((2, width)), np.array([0, 1]))
    select.scores_, select.pvalues_ = scores, pvalues


def _engineer_on_spark(
    *,
    dataset_path: str,
    target: str,
    feature_settings: FeatureSettings,
    split_settings: SplitSettings,
    train_out: str,
    test_out: str,
    preprocessor_out: str,
    metadata_out: str,
    drift_report_path: str,
) -> FeatureOutcome:
    """engineer_features on Spark: the same checks, split, fitted preprocessor, metadata and written splits
    (in the pandas engine's row order), with only statistics and a 20,000-row leakage sample per split on the
    driver (``spark.features``)."""
    from pyspark.sql import functions as F

    from gated_training import spark
    from gated_training.gate import SAMPLE_ROWS
    from gated_training.spark import features

    frame = spark.spark_session().read.parquet(spark.spark_path(dataset_path))
    if target not in frame.columns:
        raise DataError(f"target column {target!r} is not in the data (columns: {list(frame.columns)})")
    dropped = [column for column in ignored_columns(drift_report_path) if column in frame.columns]
    frame = frame.drop(*dropped)
    counts = _ordered_counts(frame.groupBy(target).count().collect(), target)
    classes = json_safe(sorted(counts.index.tolist(), key=label_key))
    check_class_counts(counts, target)
    rule = rule_for(frame, target, split_settings.test_size, split_settings.split_key)
    ordered = features.ordered_split(frame, rule)
    try:
        offsets = features.side_offsets(ordered)
        by_side = ordered.groupBy(features.IN_TEST, target).count().collect()
        train_counts = _ordered_counts([r for r in by_side if not r[features.IN_TEST]], target)
        test_counts = _ordered_counts([r for r in by_side if r[features.IN_TEST]], target)
        train_rows, test_rows = int(train_counts.sum()), int(test_counts.sum())
        check_training_classes(counts, train_counts.index, train_rows, train_rows + test_rows, target)

        nulls_row = frame.agg(
            *[F.count(F.when(F.col(f"`{c}`").isNull(), 1)).alias(c) for c in frame.columns]
        ).collect()[0]
        dtypes = features.pandas_dtypes(frame, {c: int(nulls_row[c]) for c in frame.columns})
        inputs = [c for c in frame.columns if c != target]
        numeric = [c for c in inputs if dtypes[c].startswith(("int", "float"))]
        categorical = [c for c in inputs if c not in numeric]
        train = features.side(ordered, False)
        statistics = features.column_statistics(train, numeric, categorical, dtypes)
        levels = {s.name: len(s.levels) for s in statistics}
        flags = [c for c in categorical if dtypes[c] == "bool"]
        cap = feature_settings.max_categories
        roles = ColumnRoles(
            numeric=numeric,
            categorical=categorical,
            capped=[c for c in categorical if c not in flags and cap and levels[c] > cap],
            flags=flags,
        )
        preprocessor = build_preprocessor(roles, feature_settings)
        selecting = bool(feature_settings.select_k_best)
        # SelectKBest is fitted below from per-class sums of the engineered rows; the steps before it (the same
        # objects: a Pipeline slice shares them) from the columns' statistics.
        fit_on_statistics(preprocessor[:-1] if selecting else preprocessor, statistics, inputs, train_rows)
        if selecting:
            _select_on_spark(preprocessor, features.side(ordered, False), dtypes, target, classes, feature_settings)
        described = statistics_frame(statistics, inputs)

        def sample(test: bool, rows: int) -> pd.DataFrame:
            positions = (
                np.arange(rows)
                if rows <= SAMPLE_ROWS
                else pd.Series(np.arange(rows)).sample(SAMPLE_ROWS, random_state=0).to_numpy()
            )
            return features.rows_at(ordered, offsets, test, positions).astype(dtypes)

        metadata = describe_preprocessor(preprocessor, roles, described, feature_settings.categorical_encoding)
        from gated_training.gate import single_feature_scores

        metadata.update(
            split_record(
                target=target,
                classes=classes,
                train_counts=train_counts,
                test_counts=test_counts,
                rows=(train_rows, test_rows),
                settings=(feature_settings, split_settings),
                rule=rule,
                dropped=dropped,
                scores=single_feature_scores(sample(False, train_rows), sample(True, test_rows), target),
            )
        )
        features.side(ordered, False).write.mode("overwrite").parquet(spark.spark_path(train_out))
        features.side(ordered, True).write.mode("overwrite").parquet(spark.spark_path(test_out))
    finally:
        ordered.unpersist()
    joblib.dump(preprocessor, preprocessor_out)
    Path(metadata_out).write_text(json.dumps(metadata, indent=2))
    return outcome_of(metadata)
