"""Several API processes (``API_WORKERS``) behind one port: one ``/metrics`` counts what all of them served."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import httpx
import pytest

from stream_scorer.config import RedisSettings, Settings
from tests.conftest import TEST_REDIS_DB
from tests.support.processes import cli_process, free_port, settings_env
from tests.support.services import ServiceAddresses

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

REQUESTS = 60


def _sample(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name}{labels} not in /metrics"
    return float(match.group(1))


def _wait_gone(pid: int, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while Path(f"/proc/{pid}").exists():  # reaped by uvicorn's supervisor
        assert time.monotonic() < deadline, f"process {pid} still there"
        time.sleep(0.05)


def test_two_api_processes_report_their_requests_in_one_scrape(services: ServiceAddresses, model_dir: Path,
                                                               tmp_path: Path) -> None:
    settings = Settings(model_dir=model_dir, redis=RedisSettings(host=services.redis_host, port=services.redis_port,
                                                                 db=TEST_REDIS_DB))
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"left by an earlier run")  # emptied at start: never counted
    env = {**settings_env(settings), "API_HOST": "127.0.0.1", "API_PORT": str(port), "API_WORKERS": "2",
           "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    base_url = f"http://127.0.0.1:{port}"
    with cli_process("api", env, f"{base_url}/ready", tmp_path / "api.stdout", stderr_path=tmp_path / "api.stderr",
                     ready_timeout=60, stop_timeout=15):
        for i in range(REQUESTS):  # a new connection each: the kernel hands them to either process
            with httpx.Client(base_url=base_url, timeout=10) as client:
                response = client.post("/score/fraud", json={"card_id": f"card_workers_{i}",
                                                             "transaction_amount": 10.0 + i})
                assert response.status_code == 200, response.text
        assert not (metrics_dir / "counter_1.db").exists()
        serving = {p.name.split("_")[-1] for p in metrics_dir.glob("counter_*.db")}
        assert len(serving) == 2, f"both processes should have served: {sorted(metrics_dir.iterdir())}"
        scrapes = [httpx.get(f"{base_url}/metrics", timeout=10).text for _ in range(6)]
        killed = int(sorted(serving)[0].removesuffix(".db"))
        os.kill(killed, signal.SIGKILL)  # a crash: no shutdown, its gauge files stay behind
        _wait_gone(killed)
        after_crash = httpx.get(f"{base_url}/metrics", timeout=10).text
        assert not list(metrics_dir.glob(f"gauge_live*_{killed}.db"))
    scrapes.append(after_crash)  # the dead process's requests still count; its gauges no longer do
    for text in scrapes:  # whichever process answers the scrape, it reports both processes' requests
        assert _sample(text, "inference_requests_total", '{endpoint="/score/fraud",status="200"}') == REQUESTS
        assert _sample(text, "inference_request_duration_seconds_count", '{endpoint="/score/fraud"}') == REQUESTS
        assert _sample(text, "feature_store_up") == 1.0
        assert 'pid="' not in text  # gauges merged by their mode, no series per process
