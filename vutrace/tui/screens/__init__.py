"""Screens of the TUI: the main screen and the modal ones (help, go to)."""
