"""The gateway's OpenAPI 3.1 document (`GET /openapi.json`) and its page (`GET /docs`).

common.py           parameters, error responses, who may call (`Access`), `operation()`,
                    small JSON Schema helpers
schemas.py          components.schemas of the data plane and the repository API
control_schemas.py  components.schemas of monitoring, feedback, tasks, alerts, dashboard
inference.py        the data plane's paths (rest.py's routes)
control.py          monitoring, feedback, tasks, alerts, dashboard, docs
document.py         build_document(settings): the whole document
routes.py           the two routes; the document is built on the first request
"""
