"""Capture records and the pcapng files that hold them (docs/capture-format.md).

``model`` the records; ``pcapng`` the writer and reader; ``follow`` reading a growing file;
``record_format`` / ``blocks`` / ``scan`` the format itself; ``pairing`` request/reply pairs;
``scapy_layer`` rdpcap support; ``wireshark_lua`` generates the Wireshark dissector.
"""
