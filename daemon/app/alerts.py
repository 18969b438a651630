"""Daemon-wide alerts: the `alerts:` setting, sent when matching executions end.

For people who want to hear about failures without editing flows. A rule names a
channel (slack, discord, teams, mail...) with that channel's properties; the message is
the one the channel's ExecutionAlert task sends, through the same code: the task class
is found in the registry by the `AlertChannel` capability it declares, so this module
names no task type. Sends run as their own asyncio tasks: a slow or dead endpoint delays no
execution and no other alert.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError

from daemon.config.settings import AlertRule, ConfigError, Settings
from daemon.engine.adapters import StorageFiles, StoreExecutions
from daemon.engine.core import Engine
from daemon.engine.events import Event, ExecutionChanged
from daemon.flows.registry import Plugins
from daemon.sdk.cache import BoundedCache
from daemon.sdk.capabilities import AlertChannel
from daemon.sdk.clock import Clock
from daemon.sdk.errors import PodiumError
from daemon.sdk.execution import Execution
from daemon.sdk.plugin import Task
from daemon.sdk.properties import templated_values, with_rendered

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 3.0  # sends still under way at shutdown get this long, then are cancelled
_REMEMBERED = 10_000  # ended executions remembered, so that one end alerts once

# Task properties that mean nothing for an alert: the execution is the one that ended.
_NOT_ALERT_PROPERTIES = frozenset(Task.model_fields) | {"execution_id"}


@dataclass(frozen=True)
class AlertContext:
    """What a channel sends an alert with (`sdk.services.AlertServices`)."""

    clock: Clock
    files: StorageFiles
    executions: StoreExecutions
    public_url: str | None


@dataclass(frozen=True)
class Rule:
    """One validated `alerts:` entry and the task instance that sends for it."""

    index: int
    config: AlertRule
    task: Task

    @property
    def name(self) -> str:
        return f"alerts[{self.index}] ({self.config.channel})"

    def matches(self, execution: Execution) -> bool:
        if execution.state.current not in self.config.states:
            return False
        prefixes = self.config.namespaces
        return not prefixes or any(_in_namespace(execution.namespace, p) for p in prefixes)


def _in_namespace(namespace: str, prefix: str) -> bool:
    """`company` covers company and company.team, not companyx."""
    prefix = prefix.rstrip(".")
    return namespace == prefix or namespace.startswith(prefix + ".")


def channels(plugins: Plugins) -> dict[str, type[Task]]:
    """alert channel name -> the task class that sends on it (its AlertChannel capability)."""
    found: dict[str, type[Task]] = {}
    for cls in plugins.tasks.classes():
        channel = getattr(cls, "alert_channel", "")
        if channel and issubclass(cls, AlertChannel):
            found.setdefault(channel, cls)
    return found


def build_rules(configs: list[AlertRule], plugins: Plugins) -> list[Rule]:
    """Check every rule's channel properties against its task; ConfigError lists them all."""
    known = channels(plugins)
    rules: list[Rule] = []
    problems: list[str] = []
    for index, config in enumerate(configs):
        where = f"alerts[{index}] ({config.channel})"
        cls = known.get(config.channel)
        if cls is None:
            offered = ", ".join(sorted(known)) or "none is installed"
            problems.append(
                f"{where}: no task sends on channel '{config.channel}' (channels: {offered})"
            )
            continue
        properties = dict(config.model_extra or {})
        allowed = {
            f.alias or n: n for n, f in cls.model_fields.items() if n not in _NOT_ALERT_PROPERTIES
        }
        unknown = [key for key in properties if key not in allowed]
        for key in unknown:
            close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            problems.append(f"{where}: unknown property '{key}'{hint}")
        if unknown:
            continue
        data = {"id": f"alert{index}", "type": cls.types[0], **properties}
        try:
            task = cls.model_validate(data, context={"defer_templates": True})
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                path = ".".join(str(p) for p in err["loc"])
                if err["type"] == "missing":
                    problems.append(f"{where}: missing required property '{path}'")
                else:
                    message = str(err["msg"]).removeprefix("Value error, ")
                    problems.append(
                        f"{where}: {path}: {message}" if path else f"{where}: {message}"
                    )
            continue
        rules.append(Rule(index, config, task))
    if problems:
        raise ConfigError("invalid alerts: " + "; ".join(problems))
    return rules


