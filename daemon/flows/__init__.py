"""Flows: the model, the loader from YAML, the plug-in registry, the flows directory and catalog."""
