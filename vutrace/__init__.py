"""vutrace: see a vhost-user conversation.

The machinery: the capturing proxy, capture files, the loader, analysis, views
and the command line. Protocol knowledge lives in the ``dissectors`` package.
"""

__version__ = "0.1.0"

from vutrace.load import load

__all__ = ["__version__", "load"]
