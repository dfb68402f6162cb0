"""syncd: MySQL / MariaDB binlog changes -> YAML mappings -> PostgreSQL upserts, with reconciliation.

The packages are the pipeline, and imports point down it (pyproject.toml's import-linter
contracts keep them so; docs/architecture.md tells the why):

    cli -> service -> reconcile -> source | sink -> mapping -> identity -> config -> model, errors

`source` and `sink` are the only packages that talk to MySQL and PostgreSQL; `mapping` and
`identity` are pure.
"""
