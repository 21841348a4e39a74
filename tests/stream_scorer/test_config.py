from __future__ import annotations

import pytest

from stream_scorer.config import SettingsError, load_settings


def test_seed_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_HOST", "redis.internal")
    monkeypatch.setenv("REDIS_PORT", "6380")
    monkeypatch.setenv("REDIS_PASSWORD", "pw")
    monkeypatch.setenv("API_PORT", "9000")
    monkeypatch.setenv("USE_ONNX", "true")
    monkeypatch.setenv("FEATURE_CACHE_TTL", "60")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    s = load_settings()
    assert (s.redis.host, s.redis.port, s.api.port, s.use_onnx, s.feature_cache_ttl, s.log_level) == (
        "redis.internal", 6380, 9000, True, 60.0, "DEBUG")
    assert s.redis.password is not None and s.redis.password.get_secret_value() == "pw"
    assert "pw" not in repr(s)


@pytest.mark.parametrize(("name", "value"), [("REDIS_PORT", "abc"), ("API_PORT", "70000"),
                                             ("KAFKA_BOOTSTRAP_SERVERS", "nohostport"),
                                             ("API_REDIS_DOWN_STATUS", "404")])
def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        load_settings()
