"""Settings of the CLI's other components; the stream's live in :mod:`stream.settings`.

Read from ``FRAUD_*`` environment variables here, at the entry point, and passed down.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream.settings import StreamSettings

__all__ = ["ALL_SETTINGS", "FeatureStoreSettings", "LiveSettings", "TrainerSettings", "env_names"]


class LiveSettings(BaseSettings):
    """The live traffic producer."""

    model_config = SettingsConfigDict(env_prefix="FRAUD_", frozen=True, extra="ignore")

    kafka_bootstrap: str | None = Field(
        default=None, description="host:port of Kafka; unset = start the embedded broker"
    )
    topic_prefix: str = Field(default="", description="prefix for every topic name")
    partitions: int = Field(default=4, ge=1, description="partitions of topics we create")


class TrainerSettings(BaseSettings):
    """The batch trainer."""

    model_config = SettingsConfigDict(env_prefix="FRAUD_", frozen=True, extra="ignore")

    registry_dir: Path = Field(default=Path("var/registry"), description="model registry")
    history: Path | None = Field(default=None, description="history to train on")


class FeatureStoreSettings(BaseSettings):
    """The feature-store commands (materialization)."""

    model_config = SettingsConfigDict(env_prefix="FRAUD_", frozen=True, extra="ignore")

    redis_url: str | None = Field(default=None, description="redis://host:port/db")


ALL_SETTINGS: tuple[type[BaseSettings], ...] = (
    StreamSettings,
    LiveSettings,
    TrainerSettings,
    FeatureStoreSettings,
)


def env_names() -> set[str]:
    """Every environment variable some component reads."""
    names: set[str] = set()
    for settings in ALL_SETTINGS:
        prefix = str(settings.model_config.get("env_prefix", ""))
        names.update(f"{prefix}{name}".upper() for name in settings.model_fields)
    return names
