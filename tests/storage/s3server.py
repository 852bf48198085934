"""moto's S3 over real HTTP on loopback, made as strict as S3 about presigned URLs.

moto (5.x) serves presigned URLs without checking them: an expired or altered URL still works.
`PresignGuard` checks every query-signed request the way S3 does (SigV4: signature over method,
path, query and signed headers; `X-Amz-Date` + `X-Amz-Expires`) and answers S3's 403 XML
otherwise. Header-signed requests (boto3's own calls) pass through unchecked, as in moto.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

MAX_EXPIRES = 7 * 24 * 3600


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


class PresignGuard:
    def __init__(self, app: Callable[..., Iterable[bytes]], credentials: dict[str, str]):
        self.app = app
        self.credentials = credentials
        self.refused: list[str] = []  # reasons, for assertions

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
        path, _, query = raw.partition("?")
        if "X-Amz-Signature=" in query:
            problem = self.check(environ["REQUEST_METHOD"], path, query, environ)
            if problem:
                self.refused.append(problem[1])
                body = (
                    '<?xml version="1.0" encoding="UTF-8"?>'
                    f"<Error><Code>{problem[0]}</Code><Message>{problem[1]}</Message></Error>"
                ).encode()
                start_response(
                    "403 Forbidden", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
                )
                return [body]
        return self.app(environ, start_response)

    def check(self, method: str, path: str, query: str, environ: dict[str, Any]) -> tuple[str, str] | None:
        pairs = [p.partition("=") for p in query.split("&") if p]
        params = {unquote(k): unquote(v) for k, _, v in pairs}
        try:
            access_key, date, region, service, terminal = params["X-Amz-Credential"].split("/")
            amz_date = params["X-Amz-Date"]
            expires = int(params["X-Amz-Expires"])
            signed_headers = params["X-Amz-SignedHeaders"]
            signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except (KeyError, ValueError):
            return "AuthorizationQueryParametersError", "malformed query-string authentication"
        if params.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" or not 1 <= expires <= MAX_EXPIRES:
            return "AuthorizationQueryParametersError", "bad algorithm or X-Amz-Expires"
        secret = self.credentials.get(access_key)
        if secret is None:
            return "InvalidAccessKeyId", "unknown access key"
        if datetime.now(UTC) > signed_at + timedelta(seconds=expires):
            return "AccessDenied", "Request has expired"
        canonical_query = "&".join(sorted(f"{k}={v}" for k, _, v in pairs if k != "X-Amz-Signature"))
        headers = ""
        for name in signed_headers.split(";"):
            value = environ.get("HTTP_" + name.upper().replace("-", "_"), "")
            if name == "content-type":
                value = environ.get("CONTENT_TYPE", "")
            elif name == "content-length":
                value = environ.get("CONTENT_LENGTH", "")
            headers += f"{name}:{' '.join(value.split())}\n"
        canonical = "\n".join([method, path, canonical_query, headers, signed_headers, "UNSIGNED-PAYLOAD"])
        scope = f"{date}/{region}/{service}/{terminal}"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret}".encode(), date), region), service), terminal)
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, params["X-Amz-Signature"]):
            return (
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided",
            )
        return None


class StrictS3Server(ThreadedMotoServer):
    """`ThreadedMotoServer` on 127.0.0.1 and a free port, behind a `PresignGuard`."""

    def __init__(self, credentials: dict[str, str]):
        super().__init__(ip_address="127.0.0.1", port=0, verbose=False)
        self.guard = PresignGuard(DomainDispatcherApplication(create_backend_app), credentials)

    def _server_entry(self) -> None:  # moto's own, with the guard in front of its app
        self._server = make_server(self._ip_address, self._port, self.guard, True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()

    @property
    def url(self) -> str:
        host, port = self.get_host_and_port()
        return f"http://{host}:{port}"


def seed(bucket: str, keys: list[str], body: bytes = b".") -> None:
    """Create many objects straight in the in-process moto backend that the server serves
    (1000+ PUTs over HTTP cost ~9 s here); what is under test still goes over HTTP."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for key in keys:
        backend.put_object(bucket, key, body)
