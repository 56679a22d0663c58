"""The three fraud scenarios, each drawn per origin day from its own random stream.

An instance can outlast its origin day (a stolen card is abused for up to 3 days, a merchant
stays compromised for up to 14), so the generator replays the instances of the last few
origin days and keeps the rows that fall in the day it builds: see ``LOOKBACK_DAYS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from simulator.ids import KIND_CARD_TESTING, KIND_STOLEN_CARD, tx_keys
from simulator.profiles import COUNTRIES, ONLINE, POS, CardProfiles, MerchantProfiles
from simulator.rows import DAY_MS, FRAUD_SCENARIOS, NS_PER_MS, RowBatch

__all__ = [
    "LOOKBACK_DAYS",
    "CompromiseWindows",
    "apply_compromises",
    "card_testing",
    "compromise_windows",
    "stolen_card",
]

_STOLEN = FRAUD_SCENARIOS.index("stolen_card")
_COMPROMISED = FRAUD_SCENARIOS.index("compromised_merchant")
_TESTING = FRAUD_SCENARIOS.index("card_testing")
_ROWS_PER_INSTANCE: Final = 32  # index stride in tx keys; instances have at most 13 rows
_MINUTE_MS = 60_000

# How many earlier origin days can still produce rows today, per scenario.
LOOKBACK_DAYS: Final = {"stolen_card": 3, "compromised_merchant": 15, "card_testing": 1}


def _instances(
    rng: np.random.Generator, *, expected: float, population: int, day_start_ns: int
) -> tuple[np.ndarray, np.ndarray]:
    count = rng.poisson(expected)
    who = rng.integers(0, population, size=count)
    start_ms = day_start_ns // NS_PER_MS + rng.integers(0, DAY_MS, size=count)
    return who, start_ms


def _expand(per_instance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(instance, position within instance) for every row."""
    instance = np.repeat(np.arange(len(per_instance)), per_instance)
    first = np.concatenate([[0], np.cumsum(per_instance)[:-1]]).astype(np.int64)
    return instance, np.arange(len(instance)) - first[instance]


def _foreign_country(rng: np.random.Generator, home: np.ndarray) -> np.ndarray:
    # A uniform shift of 1..len-1 never lands back on the home country.
    shift = rng.integers(1, len(COUNTRIES), size=len(home))
    return np.asarray((home + shift) % len(COUNTRIES))


def _pick_unusual(
    rng: np.random.Generator,
    merchants: MerchantProfiles,
    cards: CardProfiles,
    card: np.ndarray,
    channel: np.ndarray,
) -> np.ndarray:
    """A random merchant of ``channel`` anywhere, nudged off the card's usual merchants."""
    pool = merchants.pool
    start = pool.channel_start[channel]
    size = np.maximum(pool.channel_size[channel], 1)
    offset = np.minimum((rng.random(len(card)) * size).astype(np.int64), size - 1)
    merchant = pool.order[start + offset]
    clash = (cards.usual_merchants[card] == merchant[:, None]).any(axis=1)
    offset = np.where(clash, (offset + 1) % size, offset)
    return np.asarray(pool.order[start + offset])


def stolen_card(
    rng: np.random.Generator,
    *,
    seed: int,
    day: int,
    day_start_ns: int,
    rate: float,
    cards: CardProfiles,
    merchants: MerchantProfiles,
) -> RowBatch:
    """A fraudster holds the card for 1-3 days: 3-12 purchases at 3-10x the usual amount,
    mostly online, at merchants the card does not use, often from abroad. The holder's own
    traffic goes on in parallel (it is drawn separately)."""
    card_of, start_ms = _instances(
        rng, expected=rate * len(cards), population=len(cards), day_start_ns=day_start_ns
    )
    n_inst = len(card_of)
    span_ms = rng.uniform(1.0, 3.0, size=n_inst) * DAY_MS
    per_instance = rng.integers(3, 13, size=n_inst)
    abroad = rng.random(n_inst) < 0.4
    instance, position = _expand(per_instance)
    n = len(instance)
    u = rng.random(n)
    u = u[np.lexsort((u, instance))]  # sorted within each instance: times increase
    time_ms = start_ms[instance] + (u * span_ms[instance]).astype(np.int64)
    card = card_of[instance]
    amount = np.round(cards.typical_amount[card] * rng.uniform(3.0, 10.0, size=n), 2)
    channel = np.where(rng.random(n) < 0.7, ONLINE, POS).astype(np.int8)
    merchant = _pick_unusual(rng, merchants, cards, card, channel)
    home = cards.home_country[card]
    buyer_country = np.where(abroad[instance], _foreign_country(rng, home), home)
    country = np.where(channel == ONLINE, buyer_country, merchants.country[merchant])
    return RowBatch(
        time_ns=time_ms * NS_PER_MS,
        card=card.astype(np.int64),
        merchant=merchant.astype(np.int64),
        amount=np.maximum(amount, 0.01),
        channel=channel,
        country=country.astype(np.int16),
        scenario=np.full(n, _STOLEN, dtype=np.int8),
        key=tx_keys(
            seed=seed,
            day=day,
            kind=KIND_STOLEN_CARD,
            index=instance * _ROWS_PER_INSTANCE + position,
        ),
    )


