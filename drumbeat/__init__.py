"""Drumbeat: a self-hosted multichannel outreach engine that knows when to stop."""

__version__ = "0.1.0"
