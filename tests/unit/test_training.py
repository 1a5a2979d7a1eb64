import json
from typing import Any

import joblib
import mlflow
import numpy as np
import pandas as pd
import pytest

from gated_training.config import ModelSettings
from gated_training.data.split import in_test_split, rule_for
from gated_training.errors import DataError, TrackingError
from gated_training.steps.train_model import cross_validation_rows
from gated_training.tracking.runs import global_uris
from tests.builders import train_candidate
from tests.conftest import synthetic_frame


@pytest.fixture(scope="module")
def forest(tmp_path_factory):
    return train_candidate(tmp_path_factory.mktemp("forest"), synthetic_frame(500, seed=3))


def test_the_model_is_one_pipeline_from_raw_rows_to_predictions(forest):
    model = joblib.load(forest.path("model.joblib"))
    assert [name for name, _ in model.steps] == ["preprocess", "model"]
    raw = pd.read_parquet(forest.path("test.parquet")).drop(columns="label")
    assert len(model.predict(raw)) == len(raw)


def test_metrics_cover_cv_train_test_and_overfit_gap(forest):
    report = json.loads(open(forest.path("training.json")).read())
    assert report["cv_accuracy_mean"] > 0.7 and report["cv_accuracy_std"] >= 0
    assert set(report["test"]) == {"accuracy", "balanced_accuracy", "f1", "roc_auc", "brier"}
    assert report["overfit_gap"] == pytest.approx(report["train"]["accuracy"] - report["test"]["accuracy"])


def test_mlflow_run_has_params_metrics_tags_importances_and_model(forest):
    client = mlflow.MlflowClient(tracking_uri=forest.tracking_uri)
    run = client.get_run(forest.training.mlflow_run_id)
    assert run.data.params["n_estimators"] == "30" and run.data.params["estimator"] == "random_forest"
    assert run.data.params["features.categorical_encoding"] == "onehot"
    assert {
        "cv_accuracy_mean",
        "cv_accuracy_std",
        "train_accuracy",
        "test_accuracy",
        "test_f1",
        "test_roc_auc",
        "overfit_gap",
    } <= set(run.data.metrics)
    assert not any(name.startswith("importance") for name in run.data.metrics)  # one artifact, not a metric each
    assert run.data.tags["data_sha256"] == "f" * 64 and run.data.tags["kfp_run_id"] == "kfp-run-1"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"feature_importances.json", "feature_metadata.json"} <= artifacts
    with global_uris(forest.tracking_uri):  # models:/m-<id> resolves through mlflow's global URIs
        logged = mlflow.models.get_model_info(forest.training.mlflow_model_uri)
        loaded = mlflow.pyfunc.load_model(forest.training.mlflow_model_uri)  # our code + skops, our trusted types
    assert logged.signature is not None and logged.saved_input_example_info is not None
    # Typed from the feature metadata: numeric features double, every feature required.
    metadata = json.loads(open(forest.path("meta.json")).read())
    inputs = {spec.name: spec for spec in logged.signature.inputs.inputs}
    assert set(inputs) == {column["name"] for column in metadata["inputs"]}
    assert all(spec.required for spec in inputs.values())
    for column in metadata["inputs"]:
        assert inputs[column["name"]].type.name == (
            "double" if column["role"] == "numeric" else "boolean" if column["dtype"] == "bool" else "string"
        ), column
    raw = pd.read_parquet(forest.path("test.parquet")).drop(columns="label")
    fitted = joblib.load(forest.path("model.joblib"))
    answer = loaded.predict(raw.head(5))
    assert list(answer["label"]) == list(fitted.predict(raw.head(5)))
    probabilities = answer[[f"probability.{c}" for c in fitted.classes_]].to_numpy()
    assert probabilities == pytest.approx(fitted.predict_proba(raw.head(5)))
    run = client.get_run(forest.training.mlflow_run_id)
    assert run.info.run_name.startswith("random_forest-data-ffffffff-")
    (dataset,) = run.inputs.dataset_inputs
    assert dataset.dataset.digest == "f" * 32 and "label" in dataset.dataset.schema


