"""Card and merchant profiles: who pays, where, how much and when.

Profiles are drawn once from the config's seed and then stay fixed, so every day of traffic
comes from the same population. Arrays are indexed by card or merchant position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

__all__ = [
    "CHANNELS",
    "COUNTRIES",
    "HOME_COUNTRIES",
    "HOURLY_WEIGHTS",
    "MERCHANT_CATEGORIES",
    "CardProfiles",
    "MerchantCategory",
    "MerchantPool",
    "MerchantProfiles",
    "build_cards",
    "build_merchants",
]

CHANNELS: Final = ("pos", "online", "atm")
POS, ONLINE, ATM = 0, 1, 2

# Cardholders live in the first seven; the rest only appear as merchant or fraud locations.
HOME_COUNTRIES: Final = ("DE", "FR", "NL", "ES", "IT", "BE", "AT")
COUNTRIES: Final = (*HOME_COUNTRIES, "GB", "US", "BR", "TH", "RO")
_HOME_WEIGHTS = np.array([0.30, 0.20, 0.13, 0.12, 0.13, 0.06, 0.06])
# Merchants are mostly where cardholders are, with a foreign tail (online shops mostly).
_MERCHANT_COUNTRY_WEIGHTS = np.array(
    [0.27, 0.18, 0.11, 0.10, 0.11, 0.05, 0.05, 0.05, 0.05, 0.01, 0.01, 0.01]
)

# Relative transaction volume by UTC hour: quiet 0:00-6:00, lunch and evening peaks.
_NIGHT_MORNING = [0.8, 0.5, 0.3, 0.25, 0.3, 0.6, 1.5, 3.0, 4.5, 5.0, 5.5, 6.5]
_AFTERNOON_EVENING = [7.5, 7.0, 6.0, 5.5, 6.0, 7.0, 7.5, 7.0, 5.5, 4.0, 2.5, 1.5]
_HOURLY = np.array([*_NIGHT_MORNING, *_AFTERNOON_EVENING])
HOURLY_WEIGHTS: Final = _HOURLY / _HOURLY.sum()


@dataclass(frozen=True, kw_only=True)
class MerchantCategory:
    """A merchant category code with its typical basket size and where it sells."""

    mcc: str
    label: str
    amount_scale: float
    weight: float
    online_share: float  # share of merchants of this category that are online shops
    atm: bool = False


# mcc, label, amount scale, share of merchants, share of those selling online
_CATEGORY_TABLE = (
    ("5411", "grocery", 1.0, 0.20, 0.1),
    ("5812", "restaurant", 0.9, 0.14, 0.0),
    ("5814", "fast food", 0.3, 0.10, 0.1),
    ("5541", "fuel", 1.4, 0.08, 0.0),
    ("4121", "taxi", 0.6, 0.05, 0.5),
    ("5999", "misc retail", 1.0, 0.12, 0.5),
    ("5651", "clothing", 1.6, 0.08, 0.5),
    ("5732", "electronics", 3.0, 0.06, 0.6),
    ("5967", "digital goods", 0.5, 0.05, 1.0),
    ("4829", "money transfer", 2.5, 0.03, 1.0),
    ("7995", "gambling", 1.5, 0.03, 1.0),
    ("6011", "atm cash", 2.0, 0.06, 0.0),
)
MERCHANT_CATEGORIES: Final = tuple(
    MerchantCategory(
        mcc=mcc,
        label=label,
        amount_scale=scale,
        weight=weight,
        online_share=online,
        atm=mcc == "6011",
    )
    for mcc, label, scale, weight, online in _CATEGORY_TABLE
)


@dataclass(frozen=True, kw_only=True, eq=False)
class MerchantPool:
    """Merchants grouped by (channel, country) so a random pick is one vectorised gather.

    ``order`` lists merchant positions sorted by channel then country; a group is the slice
    ``order[start : start + size]``. Channel groups are contiguous too.
    """

    order: np.ndarray
    group_start: np.ndarray  # [channel, country]
    group_size: np.ndarray
    channel_start: np.ndarray  # [channel]
    channel_size: np.ndarray

    def slice_for(self, channel: int, country: int | None) -> tuple[int, int]:
        """(start, size) of the narrowest non-empty group; all merchants as the last resort."""
        if country is not None and self.group_size[channel, country] > 0:
            return int(self.group_start[channel, country]), int(self.group_size[channel, country])
        if self.channel_size[channel] > 0:
            return int(self.channel_start[channel]), int(self.channel_size[channel])
        return 0, len(self.order)

    def pick(self, start: np.ndarray, size: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Uniform merchant from each (start, size) slice, driven by uniforms ``u``."""
        offset = np.minimum((u * size).astype(np.int64), size - 1)
        return np.asarray(self.order[start + offset])


