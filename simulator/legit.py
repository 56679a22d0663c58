"""One day of genuine cardholder traffic, drawn for the whole population at once."""

from __future__ import annotations

import numpy as np

from simulator.ids import KIND_LEGIT, tx_keys
from simulator.profiles import ATM, HOURLY_WEIGHTS, ONLINE, CardProfiles, MerchantProfiles
from simulator.rows import DAY_MS, NS_PER_MS, RowBatch

__all__ = ["clock_offsets_ms", "legit_day"]

_HOUR_MS = 3_600_000
_MIN_AMOUNT = 1.0
_MAX_AMOUNT = 25_000.0


def clock_offsets_ms(rng: np.random.Generator, n: int, *, day_start_ns: int) -> np.ndarray:
    """Offsets into the 24 h window starting at ``day_start_ns``, following the UTC daily curve.

    Drawing a clock time and wrapping it into the window keeps the curve right even when the
    window does not start at midnight.
    """
    hour = rng.choice(24, size=n, p=HOURLY_WEIGHTS)
    clock_ms = hour * _HOUR_MS + rng.integers(0, _HOUR_MS, size=n)
    start_clock_ms = (day_start_ns // NS_PER_MS) % DAY_MS
    return np.asarray((clock_ms - start_clock_ms) % DAY_MS)


def legit_day(
    rng: np.random.Generator,
    *,
    seed: int,
    day: int,
    day_start_ns: int,
    cards: CardProfiles,
    merchants: MerchantProfiles,
) -> RowBatch:
    counts = rng.poisson(cards.tx_per_day)
    card = np.repeat(np.arange(len(cards)), counts)
    n = len(card)
    time_ns = day_start_ns + clock_offsets_ms(rng, n, day_start_ns=day_start_ns) * NS_PER_MS

    at_usual = rng.random(n) < cards.usual_share[card]
    slot = np.minimum(
        (rng.random(n) * cards.usual_count[card]).astype(np.int64),
        cards.usual_merchants.shape[1] - 1,
    )
    usual_merchant = cards.usual_merchants[card, slot]
    channel = (rng.random(n)[:, None] > cards.channel_cdf[card]).sum(axis=1)
    channel = np.minimum(channel, cards.channel_cdf.shape[1] - 1)
    other_merchant = merchants.pool.pick(
        cards.pool_start[card, channel], cards.pool_size[card, channel], rng.random(n)
    )
    merchant = np.where(at_usual, usual_merchant, other_merchant)
    tx_channel = merchants.channel[merchant]

    amount = (
        cards.typical_amount[card]
        * merchants.amount_scale[merchant]
        * rng.lognormal(0.0, 0.6, size=n)
    )
    # Cash machines pay out in notes.
    amount = np.where(tx_channel == ATM, np.maximum(20.0, np.round(amount / 20.0) * 20.0), amount)
    amount = np.round(np.clip(amount, _MIN_AMOUNT, _MAX_AMOUNT), 2)
    # Online, the country is where the buyer is; in person, where the terminal is.
    country = np.where(tx_channel == ONLINE, cards.home_country[card], merchants.country[merchant])
    return RowBatch(
        time_ns=time_ns.astype(np.int64),
        card=card.astype(np.int64),
        merchant=merchant.astype(np.int64),
        amount=amount.astype(np.float64),
        channel=tx_channel.astype(np.int8),
        country=country.astype(np.int16),
        scenario=np.zeros(n, dtype=np.int8),
        key=tx_keys(seed=seed, day=day, kind=KIND_LEGIT, index=np.arange(n)),
    )
