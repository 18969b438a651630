"""Pebble-compatible expressions on a Jinja2 sandbox: renderer, filters, limits, dates."""
