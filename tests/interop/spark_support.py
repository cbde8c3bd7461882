"""Apache Spark reading tootlake's Delta tables, with nothing of tootlake's on the way.

Spark 4.2 (pyspark, from the `spark` extra) and Delta Lake 4.4's jars (scripts/spark.sh puts
them, and hadoop-aws with the AWS SDK for `s3a://`, in .cache/spark-jars) read what delta-rs
writes: the interop tests compare what Spark counts with what tootlake wrote.

    spark = spark_session(".cache/spark-jars", s3_endpoint="http://127.0.0.1:9000")
    spark_summary(spark, "s3a://bucket/lake/posts")
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["DELTA_JARS", "S3A_JARS", "jar_paths", "spark_session", "spark_summary", "s3a_url"]

# What the session needs in jars_dir: file-name prefixes of jars that must be there.
DELTA_JARS = ("delta-spark_", "delta-storage-")
S3A_JARS = ("hadoop-aws-",)


def jar_paths(jars_dir: str | Path, s3: bool = False) -> list[Path]:
    """Every jar in jars_dir, sorted; ValueError naming scripts/spark.sh if a needed one is
    missing (Delta's always, hadoop-aws's when s3)."""
    folder = Path(jars_dir).resolve()
    jars = sorted(folder.glob("*.jar"))
    names = [jar.name for jar in jars]
    for prefix in DELTA_JARS + (S3A_JARS if s3 else ()):
        if not any(name.startswith(prefix) for name in names):
            raise ValueError(
                f"no {prefix}*.jar in {folder}: run scripts/spark.sh to download Spark's jars"
            )
    return jars


def spark_session(
    jars_dir: str | Path,
    s3_endpoint: str | None = None,
    access_key: str = "testing",
    secret_key: str = "testing",
    region: str = "us-east-1",
    app_name: str = "tootlake-interop",
) -> Any:
    """A local[2] SparkSession with Delta Lake, small and quiet: UTC session time zone, no UI,
    2 shuffle partitions, 1 GiB driver, bound to 127.0.0.1 (SPARK_LOCAL_IP is set to it unless
    already set). One per process: Spark's getOrCreate returns the running one.

    With s3_endpoint (an http:// URL, e.g. a moto server), `s3a://` paths go to it: path-style
    requests, plain HTTP, these static keys only (no other credential source is asked, so the
    SDK never looks for instance metadata), a fixed region, few retries.
    """
    from pyspark.sql import SparkSession

    jars = jar_paths(jars_dir, s3=s3_endpoint is not None)
    # Spark binds to what the host name resolves to, or else an outside interface: loopback.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = (
        SparkSession.builder.master("local[2]")
        .appName(app_name)
        .config("spark.jars", ",".join(str(jar) for jar in jars))
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config(
            "spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog"
        )
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.driver.memory", "1g")
        # a short-lived JVM on 2 shared cores: C1 only and one GC thread start faster
        .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        # Delta rebuilds a table's state from its log with a Spark job of 50 partitions by
        # default: 2 are plenty for a test table, and much faster on 2 cores
        .config("spark.databricks.delta.snapshotPartitions", "2")
    )
    if s3_endpoint is not None:
        hadoop = {
            "fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
            "fs.s3a.endpoint": s3_endpoint,
            "fs.s3a.endpoint.region": region,
            "fs.s3a.path.style.access": "true",
            "fs.s3a.connection.ssl.enabled": str(s3_endpoint.startswith("https:")).lower(),
            "fs.s3a.aws.credentials.provider": (
                "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
            ),
            "fs.s3a.access.key": access_key,
            "fs.s3a.secret.key": secret_key,
            "fs.s3a.attempts.maximum": "2",
            "fs.s3a.retry.limit": "2",
            "fs.s3a.connection.establish.timeout": "5s",
            "fs.s3a.connection.timeout": "30s",
        }
        for key, value in hadoop.items():
            builder = builder.config(f"spark.hadoop.{key}", value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def s3a_url(path: str) -> str:
    """`s3://b/k` as Hadoop's `s3a://b/k`; anything else unchanged."""
    return "s3a://" + path[len("s3://") :] if path.startswith("s3://") else path


def spark_summary(
    spark: Any, table_path: str | Path, instance_column: str = "instance"
) -> dict[str, Any]:
    """What Spark reads in the Delta table `posts` at table_path (a folder, `s3a://` or
    `s3://` URL): posts, distinct users (acct), instances, non-null languages, the sum of
    characters, and every uri, sorted."""
    from pyspark.sql import functions as F

    posts = spark.read.format("delta").load(s3a_url(str(table_path)))
    row = posts.agg(
        F.count(F.lit(1)).alias("posts"),
        F.countDistinct("acct").alias("users"),
        F.countDistinct(instance_column).alias("instances"),
        F.countDistinct("language").alias("languages"),  # nulls are not counted
        F.sum("characters").alias("characters"),
    ).first()
    return {
        "posts": int(row["posts"]),
        "users": int(row["users"]),
        "instances": int(row["instances"]),
        "languages": int(row["languages"]),
        "characters": int(row["characters"] or 0),
        "uris": sorted(r["uri"] for r in posts.select("uri").collect()),
    }