def test_importances_are_ranked(forest):
    importances = json.loads(open(forest.path("importances.json")).read())
    values = [item["importance"] for item in importances]
    assert values == sorted(values, reverse=True) and importances[0]["kind"] == "impurity"


def test_hist_gradient_boosting_multiclass_string_labels(tmp_path):
    outputs = train_candidate(
        tmp_path,
        synthetic_frame(600, seed=4, classes=("low", "mid", "high")),
        settings=ModelSettings(estimator="hist_gradient_boosting", n_estimators=40, cv_folds=3),
    )
    model = joblib.load(outputs.path("model.joblib"))
    assert sorted(model.classes_) == ["high", "low", "mid"]
    assert outputs.training.test["accuracy"] > 0.6 and outputs.training.test["roc_auc"] is not None
    importances = json.loads(open(outputs.path("importances.json")).read())
    assert {item["feature"] for item in importances} == {"x1", "x2", "colour", "flag"}
    assert importances[0]["kind"] == "permutation"


def test_above_cv_max_rows_cross_validation_uses_a_stratified_sample_and_records_it(tmp_path, forest):
    settings = ModelSettings(n_estimators=30, cv_folds=3, cv_max_rows=150)
    sampled = train_candidate(tmp_path, synthetic_frame(500, seed=3), settings=settings)
    train_rows = len(pd.read_parquet(forest.path("train.parquet")))
    assert (
        sampled.training.cv_rows == 150 and forest.training.cv_rows == train_rows
    )  # the forest's whole training split
    assert sampled.training.cv_accuracy_mean != forest.training.cv_accuracy_mean
    # The final model is the same: it is fitted on the whole split either way. The forest's
    # threads add up tree probabilities in any order, so ROC AUC may differ in the last bit.
    assert sampled.training.test == pytest.approx(forest.training.test, rel=1e-12, abs=0)
    assert sampled.training.train == pytest.approx(forest.training.train, rel=1e-12, abs=0)
    run = mlflow.MlflowClient(tracking_uri=sampled.tracking_uri).get_run(sampled.training.mlflow_run_id)
    assert run.data.params["cv_rows"] == "150" and run.data.params["cv_max_rows"] == "150"
    x = pd.read_parquet(sampled.path("train.parquet")).drop(columns="label")
    y = pd.read_parquet(sampled.path("train.parquet"))["label"]
    sample_x, sample_y = cross_validation_rows(x, y, settings)
    shares = (sample_y.value_counts(normalize=True) - y.value_counts(normalize=True)).abs()
    assert len(sample_x) == 150 and shares.max() < 0.01  # stratified: the class balance is kept


def test_too_few_rows_of_a_class_for_the_folds_names_the_parameters(tmp_path):
    frame = synthetic_frame(300, seed=1)
    in_test = in_test_split(frame, rule_for(frame, "label", 0.2))  # the label is not hashed: sides stay put
    frame["label"] = 0
    ones = [frame.index[in_test][0], *frame.index[~in_test][:2]]
    frame.loc[ones, "label"] = 1  # three rows of class 1: two in the training split, one in the test split
    with pytest.raises(
        DataError,
        match=rf"cv_folds=3 needs at least that many training rows per class; "
        rf"the smallest class among the {int((~in_test).sum())} cross-validation rows "
        rf"has 2",
    ):
        train_candidate(tmp_path, frame)


def test_unreachable_tracking_server_fails_before_training_and_names_it(tmp_path, monkeypatch):
    from gated_training.steps import train_model as step

    trained = []
    monkeypatch.setattr(step, "cross_validate_accuracy", lambda *args: trained.append("cv"))
    monkeypatch.setattr(step, "fit_lean", lambda *args: trained.append("fit"))
    dead = "http://127.0.0.1:9"  # discard port: nothing listens
    with pytest.raises(TrackingError, match=r"MLflow at http://127\.0\.0\.1:9: opening experiment 'tests' failed"):
        train_candidate(tmp_path, synthetic_frame(200), tracking_uri=dead)
    assert not (tmp_path / "model.joblib").exists() and trained == []


