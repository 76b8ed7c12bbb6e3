"""Media: probing, ffmpeg, speech, captions, framing and rendering. It imports only the foundation
modules of afx (errors, times, procs, fsutil, digest): pyproject.toml's import contracts."""
