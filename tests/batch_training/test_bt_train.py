"""Time-correct splits, card precision@k, and the handbook protocol's exact test set."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from batch_training.dataset import TimeSplit, fold_splits, latest_split, split_history
from batch_training.errors import TrainingConfigError, TrainingDataError
from batch_training.folds import FoldFeatures
from batch_training.metrics import (
    CostModel,
    card_precision_at_k,
    card_precision_by_day,
    choose_cost_thresholds,
    recall_at_alert_rate,
)
from batch_training.pipeline import PipelineOptions, run_training
from batch_training.registry import ModelRegistry
from batch_training.train import TrainingConfig, fit_model, search_sample
from feature_store import (
    CORE_FEATURE_SET,
    EXTENDED_FEATURE_SET,
    compute_offline_features,
    read_history,
)
from feature_store.definitions import WindowAggregate
from simulator.config import SimulationConfig
from simulator.generator import TrafficGenerator


def _day(d: int, hour: int = 12) -> pd.Timestamp:
    return pd.Timestamp("2025-03-01", tz="UTC") + pd.Timedelta(days=d, hours=hour)


def test_split_and_compromised_card_removal_on_a_handmade_history() -> None:
    """train days 0-1, delay days 2-3, test days 4-5."""
    rows = [
        ("t0", 0, "A", 0),
        ("t1", 1, "B", 1),  # B: fraud in training -> out of the test
        ("d0", 1, "C", 0),
        ("d1", 2, "C", 1),  # C: fraud on delay day 2, known by test day 5 (not by day 4)
        ("d2", 3, "D", 1),  # D: fraud on day 3 -> known only after the test window
        ("x0", 4, "A", 0),
        ("x1", 4, "B", 1),
        ("x2", 4, "C", 1),
        ("x3", 4, "D", 0),
        ("y0", 5, "A", 1),
        ("y1", 5, "B", 0),
        ("y2", 5, "C", 0),
        ("y3", 5, "D", 1),
        ("z0", 6, "A", 0),  # after the test window
    ]
    history = pd.DataFrame(
        {
            "transaction_id": [r[0] for r in rows],
            "event_time": [_day(r[1]) for r in rows],
            "card_id": [r[2] for r in rows],
            "is_fraud": [r[3] for r in rows],
        }
    )
    split = TimeSplit(train_start=date(2025, 3, 1), train_days=2, delay_days=2, test_days=2)
    data = split_history(history, split)
    ids = history["transaction_id"].to_numpy()
    assert sorted(ids[data.train]) == ["d0", "t0", "t1"]
    # day 4 knows training frauds (B) and day 1's (none more); day 5 also knows day 2's (C)
    assert list(ids[data.test]) == ["x0", "x2", "x3", "y0", "y3"]
    # what the report counts as left aside: the test window's rows of known cards
    assert list(ids[data.known_compromised]) == ["x1", "y1", "y2"]


def test_with_label_times_a_card_is_known_from_the_day_its_label_came() -> None:
    """train days 0-1, delay days 2-3, test days 4-5, as above; the bank knows a fraud
    when its label came, which the history's label_time says."""
    rows = [
        ("t0", 0, "A", 0, None),
        ("t1", 1, "B", 1, _day(6)),  # B: labelled after the test window -> stays in
        ("e0", 1, "E", 1, None),  # E: no label time -> the delay rule, known by day 4
        ("d1", 2, "C", 1, _day(2, hour=20)),  # C: labelled that evening -> known by day 3
        ("d2", 3, "D", 1, _day(4, hour=9)),  # D: labelled on test day 4 -> known by day 5
        # F: labelled at midnight starting day 5, a date-only time: any time that day
        ("f0", 3, "F", 1, _day(5, hour=0)),
        # G: labelled before its own payment (a clock's fault): known from the day after
        ("g0", 2, "G", 1, _day(0)),
        ("x0", 4, "A", 0, None),
        ("x1", 4, "B", 0, None),
        ("x2", 4, "C", 0, None),
        ("x3", 4, "D", 0, None),
        ("x4", 4, "E", 0, None),
        ("x5", 4, "G", 0, None),
        ("y0", 5, "A", 1, _day(5, hour=13)),
        ("y1", 5, "B", 0, None),
        ("y2", 5, "C", 0, None),
        ("y3", 5, "D", 0, None),
        ("y4", 5, "F", 0, None),
    ]
    history = pd.DataFrame(
        {
            "transaction_id": [r[0] for r in rows],
            "event_time": [_day(r[1]) for r in rows],
            "card_id": [r[2] for r in rows],
            "is_fraud": [r[3] for r in rows],
            "label_time": pd.Series([r[4] for r in rows], dtype="datetime64[ns, UTC]"),
        }
    )
    split = TimeSplit(train_start=date(2025, 3, 1), train_days=2, delay_days=2, test_days=2)
    data = split_history(history, split)
    ids = history["transaction_id"].to_numpy()
    assert (data.known_by, data.frauds_without_label_time) == ("label_time", 1)  # E's
    assert list(ids[data.test]) == ["x0", "x1", "x3", "y0", "y1", "y4"]
    assert list(ids[data.known_compromised]) == ["x2", "x4", "x5", "y2", "y3"]
    # without label times, the handbook's rule: B is known from training on, D is not yet
    by_delay = split_history(history.drop(columns="label_time"), split)
    assert by_delay.known_by == "delay_days"
    assert list(ids[by_delay.test]) == ["x0", "x2", "x3", "x5", "y0", "y3", "y4"]


