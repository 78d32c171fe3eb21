"""The one error the proxy library raises for a set-up it refuses (bad path, socket in use...)."""


class ProxyError(Exception):
    """A proxy set-up failure with a one-line explanation."""
