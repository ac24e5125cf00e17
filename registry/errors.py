"""Every error mlgate raises on purpose, each carrying the HTTP status it maps to.

One base class, so that the CLI and (later) the gateway's single error handler can turn
any of them into `{"error": "<message>"}` with the right status. Messages say what was
wrong and what is expected.

    MlgateError (500)
    ├── BadRequest (400)
    │   ├── InvalidName          a model name or alias that breaks the naming rules
    │   ├── InvalidReference     "name", "name:3" or "name@alias" could not be parsed
    │   ├── InvalidModelInput    example inputs, feature names, reference data, metrics
    │   └── InvalidWeights       a weights file that is not a plain state dict
    ├── NotFound (404)
    │   ├── ModelNotFound
    │   ├── VersionNotFound
    │   ├── AliasNotFound
    │   └── ArtifactNotFound
    ├── Conflict (409)
    │   ├── AliasUnchanged       the alias already points at that version
    │   └── NotServable          no artifact of the version passed the parity gate
    ├── ExportFailed (422)       the exporter could not produce an artifact at all
    └── ArtifactCorrupted (500)  a stored file no longer matches its sha256
"""

from __future__ import annotations

__all__ = [
    "AliasNotFound",
    "AliasUnchanged",
    "ArtifactCorrupted",
    "ArtifactNotFound",
    "BadRequest",
    "Conflict",
    "ExportFailed",
    "InvalidModelInput",
    "InvalidName",
    "InvalidReference",
    "InvalidWeights",
    "MlgateError",
    "ModelNotFound",
    "NotFound",
    "NotServable",
    "VersionNotFound",
]


class MlgateError(Exception):
    """Base of every deliberate mlgate error; `status_code` is its HTTP status."""

    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class BadRequest(MlgateError):
    status_code = 400


class InvalidName(BadRequest):
    pass


class InvalidReference(BadRequest):
    pass


class InvalidModelInput(BadRequest):
    pass


class InvalidWeights(BadRequest):
    pass


class NotFound(MlgateError):
    status_code = 404


class ModelNotFound(NotFound):
    pass


class VersionNotFound(NotFound):
    pass


class AliasNotFound(NotFound):
    pass


class ArtifactNotFound(NotFound):
    pass


class Conflict(MlgateError):
    status_code = 409


class AliasUnchanged(Conflict):
    pass


class NotServable(Conflict):
    pass


class ExportFailed(MlgateError):
    status_code = 422


class ArtifactCorrupted(MlgateError):
    status_code = 500