def test_a_split_outside_the_history_is_refused() -> None:
    history = pd.DataFrame(
        {"transaction_id": ["a"], "event_time": [_day(0)], "card_id": ["A"], "is_fraud": [0]}
    )
    with pytest.raises(TrainingDataError, match="history covers"):
        split_history(history, TimeSplit(train_start=date(2025, 3, 1)))
    # an explicit window over no payments at all (e.g. an archive with no day yet)
    with pytest.raises(TrainingDataError, match="holds no payments"):
        split_history(history.iloc[:0], TimeSplit(train_start=date(2025, 3, 1)))


def test_the_latest_split_leaves_the_label_delay_after_its_test_window() -> None:
    """History from day 0 to the end of day 20: the last test day is day 20 minus the delay."""
    end_of_day_20 = pd.Timestamp("2025-03-22", tz="UTC") - pd.Timedelta(milliseconds=1)
    history = pd.DataFrame({"event_time": [_day(0), _day(9, hour=3), end_of_day_20]})
    windows = {"train_days": 4, "delay_days": 2, "test_days": 3}
    week = 7 * 86_400
    split = latest_split(history, **windows, label_delay_s=week)
    assert split.describe() == {
        "train": "2025-03-06 .. 2025-03-09",
        "delay_days": 2,
        "test": "2025-03-12 .. 2025-03-14",
    }
    # labels known at once (or complete ground truth): the test window ends on the last day
    assert latest_split(history, **windows, label_delay_s=0).test_end == date(2025, 3, 22)
    # a partial last day: day 13's late frauds are labelled only after the last event
    partial = history.assign(event_time=[_day(0), _day(9), _day(20, hour=23)])
    assert latest_split(partial, **windows, label_delay_s=week).test_end == date(2025, 3, 14)
    with pytest.raises(TrainingDataError, match=r"2025-03-01 .. 2025-03-21; .*--label-delay"):
        latest_split(history, **windows, label_delay_s=13 * 86_400)
    with pytest.raises(TrainingConfigError, match="label_delay_s=-1 must be >= 0"):
        PipelineOptions(feature_set=CORE_FEATURE_SET, label_delay_s=-1)


def test_prequential_folds_step_back_one_test_window() -> None:
    folds = fold_splits(TimeSplit(train_start=date(2025, 3, 15)), 3)
    assert [f.train_start for f in folds] == [date(2025, 3, 15), date(2025, 3, 8), date(2025, 3, 1)]


def test_card_precision_at_k_removes_cards_found_on_earlier_days() -> None:
    days = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    cards = np.array(["a", "a", "b", "c", "a", "b", "c", "d"])
    scores = np.array([0.9, 0.1, 0.8, 0.2, 0.95, 0.7, 0.6, 0.1])
    labels = np.array([1, 0, 0, 1, 1, 0, 1, 0])
    mean, per_day = card_precision_at_k(days, cards, scores, labels, k=2)
    # day 0: top cards a (max 0.9, fraud), b (0.8, legit) -> 1/2; a is now known
    # day 1: a removed; top b (0.7, legit), c (0.6, fraud) -> 1/2
    assert per_day == [0.5, 0.5]
    assert mean == 0.5
    # the most each day allowed: day 0 has fraud cards a and c (2 of k=2); day 1, a found,
    # only c (1 of 2)
    by_day = card_precision_by_day(days, cards, scores, labels, k=2)
    assert [(d.day, d.precision, d.ceiling) for d in by_day] == [(0, 0.5, 1.0), (1, 0.5, 0.5)]


