"""Settings of the CLI's other components; the stream's live in :mod:`stream.settings`.

Read from ``FRAUD_*`` environment variables here, at the entry point, and passed down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, StringConstraints
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream.settings import KafkaBootstrap, RedisUrl, SettingPath, StreamSettings, TopicPrefix

__all__ = [
    "ALL_SETTINGS",
    "ArchiveSettings",
    "FeatureStoreSettings",
    "LiveSettings",
    "ReviewSettings",
    "StreamTopicsSettings",
    "TrainerSettings",
    "env_names",
]


class LiveSettings(BaseSettings):
    """The live traffic producer."""

    model_config = SettingsConfigDict(env_prefix="FRAUD_", frozen=True, extra="ignore")

    kafka_bootstrap: KafkaBootstrap | None = Field(
        default=None, description="host:port of Kafka; unset = start the embedded broker"
    )
    topic_prefix: TopicPrefix = Field(default="", description="prefix for every topic name")
    partitions: int = Field(default=4, ge=1, description="partitions of topics we create")


class TrainerSettings(BaseSettings):
    """The batch trainer."""

    model_config = SettingsConfigDict(env_prefix="FRAUD_", frozen=True, extra="ignore")

    registry_dir: SettingPath = Field(default=Path("var/registry"), description="model registry")
    history: SettingPath | None = Field(default=None, description="history to train on")
    # 10M rows with the extended features peak at 5.0 GB from a file, 5.5 GB from an archive:
    # the default (about 11 GB) leaves headroom on a 24 GB machine
    max_history_rows: int = Field(
        default=20_000_000, gt=0, description="refuse to load a history holding more rows"
    )


class FeatureStoreSettings(BaseSettings):
    """The feature-store commands (materialization)."""

    model_config = SettingsConfigDict(env_prefix="FRAUD_", frozen=True, extra="ignore")

    redis_url: RedisUrl | None = Field(default=None, description="redis://host:port/db")


class StreamTopicsSettings(BaseSettings):
    """The Kafka the stream writes to, for the components that read its topics."""

    model_config = SettingsConfigDict(env_prefix="FRAUD_", frozen=True, extra="ignore")

    kafka_bootstrap: KafkaBootstrap | None = Field(
        default=None,
        description="host:port of Kafka the stream writes to; the console and the archiver "
        "refuse to start without it",
    )
    topic_prefix: TopicPrefix = Field(default="", description="prefix for every topic name")
    # a stack's Kafka may start after them: long enough by default, shorter to fail fast
    kafka_connect_timeout_s: float = Field(
        default=30.0,
        ge=0.1,
        le=3600,
        description="seconds the console and the archiver wait for Kafka at start-up",
    )


class ReviewSettings(StreamTopicsSettings):
    """The analyst review console."""

    review_database_url: str = Field(
        default="sqlite:///var/review/review.db",
        description="sqlite:///path.db or postgresql://user@host/db",
    )
    # an empty host would bind every address
    review_host: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)] = Field(
        default="127.0.0.1", description="address the console binds"
    )
    review_port: int = Field(default=8080, ge=1, le=65535, description="console HTTP port")
    review_secure_cookies: bool = Field(
        default=False, description="mark cookies Secure (set it when served over HTTPS)"
    )
    review_session_hours: float = Field(
        default=8.0, gt=0, le=24 * 30, description="a login lasts this long (one shift)"
    )
    review_card_activity: bool = Field(
        default=True, description="keep every decision for the case page's card history"
    )
    review_activity_days: int = Field(
        default=30, ge=1, description="card activity older than this is dropped (cases stay)"
    )


class ArchiveSettings(BaseSettings):
    """Where the archiver and its backfill write; the archiver's Kafka is
    :class:`StreamTopicsSettings`, read only when it connects (a backfill needs none)."""

    model_config = SettingsConfigDict(env_prefix="FRAUD_", frozen=True, extra="ignore")

    archive_dir: SettingPath = Field(
        default=Path("var/archive"), description="where `fraud archive` writes Parquet"
    )


ALL_SETTINGS: tuple[type[BaseSettings], ...] = (
    StreamSettings,
    LiveSettings,
    TrainerSettings,
    FeatureStoreSettings,
    ReviewSettings,
    ArchiveSettings,
)


def env_names() -> set[str]:
    """Every environment variable some component reads."""
    names: set[str] = set()
    for settings in ALL_SETTINGS:
        prefix = str(settings.model_config.get("env_prefix", ""))
        names.update(f"{prefix}{name}".upper() for name in settings.model_fields)
    return names
