"""Pure parsers over the real tools' text output (one module per tool family).

Every parser takes the text a tool printed and returns plain data. On output it cannot
understand (garbage, truncated tables, a missing header) it raises ``ParseError`` and nothing
else; checks turn that into a result with status error and the raw text kept.
"""

from diagnostics.parsers.common import ParseError, to_float, to_int

__all__ = ["ParseError", "to_float", "to_int"]
