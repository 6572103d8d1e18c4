"""A service-backed test whose service is down fails with one line that names the service."""
import pytest

from services import reach


def refused():
    raise ConnectionRefusedError("connection to server failed\n\tIs the server running?")


def test_a_service_that_is_down_fails_the_test_in_one_line_naming_it():
    with pytest.raises(pytest.fail.Exception) as failed:
        reach("postgres", "postgresql://postgres:secret@db.example:5433/test", refused, OSError)
    message = str(failed.value)
    assert "\n" not in message and "secret" not in message
    assert message.startswith("PostgreSQL is not reachable at db.example:5433 (ConnectionRefusedError: ")
    assert "BILLING_TEST_PG_URL" in message and "-m 'not postgres'" in message


def test_a_service_that_is_up_gives_the_connection():
    assert reach("redis", "redis://127.0.0.1:6379/15", lambda: "connection", OSError) == "connection"
