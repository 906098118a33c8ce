#!/usr/bin/env bash
# Java and PySpark for the Spark tests (tests/spark): `hunt --spark` and `baseline learn --spark`
# run on local[2]. PySpark 3.5 runs on Java 17 (Debian's openjdk-17, headless). PySpark itself
# goes into the project's venv from the hashed lock (requirements/spark.txt) by `make spark`,
# which creates the venv first; `make test` afterwards keeps it (see the Makefile).
set -euo pipefail
source "$(dirname "$0")/install-missing.bash"
install_missing "Spark test" openjdk-17-jre-headless
cd "$(dirname "$0")/../.."
make spark
