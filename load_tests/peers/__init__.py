"""The servers mlgate is measured against, each started on loopback by `load_tests.peers.run`.

`bentoml_service` and `pytriton_server` run in their own virtual environments (BentoML pins
its own web stack; PyTriton needs numpy<2), built by `load_tests.peers.venvs`.
`fastapi_naive` runs in the project's environment.
"""
