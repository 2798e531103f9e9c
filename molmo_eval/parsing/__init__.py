"""Parsers: model text -> typed answers. Pure functions, table-tested."""
