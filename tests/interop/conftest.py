"""Apache Spark for the interop tests: one local session for the whole test run.

`spark` is a SparkSession (pyspark 4.2 with Delta Lake 4.4, see spark_support.py) whose
`s3a://` paths go to the test S3 server (tests/lakes.py). The jars come from scripts/spark.sh
(.cache/spark-jars), pyspark from the `spark` extra. Without Java the tests that use it are
skipped; without pyspark or the jars they fail, saying what to run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import lakes

from .spark_support import jar_paths, spark_session

ROOT = Path(__file__).resolve().parents[2]
SPARK_JARS = ROOT / ".cache" / "spark-jars"
PYSPARK_VERSION = "4.2.0"  # the one the jars of scripts/spark.sh are for


def _java() -> str | None:
    """The java pyspark starts: $JAVA_HOME/bin/java, else java on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and os.access(Path(home, "bin", "java"), os.X_OK):
        return str(Path(home, "bin", "java"))
    return shutil.which("java")


@pytest.fixture(scope="session")
def spark(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A local[2] SparkSession with Delta Lake, `s3a://` pointed at the test S3 server."""
    if _java() is None:
        pytest.skip("no Java (JAVA_HOME or java on PATH): Spark needs Java 17 or newer")
    try:
        import pyspark
    except ImportError:
        pyspark = None
    if pyspark is None:
        pytest.fail(
            f'pyspark is not installed: .venv/bin/pip install -e ".[spark]" '
            f"(pyspark=={PYSPARK_VERSION}), then scripts/spark.sh",
            pytrace=False,
        )
    if pyspark.__version__ != PYSPARK_VERSION:
        pytest.fail(
            f"pyspark {pyspark.__version__} is installed; scripts/spark.sh fetches jars for "
            f'{PYSPARK_VERSION}: .venv/bin/pip install -e ".[spark]"',
            pytrace=False,
        )
    if not (SPARK_JARS / ".complete").is_file():
        pytest.fail(f"Spark's jars are not in {SPARK_JARS}: run scripts/spark.sh", pytrace=False)
    try:
        jar_paths(SPARK_JARS, s3=True)
    except ValueError as error:
        pytest.fail(str(error), pytrace=False)

    endpoint = lakes.s3_server(request.config)
    session = spark_session(
        SPARK_JARS,
        s3_endpoint=endpoint,
        access_key=lakes.S3_ENV["AWS_ACCESS_KEY_ID"],
        secret_key=lakes.S3_ENV["AWS_SECRET_ACCESS_KEY"],
        region=lakes.S3_ENV["AWS_REGION"],
    )
    yield session
    session.stop()
