"""Kestra's serdes plug-ins: files converted to and from Ion, one module per format."""