def test_recall_at_alert_rate_and_cost_thresholds() -> None:
    scores = np.linspace(0, 1, 200)
    labels = (scores > 0.95).astype(np.int8)
    assert recall_at_alert_rate(scores, labels, 0.05) == 1.0
    amounts = np.full(200, 100.0)
    review, decline, cost = choose_cost_thresholds(scores, labels, amounts, CostModel())
    assert review <= decline
    assert cost < labels.sum() * 100.0  # far cheaper than missing every fraud


def test_the_handbook_protocol_gives_the_published_test_set(handbook_dir: Path) -> None:
    history = read_history(handbook_dir / "transactions_raw.parquet", columns="handbook")
    data = split_history(history, TimeSplit(train_start=date(2018, 7, 25)))
    fraud = history["is_fraud"].to_numpy()
    assert (data.test_rows, int(fraud[data.test].sum())) == (58_264, 385)
    assert (data.train_rows, int(fraud[data.train].sum())) == (67_240, 598)


def _noisy_problem(n: int = 6000) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One informative feature of six, about 7 % positives: early stopping has work to do."""
    rng = np.random.default_rng(3)
    features = rng.normal(size=(n, 6)).astype(np.float32)
    odds = np.exp(1.5 * features[:, 0] - 3.0)
    labels = (rng.random(n) < odds / (1 + odds)).astype(np.int8)
    return features, labels, [f"f{i}" for i in range(features.shape[1])]


def test_early_stopping_scored_every_round_matches_xgboosts_own() -> None:
    features, labels, names = _noisy_problem()
    config = TrainingConfig(
        max_rounds=600, early_stopping_rounds=25, validation_every=1, screen_rounds=600
    )
    fitted = fit_model(features, labels, np.ones(len(labels)), names, config)
    cut = int(len(labels) * (1 - config.validation_fraction))
    fit = xgb.DMatrix(features[:cut], label=labels[:cut], feature_names=names)
    valid = xgb.DMatrix(features[cut:], label=labels[cut:], feature_names=names)
    for candidate in fitted.candidates:
        params = {**fitted.params, **candidate["params"]}
        own = xgb.train(
            params,
            fit,
            num_boost_round=config.max_rounds,
            evals=[(valid, "validation")],
            early_stopping_rounds=config.early_stopping_rounds,
            verbose_eval=False,
        )
        assert candidate["rounds"] == own.best_iteration + 1 < config.max_rounds
    assert fitted.booster.num_boosted_rounds() == fitted.rounds


def test_early_stopping_scored_every_k_rounds_stops_on_a_multiple_of_k() -> None:
    features, labels, names = _noisy_problem()
    config = TrainingConfig(
        max_rounds=600, early_stopping_rounds=25, validation_every=7, screen_rounds=600
    )
    fitted = fit_model(features, labels, np.ones(len(labels)), names, config)
    assert all(c["rounds"] % 7 == 0 for c in fitted.candidates)
    assert fitted.rounds < config.max_rounds


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"screen_rounds": 0}, "screen_rounds=0 must be at least 1"),
        ({"max_rounds": 0}, "max_rounds=0 must be at least 1"),
        ({"validation_every": 0}, "validation_every=0 must be at least 1"),
        ({"validation_fraction": 1.0}, "validation_fraction=1.0 must lie in"),
    ],
)
def test_out_of_range_training_settings_are_refused(
    setting: dict[str, float], message: str
) -> None:
    with pytest.raises(TrainingConfigError, match=message):
        TrainingConfig(**setting)  # type: ignore[arg-type]


def test_a_fit_reports_where_it_is_every_100_rounds() -> None:
    features, labels, names = _noisy_problem()
    config = TrainingConfig(max_rounds=600, early_stopping_rounds=300, screen_rounds=300)
    heard: list[str] = []
    fitted = fit_model(features, labels, np.ones(len(labels)), names, config, heard.append)
    # patience 300: neither candidate can stop inside the 300-round screen
    pattern = re.compile(
        r"(candidate (?P<n>[12])/2 \(screen 300\)|the best candidate trains on): "
        r"round (?P<round>\d+)/600, best validation AUCPR 0\.\d{4} at \d+"
    )
    searched = [pattern.fullmatch(m) for m in heard if not m.startswith("refit")]
    assert all(searched), heard
    assert [(m["n"], int(m["round"])) for m in searched if m and m["n"]] == [
        (n, r) for n in "12" for r in (100, 200, 300)
    ]
    assert all(int(m["round"]) > 300 for m in searched if m and not m["n"])
    refit = [m for m in heard if m.startswith("refit on the whole window: ")]
    assert refit == [
        f"refit on the whole window: round {r}/{fitted.rounds}"
        for r in range(100, fitted.rounds + 1, 100)
    ]


def test_a_fitting_part_without_fraud_is_refused() -> None:
    features, labels, names = _noisy_problem()
    cut = int(len(labels) * 0.8)
    labels[:cut] = 0  # every fraud in the validation slice: nothing to fit on
    with pytest.raises(TrainingDataError, match=r"fitting part .* \(4800 rows\) has 0 frauds"):
        fit_model(features, labels, np.ones(len(labels)), names, TrainingConfig())


def test_fold_features_refuse_rows_they_were_not_computed_for() -> None:
    generator = TrafficGenerator(SimulationConfig(cards=200, merchants=20, seed=5))
    history = generator.history(start=datetime(2025, 2, 1, tzinfo=UTC), days=10)
    fold = split_history(
        history, TimeSplit(train_start=date(2025, 2, 3), train_days=2, delay_days=1, test_days=1)
    )
    features = FoldFeatures.compute(CORE_FEATURE_SET, history, [fold])
    assert features.take(fold.test).shape == (fold.test_rows, len(CORE_FEATURE_SET.names))
    outside = np.array([len(history) - 1])  # the last day: in neither window
    with pytest.raises(TrainingDataError, match="were not computed"):
        features.take(outside)


def test_a_champion_feature_set_inside_the_candidates_is_read_from_its_columns() -> None:
    """The gate scores a `core` champion under an `extended` candidate from the candidate's
    own matrix: the columns must hold exactly what computing `core` gives."""
    generator = TrafficGenerator(SimulationConfig(cards=200, merchants=20, seed=5))
    history = generator.history(start=datetime(2025, 2, 1, tzinfo=UTC), days=10)
    fold = split_history(
        history, TimeSplit(train_start=date(2025, 2, 3), train_days=2, delay_days=1, test_days=1)
    )
    extended = FoldFeatures.compute(EXTENDED_FEATURE_SET, history, [fold])
    core = FoldFeatures.compute(CORE_FEATURE_SET, history, [fold])
    columns = extended.columns_of(CORE_FEATURE_SET)
    assert columns is not None
    assert [extended.names[i] for i in columns] == list(CORE_FEATURE_SET.names)
    np.testing.assert_array_equal(extended.take(fold.test)[:, columns], core.take(fold.test))
    # a feature the candidate lacks, or defines differently: no shortcut
    assert core.columns_of(EXTENDED_FEATURE_SET) is None
    ten_minutes = CORE_FEATURE_SET.features[1]  # the card's payments in 10 minutes
    assert isinstance(ten_minutes, WindowAggregate)
    twenty = replace(ten_minutes, window_s=1200, alias=ten_minutes.name)  # the same name
    assert extended.columns_of(replace(CORE_FEATURE_SET, features=(ten_minutes,))) == [1]
    assert extended.columns_of(replace(CORE_FEATURE_SET, features=(twenty,))) is None


def test_the_search_sample_keeps_every_fraud_and_the_weighted_class_totals() -> None:
    labels = np.zeros(100_000, dtype=np.int8)
    labels[::1000] = 1  # 100 frauds
    rows, weight = search_sample(labels, 10_000, seed=7)
    assert isinstance(rows, np.ndarray)
    assert weight is not None
    assert np.all(np.diff(rows) > 0)  # in order
    assert labels[rows].sum() == 100
    assert np.all(weight[labels[rows] == 1] == 1.0)
    assert abs(len(rows) - 10_000) < 400  # about the limit
    assert weight[labels[rows] == 0].sum() == pytest.approx(99_900, rel=0.05)
    again, _ = search_sample(labels, 10_000, seed=7)
    assert isinstance(again, np.ndarray)
    assert np.array_equal(rows, again)  # deterministic for a seed
    # within the limit: every row, unweighted, without a copy
    assert search_sample(labels, 100_000, seed=7) == (slice(0, 100_000), None)
    # frauds filling most of the limit would leave a few, very heavy legitimate rows
    labels[: 9_500 * 10 : 10] = 1
    assert search_sample(labels, 10_000, seed=7) == (slice(0, 100_000), None)


def test_a_search_on_a_sample_chooses_about_as_well_as_on_every_row() -> None:
    features, labels, names = _noisy_problem(20_000)  # a 16,000-row fitting part
    config = TrainingConfig(max_rounds=400, screen_rounds=100, early_stopping_rounds=25)
    full = fit_model(features, labels, np.ones(len(labels)), names, config)
    sampled = fit_model(
        features, labels, np.ones(len(labels)), names, replace(config, search_rows=4_000)
    )
    assert sampled.validation_ap == pytest.approx(full.validation_ap, abs=0.02)
    # the refit still trains on every row, for the rounds the sampled search chose
    assert sampled.booster.num_boosted_rounds() == sampled.rounds
    assert sampled.candidates != full.candidates
    assert sampled.search_rows < 6_000 < full.search_rows == 16_000


def test_only_the_best_screened_candidate_trains_on() -> None:
    features, labels, names = _noisy_problem()
    # screened for 5 rounds each: too few to stop, so the winner is the one trained on
    config = TrainingConfig(
        max_rounds=600, early_stopping_rounds=25, validation_every=1, screen_rounds=5
    )
    fitted = fit_model(features, labels, np.ones(len(labels)), names, config)
    winner, loser = sorted(fitted.candidates, key=lambda c: not c["finished"])
    assert winner["finished"]
    assert not loser["finished"]
    assert loser["rounds"] <= 5 < winner["rounds"] == fitted.rounds < config.max_rounds
    assert winner["params"]["scale_pos_weight"] == fitted.params["scale_pos_weight"]
    assert fitted.booster.num_boosted_rounds() == fitted.rounds


def test_the_budget_caps_the_screen_and_the_rounds() -> None:
    features, labels, names = _noisy_problem()
    # patience beyond the budget: only the budget can end these fits
    config = TrainingConfig(max_rounds=30, screen_rounds=376, early_stopping_rounds=100)
    fitted = fit_model(features, labels, np.ones(len(labels)), names, config)
    assert all(c["finished"] and c["rounds"] <= 30 for c in fitted.candidates)
    assert fitted.booster.num_boosted_rounds() == fitted.rounds <= 30


def test_a_gain_within_the_noise_keeps_the_defaults() -> None:
    features, labels, names = _noisy_problem()
    amounts = np.ones(len(labels))
    # with seed 2 the weighted candidate validates 0.003 higher, under its 0.007 noise
    config = TrainingConfig(
        seed=2, max_rounds=400, screen_rounds=100, early_stopping_rounds=25, min_gain_se=0.0
    )
    highest = fit_model(features, labels, amounts, names, config)
    reference, weighted = highest.candidates
    assert weighted["validation_ap"] > reference["validation_ap"]
    assert highest.params["scale_pos_weight"] == weighted["params"]["scale_pos_weight"] > 1
    heard: list[str] = []
    kept = fit_model(
        features, labels, amounts, names, replace(config, min_gain_se=1.0), heard.append
    )
    assert kept.params["scale_pos_weight"] == 1.0
    assert any(m.startswith("kept candidate 1 (the defaults)") for m in heard)
    assert highest.selection == {"highest": 2, "chosen": 2}
    assert (kept.selection["highest"], kept.selection["chosen"]) == (2, 1)
    assert 0 < kept.selection["gain"] <= kept.selection["gain_se"]


def test_a_gain_beyond_the_noise_replaces_the_defaults() -> None:
    features, labels, names = _noisy_problem()
    # with seed 7 the weighted candidate validates 0.012 higher, beyond one standard error
    config = TrainingConfig(seed=7, max_rounds=400, screen_rounds=100, early_stopping_rounds=25)
    fitted = fit_model(features, labels, np.ones(len(labels)), names, config)
    reference, weighted = fitted.candidates
    assert weighted["validation_ap"] > reference["validation_ap"] + 0.01
    assert fitted.params["scale_pos_weight"] == weighted["params"]["scale_pos_weight"] > 1
    assert fitted.selection["chosen"] == 2
    assert fitted.selection["gain"] > fitted.selection["gain_se"] > 0


def test_tuning_starts_from_the_configured_defaults() -> None:
    features, labels, names = _noisy_problem(3_000)
    config = TrainingConfig(max_rounds=40, max_depth=3, learning_rate=0.2, tune=True)
    fitted = fit_model(features, labels, np.ones(len(labels)), names, config)
    first = fitted.candidates[0]["params"]
    assert (first["max_depth"], first["eta"], first["scale_pos_weight"]) == (3, 0.2, 1.0)
    assert len(fitted.candidates) == 2 * (1 + 12)  # the defaults are not a grid point here


def test_the_handbook_result_beats_the_published_ones(handbook_dir: Path, tmp_path: Path) -> None:
    """The README's headline run: extended features, default protocol and training."""
    history = read_history(handbook_dir / "transactions_raw.parquet", columns="handbook")
    run = run_training(
        history,
        registry=ModelRegistry(tmp_path / "registry"),
        options=PipelineOptions(
            feature_set=EXTENDED_FEATURE_SET, train_start=datetime(2018, 7, 25, tzinfo=UTC)
        ),
    )
    metrics = run.metadata.metrics
    # published: baseline AUC 0.862 / AP 0.639 / CP@100 0.273; best AP 0.687, CP@100 0.305.
    # The README measures AP 0.751 and CP@100 0.303; a fall below these bounds means a
    # feature or a training default regressed.
    assert metrics["roc_auc"] > 0.862
    assert metrics["average_precision"] >= 0.745
    assert metrics["card_precision_at_100"] >= 0.295
    assert (run.test_rows, run.train_rows) == (58_264, 67_240)
    # the test window's 67,080 payments and 568 frauds, less those of known cards
    left_out = run.metadata.extra["known_compromised_left_out"]
    assert (left_out["payments"], left_out["frauds"]) == (8_816, 183)


