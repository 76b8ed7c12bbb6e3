"""Publishing (issue 6; docs/publishing.md): when a job goes out and where.

- `policy`: pure decisions (publish, staged, manual, scheduled; what is due; what a post is
  made of).
- `service`: `PublishService`, the one owner of a spec repo's ledger: publishes a built job
  (the publish stage calls it), and takes approvals, requests and schedules (the CLI, the
  server).
- `ledger`: the SQLite ledger itself. `base` and `publishers/`: one publisher per
  destination behind one protocol, in a registry.

The engine imports none of it (pyproject.toml's import contracts).
"""
