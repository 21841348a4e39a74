"""Country geography for the distance-from-usual-country feature."""

from __future__ import annotations

import math
from collections.abc import Mapping

# Approximate centroids (lat, lon) of the countries the simulators use; unknown countries give distance 0.
COUNTRY_CENTROIDS: Mapping[str, tuple[float, float]] = {
    "US": (39.8, -98.6), "CA": (56.1, -106.3), "MX": (23.6, -102.6), "BR": (-14.2, -51.9), "AR": (-38.4, -63.6),
    "GB": (55.4, -3.4), "IE": (53.4, -8.2), "FR": (46.2, 2.2), "DE": (51.2, 10.5), "ES": (40.5, -3.7),
    "IT": (41.9, 12.6), "NL": (52.1, 5.3), "BE": (50.5, 4.5), "CH": (46.8, 8.2), "SE": (60.1, 18.6),
    "PL": (51.9, 19.1), "PT": (39.4, -8.2), "RO": (45.9, 25.0), "UA": (48.4, 31.2), "RU": (61.5, 105.3),
    "TR": (39.0, 35.2), "NG": (9.1, 8.7), "ZA": (-30.6, 22.9), "EG": (26.8, 30.8), "IN": (20.6, 79.0),
    "CN": (35.9, 104.2), "JP": (36.2, 138.3), "KR": (35.9, 127.8), "SG": (1.35, 103.8), "AU": (-25.3, 133.8),
    "AE": (23.4, 53.8), "TH": (15.9, 101.0), "ID": (-0.8, 113.9), "PH": (12.9, 121.8), "VN": (14.1, 108.3),
}


def country_distance_km(a: str, b: str) -> float:
    """Great-circle distance between the two countries' centroids (0 for the same or an unknown country)."""
    return DISTANCES.get((a, b), 0.0)


def haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return round(2 * 6371.0 * math.asin(math.sqrt(h)), 3)


DISTANCES: dict[tuple[str, str], float] = {
    (a, b): haversine_km(pa, pb) for a, pa in COUNTRY_CENTROIDS.items() for b, pb in COUNTRY_CENTROIDS.items()
    if a != b}
"""Every pair computed once (~1,200): the feature is read for every foreign transaction, and the trigonometry
cost ~2.5 us each time."""
