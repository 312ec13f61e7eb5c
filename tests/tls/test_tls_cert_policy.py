"""Certificate policy (issue 10): the private-PKI shapes OpenSSL accepts, and the ones it
refuses, made with the ``openssl`` command line; each checked by ``verify_chain`` beside
``openssl verify`` on the same files (``-auth_level 2``: the security level of a Debian
OpenSSL's TLS handshake; ``-purpose sslserver``/``sslclient``; ``-verify_hostname``)."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from tls_helpers import client_config, handshake

from netstack.testing import require_program
from netstack.tls import ConnectionFailed, HandshakeCompleted, TLSAlert, TLSConfig
from netstack.tls.certs import load_certificates, verify_chain

MINIMAL_CONFIG = "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\n"


class Maker:
    """Keys and certificates by ``openssl`` commands in one directory."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.openssl = require_program("openssl")
        (directory / "min.cnf").write_text(MINIMAL_CONFIG)
        self.serial = 1

    def run(self, *argv: str) -> None:
        subprocess.run([self.openssl, *argv], cwd=self.dir, check=True, capture_output=True)

    def key(self, name: str, kind: str = "ec") -> str:
        options = {
            "ec": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            "rsa": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            "rsa1024": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
            "ed25519": ["-algorithm", "ED25519"],
        }[kind]
        self.run("genpkey", *options, "-out", f"{name}.key")
        return f"{name}.key"

    def root(self, name: str, *addext: str, kind: str = "ec", plain: bool = False) -> str:
        """A self-signed certificate: ``plain`` as ``openssl req -x509`` makes it with the
        system's configuration (basicConstraints critical CA:TRUE, SKI, AKI, no keyUsage);
        otherwise only the extensions given (none: a v1 certificate)."""
        self.key(name, kind)
        config = [] if plain else ["-config", "min.cnf"]
        extra = [arg for ext in addext for arg in ("-addext", ext)]
        self.run("req", "-x509", "-new", "-key", f"{name}.key", "-subj", f"/CN={name}",
                 "-days", "30", *config, *extra, "-out", f"{name}.pem")  # fmt: skip
        return f"{name}.pem"

    def issue(
        self, name: str, issuer: str, *ext: str, kind: str = "ec", cn: str | None = None,
        digest: str = "sha256",
    ) -> str:  # fmt: skip
        """A certificate signed by ``issuer``, with the extensions given (none: v1)."""
        self.key(name, kind)
        self.run("req", "-new", "-key", f"{name}.key", "-subj", f"/CN={cn or name}",
                 "-config", "min.cnf", "-out", f"{name}.csr")  # fmt: skip
        self.serial += 1
        argv = ["x509", "-req", "-in", f"{name}.csr", "-CA", f"{issuer}.pem", "-CAkey",
                f"{issuer}.key", "-set_serial", str(self.serial), "-days", "30",
                f"-{digest}", "-out", f"{name}.pem"]  # fmt: skip
        if ext:
            (self.dir / f"{name}.ext").write_text("\n".join(ext) + "\n")
            argv += ["-extfile", f"{name}.ext"]
        self.run(*argv)
        return f"{name}.pem"


SERVER = ["extendedKeyUsage = serverAuth", "subjectAltName = DNS:server.test"]
CA = ["basicConstraints = critical, CA:TRUE", "keyUsage = critical, keyCertSign, cRLSign",
      "subjectKeyIdentifier = hash", "authorityKeyIdentifier = keyid"]  # fmt: skip


@dataclass
class Shape:
    leaf: str
    anchors: list[str]
    untrusted: list[str]
    accept: bool
    host: str | None = "server.test"  # None: a client certificate
    why: str = ""  # a piece of our error message, for refused shapes


