"""Signing cost of the small-object path: s3wire's SigV4 against botocore's S3SigV4Auth.

Signs N PUT requests of an 8 KiB body with user metadata and the XXHASH128 checksum header,
both ways, and prints the CPU per request. The two signatures are tested equal in
tests/test_s3wire.py.
"""

from __future__ import annotations

import argparse
import time

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from jobattach_host.s3config import S3Config
from jobattach_host.s3wire import Wire, put_headers

KEY, SECRET = "benchkey", "benchsecret"
URL = "http://127.0.0.1:9"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=10_000)
    n = ap.parse_args().n
    config = S3Config(KEY, SECRET, region="us-east-1", endpoint_url=URL, check_bucket_owner=False)
    wire = Wire.for_bucket(config.client(), config.credentials(), "bench", 3)
    assert wire is not None
    body = b"x" * 8192
    headers = put_headers({"xxh128": "0" * 32}, "0" * 32, True)
    auth = S3SigV4Auth(Credentials(KEY, SECRET), "s3", "us-east-1")

    c0 = time.process_time()
    for i in range(n):
        wire.sign("PUT", wire.path_of(f"Data/{i:032x}"), dict(headers), body)
    ours = (time.process_time() - c0) / n

    c0 = time.process_time()
    for i in range(n):
        request = AWSRequest("PUT", f"{URL}/bench/Data/{i:032x}", data=body, headers=headers)
        auth.add_auth(request)  # the signed headers; s3loop writes them out itself
    botocore = (time.process_time() - c0) / n

    print(f"s3wire.sign          {ours * 1e6:7.1f} us CPU per request")
    print(f"botocore S3SigV4Auth {botocore * 1e6:7.1f} us CPU per request")
    print(f"botocore costs {botocore / ours:.1f}x, {(botocore - ours) * 1e6:.0f} us more")


if __name__ == "__main__":
    main()
