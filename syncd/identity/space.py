"""An identity space as declared in the mapping files -> what the mapping plan and the sink use."""

from __future__ import annotations

from collections.abc import Callable

from syncd.errors import IdentityArgsError, TransformArgsError
from syncd.identity.keys import KeyHasher
from syncd.mapping.spec import IdentityDef
from syncd.model import IdentitySpace, TargetTable, UnifiedTable

KNOWN: dict[str, IdentitySpace] = {}
"""Every space compiled in this process, by name (the latest compile wins, e.g. after a reload).
The sink needs a space's unified table when a source TRUNCATE removes contributions without any
operation of the batch naming the space."""


def compile_space(definition: IdentityDef | None, name: str, default_schema: str,
                  secret: Callable[[str, str], str],
                  own: tuple[tuple[str | None, str, str], ...] = ()) -> tuple[IdentitySpace, KeyHasher]:
    """The sink's view of a space and the hasher of its match keys.

    `definition` is None when a mapping was parsed alone (no `identities:` seen): the space then
    has no salt, no unified table, and only the mapping's own references (`own`).
    """
    references = definition.references if definition is not None else own
    space = IdentitySpace(
        name=name,
        references=tuple((TargetTable(schema or default_schema, table), column)
                         for schema, table, column in references),
        unified=_unified(definition, default_schema) if definition is not None else None,
    )
    if definition is not None:
        KNOWN[name] = space
    return space, KeyHasher(name, _salt(definition, secret))


def _unified(definition: IdentityDef, default_schema: str) -> UnifiedTable | None:
    spec = definition.unified
    if spec is None:
        return None
    return UnifiedTable(
        table=TargetTable(spec.target_schema or default_schema, spec.table),
        key=spec.key,
        policies=tuple((p.column, p.name, p.prefer) for p in spec.policies),
    )


def _salt(definition: IdentityDef | None, secret: Callable[[str, str], str]) -> bytes | None:
    if definition is None or not (definition.salt_env or definition.salt_file):
        return None
    kind, source = ("env", definition.salt_env) if definition.salt_env else ("file", definition.salt_file)
    assert source is not None
    what = f"identity {definition.name!r}"
    try:
        salt = secret(kind, source)
    except TransformArgsError as exc:
        raise IdentityArgsError(f"{what}: salt: {exc}", definition.where.problem("")) from exc
    if not salt:
        raise IdentityArgsError(f"{what}: salt: the {'environment variable' if kind == 'env' else 'file'} "
                                f"{source} is empty", definition.where.problem(""))
    return salt.encode()
