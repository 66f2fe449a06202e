"""Answers for requests Django refuses before a view can (handler400 in webapp.urls): say what to change, as JSON
under /api/ and as a page elsewhere. Django's own page says only "Bad Request"."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import JsonResponse
from django.shortcuts import render


def _message(exception) -> str:
    if isinstance(exception, TooManyFilesSent):
        return (
            "Too many files in one request: send one file per upload "
            f"(at most {settings.DATA_UPLOAD_MAX_NUMBER_FILES})."
        )
    if isinstance(exception, RequestDataTooBig):
        return (
            f"The request's form or JSON data is over {settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes "
            "(uploaded files aside): send less."
        )
    if isinstance(exception, TooManyFieldsSent):
        return f"The request has over {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS:,} form fields: send fewer."
    # Other refusals (a bad Host header, a malformed body) keep their details in the log, not in the answer.
    return "The request could not be read: send it again from a fresh page."


def bad_request(request, exception=None):
    message = _message(exception)
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": message}, status=400)
    return render(request, "400.html", {"message": message}, status=400)
