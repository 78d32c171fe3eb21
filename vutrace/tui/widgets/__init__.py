"""Widgets of the TUI, one module per view or pane."""
