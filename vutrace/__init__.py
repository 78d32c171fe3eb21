"""vutrace: see a vhost-user conversation.

The machinery: the capturing proxy, capture files, the loader, analysis, views
and the command line. Protocol knowledge lives in the ``dissectors`` package.
``vutrace.load`` (``vutrace.loader.load``) is imported on first use, so a command that
never loads a capture into pandas (the proxy, the simulated peers) starts without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "load"]

if TYPE_CHECKING:
    from vutrace.loader import load


def __getattr__(name: str) -> Any:
    if name == "load":
        from vutrace.loader import load

        return load
    raise AttributeError(f"module 'vutrace' has no attribute {name!r}")
