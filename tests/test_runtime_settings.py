"""How `taskengine.run()` and the server take their settings (issue 16: items 4, 8, 9)."""

import pytest

import taskengine
from taskengine.config import LimitsSettings, Settings
from taskengine.errors import ConfigError
from taskengine.runtime import activity_kv_url, open_runtime
from taskengine.testing import FakeLLMServer

CHAIN = {
    "id": "hello",
    "tasks": [{"id": "say", "handler": "raw_string", "prompt_template": "{{ .input }}"}],
}


async def test_run_accepts_settings_as_a_mapping(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no ./taskengine.yaml
    monkeypatch.delenv("TASKENGINE_CONFIG", raising=False)
    async with FakeLLMServer() as srv:
        srv.add_rule("ping", reply="pong")
        settings = {
            "providers": [
                {"name": "fake", "type": "openai_compatible", "base_url": srv.openai_base_url}
            ],
            "default_provider": "fake",
            "default_model": "m1",
        }
        result = await taskengine.run(CHAIN, "ping", settings=settings)
    assert result.output == "pong"
    assert srv.last_request().model == "m1"


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"default_modle": "x"}, "unknown key 'default_modle'"),
        ({"server": {"port": 99999}}, "server.port"),
        (42, "settings must be a taskengine.Settings or a mapping"),
    ],
)
async def test_bad_settings_are_a_config_error(settings, needle, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=needle):
        await taskengine.run(CHAIN, "x", settings=settings)


def test_activity_lives_next_to_the_configured_store(tmp_path, caplog):
    db = tmp_path / "deploy-a" / "runs.db"
    beside = f"sqlite://{tmp_path}/deploy-a/runs.activity.db"
    assert activity_kv_url(Settings(db=f"sqlite:///{db}")) == beside
    assert activity_kv_url(Settings(db=str(db))) == beside
    assert activity_kv_url(Settings(db="x", kv="redis://h:6379/1")) == "redis://h:6379/1"
    assert activity_kv_url(Settings(db="postgresql://u@h/db")) == "memory://"
    assert "activity log kept in memory" in caplog.text


async def test_two_deployments_keep_their_activity_apart(tmp_path):
    paths = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        settings = Settings(db=f"sqlite:///{tmp_path / name / 'runs.db'}")
        async with await open_runtime(settings, activity=True) as runtime:
            await runtime.env.exec_env(
                {"id": name, "tasks": [{"id": "t", "handler": "noop"}]}, "hi"
            )
            paths.append(runtime.activity.kv.path)
    assert paths == [tmp_path / "a" / "runs.activity.db", tmp_path / "b" / "runs.activity.db"]
    assert all(p.exists() for p in paths)


def test_one_lease_ttl_default():
    from taskengine import SimpleEnv, TaskExecutor
    from taskengine.store.base import DEFAULT_LEASE_TTL_S

    assert SimpleEnv().lease_ttl == LimitsSettings().lease_ttl == DEFAULT_LEASE_TTL_S == 30.0
    assert TaskExecutor().lease_ttl == 30.0
