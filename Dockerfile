FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY feature_store feature_store
COPY batch_training batch_training
COPY stream stream
COPY simulator simulator
COPY embedded embedded
COPY fraud_cli fraud_cli
RUN pip install --no-cache-dir . && apt-get update && apt-get install -y --no-install-recommends procps \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --uid 10001 --create-home fraud && mkdir -p /var/lib/fraud && chown fraud /var/lib/fraud
USER fraud
ENTRYPOINT []