@dataclass(frozen=True, kw_only=True, eq=False)
class MerchantProfiles:
    ids: tuple[str, ...]
    category: np.ndarray  # index into MERCHANT_CATEGORIES
    mcc: tuple[str, ...]  # per category, for id gathers
    amount_scale: np.ndarray  # per merchant
    channel: np.ndarray  # index into CHANNELS
    country: np.ndarray  # index into COUNTRIES
    pool: MerchantPool

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, kw_only=True, eq=False)
class CardProfiles:
    ids: tuple[str, ...]
    home_country: np.ndarray  # index into COUNTRIES
    typical_amount: np.ndarray
    tx_per_day: np.ndarray
    channel_cdf: np.ndarray  # [card, channel], cumulative preferred channel mix
    usual_merchants: np.ndarray  # [card, slot], only the first usual_count slots are used
    usual_count: np.ndarray
    usual_share: np.ndarray  # share of the card's transactions at its usual merchants
    pool_start: np.ndarray  # [card, channel], where the card shops outside its usual set
    pool_size: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def _hex_ids(rng: np.random.Generator, count: int, *, prefix: str, digits: int) -> tuple[str, ...]:
    # Fewer than 13 hex digits behind a letter prefix: an id can never read as a card number.
    values: set[int] = set()
    out: list[str] = []
    while len(out) < count:
        for v in rng.integers(0, 16**digits, size=count - len(out), dtype=np.int64).tolist():
            if v not in values:
                values.add(v)
                out.append(f"{prefix}{v:0{digits}x}")
    return tuple(out)


def build_merchants(rng: np.random.Generator, count: int) -> MerchantProfiles:
    weights = np.array([c.weight for c in MERCHANT_CATEGORIES])
    category = rng.choice(len(MERCHANT_CATEGORIES), size=count, p=weights / weights.sum())
    online_share = np.array([c.online_share for c in MERCHANT_CATEGORIES])[category]
    is_atm = np.array([c.atm for c in MERCHANT_CATEGORIES])[category]
    channel = np.where(rng.random(count) < online_share, ONLINE, POS)
    channel = np.where(is_atm, ATM, channel).astype(np.int8)
    country = rng.choice(len(COUNTRIES), size=count, p=_MERCHANT_COUNTRY_WEIGHTS).astype(np.int16)
    # Per-merchant spread around the category scale: two grocers are not the same size.
    scale = np.array([c.amount_scale for c in MERCHANT_CATEGORIES])[category]
    scale = scale * rng.lognormal(0.0, 0.25, size=count)
    ids = _hex_ids(rng, count, prefix="merch_", digits=10)

    key = channel.astype(np.int64) * len(COUNTRIES) + country
    order = np.argsort(key, kind="stable")
    sizes = np.bincount(key, minlength=len(CHANNELS) * len(COUNTRIES))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    group_size = sizes.reshape(len(CHANNELS), len(COUNTRIES))
    pool = MerchantPool(
        order=order,
        group_start=starts.reshape(len(CHANNELS), len(COUNTRIES)),
        group_size=group_size,
        channel_start=starts.reshape(len(CHANNELS), len(COUNTRIES))[:, 0],
        channel_size=group_size.sum(axis=1),
    )
    return MerchantProfiles(
        ids=ids,
        category=category,
        mcc=tuple(c.mcc for c in MERCHANT_CATEGORIES),
        amount_scale=scale,
        channel=channel,
        country=country,
        pool=pool,
    )


_MAX_USUAL = 6


def build_cards(
    rng: np.random.Generator, count: int, merchants: MerchantProfiles, *, mean_tx_per_day: float
) -> CardProfiles:
    home = rng.choice(len(HOME_COUNTRIES), size=count, p=_HOME_WEIGHTS).astype(np.int16)
    typical = rng.lognormal(np.log(40.0), 0.8, size=count)  # median 40, p90 about 110
    tx_per_day = rng.gamma(2.0, mean_tx_per_day / 2.0, size=count)
    mix = rng.dirichlet([6.0, 3.0, 1.0], size=count)
    channel_cdf = np.cumsum(mix, axis=1)
    usual_share = rng.beta(15.0, 5.0, size=count)  # mean 0.75
    usual_count = rng.integers(3, _MAX_USUAL + 1, size=count)

    pool = merchants.pool
    # Physical channels shop at home; online shops are anywhere.
    table_start = np.zeros((len(CHANNELS), len(HOME_COUNTRIES)), dtype=np.int64)
    table_size = np.zeros_like(table_start)
    for ch in range(len(CHANNELS)):
        for c in range(len(HOME_COUNTRIES)):
            start, size = pool.slice_for(ch, None if ch == ONLINE else c)
            table_start[ch, c], table_size[ch, c] = start, size
    pool_start = table_start[:, home].T
    pool_size = table_size[:, home].T

    # Usual merchants follow the card's channel mix.
    slot_channel = (rng.random((count, _MAX_USUAL, 1)) > channel_cdf[:, None, :]).sum(axis=2)
    slot_channel = np.minimum(slot_channel, len(CHANNELS) - 1)
    rows = np.arange(count)[:, None]
    usual = pool.pick(
        pool_start[rows, slot_channel],
        pool_size[rows, slot_channel],
        rng.random((count, _MAX_USUAL)),
    )
    ids = _hex_ids(rng, count, prefix="card_", digits=12)
    return CardProfiles(
        ids=ids,
        home_country=home,
        typical_amount=typical,
        tx_per_day=tx_per_day,
        channel_cdf=channel_cdf,
        usual_merchants=usual,
        usual_count=usual_count,
        usual_share=usual_share,
        pool_start=pool_start,
        pool_size=pool_size,
    )
