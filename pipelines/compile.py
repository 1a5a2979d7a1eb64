"""Compile the pipeline to YAML: ``python -m pipelines.compile [OUTPUT]``.

Compile-time options come from the environment: ``IMAGE`` (components/image.py) and the cluster
options in pipelines/cluster.py (secret names, ``RESOURCES_FILE``).
"""

import sys
from pathlib import Path

DEFAULT_OUTPUT = Path("compiled/training_pipeline.yaml")


def compile_pipeline(output: Path = DEFAULT_OUTPUT) -> Path:
    from kfp import compiler

    from pipelines.training_pipeline import training_pipeline

    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(training_pipeline, str(output))
    return output


def main(argv: list[str]) -> int:
    from pipelines.cluster import ClusterConfigError

    try:
        print(compile_pipeline(Path(argv[0]) if argv else DEFAULT_OUTPUT))
    except ClusterConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