def make_shapes(m: Maker) -> dict[str, Shape]:
    shapes: dict[str, Shape] = {}
    m.root("reqroot", plain=True)
    shapes["openssl req -x509 CA without keyUsage"] = Shape(
        m.issue("leaf1", "reqroot", *SERVER), ["reqroot.pem"], [], True
    )
    m.root("ncroot", "basicConstraints = CA:TRUE", "keyUsage = keyCertSign")
    shapes["CA with basicConstraints not critical"] = Shape(
        m.issue("leaf2", "ncroot", *SERVER), ["ncroot.pem"], [], True
    )
    m.root("kuroot", "keyUsage = critical, keyCertSign")
    shapes["root with keyUsage and no basicConstraints"] = Shape(
        m.issue("leaf3", "kuroot", *SERVER), ["kuroot.pem"], [], True
    )
    shapes["server certificate with CN only"] = Shape(
        m.issue("leaf4", "reqroot", "extendedKeyUsage = serverAuth", cn="server.test"),
        ["reqroot.pem"], [], True,
    )  # fmt: skip
    shapes["server certificate with another CN only"] = Shape(
        m.issue("leaf5", "reqroot", cn="other.test"), ["reqroot.pem"], [], False,
        why="commonName",
    )  # fmt: skip
    shapes["client certificate without subjectAltName"] = Shape(
        m.issue("client1", "reqroot", "extendedKeyUsage = clientAuth"), ["reqroot.pem"], [],
        True, host=None,
    )  # fmt: skip
    shapes["v1 server certificate"] = Shape(
        m.issue("leaf6", "reqroot", cn="server.test"), ["reqroot.pem"], [], True
    )
    m.root("v1root")
    shapes["v1 root"] = Shape(m.issue("leaf7", "v1root", *SERVER), ["v1root.pem"], [], True)
    m.issue("akiless", "reqroot", "basicConstraints = critical, CA:TRUE")
    shapes["intermediate without AKI, SKI or keyUsage"] = Shape(
        m.issue("leaf8", "akiless", *SERVER), ["reqroot.pem"], ["akiless.pem"], True
    )
    m.root("selfsigned", "subjectAltName = DNS:server.test")
    shapes["self-signed server certificate trusted as itself"] = Shape(
        "selfsigned.pem", ["selfsigned.pem"], [], True
    )
    m.root("edroot", *CA, kind="ed25519")
    shapes["Ed25519 root"] = Shape(m.issue("leaf9", "edroot", *SERVER), ["edroot.pem"], [], True)
    shapes["Ed25519 server key"] = Shape(
        m.issue("leaf10", "reqroot", *SERVER, kind="ed25519"), ["reqroot.pem"], [], True
    )
    shapes["wildcard name"] = Shape(
        m.issue("leaf11", "reqroot", "subjectAltName = DNS:*.example.test"), ["reqroot.pem"],
        [], True, host="a.example.test",
    )  # fmt: skip
    shapes["wildcard does not span two labels"] = Shape(
        "leaf11.pem", ["reqroot.pem"], [], False, host="a.b.example.test", why="not for"
    )
    m.root("ncons", *CA, "nameConstraints = critical, permitted;DNS:.good.test")
    shapes["name constraints permit"] = Shape(
        m.issue("leaf12", "ncons", "subjectAltName = DNS:www.good.test"), ["ncons.pem"], [],
        True, host="www.good.test",
    )  # fmt: skip
    shapes["name constraints refuse"] = Shape(
        m.issue("leaf13", "ncons", "subjectAltName = DNS:www.bad.test"), ["ncons.pem"], [],
        False, host="www.bad.test", why="outside the names permitted",
    )  # fmt: skip
    # refused, as OpenSSL refuses them
    shapes["RSA-1024 server key"] = Shape(
        m.issue("weak", "reqroot", *SERVER, kind="rsa1024"), ["reqroot.pem"], [], False,
        why="EE key too weak",
    )  # fmt: skip
    m.root("weakroot", *CA, kind="rsa1024")
    shapes["RSA-1024 CA key"] = Shape(
        m.issue("leaf14", "weakroot", *SERVER), ["weakroot.pem"], [], False,
        why="CA key too weak",
    )  # fmt: skip
    shapes["SHA-1 signature"] = Shape(
        m.issue("leaf15", "reqroot", *SERVER, digest="sha1"), ["reqroot.pem"], [], False,
        why="too weak (sha1)",
    )  # fmt: skip
    m.issue("notca", "reqroot", "basicConstraints = CA:FALSE")
    shapes["intermediate with cA FALSE"] = Shape(
        m.issue("leaf16", "notca", *SERVER), ["reqroot.pem"], ["notca.pem"], False,
        why="'CN=notca' (issuer at depth 1) is not a CA",
    )  # fmt: skip
    m.issue("nobc", "reqroot", "keyUsage = keyCertSign")
    shapes["intermediate without basicConstraints"] = Shape(
        m.issue("leaf17", "nobc", *SERVER), ["reqroot.pem"], ["nobc.pem"], False,
        why="no basicConstraints",
    )  # fmt: skip
    m.issue("nosign", "reqroot", "basicConstraints = critical, CA:TRUE",
            "keyUsage = digitalSignature")  # fmt: skip
    shapes["intermediate whose keyUsage lacks keyCertSign"] = Shape(
        m.issue("leaf18", "nosign", *SERVER), ["reqroot.pem"], ["nosign.pem"], False,
        why="keyUsage does not allow signing certificates",
    )  # fmt: skip
    m.root("plroot", "basicConstraints = critical, CA:TRUE, pathlen:0")
    m.issue("plinter", "plroot", "basicConstraints = critical, CA:TRUE")
    shapes["pathLenConstraint exceeded"] = Shape(
        m.issue("leaf19", "plinter", *SERVER), ["plroot.pem"], ["plinter.pem"], False,
        why="pathLenConstraint 0 exceeded",
    )  # fmt: skip
    shapes["server certificate for clientAuth only"] = Shape(
        m.issue("leaf20", "reqroot", "extendedKeyUsage = clientAuth",
                "subjectAltName = DNS:server.test"),
        ["reqroot.pem"], [], False, why="does not include serverAuth",
    )  # fmt: skip
    shapes["unknown critical extension"] = Shape(
        m.issue("leaf21", "reqroot", *SERVER, "1.3.6.1.4.1.55555.1 = critical, ASN1:NULL"),
        ["reqroot.pem"], [], False, why="unhandled critical extension 1.3.6.1.4.1.55555.1",
    )  # fmt: skip
    shapes["unknown issuer"] = Shape("leaf1.pem", ["v1root.pem"], [], False, why="CN=reqroot")
    return shapes


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Maker, dict[str, Shape]]:
    m = Maker(tmp_path_factory.mktemp("shapes"))
    return m, make_shapes(m)


