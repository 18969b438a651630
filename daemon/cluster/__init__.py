"""Several `podium serve` nodes on one PostgreSQL store, with no other coordinator:
membership, claims, notifications, leases and flow sync, all through the database."""