def test_mlflows_client_comes_after_the_fit_when_the_store_answers_the_probe(tmp_path, monkeypatch):
    """The MLflow client (its import and store, ~116 MiB on SQLite) is not resident through the fit: the probe
    reads the experiment; a new experiment is created after the fit, an existing one is never asked again."""
    from gated_training.steps import train_model as step
    from gated_training.tracking import runs

    order: list[str] = []
    fit_lean, ensure = step.fit_lean, runs.ensure_experiment
    monkeypatch.setattr(step, "fit_lean", lambda *args: (order.append("fit"), fit_lean(*args))[1])
    monkeypatch.setattr(runs, "ensure_experiment", lambda *args: (order.append("mlflow"), ensure(*args))[1])
    first = train_candidate(tmp_path / "first", synthetic_frame(200))
    assert order == ["fit", "mlflow"]  # the store's file did not exist: MLflow made it, after the fit
    order.clear()
    store = f"sqlite:///{tmp_path / 'first' / 'mlflow.db'}"
    again = train_candidate(tmp_path / "again", synthetic_frame(200), tracking_uri=store)
    assert order == ["fit"]  # the probe read the experiment's id from the file
    runs_in = mlflow.MlflowClient(store).search_runs(
        [mlflow.MlflowClient(store).get_experiment_by_name("tests").experiment_id]
    )
    assert {r.info.run_id for r in runs_in} == {first.training.mlflow_run_id, again.training.mlflow_run_id}


def test_tracking_uri_falls_back_to_the_environment_then_sqlite(monkeypatch, tmp_path):
    from gated_training.tracking.runs import DEFAULT_TRACKING_URI, resolve_tracking_uri

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert resolve_tracking_uri("") == "http://mlflow.example:5000"
    assert resolve_tracking_uri("https://explicit") == "https://explicit"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert resolve_tracking_uri("") == DEFAULT_TRACKING_URI
    assert (tmp_path / ".gated-training").is_dir()  # the SQLite file's folder is created


def test_drift_metrics_for_mlflow_skip_infinite_psi_and_sanitise_names():
    from gated_training.steps.train_model import drift_metrics

    report = {
        "drifted_share": 0.5,
        "max_psi": float("inf"),
        "features": [{"feature": "credit amount (€)", "psi": 0.31}, {"feature": "gone", "psi": float("inf")}],
    }
    assert drift_metrics({"report": report}) == {"drift_drifted_share": 0.5, "drift_psi.credit_amount____": 0.31}
    assert drift_metrics({"report": None}) == {} and drift_metrics(None) == {}


@pytest.mark.parametrize("preset", [None, "http://mlflow.team.example:5000"], ids=["unset", "set"])
def test_training_and_the_mirror_leave_mlflow_uris_as_they_found_them(tmp_path, monkeypatch, preset):
    """mlflow.set_tracking_uri writes MLFLOW_TRACKING_URI into os.environ; in-process callers (the CLI's
    promote, rollback and sync-mlflow, the tests) must not inherit a server that may be gone."""
    import os

    from mlflow.tracking._tracking_service import utils as tracking_utils

    from gated_training.tracking.runs import mirror_to_mlflow

    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)
    if preset:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", preset)
    monkeypatch.setattr(tracking_utils, "_tracking_uri", None)
    trained = train_candidate(tmp_path, synthetic_frame(150), settings=ModelSettings(n_estimators=5, cv_folds=2))
    version, state = mirror_to_mlflow(
        trained.tracking_uri, "m", trained.training.mlflow_model_uri, trained.training.mlflow_run_id, "v-1"
    )
    assert (version, state) == ("1", "synced")
    assert os.environ.get("MLFLOW_TRACKING_URI") == preset and "MLFLOW_REGISTRY_URI" not in os.environ
    assert tracking_utils._tracking_uri is None  # mlflow's own default again, not our run's store
    if preset:
        assert mlflow.get_tracking_uri() == preset


def fitted_state(model: Any) -> dict[str, bytes]:
    """Each attribute of a fitted estimator, pickled: equal when every array, tree node and number is, whichever
    objects the fit happened to share between attributes."""
    import pickle

    return {name: pickle.dumps(value) for name, value in vars(model).items()}


