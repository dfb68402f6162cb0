"""Everything checked before `syncd run` touches data: the mapping files loaded and compiled
against the live target (column types decide how datetimes are written). The live sources are
checked per source when its pipeline starts (syncd/service/runner.py)."""

from __future__ import annotations

from syncd.config import Config
from syncd.errors import ConfigError, SyncdError
from syncd.mapping.load import SourcePlan, compile_all, load_specs, target_table
from syncd.mapping.plan import Mapping
from syncd.mapping.spec import MappingSpec
from syncd.sink.connection import connect
from syncd.sink.target import check_mapping, check_target, describe_tables, target_kinds
from syncd.source.checks import check_source_tables
from syncd.yamlfile import closest


def build_plans(config: Config) -> dict[str, SourcePlan]:
    """Load, check against the live target, and compile every mapping; ConfigError lists all problems."""
    specs = load_specs(config)
    conn = connect(config.target, "syncd:check")
    try:
        infos, problems = check_target(conn, config, specs)
    finally:
        conn.close()
    if problems:
        raise ConfigError(problems)
    return compile_all(config, specs, target_kinds(infos))


def find_spec(specs: list[MappingSpec], name: str) -> MappingSpec:
    for spec in specs:
        if spec.name == name:
            return spec
    names = {s.name for s in specs}
    raise SyncdError(f"no mapping named {name!r}{closest(name, names)}; mappings: "
                       f"{', '.join(sorted(names)) or 'none'}")


def compile_one(config: Config, name: str) -> Mapping:
    """Load every mapping file (static checks), then check and compile just mapping `name`
    against its live target table and source table. ConfigError lists its problems."""
    specs = load_specs(config)
    spec = find_spec(specs, name)
    table = target_table(spec, config)
    conn = connect(config.target, "syncd:preview")
    try:
        infos = describe_tables(conn, [table])
    finally:
        conn.close()
    problems = check_mapping(spec, table, infos[table])
    problems += check_source_tables(config.sources[spec.source], [spec])
    if problems:
        raise ConfigError(problems)
    plans = compile_all(config, [spec], target_kinds(infos))
    return plans[spec.source].mappings[0]
