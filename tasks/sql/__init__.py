"""SQL task families: PostgreSQL on asyncpg (`postgres`, with its pools in `pool` and the
statement splitting in `sqltext`) and DuckDB (`duckdb`)."""
