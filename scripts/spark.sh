#!/usr/bin/env bash
# The jars Apache Spark needs for the interop tests (tests/interop), idempotent: Delta Lake for
# Spark, and hadoop-aws with the few parts of the AWS SDK v2 it uses for `s3a://`. They come
# from Maven Central through Maven, with strict checksums, and each jar is checked again
# against the .sha1 file Maven Central publishes beside it; then they are put in
# .cache/spark-jars, given to Spark by tests/interop/spark_support.py through spark.jars.
# Spark itself is pyspark, from the `spark` extra (pip install -e ".[spark]").
#
#   scripts/spark.sh            fetch the jars unless they are there already (a no-op then)
#   scripts/spark.sh --force    fetch them again
#   scripts/spark.sh status     print what is there (exit 0 if complete, 3 if not)
#
# The versions go together: pyspark 4.2.0 bundles Hadoop 3.5.0 (its hadoop-client-api jar),
# hadoop-aws 3.5.0 was built against AWS SDK 2.35.4 and analytics-accelerator-s3 1.3.1, and
# Delta 4.4.0 has a build for Spark 4.2 (delta-spark_4.2_2.13). The script stops if the venv's
# pyspark bundles another Hadoop.
#
# Not the AWS SDK's `bundle` jar that hadoop-aws asks for (686 MB): the s3 and
# s3-transfer-manager modules with their own dependencies, less what pyspark already ships
# (netty, Apache httpclient, commons-codec/-logging, slf4j): 37 jars, 22 MB in all.
#
# Environment:
#   SPARK_PYTHON   python whose pyspark is checked (default .venv/bin/python, then python3)
#   SPARK_M2       Maven's local repository (default ~/.m2/repository)
#   JAVA_HOME      Java 17+ for Maven and Spark (default: java on PATH)
# Without Java it fetches nothing and exits 0: the Spark tests skip themselves then.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JARS="$ROOT/.cache/spark-jars"
M2="${SPARK_M2:-${HOME:-~}/.m2/repository}"
tmp=""  # the folder a fetch fills before it becomes $JARS; removed on exit

SPARK_VERSION=4.2.0
HADOOP_VERSION=3.5.0
DELTA_VERSION=4.4.0
DELTA_ARTIFACT=delta-spark_4.2_2.13
AWS_SDK_VERSION=2.35.4
ACCELERATOR_VERSION=1.3.1
# what .complete holds: a change of any version fetches anew
STAMP="spark $SPARK_VERSION hadoop-aws $HADOOP_VERSION $DELTA_ARTIFACT $DELTA_VERSION awssdk $AWS_SDK_VERSION analyticsaccelerator $ACCELERATOR_VERSION"

say() { echo "spark.sh: $*"; }
die() { echo "spark.sh: ERROR: $*" >&2; exit 1; }

complete() { [[ -f "$JARS/.complete" && "$(cat "$JARS/.complete")" == "$STAMP" ]]; }

summary() { echo "$(find "$JARS" -maxdepth 1 -name '*.jar' | wc -l) jars, $(du -sh "$JARS" | cut -f1) in $JARS"; }

java_ok() {
    local java
    if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then java="$JAVA_HOME/bin/java"
    elif command -v java >/dev/null 2>&1; then java="$(command -v java)"
    else return 1
    fi
    local v major
    v="$("$java" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n1)"
    major="${v%%.*}"
    if ! [[ "$major" =~ ^[0-9]+$ ]] || ((major < 17)); then
        die "$java is Java ${v:-?}; Spark $SPARK_VERSION needs Java 17 or newer (set JAVA_HOME)"
    fi
}

# The Hadoop version inside the venv's pyspark (its hadoop-client-api jar); empty without one.
pyspark_hadoop() {
    local py dir pythons=("$ROOT/.venv/bin/python" python3)
    [[ -z "${SPARK_PYTHON:-}" ]] || pythons=("$SPARK_PYTHON")
    for py in "${pythons[@]}"; do
        command -v "$py" >/dev/null 2>&1 || continue
        dir="$("$py" -c 'import importlib.util as u; s = u.find_spec("pyspark"); print(s.submodule_search_locations[0] if s else "")' 2>/dev/null || true)"
        [[ -n "$dir" ]] || continue
        find "$dir/jars" -maxdepth 1 -name 'hadoop-client-api-*.jar' 2>/dev/null \
            | sed -n 's:.*/hadoop-client-api-\(.*\)\.jar$:\1:p' | head -n1
        return 0
    done
}

check_pyspark() {
    local hadoop
    hadoop="$(pyspark_hadoop)"
    if [[ -z "$hadoop" ]]; then
        say "note: no pyspark in ${SPARK_PYTHON:-.venv}: install it with .venv/bin/pip install -e \".[spark]\" (pyspark==$SPARK_VERSION)"
    elif [[ "$hadoop" != "$HADOOP_VERSION" ]]; then
        die "the venv's pyspark bundles Hadoop $hadoop, these jars are for Hadoop $HADOOP_VERSION (pyspark $SPARK_VERSION): install pyspark==$SPARK_VERSION, or change the versions in $0"
    fi
}

