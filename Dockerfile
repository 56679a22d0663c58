FROM python:3.11-slim
# gcc: the worker compiles the champion (tl2cgen); without it XGBoost serves every batch
WORKDIR /app
COPY pyproject.toml README.md ./
COPY feature_store feature_store
COPY batch_training batch_training
COPY stream stream
COPY simulator simulator
COPY embedded embedded
COPY fraud_cli fraud_cli
COPY review review
RUN pip install --no-cache-dir . && apt-get update \
    && apt-get install -y --no-install-recommends procps gcc libc6-dev tini \
    && rm -rf /var/lib/apt/lists/*
# uid and gid 10001: the Kubernetes CronJob's fsGroup makes its volume writable to them
RUN groupadd --gid 10001 fraud && useradd --uid 10001 --gid 10001 --create-home fraud \
    && mkdir -p /var/lib/fraud && chown fraud:fraud /var/lib/fraud
USER fraud
# tini is PID 1 and forwards signals: a program that is PID 1 itself ignores a signal it
# has no handler for, so `fraud train`'s second SIGTERM ("end at once") would do nothing
ENTRYPOINT ["/usr/bin/tini", "--"]
