"""What one training run is asked to do: the feature set, the windows, the training and
gate settings, where the report and predictions go."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from batch_training.dataset import TimeSplit, fold_splits
from batch_training.errors import TrainingConfigError
from batch_training.train import TrainingConfig
from feature_store import FeatureSet
from feature_store.offline import DEFAULT_LABEL_DELAY_S

__all__ = ["PipelineOptions"]

# ten years of windows: more than any archive holds, and far from date arithmetic's limits
_MAX_SPAN_DAYS = 3650
# payments are after the epoch; ten years of windows and a feature reach fit either side
_FIRST_DAY, _LAST_DAY = date(1990, 1, 1), date(9000, 1, 1)


@dataclass(frozen=True, kw_only=True)
class PipelineOptions:
    feature_set: FeatureSet
    train_start: datetime | None = None
    train_days: int = 7
    delay_days: int = 7
    test_days: int = 7
    folds: int = 1
    label_delay_s: int = DEFAULT_LABEL_DELAY_S
    training: TrainingConfig = field(default_factory=TrainingConfig)
    cp_tolerance: float = 0.01
    promote: bool = True
    report_dir: Path | None = None
    predictions_out: Path | None = None

    def __post_init__(self) -> None:
        # the split's own checks, now: a schedule would otherwise fail at every tick
        span = self.train_days + self.delay_days + self.test_days * self.folds
        if span > _MAX_SPAN_DAYS:
            raise TrainingConfigError(
                f"the windows of {self.folds} fold(s) span {span:,} days (--train-days + "
                f"--delay-days + --test-days x --folds); at most {_MAX_SPAN_DAYS:,}"
            )
        fold_splits(self.split_starting(date(2000, 1, 1)), self.folds)
        if self.train_start is not None and not (
            _FIRST_DAY <= self.train_start.date() <= _LAST_DAY
        ):  # the folds before it and the features' reach stay inside the calendar
            raise TrainingConfigError(
                f"--train-start {self.train_start.date().isoformat()} lies outside {_FIRST_DAY} .. "
                f"{_LAST_DAY}; give a day within the history"
            )
        if self.label_delay_s < 0:
            raise TrainingConfigError(
                f"label_delay_s={self.label_delay_s} must be >= 0 (--label-delay-days)"
            )
        # NaN too; inf would turn the CP@100 check off: --cp-tolerance 1 allows any fall
        if not 0 <= self.cp_tolerance <= 1:
            raise TrainingConfigError(
                f"cp_tolerance={self.cp_tolerance} must be between 0 and 1 (--cp-tolerance; "
                "1 allows any fall of CP@100)"
            )

    def split_starting(self, train_start: date) -> TimeSplit:
        """These windows, the training window starting on ``train_start``."""
        return TimeSplit(
            train_start=train_start,
            train_days=self.train_days,
            delay_days=self.delay_days,
            test_days=self.test_days,
        )

    def split_ending(self, test_end: date) -> TimeSplit:
        """These windows, the test window ending before ``test_end``."""
        span = self.train_days + self.delay_days + self.test_days
        return self.split_starting(test_end - timedelta(days=span))
