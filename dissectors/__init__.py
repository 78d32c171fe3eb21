"""vhost-user protocol knowledge: the fact table, scapy layers, flat records, encoding.

Pure decode and encode: nothing in this package does I/O, so it can be imported
and used on its own (``from dissectors import spec``).
"""
