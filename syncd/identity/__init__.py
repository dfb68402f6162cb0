"""Identity unification, pure: one person id across sources (docs/identity.md).

- `keys`: match keys -> deterministic (salted) hashes; record ids and names; the JSON of contributions.
- `core`: the resolution model (link store, claim / lookup / release, merges by union).
- `policies`: the unified row of a person from its contributions (latest, prefer, any_true, ...).
- `preview`: how given rows would resolve against given stored links.

The same model against PostgreSQL, inside the sink's transaction, is syncd/sink/identity.py;
the persons read back for the commands are syncd/sink/persons.py.
"""
