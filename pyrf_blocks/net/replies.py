"""
How the worker answers: JSON bodies, and errors as ``{"error": message}``
with a 4xx (the caller's fault) or 5xx status.
"""

import json

from ..errors import HTTPError
from .wire import JSON_TYPE

__all__ = ["json_reply", "error_reply"]


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
