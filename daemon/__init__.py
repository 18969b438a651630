"""podium: an event-driven, reactive pipeline daemon that runs Kestra-syntax YAML flows."""
