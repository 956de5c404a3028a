"""
How the worker answers: JSON bodies, and errors as ``{"error": message}``
with a 4xx (the caller's fault) or 5xx status.
"""

import json

from .wire import JSON_TYPE

__all__ = ["HTTPError", "json_reply", "error_reply"]


class HTTPError(Exception):
    """
    A request the worker refuses: ``code`` and a message for the caller.
    """

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def json_reply(request, value, code=200):
    """
    Set ``request``'s status and content type; return ``value`` as JSON bytes.
    """
    request.setResponseCode(code)
    request.setHeader(b"content-type", JSON_TYPE)
    return json.dumps(value).encode("utf-8") + b"\n"


def error_reply(request, code, message):
    """
    An error answer: ``{"error": message}`` with status ``code``.
    """
    return json_reply(request, {"error": message}, code)
