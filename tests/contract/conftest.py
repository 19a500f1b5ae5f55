"""An S3 server (moto) on loopback for running the contract against django-storages' S3Storage."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

#: Dummy credentials: moto accepts any, and real AWS would reject them.
AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "contract-test-key",
    "AWS_SECRET_ACCESS_KEY": "contract-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    # Never ask an instance-metadata endpoint for credentials or a region.
    "AWS_EC2_METADATA_DISABLED": "true",
}
S3_BUCKET = "storage-contract"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The URL of a moto S3 server on 127.0.0.1 holding the empty bucket ``S3_BUCKET``."""
    import boto3
    from moto.server import ThreadedMotoServer

    with pytest.MonkeyPatch.context() as patch:
        for variable, value in AWS_ENVIRONMENT.items():
            patch.setenv(variable, value)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            endpoint = f"http://{host}:{port}"
            boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=S3_BUCKET)
            yield endpoint
        finally:
            server.stop()
