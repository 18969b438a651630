"""The daemon as a program: the `podium` command line, `podium serve` and its lifecycle,
status, logging, systemd integration and daemon-wide alerts."""
