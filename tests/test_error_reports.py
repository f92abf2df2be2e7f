"""No pool credential appears in a Django error report (HTML or text, DEBUG on or
off) of a failure inside fluxa_django: not in the settings section, not in the
frame variables (the driver's ``passwd`` argument), not in the message."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from django.test import RequestFactory, override_settings
from django.views.debug import ExceptionReporter, get_default_exception_reporter_filter

from fluxa_django import PoolError
from fluxa_django.conf import registry_from_settings
from fluxa_django.debug import FluxaExceptionReporterFilter
from tests.services import MYSQL_HOST, MYSQL_PORT, REDIS_ADDRESS

MYSQL_PASSWORD = "Myp4ss-for-the-report"
REDIS_PASSWORD = "Red1s-pw-in-a-query"
SASL_PASSWORD = "Kafka-sasl-pw-77"
CLICKHOUSE_PASSWORD = "Click-pw-5150"
SHORT = "pw9"  # too short to scrub everywhere: the URI patterns still hide it
SECRETS = [MYSQL_PASSWORD, REDIS_PASSWORD, SASL_PASSWORD, CLICKHOUSE_PASSWORD, SHORT]


def fluxa_setting(mysql_password: str = MYSQL_PASSWORD) -> dict[str, Any]:
    return {
        "POOLS": {
            "default": {
                "mysql": {"uri": f"mysql://fluxa:{mysql_password}@{MYSQL_HOST}:{MYSQL_PORT}/x"},
                "redis": f"{REDIS_ADDRESS}:0?user=app&password={REDIS_PASSWORD}",
            },
            "go": {"mysql": {"uri": f"fluxa:{SHORT}@tcp({MYSQL_HOST}:{MYSQL_PORT})/x"}},
            "events": {
                "kafka": {
                    "brokers": ["127.0.0.1:9092"],
                    "sasl_mechanism": "PLAIN",
                    "sasl_user": "u",
                    "sasl_password": SASL_PASSWORD,
                }
            },
            "analytics": {
                "clickhouse": {"uri": f"clickhouse://u:{CLICKHOUSE_PASSWORD}@127.0.0.1:9000/x"}
            },
        },
        "ENTITIES": [],
    }


def reports(exc_info: Any) -> tuple[str, str]:
    request = RequestFactory().get("/")
    reporter = ExceptionReporter(request, *exc_info)
    return reporter.get_traceback_html(), reporter.get_traceback_text()


def assert_clean(html: str, text: str) -> None:
    for secret in SECRETS:
        assert secret not in html, f"{secret!r} in the HTML report"
        assert secret not in text, f"{secret!r} in the text report"


def test_the_app_installs_the_filter() -> None:
    assert isinstance(get_default_exception_reporter_filter(), FluxaExceptionReporterFilter)


@pytest.mark.parametrize("debug", [True, False])
def test_a_failed_validate_reports_no_credential(debug: bool) -> None:
    with override_settings(FLUXA=fluxa_setting(), DEBUG=debug):
        registry = registry_from_settings()
        try:
            registry.validate()  # the MySQL server refuses this password
        except PoolError:
            exc_info = sys.exc_info()
        else:  # pragma: no cover
            pytest.fail("validate() connected with a wrong password")
        html, text = reports(exc_info)
    assert "Access denied" in text, "the report is about the real failure"
    assert "passwd" in html, "the frame that held the password is in the report"
    assert_clean(html, text)


def test_scrubbing_keeps_what_is_not_secret() -> None:
    with override_settings(FLUXA=fluxa_setting()):
        scrub = FluxaExceptionReporterFilter().scrub
        assert scrub("plain text") == "plain text"
        assert scrub({"key": "fx:{ab}:1", "passwd": "x"}) == {
            "key": "fx:{ab}:1",
            "passwd": "********************",
        }
        assert scrub(f"mysql://u:{SHORT}@h/db") == "mysql://u:********************@h/db"
        assert MYSQL_PASSWORD not in str(scrub([("a", f"x {MYSQL_PASSWORD} y")]))
