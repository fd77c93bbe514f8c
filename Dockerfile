# laionflow image: Airflow 3.3.2 + JDK 17 (Spark) + the pinned project.
# GPU variant: build with --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 (the
# same torch/torchvision versions, CUDA build; the CPU stub step then does nothing) and run the
# worker on queue "gpu" with a device reservation (docker-compose.yaml, profile "gpu").
FROM apache/airflow:3.3.2-python3.11

USER root
# Debian security updates replace exact versions; the base image pins the distribution
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless g++ curl \
 && rm -rf /var/lib/apt/lists/*
ENV JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64

USER airflow
WORKDIR /opt/laionflow
COPY --chown=airflow:root pyproject.toml constraints.txt README.md ./
COPY --chown=airflow:root laionflow ./laionflow
COPY --chown=airflow:root operators ./operators
COPY --chown=airflow:root spark_jobs ./spark_jobs
ARG TORCH_INDEX=""
RUN if [ -n "$TORCH_INDEX" ]; then pip install --no-cache-dir --index-url "$TORCH_INDEX" torch==2.13.0 torchvision==0.28.0; fi \
 && pip install --no-cache-dir -c constraints.txt . \
 && python -m laionflow.setup.torchvision_cpu
# s3a for Spark clusters reading the dataset root directly from S3
ARG HADOOP_AWS=3.4.1
ARG AWS_SDK=2.29.52
RUN SPARK_JARS=$(python -c 'import pyspark, os; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))') \
 && curl -fsSL -o "$SPARK_JARS/hadoop-aws-$HADOOP_AWS.jar" "https://repo1.maven.org/maven2/org/apache/hadoop/hadoop-aws/$HADOOP_AWS/hadoop-aws-$HADOOP_AWS.jar" \
 && curl -fsSL -o "$SPARK_JARS/bundle-$AWS_SDK.jar" "https://repo1.maven.org/maven2/software/amazon/awssdk/bundle/$AWS_SDK/bundle-$AWS_SDK.jar"
COPY --chown=airflow:root dags /opt/airflow/dags
COPY --chown=airflow:root plugins /opt/airflow/plugins