class Alerts:
    """Listens to ended executions and sends what the `alerts:` rules ask for."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self._source = settings.alerts
        self._plugins = engine.resources.plugins
        self.rules = build_rules(settings.alerts, self._plugins)
        # A restarted execution ends again with a longer history: that is news again.
        self._seen: BoundedCache[tuple[str, str, int], bool] = BoundedCache(_REMEMBERED)
        self._sending: set[asyncio.Task[None]] = set()
        self._detach: Callable[[], None] | None = None

    def start(self) -> None:
        self._detach = self.engine.subscribe(self._listener)
        self.engine.resources.on_close("alerts", self.close)

    async def close(self) -> None:
        """Stop listening; give sends under way CLOSE_TIMEOUT, then cancel them."""
        if self._detach is not None:
            self._detach()
            self._detach = None
        if self._sending:
            _, late = await asyncio.wait(list(self._sending), timeout=CLOSE_TIMEOUT)
            for job in late:
                job.cancel()
            if late:
                log.warning("%d alerts were still being sent at shutdown: cancelled", len(late))
                await asyncio.wait(late)

    async def idle(self) -> None:
        """Until every send started so far has ended (tests, shutdown)."""
        while self._sending:
            await asyncio.wait(list(self._sending))

    def _current_rules(self) -> list[Rule]:
        """The rules, rebuilt when a SIGHUP reload replaced the setting."""
        if self.settings.alerts is not self._source:
            self._source = self.settings.alerts
            try:
                self.rules = build_rules(self._source, self._plugins)
            except ConfigError as exc:
                log.error("keeping the previous alerts: %s", exc)
        return self.rules

    def _listener(self, event: Event) -> None:
        if not isinstance(event, ExecutionChanged):
            return
        execution = event.execution
        # a Loop's iteration is part of its execution, whose own end is what alerts
        if not execution.state.current.terminated or execution.loop is not None:
            return
        rules = [r for r in self._current_rules() if r.matches(execution)]
        if not rules:
            return
        key = (execution.id, execution.state.current.value, len(execution.state.histories))
        if not self._seen.add(key, True):
            return
        snapshot = Execution.from_json(execution.to_json())  # it may change while we send
        for rule in rules:
            job = asyncio.get_running_loop().create_task(
                self._send(rule, snapshot), name=f"alert {rule.index} {execution.id}"
            )
            self._sending.add(job)
            job.add_done_callback(self._sending.discard)

    def _services(self) -> AlertContext:
        resources = self.engine.resources
        return AlertContext(
            resources.clock,
            StorageFiles(resources.storage),
            StoreExecutions(resources.store, self.engine.wait, resources.events),
            self.settings.url,
        )

    async def _send(self, rule: Rule, execution: Execution) -> None:
        secrets = self.engine.resources.secrets
        about = (
            f"execution {execution.id} of {execution.namespace}.{execution.flow_id} "
            f"({execution.state.current.value})"
        )
        try:
            task = await self._rendered(rule, execution)
            assert isinstance(task, AlertChannel)  # found in the registry by that capability
            await task.alert(
                self._services(),
                execution,
                lambda text: log.warning("%s: %s", rule.name, secrets.mask(text)),
            )
        except asyncio.CancelledError:
            raise
        except PodiumError as exc:
            log.error("%s: no alert about %s: %s", rule.name, about, secrets.mask(str(exc)))
        except Exception:
            log.exception("%s: no alert about %s", rule.name, about)
        else:
            log.info("%s: alert sent about %s", rule.name, about)

    async def _rendered(self, rule: Rule, execution: Execution) -> Task:
        """The rule's templated properties (`{{ secret('SLACK_WEBHOOK') }}`) rendered for
        the execution that ended; rendering may read secrets or KV, so off the loop."""
        templated = templated_values(rule.task)
        if not templated:
            return rule.task
        resources = self.engine.resources
        variables = {
            "flow": {
                "id": execution.flow_id,
                "namespace": execution.namespace,
                "revision": execution.flow_revision,
            },
            "execution": {
                "id": execution.id,
                "startDate": execution.state.start_iso,
                "state": execution.state.current.value,
            },
            "labels": execution.labels,
            "envs": resources.envs,
        }
        rendered = await asyncio.to_thread(resources.render, templated, variables, None)
        return with_rendered(rule.task, rendered, where=f"{rule.name} ")


def install(engine: Engine, settings: Settings) -> Alerts:
    """Start sending the `alerts:` of `settings` (ConfigError when a rule is malformed)."""
    alerts = Alerts(engine, settings)
    alerts.start()
    return alerts
