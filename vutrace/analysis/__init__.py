"""Analysis of a loaded capture (pure pandas over ``vutrace.load``'s DataFrame, no byte parsing).

* ``frame``: the capture's rows as plain dicts, row kinds, event attributes;
* ``negotiation``: the feature words in force at each message, and every negotiation round;
* ``sessions``: per connection, memory table, rings, back-end channel, history of changes;
* ``timeline``: migration phases per capture, roles, downtime spans, ring bases;
* ``throughput``: device-state streams, rates, chunk sizes, totals and SHA-256;
* ``checks``: the conformance checker (a table of rules with ids, severities and spec sections);
* ``diff``: two captures aligned message by message;
* ``inputs``: opening captures and ``-Y`` filters for the commands.
"""
