"""Notification tasks (Slack, Discord, Teams webhooks; Telegram; mail) and their
ExecutionAlert forms.

The channel code here is also what the daemon-wide `alerts:` setting sends through
(daemon/app/alerts.py finds the ExecutionAlert tasks by their `alert_channel`).

Each class's first type is its Kestra 1.x name, from the plug-in that now holds it
(plugin-email, plugin-slack, plugin-discord, plugin-microsoft365, plugin-telegram); the
names of Kestra's former plugin-notifications stay accepted, as Kestra keeps them as
aliases.
"""
