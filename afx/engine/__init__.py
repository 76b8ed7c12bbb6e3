"""The engine: one job executor, the session that runs a job's stages in order, the cache keys,
the store and afx.lock (docs/engine.md)."""