def card_testing(
    rng: np.random.Generator,
    *,
    seed: int,
    day: int,
    day_start_ns: int,
    rate: float,
    cards: CardProfiles,
    merchants: MerchantProfiles,
) -> RowBatch:
    """3-10 tiny online payments (0.50-2.00) within 5 minutes to check the card works, then
    one large payment (200-2000) within the hour of the first."""
    card_of, start_ms = _instances(
        rng, expected=rate * len(cards), population=len(cards), day_start_ns=day_start_ns
    )
    n_inst = len(card_of)
    tiny_count = rng.integers(3, 11, size=n_inst)
    abroad = rng.random(n_inst) < 0.5
    instance, position = _expand(tiny_count + 1)
    n = len(instance)
    is_large = position == tiny_count[instance]
    u = rng.random(n)
    u = u[np.lexsort((u, instance))]
    tiny_offset = (u * 5 * _MINUTE_MS).astype(np.int64)
    large_offset = rng.integers(10 * _MINUTE_MS, 60 * _MINUTE_MS, size=n)
    time_ms = start_ms[instance] + np.where(is_large, large_offset, tiny_offset)
    amount = np.where(is_large, rng.uniform(200.0, 2000.0, size=n), rng.uniform(0.5, 2.0, size=n))
    card = card_of[instance]
    channel = np.full(n, ONLINE, dtype=np.int8)
    merchant = _pick_unusual(rng, merchants, cards, card, channel)
    home = cards.home_country[card]
    country = np.where(abroad[instance], _foreign_country(rng, home), home)
    return RowBatch(
        time_ns=time_ms * NS_PER_MS,
        card=card.astype(np.int64),
        merchant=merchant.astype(np.int64),
        amount=np.round(amount, 2),
        channel=channel,
        country=country.astype(np.int16),
        scenario=np.full(n, _TESTING, dtype=np.int8),
        key=tx_keys(
            seed=seed,
            day=day,
            kind=KIND_CARD_TESTING,
            index=instance * _ROWS_PER_INSTANCE + position,
        ),
    )


@dataclass(frozen=True, kw_only=True, eq=False)
class CompromiseWindows:
    """Merchants compromised in [start_ns, end_ns); ``share`` of their traffic is fraud."""

    merchant: np.ndarray
    start_ns: np.ndarray
    end_ns: np.ndarray
    share: np.ndarray
    amount_factor: np.ndarray

    @staticmethod
    def concat(parts: list[CompromiseWindows]) -> CompromiseWindows:
        return CompromiseWindows(
            merchant=np.concatenate([p.merchant for p in parts]),
            start_ns=np.concatenate([p.start_ns for p in parts]),
            end_ns=np.concatenate([p.end_ns for p in parts]),
            share=np.concatenate([p.share for p in parts]),
            amount_factor=np.concatenate([p.amount_factor for p in parts]),
        )


def compromise_windows(
    rng: np.random.Generator, *, day_start_ns: int, rate: float, merchants: MerchantProfiles
) -> CompromiseWindows:
    """Merchants whose terminals or checkout get compromised on this origin day, for 2-14
    days: 60-100 % of the payments there are then fraudulent, 1.2-2x larger than usual."""
    merchant, start_ms = _instances(
        rng, expected=rate * len(merchants), population=len(merchants), day_start_ns=day_start_ns
    )
    n = len(merchant)
    duration_ms = (rng.uniform(2.0, 14.0, size=n) * DAY_MS).astype(np.int64)
    return CompromiseWindows(
        merchant=merchant,
        start_ns=start_ms * NS_PER_MS,
        end_ns=(start_ms + duration_ms) * NS_PER_MS,
        share=rng.uniform(0.6, 1.0, size=n),
        amount_factor=rng.uniform(1.2, 2.0, size=n),
    )


def apply_compromises(
    rng: np.random.Generator, rows: RowBatch, windows: CompromiseWindows, *, merchant_count: int
) -> RowBatch:
    """Turn the legitimate rows that fall in a compromise window into its frauds."""
    n = len(rows)
    u = rng.random(n)  # drawn whatever the windows, so the stream stays aligned
    factor_noise = rng.uniform(0.9, 1.1, size=n)
    share = np.zeros(n)
    factor = np.ones(n)
    # One lookup table per "layer" so a merchant compromised twice is handled too.
    order = np.lexsort((windows.start_ns, windows.merchant))
    merchant_sorted = windows.merchant[order]
    first = np.searchsorted(merchant_sorted, merchant_sorted, side="left")
    layer = np.arange(len(order)) - first
    for level in range(int(layer.max(initial=-1)) + 1):
        chosen = order[layer == level]
        lut = np.full(merchant_count, -1, dtype=np.int64)
        lut[windows.merchant[chosen]] = chosen
        w = lut[rows.merchant]
        hit = w >= 0
        wi = np.where(hit, w, 0)
        inside = hit & (rows.time_ns >= windows.start_ns[wi]) & (rows.time_ns < windows.end_ns[wi])
        share = np.where(inside, np.maximum(share, windows.share[wi]), share)
        factor = np.where(inside, windows.amount_factor[wi], factor)
    fraud = (u < share) & (rows.scenario == 0)
    amount = np.where(fraud, np.round(rows.amount * factor * factor_noise, 2), rows.amount)
    scenario = np.where(fraud, _COMPROMISED, rows.scenario).astype(np.int8)
    return RowBatch(
        time_ns=rows.time_ns,
        card=rows.card,
        merchant=rows.merchant,
        amount=amount,
        channel=rows.channel,
        country=rows.country,
        scenario=scenario,
        key=rows.key,
    )
