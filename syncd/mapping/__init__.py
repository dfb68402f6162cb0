"""Mappings, pure: the YAML a DBA writes (`spec`), its transforms and filters, compiled into
per-row functions (`plan`) that turn one source row change into target row operations.

No server is involved anywhere here, so every rule is unit- and property-tested; docs/mappings.md
is the reference a DBA writes mappings from.
"""
