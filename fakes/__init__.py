"""Scripted, offline stand-ins for model clients."""
