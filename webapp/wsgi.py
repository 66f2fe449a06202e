import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
application = get_wsgi_application()

# Temporary upload files a killed web server left on this host (the storage sweep on a worker reaches only its own).
from jobs.services.storage_sweep import upload_files_sweep  # noqa: E402

upload_files_sweep()