SHAPE_NAMES = [
    "openssl req -x509 CA without keyUsage", "CA with basicConstraints not critical",
    "root with keyUsage and no basicConstraints", "server certificate with CN only",
    "server certificate with another CN only", "client certificate without subjectAltName",
    "v1 server certificate", "v1 root", "intermediate without AKI, SKI or keyUsage",
    "self-signed server certificate trusted as itself", "Ed25519 root", "Ed25519 server key",
    "wildcard name", "wildcard does not span two labels", "name constraints permit",
    "name constraints refuse", "RSA-1024 server key", "RSA-1024 CA key", "SHA-1 signature",
    "intermediate with cA FALSE", "intermediate without basicConstraints",
    "intermediate whose keyUsage lacks keyCertSign", "pathLenConstraint exceeded",
    "server certificate for clientAuth only", "unknown critical extension", "unknown issuer",
]  # fmt: skip


def openssl_accepts(m: Maker, shape: Shape) -> bool:
    (m.dir / "anchors.pem").write_bytes(b"".join((m.dir / a).read_bytes() for a in shape.anchors))
    argv = [m.openssl, "verify", "-auth_level", "2", "-CAfile", "anchors.pem"]
    if shape.untrusted:
        (m.dir / "untrusted.pem").write_bytes(
            b"".join((m.dir / u).read_bytes() for u in shape.untrusted)
        )
        argv += ["-untrusted", "untrusted.pem"]
    if shape.host is None:
        argv += ["-purpose", "sslclient"]
    else:
        argv += ["-purpose", "sslserver", "-verify_hostname", shape.host]
    done = subprocess.run([*argv, shape.leaf], cwd=m.dir, capture_output=True, text=True)
    return done.returncode == 0


def our_verdict(m: Maker, shape: Shape, *, strict: bool = False) -> TLSAlert | None:
    chain = load_certificates(m.dir / shape.leaf)
    chain += [c for u in shape.untrusted for c in load_certificates(m.dir / u)]
    anchors = [c for a in shape.anchors for c in load_certificates(m.dir / a)]
    try:
        verify_chain(chain, anchors, now=time.time(), server_name=shape.host,
                     client=shape.host is None, strict=strict)  # fmt: skip
    except TLSAlert as error:
        return error
    return None


@pytest.mark.parametrize("name", SHAPE_NAMES)
def test_shape_verdict_is_openssls(made: tuple[Maker, dict[str, Shape]], name: str) -> None:
    m, shapes = made
    shape = shapes[name]
    assert openssl_accepts(m, shape) is shape.accept, "openssl verify disagrees with the table"
    error = our_verdict(m, shape)
    if shape.accept:
        assert error is None, error
    else:
        assert error is not None
        assert shape.why in str(error), error


@pytest.mark.parametrize("name", SHAPE_NAMES)
def test_strict_is_the_ca_browser_forum_profile(
    made: tuple[Maker, dict[str, Shape]], name: str
) -> None:
    # strict: cryptography's web PKI verifier, what netstack did before issue 10; none of
    # these shapes passes it (no keyUsage on the CAs, basicConstraints not critical, Ed25519,
    # v1, no subjectAltName or extendedKeyUsage, name constraints on ".good.test", ...).
    m, shapes = made
    assert our_verdict(m, shapes[name], strict=True) is not None


def test_shapes_through_a_handshake(made: tuple[Maker, dict[str, Shape]]) -> None:
    # The verdicts reach the handshake: a CN-only server certificate, a client certificate
    # without subjectAltName, an Ed25519 root; and strict refuses the first.
    m, shapes = made
    leaf, key = m.dir / "leaf4.pem", m.dir / "leaf4.key"
    server = TLSConfig.server(leaf, key, cafile=m.dir / "reqroot.pem", verify_client=True)
    client = client_config(cafile=m.dir / "reqroot.pem", certfile=m.dir / "client1.pem",
                           keyfile=m.dir / "client1.key")  # fmt: skip
    _, conn, ce, se = handshake(client, server)
    assert isinstance(ce[0], HandshakeCompleted) and isinstance(se[0], HandshakeCompleted)
    assert conn.getpeercert()["subject"] == ((("commonName", "client1"),),)  # type: ignore[index]
    strict_client = client_config(cafile=m.dir / "reqroot.pem", strict=True)
    _, _, ce, _ = handshake(strict_client, server)
    assert isinstance(ce[-1], ConnectionFailed)
    ed_server = TLSConfig.server(m.dir / "leaf9.pem", m.dir / "leaf9.key")
    _, _, ce, _ = handshake(client_config(cafile=m.dir / "edroot.pem"), ed_server)
    assert isinstance(ce[0], HandshakeCompleted)
