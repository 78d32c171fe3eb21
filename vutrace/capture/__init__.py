"""Capture records and the pcapng files that hold them."""
