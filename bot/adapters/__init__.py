"""Thin chat adapters over ``bot.core.Bot``: Slack (slack-bolt), Matrix (matrix-nio), console."""
