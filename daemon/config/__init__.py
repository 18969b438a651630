"""Settings of the daemon: podium.yaml, PODIUM_* environment variables, flags."""
