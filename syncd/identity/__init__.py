"""Identity unification: one person id across sources (docs/identity.md).

- `keys`: match keys -> deterministic (salted) hashes; record ids; the JSON form of contributions.
- `core`: the pure resolution model (link store, claim / lookup / release, merges by union).
- `policies`: the unified row of a person from its contributions (latest, prefer, any_true, ...).
- `session`: the same model against PostgreSQL, inside the sink's transaction.
- `show`: `syncd identity show`.
- `preview`: how `syncd preview`'s rows would resolve, against the stored links (read-only).
"""