@pytest.mark.parametrize("rows", [3_000, 14_000])
def test_the_lean_fit_trains_the_same_model_as_a_plain_pipeline_fit(tmp_path, rows, monkeypatch):
    """Above 10k rows HistGradientBoosting holds rows out for early stopping. train-model transforms the
    fit rows and the hold-out apart, in chunks, and hands both to fit: the same rows, the same seed, so the
    same model as ``Pipeline.fit`` on the whole split, bit for bit (below 10k: one part, no hold-out)."""
    from sklearn.base import clone
    from sklearn.pipeline import Pipeline

    from gated_training import histogram_fit
    from gated_training.steps import train_model as step

    monkeypatch.setattr(step, "TRANSFORM_CHUNK_ROWS", 1_000)  # several chunks, a short last one
    binned: list[int] = []
    fit_from_chunks = histogram_fit.fit_from_chunks
    monkeypatch.setattr(histogram_fit, "fit_from_chunks", lambda *a: (binned.append(len(a[2])), fit_from_chunks(*a))[1])
    settings = ModelSettings(estimator="hist_gradient_boosting", n_estimators=40, cv_folds=3, random_state=11)
    outputs = train_candidate(tmp_path, synthetic_frame(rows, seed=8), settings=settings)
    assert binned == [2 if rows > step.EARLY_STOPPING_MIN_ROWS else 1]  # binned from the file's batches
    lean = joblib.load(outputs.path("model.joblib"))
    train = pd.read_parquet(outputs.path("train.parquet"))
    x, y = train.drop(columns="label"), train["label"]
    plain = Pipeline(
        [("preprocess", joblib.load(outputs.path("pre.joblib"))), ("model", step.build_estimator(settings))]
    )
    plain.fit(x, y)
    held_out = step.early_stopping_rows(clone(plain.named_steps["model"]), y)
    assert (held_out is not None) == (rows > step.EARLY_STOPPING_MIN_ROWS)
    assert lean.named_steps["model"].n_iter_ == plain.named_steps["model"].n_iter_
    assert lean.named_steps["model"].get_params()["early_stopping"] == "auto"  # restored after the fit
    test = pd.read_parquet(outputs.path("test.parquet")).drop(columns="label")
    assert (lean.predict_proba(test) == plain.predict_proba(test)).all()
    assert fitted_state(lean.named_steps["model"]) == fitted_state(plain.named_steps["model"])  # byte for byte
    # Every training row scored once: the report's train accuracy is the plain model's on the whole split.
    assert outputs.training.train["accuracy"] == pytest.approx((plain.predict(x) == y).mean(), abs=1e-12)


@pytest.mark.parametrize("fails_in", ["the first read", "the sample pass", "the binning pass"])
def test_batches_that_differ_mid_fit_fall_back_to_the_matrices_and_the_same_model(tmp_path, monkeypatch, fails_in):
    """HistGradientBoosting is binned from the file's batches; when a batch reads with other dtypes (the file is
    read once to size the rows, then twice inside the fit), train-model fits from the split read whole instead:
    the estimator left by the interrupted fit is fitted again, and the model and scores are the ones the binned
    fit gives."""
    from gated_training.steps import train_model as step

    monkeypatch.setattr(step, "TRANSFORM_CHUNK_ROWS", 1_000)
    settings = ModelSettings(estimator="hist_gradient_boosting", n_estimators=20, cv_folds=2, random_state=4)
    frame = synthetic_frame(14_000, seed=9)  # above 10k training rows: a hold-out
    binned = train_candidate(tmp_path / "binned", frame, settings=settings)

    calls = {"the first read": 1, "the sample pass": 2, "the binning pass": 3}[fails_in]
    made = step.transformed_batches

    def differing(*args):
        batches, seen = made(*args), []

        def read(keep=None):
            seen.append(keep)
            for index, batch in enumerate(batches(keep)):
                if len(seen) == calls and index == min(calls - 1, 1):  # the first read takes one batch
                    raise step.BatchesDiffer("a batch read with other dtypes")
                yield batch

        return read

    monkeypatch.setattr(step, "transformed_batches", differing)
    fitted: list[int] = []
    fit_lean = step.fit_lean
    monkeypatch.setattr(
        step, "fit_lean", lambda estimator, parts: (fitted.append(len(parts)), fit_lean(estimator, parts))[1]
    )
    whole = train_candidate(tmp_path / "whole", frame, settings=settings)
    assert fitted == [2]  # fitted again from the matrices: the fit rows and the hold-out
    ours, theirs = (joblib.load(o.path("model.joblib")).named_steps["model"] for o in (binned, whole))
    assert "_bin_data" not in theirs.__dict__ and fitted_state(ours) == fitted_state(theirs)
    assert binned.training.train == whole.training.train and binned.training.test == whole.training.test


