#!/usr/bin/env python3
"""Demo certificates for the TLS harness (envoy/envoy-tls.yaml), made with the `openssl` command:

    python3 tools/tls_certs.py [DIR]          # default target/tls; `make certs` runs it

A CA (ca.pem) and, for each TLS backend, NAME.pem / NAME.key with CN=NAME and the SANs
rollouts-demo-vsvc.local and NAME.backend. Never committed, never for production: the keys are
made on the machine that runs the harness. Existing files are kept (the run is idempotent).
"""
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
BACKENDS = ("tls-stable", "tls-canary", "tls-default")
SNI = "rollouts-demo-vsvc.local"
EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def openssl(args, cwd):
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"tls_certs: openssl {' '.join(args)}: {result.stderr.strip()}")


def main():
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "target/tls"
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "ca.pem").exists():
        openssl(["req", "-x509", "-days", "365", "-subj", "/CN=split-mirror demo CA", *EC,
                 "-keyout", "ca.key", "-out", "ca.pem"], out)
    for name in BACKENDS:
        if (out / f"{name}.pem").exists():
            continue
        (out / f"{name}.ext").write_text(
            f"subjectAltName=DNS:{SNI},DNS:{name}.backend\nbasicConstraints=CA:FALSE\n"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n")
        openssl(["req", "-subj", f"/CN={name}", *EC, "-keyout", f"{name}.key", "-out", f"{name}.csr"], out)
        openssl(["x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "365", "-extfile", f"{name}.ext", "-out", f"{name}.pem"], out)
    print(f"tls_certs: {out.relative_to(REPO) if out.is_relative_to(REPO) else out}: ca.pem, "
          + ", ".join(f"{n}.pem" for n in BACKENDS))


if __name__ == "__main__":
    main()
