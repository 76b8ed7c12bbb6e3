"""Publishing (issue 6; docs/publishing.md): when a job goes out and where.

- `policy`: pure decisions (publish, staged, manual, scheduled; what is due; what a post is
  made of).
- `service`: `PublishService`, the one owner of a spec repo's ledger: publishes a built job
  (the publish stage calls it), and takes approvals, requests and schedules (the CLI, the
  server).
- `ledger`: the ledger itself, one implementation over its two backends (`ledgerdb`: the
  tables; `location`: the repo's SQLite file, or a shared PostgreSQL database).
- `base` and `publishers/`: one publisher per destination behind one protocol, in a
  registry.

The engine imports none of it (pyproject.toml's import contracts).
"""