@pytest.mark.parametrize("estimator", ["random_forest", "xgboost"])
def test_a_forest_and_boosted_trees_train_on_a_float32_matrix_and_are_the_same_model(tmp_path, estimator, monkeypatch):
    """A random forest and BoostedTrees convert their training matrix to float32 themselves: train-model
    transforms straight into float32 (no float64 matrix beside their copy), and the model is the one
    ``Pipeline.fit`` on the raw rows gives: the same trees, the same probabilities."""

    import numpy as np
    from sklearn.pipeline import Pipeline

    from gated_training.steps import train_model as step

    monkeypatch.setattr(step, "TRANSFORM_CHUNK_ROWS", 700)  # several chunks, a short last one
    settings = ModelSettings(estimator=estimator, n_estimators=12, max_depth=6, cv_folds=2, random_state=5)
    assert step.training_dtype(step.build_estimator(settings)) == np.float32
    assert step.training_dtype(step.build_estimator(ModelSettings(estimator="hist_gradient_boosting"))) is None
    outputs = train_candidate(tmp_path, synthetic_frame(3_000, seed=4), settings=settings)
    lean = joblib.load(outputs.path("model.joblib"))
    train = pd.read_parquet(outputs.path("train.parquet"))
    x, y = train.drop(columns="label"), train["label"]
    plain = Pipeline(
        [("preprocess", joblib.load(outputs.path("pre.joblib"))), ("model", step.build_estimator(settings))]
    ).fit(x, y)
    test = pd.read_parquet(outputs.path("test.parquet")).drop(columns="label")
    # A forest adds its trees' probabilities in whatever order its threads finish: equal to the last few bits.
    np.testing.assert_allclose(lean.predict_proba(test), plain.predict_proba(test), rtol=1e-12, atol=1e-15)
    if estimator == "xgboost":
        assert lean.named_steps["model"].booster_raw_ == plain.named_steps["model"].booster_raw_
    else:
        pairs = zip(lean.named_steps["model"].estimators_, plain.named_steps["model"].estimators_, strict=True)
        for ours, theirs in pairs:  # every node: feature, threshold, children, impurity, samples; every leaf's value
            state, expected = ours.tree_.__getstate__(), theirs.tree_.__getstate__()
            assert state.keys() == expected.keys()
            assert all(np.array_equal(state[key], expected[key]) for key in state)
    assert outputs.training.train["accuracy"] == pytest.approx((plain.predict(x) == y).mean(), abs=1e-12)


def test_boosted_trees_frees_its_training_matrix_before_the_boosting_rounds(monkeypatch):
    """``fit_consuming`` pops the one part it is given: once XGBoost's quantile matrix is built nothing holds the
    engineered matrix (float32 or not) while the booster trains, and the booster is ``fit``'s, byte for byte."""
    import weakref

    import xgboost

    from gated_training.boosted import BoostedTrees

    rng = np.random.default_rng(3)
    y = np.where(rng.random(2_000) < 0.4, "bad", "good")
    seen: list[bool] = []
    train = xgboost.train
    monkeypatch.setattr(xgboost, "train", lambda *a, **k: (seen.append(alive() is None), train(*a, **k))[1])
    for dtype in (np.float32, np.float64):
        x = rng.random((2_000, 6)).astype(dtype)
        x[:, 0] += (y == "bad") * 0.5
        alive, parts = weakref.ref(x), [(x, y)]
        expected = BoostedTrees(n_estimators=5, max_depth=3).fit(x.copy(), y).booster_raw_
        assert seen[-1] is False  # the test can fail: here the matrix is alive
        del x
        model = BoostedTrees(n_estimators=5, max_depth=3).fit_consuming(parts)
        assert parts == [] and seen[-1] is True, "the matrix was still alive when the boosting rounds began"
        assert model.booster_raw_ == expected and model.n_features_in_ == 6


