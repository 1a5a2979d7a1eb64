"""Compile the pipeline to YAML: ``python -m pipelines.compile [OUTPUT]``.

The image comes from the ``IMAGE`` environment variable (see components/image.py).
"""

import sys
from pathlib import Path

from kfp import compiler

from pipelines.training_pipeline import training_pipeline

DEFAULT_OUTPUT = Path("compiled/training_pipeline.yaml")


def compile_pipeline(output: Path = DEFAULT_OUTPUT) -> Path:
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(training_pipeline, str(output))
    return output


if __name__ == "__main__":
    print(compile_pipeline(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUTPUT))
