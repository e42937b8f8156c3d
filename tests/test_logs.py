"""Logs are JSON lines and never show a whole phone number."""

from __future__ import annotations

import json
import logging

import pytest

from touchwave.logs import JsonFormatter, mask_msisdn


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("13812345678", "138****5678"),
        ("+8613812345678", "+86138****5678"),
        ("call 15912345678 and 18800001111", "call 159****5678 and 188****1111"),
        ("order 2026112412345678901", "order 2026112412345678901"),
        ("id 12345678901", "id 12345678901"),
    ],
)
def test_msisdns_are_masked(raw, shown):
    assert mask_msisdn(raw) == shown


def test_a_record_with_an_msisdn_in_its_fields_is_masked():
    record = logging.LogRecord("touchwave.test", logging.INFO, __file__, 1, "contact sent to %s", ("13812345678",), None)
    record.msisdn = "13987654321"
    record.campaign = 7
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert entry["event"] == "contact sent to 138****5678"
    assert entry["msisdn"] == "139****4321"
    assert (entry["campaign"], entry["level"], entry["logger"]) == (7, "info", "touchwave.test")
