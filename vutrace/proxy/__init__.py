"""The capturing man-in-the-middle proxy for vhost-user sockets.

:class:`Proxy` relays a front-end and a back-end byte-exactly with their FDs, interposes the
back-end request channel and the device-state stream, and records everything as capture records.
"""

from vutrace.proxy.errors import ProxyError
from vutrace.proxy.proxy import Proxy

__all__ = ["Proxy", "ProxyError"]
