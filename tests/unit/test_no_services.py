"""tests/unit needs no service, and its conftest makes sure: these fail if the guard is off."""
import socket

import psycopg
import pytest
import redis

from services import PG_ADMIN_URL, REDIS_URL, ServiceUsedInUnitTest


@pytest.mark.parametrize("port", [5432, 6379, 5672])
def test_a_socket_to_a_service_port_is_refused(port):
    with socket.socket() as sock, pytest.raises(ServiceUsedInUnitTest, match="tests/unit needs no service"):
        sock.connect(("127.0.0.1", port))


def test_postgresql_is_refused_before_libpq_is_reached():
    with pytest.raises(ServiceUsedInUnitTest):
        psycopg.connect(PG_ADMIN_URL)


def test_a_redis_client_is_refused():
    with pytest.raises(ServiceUsedInUnitTest):
        redis.Redis.from_url(REDIS_URL).ping()


def test_the_service_fixtures_fail(request):
    for fixture in ("pg_url", "redis_url", "amqp_url"):
        with pytest.raises(ServiceUsedInUnitTest, match="move this test to tests/integration"):
            request.getfixturevalue(fixture)


def test_other_sockets_still_work():
    """In-process servers on free ports (the emulator, test receivers) stay usable."""
    with socket.create_server(("127.0.0.1", 0)) as server, socket.create_connection(server.getsockname()):
        pass