write_pom() {
    # Every dependency names its exclusions: nothing comes in that is not meant to.
    local sdk_exclusions='<exclusions>
        <exclusion><groupId>io.netty</groupId><artifactId>*</artifactId></exclusion>
        <exclusion><groupId>org.apache.httpcomponents</groupId><artifactId>*</artifactId></exclusion>
        <exclusion><groupId>commons-codec</groupId><artifactId>*</artifactId></exclusion>
        <exclusion><groupId>commons-logging</groupId><artifactId>*</artifactId></exclusion>
        <exclusion><groupId>org.slf4j</groupId><artifactId>*</artifactId></exclusion>
      </exclusions>'
    local none='<exclusions><exclusion><groupId>*</groupId><artifactId>*</artifactId></exclusion></exclusions>'
    cat >"$1" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <!-- written by scripts/spark.sh -->
  <modelVersion>4.0.0</modelVersion>
  <groupId>tootlake</groupId>
  <artifactId>spark-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>io.delta</groupId><artifactId>$DELTA_ARTIFACT</artifactId><version>$DELTA_VERSION</version>
      $none
    </dependency>
    <dependency>
      <groupId>io.delta</groupId><artifactId>delta-storage</artifactId><version>$DELTA_VERSION</version>
      $none
    </dependency>
    <dependency>
      <groupId>org.apache.hadoop</groupId><artifactId>hadoop-aws</artifactId><version>$HADOOP_VERSION</version>
      $none
    </dependency>
    <dependency>
      <groupId>software.amazon.s3.analyticsaccelerator</groupId><artifactId>analyticsaccelerator-s3</artifactId><version>$ACCELERATOR_VERSION</version>
      $none
    </dependency>
    <dependency>
      <groupId>software.amazon.awssdk</groupId><artifactId>s3</artifactId><version>$AWS_SDK_VERSION</version>
      $sdk_exclusions
    </dependency>
    <dependency>
      <groupId>software.amazon.awssdk</groupId><artifactId>s3-transfer-manager</artifactId><version>$AWS_SDK_VERSION</version>
      $sdk_exclusions
    </dependency>
  </dependencies>
</project>
EOF
}

cmd_fetch() {
    local force="$1"
    mkdir -p "$ROOT/.cache"
    exec 9>"$ROOT/.cache/spark-jars.lock"
    if command -v flock >/dev/null 2>&1; then
        flock -w 600 9 || die "another scripts/spark.sh still holds $ROOT/.cache/spark-jars.lock after 600 s"
    fi
    if ! java_ok; then
        say "no Java found: nothing fetched; the Spark tests will be skipped (Spark $SPARK_VERSION needs Java 17+)"
        return 0
    fi
    check_pyspark
    if ((force == 0)) && complete; then
        say "already there: $(summary)"
        return 0
    fi
    command -v mvn >/dev/null 2>&1 || die "mvn not found: install Maven (apt-get install maven) to fetch Spark's jars"

    say "fetching Spark's jars from Maven Central (Delta $DELTA_VERSION, hadoop-aws $HADOOP_VERSION, AWS SDK $AWS_SDK_VERSION) ..."
    tmp="$JARS.tmp.$$"
    local out rc=0
    rm -rf "$tmp"
    mkdir -p "$tmp/repo" "$tmp/jars"
    trap 'rm -rf "$tmp"' EXIT
    write_pom "$tmp/pom.xml"
    # -C: strict checksums, a download whose .sha1 does not match fails. The repository layout
    # (group/artifact/version/) tells where each jar's .sha1 lies in the local repository.
    out="$(mvn -q -B -C -f "$tmp/pom.xml" -Dmaven.repo.local="$M2" \
            dependency:copy-dependencies -DincludeScope=runtime \
            -Dmdep.useRepositoryLayout=true -DoutputDirectory="$tmp/repo" 2>&1)" || rc=$?
    if ((rc != 0)); then
        echo "$out" >&2
        die "Maven could not fetch Spark's jars (exit $rc); see its output above"
    fi

    local jar rel name want got n=0
    while IFS= read -r jar; do
        rel="${jar#"$tmp/repo/"}"
        name="$(basename "$jar")"
        [[ -f "$M2/$rel.sha1" ]] || die "no $M2/$rel.sha1 to check $name against: delete $(dirname "$M2/$rel") and run $0 again"
        want="$(head -c 40 "$M2/$rel.sha1")"
        got="$(sha1sum "$jar" | cut -c1-40)"
        [[ "$want" == "$got" ]] || die "$name: SHA-1 $got, Maven Central says $want: delete $(dirname "$M2/$rel") and run $0 again"
        [[ ! -e "$tmp/jars/$name" ]] || die "two jars named $name"
        mv "$jar" "$tmp/jars/$name"
        echo "$got  $name" >>"$tmp/jars/SHA1SUMS"
        n=$((n + 1))
    done < <(find "$tmp/repo" -name '*.jar' | sort)
    for want in "$DELTA_ARTIFACT-$DELTA_VERSION.jar" "delta-storage-$DELTA_VERSION.jar" \
            "hadoop-aws-$HADOOP_VERSION.jar" "s3-$AWS_SDK_VERSION.jar"; do
        [[ -f "$tmp/jars/$want" ]] || die "Maven brought no $want"
    done
    echo "$STAMP" >"$tmp/jars/.complete"
    rm -rf "$JARS"
    mv "$tmp/jars" "$JARS"
    rm -rf "$tmp"
    say "fetched and checked $n jars: $(summary)"
}

cmd_status() {
    if complete; then
        echo "complete: $(summary)"
        return 0
    fi
    echo "missing or incomplete: run $0"
    return 3
}

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

case "${1:-}" in
    "") cmd_fetch 0 ;;
    --force) cmd_fetch 1 ;;
    status) cmd_status ;;
    -h|--help|help) usage ;;
    *) usage >&2; exit 2 ;;
esac
