"""Each service connects to PostgreSQL as its own role, which owns only its schema: the registry
cannot read the gateway's tokens, the gateway cannot read the registry, neither is a superuser."""
import psycopg
import pytest

from conftest import SERVICE_DATABASE_URLS, Closing
from tsunagu_peer import ok


def test_each_service_runs_as_a_role_that_owns_only_its_schema(suite):
    with Closing(suite.client()) as client:  # both services are up and working as their roles
        assert ok(client.call("registry", "area.get", {"code": "131016"}))["name"] == "千代田区"
    registry_url, gateway_url = SERVICE_DATABASE_URLS["tsunagu-registry"], SERVICE_DATABASE_URLS["tsunagu-gateway"]
    assert "tsunagu_registry@" in registry_url and "tsunagu_gateway@" in gateway_url
    with psycopg.connect(registry_url) as registry:
        row = registry.execute("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
        assert row == ("tsunagu_registry", False)
        assert registry.execute("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'registry'").fetchone()[0] \
            == "tsunagu_registry"
        assert registry.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'registry' AND tableowner <> 'tsunagu_registry'").fetchone()[0] == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            registry.execute("SELECT count(*) FROM gateway.tokens")
        registry.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            registry.execute("CREATE TABLE public.stray (x int)")
    with psycopg.connect(gateway_url) as gateway:
        assert gateway.execute("SELECT current_user").fetchone()[0] == "tsunagu_gateway"
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            gateway.execute("SELECT count(*) FROM registry.resources")