def test_xgboost_scores_its_training_rows_from_a_new_transform_the_same_from_the_file_or_the_frame(
    tmp_path, monkeypatch
):
    """train-model with XGBoost lets the booster free the matrix, then transforms the training split again, a
    chunk at a time, to score it: from the file's batches, or from the split read whole when its batches had
    other dtypes. Both give the training scores of the model's own predictions on the raw rows."""
    from gated_training.steps import train_model as step

    monkeypatch.setattr(step, "TRANSFORM_CHUNK_ROWS", 700)
    settings = ModelSettings(estimator="xgboost", n_estimators=8, max_depth=3, cv_folds=2)
    sources: list[bool] = []
    batches = step.training_batches
    monkeypatch.setattr(step, "training_batches", lambda *a, **k: (sources.append(k["streamed"]), batches(*a, **k))[1])
    frame = synthetic_frame(3_000, seed=6)
    streamed = train_candidate(tmp_path / "streamed", frame, settings=settings)
    monkeypatch.setattr(step, "streamed_rows", lambda *args: None)
    whole = train_candidate(tmp_path / "whole", frame, settings=settings)
    assert sources == [True, False]
    train = pd.read_parquet(streamed.path("train.parquet"))
    model = joblib.load(streamed.path("model.joblib"))
    assert streamed.training.train == whole.training.train
    assert streamed.training.train["accuracy"] == pytest.approx(
        (model.predict(train.drop(columns="label")) == train["label"]).mean(), abs=1e-12
    )


def test_the_training_rows_are_transformed_from_the_file_a_batch_at_a_time_into_each_part(tmp_path, monkeypatch):
    """train-model frees the raw training rows and reads the split again a batch at a time: each part (the fit
    rows, the early-stopping hold-out, in their shuffled order) gets exactly the rows the whole frame's
    transform gives, in the estimator's dtype; a file whose batches read with other dtypes is refused (None)."""
    import numpy as np

    from gated_training.steps import train_model as step

    monkeypatch.setattr(step, "TRANSFORM_CHUNK_ROWS", 700)
    outputs = train_candidate(tmp_path, synthetic_frame(3_000, seed=2), settings=ModelSettings(n_estimators=3))
    train = pd.read_parquet(outputs.path("train.parquet"))
    x = train.drop(columns="label")
    preprocessor = joblib.load(outputs.path("pre.joblib"))
    shuffled = np.random.default_rng(0).permutation(len(x))
    row_sets = [shuffled[:2_000], shuffled[2_000:]]
    for dtype in (None, np.float32):
        streamed = step.streamed_rows(preprocessor, outputs.path("train.parquet"), "label", x.dtypes, row_sets, dtype)
        assert streamed is not None and len(streamed) == 2
        for matrix, rows in zip(streamed, row_sets):
            expected = step.transformed_rows(preprocessor, x, rows, dtype)
            assert matrix.dtype == expected.dtype and np.array_equal(matrix, expected, equal_nan=True)
    other = x.dtypes.copy()
    other.iloc[0] = np.dtype("float32")
    assert step.streamed_rows(preprocessor, outputs.path("train.parquet"), "label", other, row_sets) is None


