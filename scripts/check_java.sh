#!/usr/bin/env bash
# pyspark 4.x needs Java 17 or newer; say so plainly instead of a JVM stack trace later.
set -euo pipefail
if ! command -v java >/dev/null 2>&1; then
  echo "laionflow: Java 17+ is required for Spark, but 'java' is not on PATH." >&2
  echo "  Debian/Ubuntu: apt-get install -y openjdk-17-jre-headless ; macOS: brew install openjdk@17" >&2
  exit 1
fi
ver=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)
if [ -z "$ver" ] || [ "$ver" -lt 17 ]; then
  echo "laionflow: Java 17+ is required for Spark, found: $(java -version 2>&1 | head -n1)" >&2
  exit 1
fi
