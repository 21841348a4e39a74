import pytest

from stream_scorer.core.geo import COUNTRY_CENTROIDS, country_distance_km, haversine_km


def test_the_table_holds_the_great_circle_distance_of_every_pair_of_known_countries() -> None:
    for a, pa in COUNTRY_CENTROIDS.items():
        for b, pb in COUNTRY_CENTROIDS.items():
            expected = 0.0 if a == b else haversine_km(pa, pb)
            assert country_distance_km(a, b) == expected


def test_distances_are_symmetric_and_plausible() -> None:
    assert country_distance_km("FR", "DE") == country_distance_km("DE", "FR")
    assert country_distance_km("FR", "DE") == pytest.approx(700, abs=150)
    assert country_distance_km("US", "AU") == pytest.approx(14_000, abs=1_500)


@pytest.mark.parametrize(("a", "b"), [("US", "US"), ("US", "XX"), ("XX", "US"), ("XX", "YY"), ("", "US")])
def test_the_same_or_an_unknown_country_is_at_distance_zero(a: str, b: str) -> None:
    assert country_distance_km(a, b) == 0.0