def test_native_categories_are_split_as_categories_and_unseen_ones_as_missing(tmp_path):
    """categorical_encoding=native: ordinal codes that HistGradientBoosting splits as categories, a third of
    one-hot's width on the bench's table; engineer-features lists the code columns, train-model marks them."""
    from gated_training.config import FeatureSettings, SplitSettings
    from gated_training.steps.engineer_features import engineer_features

    frame = synthetic_frame(800, seed=5)
    frame.to_parquet(tmp_path / "data.parquet", index=False)
    outs = {name: str(tmp_path / name) for name in ("train.parquet", "test.parquet", "pre.joblib", "meta.json")}
    engineer_features(
        dataset_path=str(tmp_path / "data.parquet"),
        target="label",
        feature_settings=FeatureSettings(categorical_encoding="native"),
        split_settings=SplitSettings(),
        train_out=outs["train.parquet"],
        test_out=outs["test.parquet"],
        preprocessor_out=outs["pre.joblib"],
        metadata_out=outs["meta.json"],
    )
    metadata = json.loads(open(outs["meta.json"]).read())
    assert metadata["categorical_features"] == ["categorical__colour", "flags__flag"]
    assert metadata["engineered_features"] == ["numeric__x1", "numeric__x2", "categorical__colour", "flags__flag"]
    from gated_training.steps.train_model import build_estimator, native_categories

    mask = native_categories(metadata)
    assert mask == [False, False, True, True]
    settings = ModelSettings(estimator="hist_gradient_boosting", n_estimators=20)
    pipeline_settings = build_estimator(settings, mask)
    assert list(pipeline_settings.categorical_features) == mask
    assert (
        build_estimator(settings, native_categories({**metadata, "settings": {"features": {}}})).get_params()[
            "categorical_features"
        ]
        is None
    )  # onehot and ordinal: every column a number
    from sklearn.pipeline import Pipeline

    train = pd.read_parquet(outs["train.parquet"])
    model = Pipeline([("preprocess", joblib.load(outs["pre.joblib"])), ("model", pipeline_settings)])
    model.fit(train.drop(columns="label"), train["label"])
    assert model.named_steps["model"].is_categorical_.tolist() == mask
    unseen = pd.DataFrame({"x1": [0.1], "x2": [1.0], "colour": ["never-seen"], "flag": [True]})
    assert model.named_steps["preprocess"].transform(unseen)[0, 2] == -1  # a negative code: HGB's missing bin
    proba = model.predict_proba(unseen)
    assert proba.shape == (1, 2) and np.isfinite(proba).all() and proba.sum() == pytest.approx(1)


@pytest.mark.parametrize("encoding", ["onehot", "native"])
def test_xgboost_multiclass_string_labels_is_one_pipeline_mlflow_loads_with_one_trusted_type(tmp_path, encoding):
    import pickle

    import skops.io

    from gated_training.boosted import BoostedTrees
    from gated_training.config import FeatureSettings

    outputs = train_candidate(
        tmp_path,
        synthetic_frame(600, seed=4, classes=("low", "mid", "high")),
        settings=ModelSettings(estimator="xgboost", n_estimators=30, max_depth=3, cv_folds=3),
        features=FeatureSettings(categorical_encoding=encoding),
    )
    model = joblib.load(outputs.path("model.joblib"))
    booster = model.named_steps["model"]
    assert isinstance(booster, BoostedTrees) and list(booster.classes_) == ["high", "low", "mid"]
    assert (booster.categorical is not None) == (encoding == "native")
    assert outputs.training.test["accuracy"] > 0.6 and outputs.training.test["roc_auc"] is not None
    raw = pd.read_parquet(outputs.path("test.parquet")).drop(columns="label")
    proba = model.predict_proba(raw)
    assert proba.shape == (len(raw), 3) and np.allclose(proba.sum(axis=1), 1.0)
    assert list(model.predict(raw)) == list(booster.classes_[proba.argmax(axis=1)])
    # The pickle holds the booster's own bytes, never an XGBoost object, and skops trusts one type of ours.
    state = booster.__getstate__()
    assert isinstance(state["booster_raw_"], bytes) and "_booster" not in state
    assert not any("xgboost" in repr(type(value)) for value in state.values())
    assert "gated_training.boosted.BoostedTrees" in skops.io.get_untrusted_types(data=skops.io.dumps(model))
    assert not any("xgboost" in name for name in skops.io.get_untrusted_types(data=skops.io.dumps(model)))
    assert np.array_equal(pickle.loads(pickle.dumps(model)).predict_proba(raw), proba)
    importances = json.loads(open(outputs.path("importances.json")).read())
    assert importances[0]["kind"] == "impurity" and sum(item["importance"] for item in importances) == pytest.approx(1)
    client = mlflow.MlflowClient(tracking_uri=outputs.tracking_uri)
    with global_uris(outputs.tracking_uri):
        loaded = mlflow.pyfunc.load_model(outputs.training.mlflow_model_uri)  # ships boosted.py; skops, trusted
        requirements = mlflow.pyfunc.get_model_dependencies(outputs.training.mlflow_model_uri)
    answer = loaded.predict(raw.head(5))
    assert list(answer["label"]) == list(model.predict(raw.head(5)))
    assert any(line.startswith("xgboost-cpu==") for line in open(requirements).read().splitlines())
    assert client.get_run(outputs.training.mlflow_run_id).data.params["estimator"] == "xgboost"


