"""An upload handler that counts bytes while they stream in and stops at MAX_UPLOAD_BYTES, so an oversized
upload is refused before it fills the disk (Django's own handlers would first write all of it)."""

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload


class SizeLimitUploadHandler(FileUploadHandler):
    def __init__(self, request=None):
        super().__init__(request)
        self.received = 0
        self.declared_too_large = None

    def _refuse(self, size_text: str) -> None:
        self.request.upload_refused = f"the upload is {size_text}; the limit is {settings.MAX_UPLOAD_BYTES:,} bytes"
        # Read and drop the rest of the body, so the client still gets a clear answer.
        raise StopUpload(connection_reset=False)

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        # The body also carries multipart headers and form fields: allow them some room. (Django only
        # catches StopUpload around chunks, so the refusal happens at the first one.)
        if content_length and content_length > settings.MAX_UPLOAD_BYTES + 64 * 1024:
            self.declared_too_large = f"{content_length:,} bytes"

    def receive_data_chunk(self, raw_data, start):
        if self.declared_too_large:
            self._refuse(self.declared_too_large)
        self.received += len(raw_data)
        if self.received > settings.MAX_UPLOAD_BYTES:
            self._refuse(f"over {settings.MAX_UPLOAD_BYTES:,} bytes")
        return raw_data

    def file_complete(self, file_size):
        return None  # the next handlers build the file
