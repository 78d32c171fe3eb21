"""vutrace: see a vhost-user conversation.

The machinery: the capturing proxy, capture files, the loader, analysis, views
and the command line. Protocol knowledge lives in the ``dissectors`` package.
"""

__version__ = "0.1.0"