def test_trained_model_separates_fraud(trained_registry: ModelRegistry) -> None:
    meta = trained_registry.load_champion().metadata
    assert meta.feature_names == CORE_FEATURE_SET.names  # the simulator has every column
    assert meta.feature_set_fingerprint == CORE_FEATURE_SET.fingerprint
    assert meta.metrics["roc_auc"] > 0.75
    assert meta.extra["gate"]["promote"] is True
    chosen = meta.extra["candidates"][meta.extra["selection"]["chosen"] - 1]
    assert chosen["params"]["scale_pos_weight"] == meta.extra["params"]["scale_pos_weight"]
    report = trained_registry.version_dir(1) / "report"
    assert (report / "index.html").is_file()
    for png in (
        "pr_curve",
        "roc_curve",
        "score_distribution",
        "cp_by_day",
        "cost_curve",
        "shap_importance",
        "shap_summary",
        "calibration",
    ):
        assert (report / f"{png}.png").stat().st_size > 1000


def test_training_scores_the_features_the_whole_history_gives_the_test_rows(
    tmp_path: Path,
) -> None:
    """Features are built only for the folds' rows, as float32: the scores are those of
    the float64 features of the whole history, cast, for exactly the test rows."""
    generator = TrafficGenerator(SimulationConfig(cards=300, merchants=40, seed=3))
    history = generator.history(start=datetime(2025, 2, 1, tzinfo=UTC), days=24)
    run = run_training(
        history,
        registry=ModelRegistry(tmp_path / "registry"),
        options=PipelineOptions(
            feature_set=CORE_FEATURE_SET,
            train_start=datetime(2025, 2, 14, tzinfo=UTC),  # the last 11 days, and 3 before
            train_days=6,
            delay_days=2,
            test_days=3,
            folds=2,
            training=TrainingConfig(seed=1, max_rounds=20),
        ),
    )
    names = list(run.metadata.feature_names)
    full = compute_offline_features(CORE_FEATURE_SET.select(run.metadata.feature_names), history)
    matrix = full.to_numpy()[run.evaluation.rows].astype(np.float32)
    booster = ModelRegistry(tmp_path / "registry").load(run.metadata.version).booster
    expected = booster.predict(xgb.DMatrix(matrix, feature_names=names))
    np.testing.assert_array_equal(run.evaluation.scores, expected)
    assert len(run.folds) == 2
    assert run.folds[0]["test_rows"] == run.test_rows
