"""The syncd demo (`make demo`, or `python -m demo`): two legacy MariaDB databases, one
unified PostgreSQL schema, and `syncd run` keeping the second in step with the first.

- `demo/shop.sql`, `demo/app.sql`: the legacy source schemas
- `demo/target.sql`: the unified target schema (owned by the DBAs)
- `demo/data.py`: deterministic sample rows and a live workload
- `mappings/`: the YAML mappings the demo runs with
"""
