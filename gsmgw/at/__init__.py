"""AT command layer: a pure framer and pure parsers, plus the one async channel.

Imports nothing of gsmgw but ``domain`` and ``errors``.
"""
