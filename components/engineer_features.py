from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from components.image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def engineer_features(
    dataset: Input[Dataset],
    target_column: str,
    test_size: float,
    random_state: int,
    categorical_encoding: str,
    interaction_features: bool,
    polynomial_degree: int,
    select_k_best: int,
    train_data: Output[Dataset],
    test_data: Output[Dataset],
    preprocessor: Output[Model],
    feature_metadata: Output[Artifact],
):
    """Split (stratified, deterministic), then fit the preprocessing pipeline on the training split only."""
    from gated_training.config import FeatureSettings, SplitSettings
    from gated_training.step_records import recorded_step
    from gated_training.features import engineer_features as run_step

    with recorded_step("engineer-features"):
        outcome = run_step(
            dataset.path, target_column,
            FeatureSettings(categorical_encoding, interaction_features, polynomial_degree, select_k_best),
            SplitSettings(test_size, random_state),
            train_data.path, test_data.path, preprocessor.path, feature_metadata.path,
        )
    fingerprint = dataset.metadata.get("sha256", "")
    train_data.metadata.update({"format": "parquet", "rows": outcome.train_rows, "source_sha256": fingerprint})
    test_data.metadata.update({"format": "parquet", "rows": outcome.test_rows, "source_sha256": fingerprint})
    preprocessor.metadata.update({"format": "joblib", "engineered_features": outcome.engineered_features})