def test_boosted_trees_refuses_one_class_and_a_wrong_width():
    from gated_training.boosted import BoostedTrees

    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    with pytest.raises(ValueError, match="at least two classes; the labels hold 1"):
        BoostedTrees(n_estimators=2).fit(x, ["a"] * 10)
    model = BoostedTrees(n_estimators=2).fit(x, ["a", "b"] * 5)
    with pytest.raises(ValueError, match=r"expected 2 engineered columns, got shape \(10, 3\)"):
        model.predict(np.zeros((10, 3)))
    assert model.predict_proba(np.zeros((0, 2))).shape == (0, 2)


def _training_record() -> dict:
    return {
        "mlflow_run_id": "abc",
        "mlflow_model_uri": "models:/m-abc",
        "tracking_uri": "http://mlflow:5000",
        "cv_accuracy_mean": 0.8,
        "cv_accuracy_std": 0.01,
        "cv_rows": 800,
        "train": {"accuracy": 0.9, "roc_auc": None},
        "test": {"accuracy": 0.8},
        "overfit_gap": 0.1,
        "pair_feature_scores": [],
        "pair_scored_rows": 200,
    }


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"extra": 1}, r"fields \['extra'\] differ"),
        ({"cv_accuracy_mean": "0.8"}, "cv_accuracy_mean: '0.8' is not a finite number"),
        ({"overfit_gap": float("nan")}, "overfit_gap: nan is not a finite number"),
        ({"test": {"accuracy": True}}, "test.accuracy: True is not a finite number"),
        ({"train": [0.9]}, "train: not an object of named scores"),
        ({"mlflow_model_uri": ""}, "mlflow_model_uri: not a non-empty text"),
        ({"cv_rows": 0}, "cv_rows: 0 is not a count of rows"),
        ({"pair_feature_scores": "x"}, "pair_feature_scores: not a list of objects"),
    ],
)
def test_a_training_report_from_a_spark_driver_is_built_only_from_its_own_shape(change, words):
    from gated_training.steps.train_model import outcome_from_record

    assert outcome_from_record(_training_record()).cv_rows == 800
    with pytest.raises(ValueError, match=words):
        outcome_from_record({**_training_record(), **change})


@pytest.mark.parametrize(
    ("training", "words"),
    [
        ({}, "parameter estimator=random_forest: engine=spark trains estimator=xgboost"),
        ({"estimator": "xgboost", "cv_max_rows": 0}, "parameter cv_max_rows=0: engine=spark cross-validates"),
    ],
)
def test_the_run_form_refuses_what_spark_does_not_train_before_the_first_step(training, words):
    from gated_training.config import ConfigError as FormError
    from gated_training.kubeflow.parameters import validate

    base = {"data_uri": "data.csv", "target_column": "risk", "engine": "spark", "training": training}
    with pytest.raises(FormError, match=words):
        validate(base)
    assert validate({**base, "training": {"estimator": "xgboost"}})["training"]["estimator"] == "xgboost"
    validate({**base, "engine": "pandas"})  # the pandas engine trains every estimator, cv_max_rows=0 included
    assert validate({**base, "engine": "pandas", "training": {}})["training"]["estimator"] == "random_forest"
