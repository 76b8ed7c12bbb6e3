"""Working with a remote AuraFlux-compatible API, without a terminal: what `afx push` and
`afx remote` do, as logic the CLI drives and shows.

- `api`: the API URL and key from the environment, and the client protocol the pusher uses.
- `records`: the remote jobs and uploads afx.lock remembers per API.
- `items`: one selected job on its way through a push, and its Idempotency-Keys.
- `events`: what a push reports as it goes (the CLI renders them).
- `results`: a finished job's result brought into out/<job>/.
- `push`: the upload/submit/poll/download state machine, on an injected clock.
- `clips`: a job with clips made into its clip jobs here, for an API without `clips`.

Nothing here imports `afx.cli` or prints.
"""
