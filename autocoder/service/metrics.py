"""Prometheus metrics of one worker (its own registry; scrape each worker, or see docs)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from autocoder.coding.batch import error_reason


class Metrics:
    """Requests by route and status, latency by route, records by status, micro-batch sizes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "autocoder_requests",
            "HTTP requests by route, method and status code.",
            ["route", "method", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "autocoder_request_seconds",
            "Request latency by route.",
            ["route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.records = Counter(
            "autocoder_records",
            "Records coded through /v1/code by status (errors by reason).",
            ["status"],
            registry=self.registry,
        )
        self.batch = Histogram(
            "autocoder_batch_records",
            "Records per micro-batch model pass.",
            registry=self.registry,
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 4096),
        )

    def observe_request(self, route: str, method: str, code: int, seconds: float) -> None:
        self.requests.labels(route, method, str(code)).inc()
        self.latency.labels(route).observe(seconds)

    def observe_statuses(self, statuses: list[str]) -> None:
        for status in statuses:
            reason = error_reason(status)
            self.records.labels(f"error:{reason}" if reason else status).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
