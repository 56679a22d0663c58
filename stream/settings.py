"""Settings of the stream worker, read from ``FRAUD_*`` variables at the entry point only."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, StringConstraints
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "KafkaBootstrap",
    "RedisUrl",
    "SettingPath",
    "StreamSettings",
    "TopicNames",
    "TopicPrefix",
]

FallbackDecision = Literal["approve", "review", "decline"]


def _not_empty(value: object) -> object:
    if isinstance(value, str) and not value.strip():
        # Path("") is the working directory: a variable left empty by a template would
        # put the registry there, or read it as the history
        raise ValueError("an empty path; unset the variable for its default, or give a path")
    return value


# a path read from a variable: an empty value is refused, not taken as "."
SettingPath = Annotated[Path, BeforeValidator(_not_empty)]

# [scheme://]host[:port], comma-separated (kafka-python drops a SASL_SSL:// prefix and
# takes 9092 for a missing port); a host may be a name, IPv4, or IPv6 in brackets
_BROKER = re.compile(r"(?:[A-Za-z_]+://)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::\d{1,5})?")
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def _bootstrap(value: object) -> object:
    if not isinstance(value, str):
        return value
    brokers = [part.strip() for part in value.split(",")]
    if not all(_BROKER.fullmatch(broker) for broker in brokers):
        # an empty value would start an embedded broker in production: a worker that
        # consumes nothing yet looks healthy
        raise ValueError("not host:port[,host:port...]; unset the variable for the embedded broker")
    return ",".join(brokers)


def _redis_url(value: object) -> object:
    if isinstance(value, str) and not value.strip().lower().startswith(_REDIS_SCHEMES):
        # an empty value would silently keep the features in this process's memory
        raise ValueError(
            "not a redis://, rediss:// or unix:// URL; unset the variable for the in-memory store"
        )
    return value.strip() if isinstance(value, str) else value


# Kafka topic names are [a-zA-Z0-9._-], at most 249 long; the longest suffix is 16
TopicPrefix = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]*$", max_length=233)]

# the brokers of a variable; unset means embedded, an empty or malformed value is refused
KafkaBootstrap = Annotated[str, BeforeValidator(_bootstrap)]
# a Redis URL of a variable; unset means in-memory, an empty or other URL is refused
RedisUrl = Annotated[str, BeforeValidator(_redis_url)]


class TopicNames:
    """The topics the loop uses, and the consumer groups of the console and the archiver;
    ``prefix`` isolates tenants or test runs on one cluster (a shared group made one
    tenant's console wait for another's departed member before it could join)."""

    def __init__(self, prefix: str = "") -> None:
        self.transactions = f"{prefix}transactions"
        self.decisions = f"{prefix}fraud.decisions"
        self.alerts = f"{prefix}fraud.alerts"
        self.dlq = f"{prefix}transactions.dlq"
        self.labels = f"{prefix}fraud.labels"
        self.review_group = f"{prefix}fraud-review"
        self.archive_group = f"{prefix}fraud-archive"

    def all(self) -> list[str]:
        return [self.transactions, self.decisions, self.alerts, self.dlq, self.labels]


class StreamSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FRAUD_", frozen=True, extra="forbid")

    kafka_bootstrap: KafkaBootstrap | None = Field(
        default=None, description="host:port of Kafka; unset = start the embedded broker"
    )
    redis_url: RedisUrl | None = Field(
        default=None, description="redis://host:port/db; unset = in-memory online store"
    )
    registry_dir: SettingPath = Field(default=Path("var/registry"), description="model registry")
    topic_prefix: TopicPrefix = Field(default="", description="prefix for every topic name")
    partitions: int = Field(default=4, ge=1, description="partitions of topics we create")
    consumer: Literal["faust", "batched"] = Field(
        default="faust",
        description="faust agents, or batched = an aiokafka getmany loop (stream.batched)",
    )
    app_id: str = Field(default="fraud-stream", description="faust app id = consumer group")
    batch_max: int = Field(default=256, ge=1, description="max events per micro-batch")
    batch_window_ms: int = Field(default=20, ge=1, description="max wait to fill a batch")
    metrics_port: int = Field(
        default=9108, ge=0, le=65535, description="Prometheus /metrics port; 0 = off"
    )
    model_poll_s: float = Field(
        default=2.0, gt=0, description="how often the worker checks for a new champion"
    )
    fetch_max_wait_ms: int = Field(
        default=20, ge=0, description="longest a consumer fetch waits for data (latency)"
    )
    batch_deadline_ms: int = Field(
        default=250, ge=1, description="features must arrive within this, else degraded"
    )
    fallback_decision: FallbackDecision = Field(
        default="review", description="decision when the store or model fails (degraded)"
    )
    rules_file: SettingPath | None = Field(
        default=None, description="YAML business rules, reloaded when the file changes"
    )
    warm_history: SettingPath | None = Field(
        default=None, description="replay this history into the online store at start"
    )
    warm_max_rows: int = Field(
        default=20_000_000, gt=0, description="refuse a warm-up history holding more rows"
    )
    max_amount: float = Field(default=1_000_000.0, gt=0, description="larger amounts go to DLQ")
    # Native code scores batches of 1-8 rows 3-6x faster with identical scores (measured in
    # bench/inference.py); XGBoost keeps the batch sizes where it is faster. Needs a C
    # compiler (gcc) where the worker runs; without one it logs a warning and uses XGBoost.
    compile_model: bool = Field(
        default=True,
        description="compile the champion with tl2cgen (cached in data_dir/compiled); "
        "false = XGBoost inplace_predict only",
    )
    xgboost_threads: int = Field(
        default=1,
        ge=0,
        description="threads of XGBoost's own calls (reason codes, large-batch scoring); "
        "0 = every core. One by default: the worker shares its cores with Redis and the "
        "broker, and OpenMP workers spinning for them doubled the latency at 1k events/s",
    )
    data_dir: SettingPath = Field(default=Path("var/stream"), description="faust's local data dir")
    group_timeout_s: float = Field(
        default=10.0, gt=0, description="consumer-group session and rebalance timeout"
    )
    ready_file: SettingPath | None = Field(
        default=None, description="written once partitions are assigned (readiness probe)"
    )
    log_level: Literal["debug", "info", "warn", "error"] = "warn"

    @property
    def topics(self) -> TopicNames:
        return TopicNames(self.topic_prefix)
