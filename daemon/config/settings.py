"""Settings of `podium serve`: podium.yaml, then PODIUM_* environment variables, then flags.

Every setting has one name in each place: `max-concurrent-executions:` in the file,
PODIUM_MAX_CONCURRENT_EXECUTIONS in the environment, --max-concurrent-executions on the
command line (for the few that have a flag). pydantic-settings reads the environment
(prefix, nesting such as PODIUM_BASIC_AUTH_USERNAME, case); `load_settings` layers the
three sources.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from daemon.config.paths import default_data_dir
from daemon.config.storage import StorageSettings
from daemon.sdk.durations import Duration
from daemon.sdk.errors import PodiumError
from daemon.sdk.state import State


class ConfigError(PodiumError):
    """A config file or environment variable that podium cannot use."""


class BasicAuth(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1)
    password: str = Field(min_length=1)


class AlertRule(BaseModel):
    """One entry of `alerts:`: a channel with its properties, and which ended executions.

    The channel's own properties (url, host, to...) are those of its ExecutionAlert task
    and are checked against it when the daemon starts (daemon/app/alerts.py).
    """

    model_config = ConfigDict(extra="allow")

    # A task class declaring this `alert_channel` sends it (checked at start, app/alerts.py).
    channel: str = Field(min_length=1)
    states: list[State] = Field(default_factory=lambda: [State.FAILED], min_length=1)
    namespaces: list[str] = Field(default_factory=list)  # prefixes; none: every namespace

    @field_validator("states")
    @classmethod
    def _final_states(cls, value: list[State]) -> list[State]:
        for state in value:
            if not state.terminated:
                raise ValueError(
                    f"{state.value} is not a final state; alerts are sent when an "
                    "execution ends (FAILED, WARNING, SUCCESS, KILLED, CANCELLED)"
                )
        return value


class Settings(BaseSettings):
    """What a running daemon is configured with (built from its sources by `load_settings`;
    constructed directly, it takes only the values given)."""

    model_config = SettingsConfigDict(
        extra="forbid",
        env_prefix="PODIUM_",
        env_nested_delimiter="_",
        # PODIUM_STORAGE_ACCESS_KEY is storage.access_key: one level of nesting, so that a
        # nested field may have an underscore in its name.
        env_nested_max_split=1,
        case_sensitive=False,
    )

    data_dir: Path = Field(default_factory=default_data_dir)
    flows_dir: Path = Path("flows")
    host: str | None = None
    port: int = Field(default=8080, ge=0, le=65535)
    store: str | None = None
    basic_auth: BasicAuth | None = None
    # Listen beyond loopback with no credentials at all (an open API): refused unless set,
    # and warned about at every start (daemon/app/listen.py).
    insecure_no_auth: bool = False
    allowed_paths: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    max_concurrent_executions: int = Field(default=0, ge=0)
    max_concurrent_tasks: int = Field(default=0, ge=0)
    shutdown_grace: Duration = timedelta(seconds=30)
    webhook_max_body: int = Field(default=10 * 1024 * 1024, ge=1)
    # The largest flow source (bytes) a flow file or the API may hold: validating tens of
    # MB of YAML takes seconds of CPU; a hand-written flow is a few KB.
    max_flow_size: int = Field(default=1024 * 1024, ge=1)
    keep_working_dirs: bool = False
    log_level: str = "INFO"
    # The event loop of `podium serve` (daemon/app/eventloop.py): uvloop, or asyncio's own.
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    # Public address of the UI, for links in notifications ("{url}/ui/executions/...").
    url: str | None = None
    # Cluster (PostgreSQL store): this node's name, how often it says it is alive, and how
    # long without a heartbeat before the others take its executions and triggers over.
    node_id: str | None = None
    heartbeat_interval: Duration = timedelta(seconds=2)
    node_timeout: Duration = timedelta(seconds=15)
    # Cluster workers: what this node does (Kestra's components), how many task runs it
    # takes at once, the worker groups it serves (`workerGroup.key` of tasks), and how long
    # a task of a group with no live node waits before it fails (none: for ever).
    role: Literal["all", "executor", "worker"] = "all"
    worker_slots: int = Field(default=8, ge=0)
    worker_groups: Annotated[list[str], NoDecode] = Field(default_factory=list)
    worker_group_wait: Duration | None = timedelta(hours=1)
    # Notifications about ended executions, without editing flows (daemon/app/alerts.py).
    alerts: Annotated[list[AlertRule], NoDecode] = Field(default_factory=list)
    # Server-wide variables every expression reads as `{{ globals.<name> }}` (Kestra's
    # `kestra.variables.globals`).
    globals: Annotated[dict[str, Any], NoDecode] = Field(default_factory=dict)
    # pluginDefaults every flow gets after its own (Kestra's `kestra.plugins.defaults`):
    # entries of type/forced/values, some named by `ref` for `pluginDefaultsRef` (checked
    # as flows' pluginDefaults by daemon/flows/defaults.py).
    plugin_defaults: Annotated[list[dict[str, Any]], NoDecode] = Field(default_factory=list)
    # Where `kestra://` files live: the data directory, S3-compatible object storage or
    # the PostgreSQL database (daemon/config/storage.py).
    storage: StorageSettings = Field(default_factory=StorageSettings)

    @field_validator("alerts", "globals", "plugin_defaults", mode="before")
    @classmethod
    def _alerts_from_text(cls, value: Any) -> Any:
        """PODIUM_ALERTS (PODIUM_GLOBALS, PODIUM_PLUGIN_DEFAULTS) holds the same list
        (mapping) as the file, written as YAML or JSON."""
        if isinstance(value, str):
            try:
                return yaml.safe_load(value)
            except yaml.YAMLError as exc:
                raise ValueError(f"not YAML: {exc}") from None
        return value

    @field_validator("worker_groups", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [g.strip() for g in value.split(",") if g.strip()]
        return value

    @field_validator("allowed_paths", mode="before")
    @classmethod
    def _colon_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [p for p in value.split(":") if p]
        return value

    @property
    def listen_host(self) -> str:
        """Without credentials the API is open, so it listens on loopback only."""
        if self.host:
            return self.host
        return "0.0.0.0" if self.basic_auth else "127.0.0.1"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # the file and the environment: see load_settings


class _Environment(EnvSettingsSource):
    """PODIUM_* variables of a given environment (the process's by default)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(cast(type[BaseSettings], Settings))

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {key.lower(): value for key, value in self._environ.items()}


def _file_values(config_file: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {config_file}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{config_file}: invalid YAML: {exc}") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"{config_file}: expected a mapping of settings")
    return {_field(key): value for key, value in (loaded or {}).items()}


def _field(name: Any) -> Any:
    """`max-concurrent-executions` (the file's spelling) is the field max_concurrent_executions."""
    return name.replace("-", "_") if isinstance(name, str) else name


def _setting(field: str | int) -> str:
    return field.replace("_", "-") if isinstance(field, str) else str(field)


def _merged(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Later layers win; a mapping (basic-auth) is merged key by key."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
                out[key] = _merged(out[key], value)
            else:
                out[key] = value
    return out


def load_settings(
    config_file: Path | None, overrides: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> Settings:
    """File, then environment, then explicit overrides (flags); each later one wins."""
    data: dict[str, Any] = _file_values(config_file) if config_file is not None else {}
    try:
        env = _Environment(os.environ if environ is None else environ)()
        flags = {_field(k): v for k, v in overrides.items() if v is not None}
        return Settings(**_merged(data, env, flags))
    except (ValidationError, ValueError) as exc:
        if isinstance(exc, ValidationError):
            problems = "; ".join(
                f"{'.'.join(_setting(p) for p in e['loc'])}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
        else:  # a malformed environment value pydantic-settings cannot decode
            problems = str(exc)
        source = f" ({config_file})" if config_file else ""
        raise ConfigError(f"invalid settings{source}: {problems}") from None
