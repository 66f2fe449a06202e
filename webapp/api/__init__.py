"""The JSON API under /api/v1/ (django-ninja: typed schemas and the OpenAPI document come for free).

One module per resource, each a Router mounted by app.py. Endpoints stay thin: they parse, call a selector or a
service, and shape the answer.
"""

from .app import api

__all__ = ["api"]
