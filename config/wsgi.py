"""The WSGI application (gunicorn imports this module in each worker process).

Two things happen here once, before the first request, instead of inside a request:
- the URLconf and the API are imported (django-ninja builds every schema then: about 1.5 s, which the first
  request of each worker otherwise waited for);
- everything alive after start-up (about 220,000 objects: modules, classes, schemas) is moved out of the garbage
  collector's generations with `gc.freeze()`. Otherwise each full collection walks all of them again: 60 ms on a
  quiet machine, longer under load, during which no thread of the worker runs; at 16 clients those pauses were the
  p99 of member reads (docs/benchmarks.md). Start-up objects live as long as the process anyway.
"""

import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()
get_resolver().url_patterns  # noqa: B018 - imports config.urls and every router now
gc.collect()
gc.freeze()
