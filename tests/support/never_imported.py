"""A module no request may import: importing it fails loudly."""

raise AssertionError("a dotted path from a request was imported")
