import math
import os
import subprocess
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeHistogramMetricFamily, GaugeMetricFamily

from stream_scorer.metrics import forget_dead_processes, observe_many, without_retired


def _pair() -> tuple[CollectorRegistry, Histogram, CollectorRegistry, Histogram]:
    a, b = CollectorRegistry(), CollectorRegistry()
    buckets = (0.1, 0.25, 0.5, 1.0)
    return (a, Histogram("h", "h", ["k"], buckets=buckets, registry=a),
            b, Histogram("h", "h", ["k"], buckets=buckets, registry=b))


def _samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    return {(s.name, s.labels.get("le", "")): s.value for metric in registry.collect() for s in metric.samples
            if not s.name.endswith("_created")}


def _same(many: CollectorRegistry, one: CollectorRegistry) -> None:
    got, expected = _samples(many), _samples(one)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        if key[0] == "h_sum":  # numpy sums in another order: equal up to rounding
            assert math.isclose(got[key], value, rel_tol=1e-12) or (math.isnan(got[key]) and math.isnan(value))
        else:
            assert got[key] == value, key


def test_observe_many_exposes_what_one_observe_per_value_does() -> None:
    reg_one, one, reg_many, many = _pair()
    values = [0.0, 0.1, 0.1000001, 0.25, 0.3, 0.99, 1.0, 1.5, 1e9, -2.0, 0.5]
    for v in values:
        one.labels("x").observe(v)
    observe_many(many.labels("x"), np.array(values[:4]))  # one by one
    observe_many(many.labels("x"), values[4:] * 3)  # numpy
    for v in values[4:] * 2:
        one.labels("x").observe(v)
    observe_many(many.labels("x"), [])
    _same(reg_many, reg_one)
    assert b'h_bucket{k="x",le="0.1"} 5.0' in generate_latest(reg_many)  # 0.0, 0.1, 3 x -2.0: le is inclusive
    assert b'h_count{k="x"} 25.0' in generate_latest(reg_many)


def test_observe_many_counts_nan_in_no_bucket_like_observe() -> None:
    reg_one, one, reg_many, many = _pair()
    for _ in range(11):
        one.labels("x").observe(math.nan)
        one.labels("x").observe(0.2)
    observe_many(many.labels("x"), [math.nan, 0.2] * 10)  # the numpy path
    observe_many(many.labels("x"), [math.nan, 0.2])  # a few values: one by one
    _same(reg_many, reg_one)
    assert _samples(reg_many)[("h_count", "")] == 11.0  # the count is the sum of the buckets: NaN is in none


def test_child_is_the_labelled_child_and_is_remembered() -> None:
    from stream_scorer.metrics import Metrics

    metrics = Metrics()
    first = metrics.child(metrics.decisions, "fraud", "v1", "approve")
    assert first is metrics.decisions.labels("fraud", "v1", "approve")
    assert metrics.child(metrics.decisions, "fraud", "v1", "approve") is first
    first.inc(3)
    assert metrics.registry.get_sample_value(
        "scoring_decisions_total", {"model": "fraud", "version": "v1", "action": "approve"}) == 3


def test_retired_gauge_series_are_left_out_and_other_nans_kept() -> None:
    gauge = GaugeMetricFamily("g", "g", labels=["v"])
    gauge.add_metric(["old"], math.nan)
    gauge.add_metric(["new"], 0.5)
    counter = CounterMetricFamily("c", "c", labels=["v"])
    counter.add_metric(["x"], 3.0)
    histogram_sum = GaugeHistogramMetricFamily("h", "h", buckets=[("1.0", 2.0), ("+Inf", 2.0)], gsum_value=math.nan)
    [g, c, h] = list(without_retired([gauge, counter, histogram_sum]))
    assert [(s.labels, s.value) for s in g.samples] == [({"v": "new"}, 0.5)]
    assert [s.value for s in c.samples] == [3.0]
    assert any(math.isnan(s.value) for s in h.samples)  # only gauges retire series


def test_dead_processes_live_gauges_are_forgotten(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    me = os.getpid()
    for name in (f"gauge_livesum_{dead.pid}.db", f"gauge_livemostrecent_{dead.pid}.db", f"gauge_livesum_{me}.db",
                 f"counter_{dead.pid}.db", f"gauge_max_{dead.pid}.db"):
        (tmp_path / name).write_bytes(b"")
    forget_dead_processes(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"gauge_livesum_{me}.db", f"counter_{dead.pid}.db", f"gauge_max_{dead.pid}.db"])
