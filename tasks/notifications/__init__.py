"""Notification tasks (Slack, Discord, Teams webhooks; mail) and their ExecutionAlert forms.

The channel code here is also what the daemon-wide `alerts:` setting sends through
(daemon/app/alerts.py finds the ExecutionAlert tasks by their `alert_channel`).
"""
