"""Metrics, request ids and JSON logs."""

from __future__ import annotations

import json
import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from auth_mcp.http.logs import JsonFormatter, configure_logging
from auth_mcp.http.metrics import LatencyHistogram
from tests.support.oauth import call_tool, login
from tests.support.server import in_process

METRICS_TOKEN = "scrape-token-for-tests-0123456789"
SCRAPER = {"authorization": f"Bearer {METRICS_TOKEN}"}


async def test_metrics_count_logins_tokens_refusals_github_calls_and_latency(db_url: str) -> None:
    async with in_process(database_url=db_url, metrics_token=METRICS_TOKEN) as env:
        _, tokens = await login(env)
        await call_tool(env, tokens.access_token, "get_user_profile")
        await call_tool(env, "amcp_at_nope", "whoami")
        await call_tool(env, tokens.access_token, "get_user_emails")
        text = (await env.http.get("/metrics", headers=SCRAPER)).text
    assert 'auth_mcp_logins_total{outcome="ok"} 1.0' in text
    assert 'auth_mcp_tokens_issued_total{grant_type="authorization_code"} 1.0' in text
    assert 'auth_mcp_tokens_refused_total{reason="invalid"} 1.0' in text
    assert 'auth_mcp_tokens_refused_total{reason="insufficient_scope"} 1.0' in text
    assert 'auth_mcp_github_requests_total{endpoint="oauth.exchange",status="200"} 1.0' in text
    assert 'auth_mcp_github_requests_total{endpoint="user",status="200"}' in text
    assert "auth_mcp_github_rate_limit_remaining" in text
    assert 'auth_mcp_http_request_duration_seconds_count{method="POST",route="/mcp",status="200"}' in text
    assert "amcp_" not in text  # no token ever becomes a label


async def test_the_latency_histogram_is_valid_prometheus_exposition(db_url: str) -> None:
    async with in_process(database_url=db_url, metrics_token=METRICS_TOKEN) as env:
        for _ in range(3):
            await env.http.get("/healthz")
        text = (await env.http.get("/metrics", headers=SCRAPER)).text
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == "auth_mcp_http_request_duration_seconds"]
    assert family.type == "histogram"
    healthz = [s for s in family.samples if s.labels.get("route") == "/healthz"]
    buckets = [s for s in healthz if s.name.endswith("_bucket")]
    assert [s.labels["le"] for s in buckets][-1] == "+Inf" and len(buckets) == 14
    counts = [s.value for s in buckets]
    assert counts == sorted(counts) and counts[-1] == 3  # cumulative, +Inf holds every request
    by_name = {s.name: s.value for s in healthz if not s.name.endswith("_bucket")}
    assert by_name["auth_mcp_http_request_duration_seconds_count"] == 3
    assert 0 < by_name["auth_mcp_http_request_duration_seconds_sum"] < 3
    assert {s.labels["method"] for s in healthz} == {"GET"} and {s.labels["status"] for s in healthz} == {"200"}


def test_histogram_buckets_are_upper_bounds_inclusive() -> None:
    histogram = LatencyHistogram("t", "t", ("route",), buckets=(0.001, 0.01))
    for seconds in (0.001, 0.0011, 0.01, 5.0):
        histogram.observe(("/x",), seconds)
    (family,) = histogram.collect()
    buckets = {s.labels["le"]: s.value for s in family.samples if s.name == "t_bucket"}
    assert buckets == {"0.001": 1, "0.01": 3, "+Inf": 4}
    assert [s.value for s in family.samples if s.name == "t_sum"] == [pytest.approx(5.0121)]


async def test_every_response_carries_a_request_id_and_a_sane_incoming_one_is_kept(db_url: str) -> None:
    async with in_process(database_url=db_url, metrics_token=METRICS_TOKEN) as env:
        generated = (await env.http.get("/healthz")).headers["x-request-id"]
        assert len(generated) == 32 and generated != (await env.http.get("/healthz")).headers["x-request-id"]
        assert (await env.http.get("/healthz", headers={"x-request-id": "lb-1234"})).headers["x-request-id"] == "lb-1234"
        forged = (await env.http.get("/healthz", headers={"x-request-id": "a\nb" * 40})).headers["x-request-id"]
        assert forged != "a\nb" * 40 and len(forged) == 32


async def test_json_logs_are_one_object_per_line_with_the_request_id(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("INFO", "json")
        async with in_process(database_url=db_url, metrics_token=METRICS_TOKEN) as env:
            rid = (await env.http.get("/healthz", headers={"x-request-id": "req-42"})).headers["x-request-id"]
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "auth_mcp.access"]
    assert access and access[-1]["request_id"] == rid == "req-42"
    assert {"time", "level", "logger", "message", "request_id"} <= set(access[-1])


def test_the_json_formatter_includes_exceptions() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s", ("here",), exc_info=__import__("sys").exc_info())
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "failed here" and "ValueError: boom" in entry["exception"]
