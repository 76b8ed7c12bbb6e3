"""The API's routes, one `APIRouter` a module, each included by afx.server.app.create_app:

    jobs       POST/GET /v1/jobs, GET/DELETE /v1/jobs/{id}, .../result, .../approve-publish, .../schedule
    files      GET /v1/jobs/{id}/files/{name}: a job's video, thumbnail and package files
    uploads    POST /v1/upload
    templates  GET/POST /v1/templates, DELETE /v1/templates/{id}
    account    GET /v1/account

A route checks what is particular to its request and calls afx.server.jobs, .templates,
.uploads or .accounts for the rest; what every route shares (the caller, the body, the
Idempotency-Key) is afx.server.deps.
"""

from afx.server.routes import account, files, jobs, templates, uploads

ROUTERS = (jobs.router, files.router, uploads.router, templates.router, account.router)
