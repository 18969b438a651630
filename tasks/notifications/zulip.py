"""Zulip's Slack-compatible incoming webhook (kestra-io/plugin-zulip, formerly
plugin-notifications): a payload written by the flow, or the execution summary in Slack's
message format, as Kestra's zulip-template.peb writes it.

The webhook URL (https://<org>.zulipchat.com/api/v1/external/slack_incoming?api_key=…)
carries its key: messages show only its host.
"""

from __future__ import annotations

from typing import ClassVar

from tasks.notifications.delivery import IncomingWebhook
from tasks.notifications.slack import SlackStyleExecution


class ZulipIncomingWebhook(IncomingWebhook):
    """Post Zulip's JSON (`payload`, as text or a mapping) to an incoming webhook."""

    types = (
        "io.kestra.plugin.zulip.ZulipIncomingWebhook",
        "io.kestra.plugin.notifications.zulip.ZulipIncomingWebhook",
    )
    service = "Zulip"


class ZulipExecution(SlackStyleExecution):
    """Kestra's ZulipExecution: the execution's flow, state, failed task, error and link,
    with the flow's `channel`, `username`, `iconUrl` and `iconEmoji`."""

    types = (
        "io.kestra.plugin.zulip.ZulipExecution",
        "io.kestra.plugin.notifications.zulip.ZulipExecution",
    )
    alert_channel: ClassVar[str] = "zulip"
    service = "Zulip"
