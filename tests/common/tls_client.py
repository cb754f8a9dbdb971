#!/usr/bin/env python3
"""The TCP/TLS client of tests/e2e_tcp.rs: opens connections through the front proxy and reports,
for each, which backend answered and whose certificate the TLS handshake verified.

    tls_client.py PORT CA_FILE < jobs.json > results.json

jobs.json is a list of {"sni": name or null, "tls": bool, "source": IP or null, "count": n}.
The answer is one list per job, one entry per connection: {"served": NAME, "cert": CN} (cert is
null for plain TCP) or {"error": TEXT}. A TLS handshake must verify the backend's certificate
against CA_FILE: the front proxy holds no certificate, so a verified handshake whose certificate
names the backend that answered proves the bytes passed through untouched.
"""
import concurrent.futures
import json
import socket
import ssl
import sys

TIMEOUT = 10


def common_name(certificate):
    for rdn in certificate.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None


REQUEST = b"GET / HTTP/1.1\r\nHost: backend\r\nConnection: close\r\n\r\n"


def ask_name(sock):
    """The backend's name: the body of its answer (read up to its Content-Length, without
    waiting for the backend to close)."""
    sock.sendall(REQUEST)
    data = b""
    while True:
        head, found, body = data.partition(b"\r\n\r\n")
        if found:
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
                           if line.lower().startswith(b"content-length:")), None)
            if length is not None and len(body) >= length:
                return body[:length].decode(errors="replace").strip()
        chunk = sock.recv(4096)
        if not chunk:
            return body.decode(errors="replace").strip()
        data += chunk


def connect(port, context, job):
    try:
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.settimeout(TIMEOUT)
        if job.get("source"):
            raw.bind((job["source"], 0))
        raw.connect(("127.0.0.1", port))
        if not job.get("tls", True):
            with raw:
                # tls_inspector tells plain TCP from TLS by the first bytes the client sends.
                return {"served": ask_name(raw), "cert": None}
        with context.wrap_socket(raw, server_hostname=job.get("sni")) as tls:
            cert = common_name(tls.getpeercert())
            return {"served": ask_name(tls), "cert": cert}
    except (OSError, ssl.SSLError) as error:
        return {"error": f"{type(error).__name__}: {error}"}


def main():
    port, ca_file = int(sys.argv[1]), sys.argv[2]
    context = ssl.create_default_context(cafile=ca_file)
    # Verify the chain to our CA; the SNI is the client's routing key, not the backend's name.
    context.check_hostname = False
    context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    jobs = json.load(sys.stdin)
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = [list(pool.map(lambda j: connect(port, context, j), [job] * job["count"])) for job in jobs]
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
