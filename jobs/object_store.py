"""The S3-compatible object store (AWS S3, MinIO, Ceph, R2...), used for blobs when BLOB_STORE=s3; the blobs'
rows stay in Postgres (size, sha256, complete) and name their object by key.

boto3 directly rather than django-storages: its S3 file downloads the whole object into a temporary file before
the first byte is read, where the studio streams downloads to the browser as they arrive; writes are multipart
uploads of PART_SIZE, so a 1 GB dataset never sits in memory either way.
"""

import functools
import uuid
from collections.abc import Iterable, Iterator

from django.conf import settings

PART_SIZE = 8 * 1024 * 1024  # S3's smallest part is 5 MiB (the last excepted)


@functools.cache
def _client(endpoint: str, region: str):
    import boto3
    from botocore.config import Config

    # Credentials from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or the host's role, as boto3 does.
    config = Config(retries={"max_attempts": 5, "mode": "standard"}, s3={"addressing_style": "path"})
    return boto3.client("s3", endpoint_url=endpoint or None, region_name=region or None, config=config)


def client():
    return _client(settings.S3_ENDPOINT_URL, settings.S3_REGION)


@functools.cache
def _bucket_checked(bucket: str, endpoint: str) -> None:
    from botocore.exceptions import ClientError

    s3 = client()
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
            raise
        s3.create_bucket(Bucket=bucket)  # a fresh MinIO has none: made once, at the first write


def new_key() -> str:
    return f"{settings.S3_PREFIX}blobs/{uuid.uuid4().hex}"


def write(key: str, chunks: Iterable[bytes], progress) -> None:
    """Store the chunks under key: one PUT for a small object, else a multipart upload (aborted on failure, so
    no parts are left behind). progress(piece) sees every byte in order, for the caller's checksum."""
    bucket = settings.S3_BUCKET
    _bucket_checked(bucket, settings.S3_ENDPOINT_URL)
    s3, pending, upload, parts = client(), bytearray(), None, []
    try:
        for piece in chunks:
            progress(piece)
            pending += piece
            while len(pending) >= PART_SIZE:
                if upload is None:
                    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
                number = len(parts) + 1
                body = bytes(pending[:PART_SIZE])
                del pending[:PART_SIZE]
                etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=body)["ETag"]
                parts.append({"PartNumber": number, "ETag": etag})
        if upload is None:
            s3.put_object(Bucket=bucket, Key=key, Body=bytes(pending))
            return
        if pending:
            number = len(parts) + 1
            etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=bytes(pending))
            parts.append({"PartNumber": number, "ETag": etag["ETag"]})
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts})
    except BaseException:
        if upload is not None:
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
        raise


def read(key: str, chunk_size: int) -> Iterator[bytes]:
    body = client().get_object(Bucket=settings.S3_BUCKET, Key=key)["Body"]
    try:
        yield from body.iter_chunks(chunk_size)
    finally:
        body.close()


def delete(key: str) -> None:
    client().delete_object(Bucket=settings.S3_BUCKET, Key=key)
