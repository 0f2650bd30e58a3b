"""Settings: file < environment < overrides, `${…}` expansion, errors that say where, masking."""

import json
import subprocess
import sys
import textwrap

import pytest

from taskengine.config import (
    Settings,
    aload_settings,
    load_settings,
    mask_settings,
    parse_overrides,
)
from taskengine.errors import ConfigError
from taskengine.logs import clear_registered_secrets, redact
from taskengine.store.secret_store import SecretStore, generate_key, open_secret_store


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Run every test in an empty directory, so no ./taskengine.yaml is picked up by accident."""
    monkeypatch.chdir(tmp_path)
    yield
    clear_registered_secrets()


def write(tmp_path, text, name="taskengine.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems(err):
    return [str(p) for p in err.value.problems]


def test_defaults_without_file_or_env():
    settings = load_settings(environ={})
    assert settings == Settings()
    assert settings.source_file is None
    assert settings.server.port == 8080 and settings.activity_max_events == 1000
    assert (
        settings.retry.base == 0.1
        and settings.retry.max == 10.0
        and settings.retry.max_attempts_cap == 10
    )
    assert settings.limits.max_input_bytes == 1_000_000 and settings.limits.run_timeout is None


def test_precedence_file_then_env_then_overrides(tmp_path):
    path = write(
        tmp_path,
        """
        default_model: from-file
        server: {port: 1000, host: 0.0.0.0}
    """,
    )
    env = {"TASKENGINE_SERVER__PORT": "2000"}
    assert load_settings(path, environ={}).server.port == 1000
    from_env = load_settings(path, environ=env)
    assert (from_env.server.port, from_env.server.host, from_env.default_model) == (
        2000,
        "0.0.0.0",
        "from-file",
    )
    overridden = load_settings(
        path, environ=env, overrides={"server": {"port": 3000}, "default_model": "cli"}
    )
    assert (overridden.server.port, overridden.server.host, overridden.default_model) == (
        3000,
        "0.0.0.0",
        "cli",
    )
    dotted = load_settings(path, environ=env, overrides=parse_overrides(["server.port=4000"]))
    assert dotted.server.port == 4000


def test_file_discovery_explicit_env_and_cwd(tmp_path):
    write(tmp_path, "default_model: cwd\n")
    other = write(tmp_path, "default_model: named\n", name="other.yaml")
    assert load_settings(environ={}).default_model == "cwd"
    assert load_settings(environ={"TASKENGINE_CONFIG": str(other)}).default_model == "named"
    assert load_settings(other, environ={}).source_file == str(other)
    with pytest.raises(ConfigError, match=r"nope\.yaml: configuration file not found"):
        load_settings(tmp_path / "nope.yaml", environ={})


def test_pinned_plain_variables():
    env = {
        "TASKENGINE_MODEL": "llama3",
        "TASKENGINE_PROVIDER": "ollama",
        "TASKENGINE_EMBED_MODEL": "nomic-embed-text",
        "TASKENGINE_DB": "sqlite:///tmp/x.db",
        "TASKENGINE_API_TOKEN": "server-token-123",
    }
    s = load_settings(environ=env)
    assert (s.default_model, s.default_provider, s.default_embed_model) == (
        "llama3",
        "ollama",
        "nomic-embed-text",
    )
    assert s.db == "sqlite:///tmp/x.db" and s.server.api_token == "server-token-123"
    # the explicit nested spelling wins over the plain alias
    both = load_settings(environ={"TASKENGINE_MODEL": "a", "TASKENGINE_DEFAULT_MODEL": "b"})
    assert both.default_model == "b"


def test_env_values_are_typed_from_the_schema(tmp_path):
    path = write(
        tmp_path,
        """
        providers:
          - {name: local, type: ollama}
          - {name: cloud, type: openai}
    """,
    )
    env = {
        "TASKENGINE_LOGGING__JSON": "true",
        "TASKENGINE_RETRY__BASE": "250ms",
        "TASKENGINE_LIMITS__RUN_TIMEOUT": "2m",
        "TASKENGINE_ALLOWED_HTTP_HOSTS": "api.example.com, hooks.example.com",
        "TASKENGINE_SERVER__CORS_ORIGINS": '["https://a.example"]',
        "TASKENGINE_PRICES": '{"gpt-4o": {"input_per_1m": 2.5, "output_per_1m": 10}}',
        "TASKENGINE_PROVIDERS__1__API_KEY": "sk-from-env-0001",
        "TASKENGINE_REQUIRE_SERVICES": "1",  # another component's variable: ignored
    }
    s = load_settings(path, environ=env)
    assert s.logging.json_format is True
    assert s.retry.base == 0.25 and s.limits.run_timeout == 120.0
    assert s.allowed_http_hosts == ["api.example.com", "hooks.example.com"]
    assert s.server.cors_origins == ["https://a.example"]
    assert s.prices["gpt-4o"].output_per_1m == 10
    assert [p.api_key for p in s.providers] == [None, "sk-from-env-0001"]


def test_env_reference_expansion(tmp_path):
    path = write(
        tmp_path,
        """
        default_model: ${MODEL}
        default_embed_model: ${EMBED:-nomic}
        db: sqlite:///${HOME_DIR}/runs.db
        providers:
          - name: p
            headers: {X-Literal: "$${NOT_EXPANDED}"}
    """,
    )
    s = load_settings(path, environ={"MODEL": "qwen", "HOME_DIR": "/data"})
    assert (s.default_model, s.default_embed_model, s.db) == (
        "qwen",
        "nomic",
        "sqlite:////data/runs.db",
    )
    assert s.providers[0].headers == {"X-Literal": "${NOT_EXPANDED}"}
    # a value inserted from the environment is never expanded again
    assert (
        load_settings(path, environ={"MODEL": "${HOME_DIR}", "HOME_DIR": "/d"}).default_model
        == "${HOME_DIR}"
    )


def test_missing_env_reference_names_file_and_key_path(tmp_path):
    path = write(
        tmp_path,
        """
        providers:
          - {name: a, type: ollama}
          - {name: b, type: openai, api_key: "${OPENAI_KEY_MISSING}"}
    """,
    )
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert str(err.value) == (
        f"{path}: providers[1].api_key: environment variable OPENAI_KEY_MISSING is not set "
        "(referenced as ${OPENAI_KEY_MISSING})"
    )
    assert err.value.file == str(path) and err.value.key_path == "providers[1].api_key"


def test_secret_references_resolve_and_are_masked(tmp_path):
    path = write(
        tmp_path,
        """
        default_model: ${secret:model_name}
        providers:
          - {name: cloud, type: openai, api_key: "${secret:openai}"}
    """,
    )
    s = load_settings(
        path, environ={}, secrets={"openai": "sk-secret-value-1", "model_name": "gpt-hidden"}
    )
    assert s.providers[0].api_key == "sk-secret-value-1" and s.default_model == "gpt-hidden"
    masked = s.masked()
    assert masked["default_model"] == "***" and masked["providers"][0]["api_key"] == "***"
    assert "gpt-hidden" not in json.dumps(masked)
    assert redact("model gpt-hidden answered") == "model *** answered"
    with pytest.raises(ConfigError, match=r"default_model: secret 'model_name' is not set"):
        load_settings(path, environ={}, secrets={"openai": "x"})
    unresolved = load_settings(path, environ={}, resolve_secrets=False)
    assert unresolved.providers[0].api_key == "${secret:openai}"
    assert unresolved.masked()["providers"][0]["api_key"] == "***"


async def test_secret_references_from_a_secret_store(tmp_path):
    class Blobs(dict):
        async def put_secret(self, name, blob, kid):
            self[name] = (blob, kid)

        async def get_secret(self, name):
            return self.get(name)

    store = SecretStore(Blobs(), generate_key())
    await store.set("hook_token", "Bearer abc-123-xyz")
    path = write(
        tmp_path,
        """
        remote_hooks:
          - {name: crm, url: "http://127.0.0.1:9/", headers: {Authorization: "${secret:hook_token}"}}
    """,
    )
    s = await aload_settings(path, environ={}, secrets=store)
    assert s.remote_hooks[0].headers == {"Authorization": "Bearer abc-123-xyz"}
    assert s.masked()["remote_hooks"][0]["headers"] == {"Authorization": "***"}


async def test_secret_references_open_the_configured_store(tmp_path):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    key = generate_key()
    async with open_secret_store(db, environ={"TASKENGINE_SECRET_KEY": key}) as store:
        await store.set("api_token", "server-token-from-store")
    path = write(tmp_path, "server: {api_token: '${secret:api_token}'}\n")
    env = {"TASKENGINE_DB": db, "TASKENGINE_SECRET_KEY": key}
    # the sync loader works inside a running event loop too (it bridges through a thread)
    assert load_settings(path, environ=env).server.api_token == "server-token-from-store"
    assert (await aload_settings(path, environ=env)).server.api_token == "server-token-from-store"
    with pytest.raises(
        ConfigError, match=r"server\.api_token: secret 'api_token' was encrypted with key"
    ):
        await aload_settings(path, environ={**env, "TASKENGINE_SECRET_KEY": generate_key()})


def test_unknown_keys_get_did_you_mean(tmp_path):
    path = write(
        tmp_path,
        """
        defualt_model: x
        server: {prot: 1}
        providers:
          - {name: a, base_ulr: "http://x"}
        logging: {jsn: true}
    """,
    )
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert sorted(problems(err)) == sorted(
        [
            f"{path}: defualt_model: unknown key 'defualt_model' (did you mean 'default_model'?)",
            f"{path}: server.prot: unknown key 'prot' (did you mean 'port'?)",
            f"{path}: providers[0].base_ulr: unknown key 'base_ulr' (did you mean 'base_url'?)",
            f"{path}: logging.jsn: unknown key 'jsn' (did you mean 'json'?)",
        ]
    )
    assert str(err.value).startswith("4 configuration problems:")


def test_every_problem_is_reported_with_its_source(tmp_path):
    path = write(
        tmp_path,
        """
        server: {port: not-a-port}
        retry: {base: soon}
        logging: {level: chatty}
    """,
    )
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={"TASKENGINE_LIMITS__MAX_INPUT_BYTES": "lots"})
    found = problems(err)
    assert len(found) == 4
    assert any(p.startswith(f"{path}: server.port: Input should be a valid integer") for p in found)
    assert any(p.startswith(f"{path}: retry.base: invalid duration 'soon'") for p in found)
    assert any(p.startswith(f"{path}: logging.level: must be one of DEBUG") for p in found)
    assert any(
        p.startswith(
            "environment variable TASKENGINE_LIMITS__MAX_INPUT_BYTES: limits.max_input_bytes:"
        )
        for p in found
    )


def test_semantic_checks(tmp_path):
    path = write(
        tmp_path,
        """
        default_provider: clod
        providers:
          - {name: cloud, type: openai, base_url: "ftp://files.example"}
          - {name: cloud, type: olama}
        remote_hooks:
          - {name: crm, url: "not a url"}
        db: mysql://x
    """,
    )
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert problems(err) == [
        f"{path}: providers[0].base_url: must be an http:// or https:// URL",
        f"{path}: providers[1].name: duplicate provider name 'cloud' (also providers[0])",
        f"{path}: providers[1].type: unknown provider type 'olama' (did you mean 'ollama'?)",
        f"{path}: default_provider: unknown provider 'clod' (did you mean 'cloud'?)",
        f"{path}: remote_hooks[0].url: must be an http:// or https:// URL",
        f"{path}: db: unsupported store URL (expected one of: postgres://, postgresql://, "
        "sqlite://, or a plain file path (SQLite))",
    ]


def test_bad_yaml_and_bad_shape(tmp_path):
    bad = write(tmp_path, "server: {port: 1\n", name="bad.yaml")
    with pytest.raises(ConfigError, match=r"bad\.yaml: invalid YAML at line \d+, column \d+"):
        load_settings(bad, environ={})
    listed = write(tmp_path, "- a\n- b\n", name="list.yaml")
    with pytest.raises(ConfigError, match="top level must be a mapping of settings, not a list"):
        load_settings(listed, environ={})
    assert (
        load_settings(write(tmp_path, "", name="empty.yaml"), environ={}).model_dump()
        == Settings().model_dump()
    )


def test_sensitive_values_are_not_echoed_in_errors(tmp_path):
    path = write(tmp_path, "server: {api_token: [not, a, string-secret-123]}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert "server.api_token" in str(err.value) and "string-secret-123" not in str(err.value)


def test_masking(tmp_path):
    path = write(
        tmp_path,
        """
        providers:
          - {name: cloud, type: openai, api_key: sk-plain-key-0001, headers: {X-Org: org-42}, models: [gpt-4o]}
        remote_hooks:
          - name: crm
            url: http://127.0.0.1:9/
            headers: {Authorization: Bearer tok-0001}
            inject_body: {tenant: acme-secret}
        server: {api_token: token-0001}
    """,
    )
    s = load_settings(path, environ={})
    masked = mask_settings(s)
    assert masked["providers"][0] == {
        **masked["providers"][0],
        "api_key": "***",
        "headers": {"X-Org": "***"},
        "models": ["gpt-4o"],
    }
    assert masked["remote_hooks"][0]["headers"] == {"Authorization": "***"}
    assert masked["remote_hooks"][0]["inject_body"] == {"tenant": "***"}
    assert masked["server"]["api_token"] == "***" and masked["server"]["port"] == 8080
    text = json.dumps(masked)
    for secret in ("sk-plain-key-0001", "org-42", "tok-0001", "acme-secret", "token-0001"):
        assert secret not in text
    assert masked["logging"] == {"level": "INFO", "json": False}


def test_near_miss_variable_names_warn(tmp_path):
    s = load_settings(
        environ={"TASKENGINE_DEFAUL_MODEL": "x", "TASKENGINE_SECRET_KEY": generate_key()}
    )
    assert s.warnings == (
        "environment variable TASKENGINE_DEFAUL_MODEL is not a setting (did you mean TASKENGINE_DEFAULT_MODEL?)",
    )


def test_env_errors_name_the_variable():
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"TASKENGINE_SERVER__PORT": "http"})
    assert str(err.value).startswith(
        "environment variable TASKENGINE_SERVER__PORT: server.port: Input should be a valid integer"
    )
    with pytest.raises(
        ConfigError, match=r"TASKENGINE_SERVER__PROT: server\.prot: unknown key 'prot'"
    ):
        load_settings(environ={"TASKENGINE_SERVER__PROT": "1"})
    with pytest.raises(ConfigError, match="TASKENGINE_PRICES: prices: value is not valid JSON"):
        load_settings(environ={"TASKENGINE_PRICES": "{bad"})


def test_settings_are_frozen_and_price_table_works():
    s = load_settings(
        environ={}, overrides={"prices": {"gpt-4o": {"input_per_1m": 2.5, "output_per_1m": 10}}}
    )
    with pytest.raises(Exception, match="frozen"):
        s.default_model = "x"
    assert s.price_table().cost("gpt-4o", 1_000_000, 0) == 2.5


def test_parse_overrides():
    assert parse_overrides(["server.port=9000", "logging.json=true", "default_model=m:7b"]) == {
        "server": {"port": 9000},
        "logging": {"json": True},
        "default_model": "m:7b",
    }
    with pytest.raises(ConfigError, match=r"is not KEY\.PATH=VALUE"):
        parse_overrides(["oops"])


def test_environment_is_not_read_at_import():
    code = "import taskengine.config, taskengine.store.secret_store, taskengine.logs, taskengine.metrics; print('ok')"
    env = {
        "PATH": "/usr/bin:/bin",
        "TASKENGINE_SERVER__PORT": "nonsense",
        "TASKENGINE_CONFIG": "/nonexistent",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
