"""
TLS for workers and the HTTP edges between them.

A worker serves TLS when it listens on an ``ssl:`` endpoint
(``ssl:8750:privateKey=key.pem:certKey=cert.pem``).  A client then checks
the worker's certificate like a browser does: signed by a trusted
certificate authority, and issued for the host name or IP address in the
URL.  By default the trusted authorities are the system's; a worker with a
certificate of its own CA (or a self-signed one) is trusted by giving that
CA certificate as ``ca=``::

    remote = process("https://192.168.1.20:8750", token=token, ca="lab-ca.pem")

``ca`` is the path of a PEM file holding one or more certificates, or that
PEM text as ``bytes``.  Only the certificates are kept (never a private key
that shares the file), so they may be handed on to a worker that must read
from the same host.

A certificate that does not verify fails the request at once with a
:class:`TLSError` naming the worker and the reason; it is not retried, as
no retry can change the answer.
"""

import hashlib
import os

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL, crypto
from service_identity import VerificationError
from twisted.internet import error as net_error
from twisted.internet.ssl import (Certificate, KeyPair, PrivateCertificate,
                                  trustRootFromCertificates)
from twisted.web.client import BrowserLikePolicyForHTTPS, ResponseNeverReceived
from twisted.web.iweb import IAgent
from zope.interface import implementer

from ..errors import TLSError

__all__ = ["read_ca", "trust_policy", "trust_key", "trusted_by",
           "explaining_agent", "check_certificate_files"]


def read_ca(ca):
    """
    The certificates to trust, as PEM ``bytes`` (``None`` for the system's
    certificate authorities).

    :param ca: ``None``; the path of a PEM file with one or more
        certificates; or PEM ``bytes``.
    :raises ValueError: naming the file when it cannot be read or holds
        no certificate.
    """
    if ca is None:
        return None
    if isinstance(ca, (bytes, bytearray)):
        where, pem = "ca (PEM bytes)", bytes(ca)
    elif isinstance(ca, (str, os.PathLike)):
        where = f"CA file {os.fspath(ca)!r}"
        try:
            with open(ca, "rb") as file:
                pem = file.read()
        except OSError as error:
            raise ValueError(f"{where}: cannot read it: {error.strerror}") from None
    else:
        raise TypeError(f"ca must be a path or PEM bytes, not {type(ca).__name__}")
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise ValueError(f"{where} holds no PEM certificate "
                         "(-----BEGIN CERTIFICATE-----)") from None
    return b"".join(c.public_bytes(Encoding.PEM) for c in certificates)


def trusted_by(pem):
    """
    Who is trusted, in words: the subjects of ``pem``'s certificates or the
    system's certificate authorities.
    """
    if pem is None:
        return "the system's certificate authorities"
    subjects = [c.subject.rfc4514_string() or "an unnamed certificate"
                for c in x509.load_pem_x509_certificates(pem)]
    return f"the CA given with ca= ({'; '.join(subjects)})"


def trust_key(pem):
    """
    What tells two trusts apart: ``None`` for the system's, else a digest
    of the certificates.
    """
    return None if pem is None else hashlib.sha256(pem).hexdigest()


def trust_policy(pem):
    """
    The ``BrowserLikePolicyForHTTPS`` of a treq/Twisted ``Agent`` that
    trusts exactly the certificates in ``pem`` (the system's CAs for
    ``None``), and checks host names and IP addresses.
    """
    if pem is None:
        return BrowserLikePolicyForHTTPS()
    roots = [Certificate.loadPEM(c.public_bytes(Encoding.PEM))
             for c in x509.load_pem_x509_certificates(pem)]
    return BrowserLikePolicyForHTTPS(trustRoot=trustRootFromCertificates(roots))


def _reasons(failure):
    """
    ``failure`` and the failures it wraps (``ResponseNeverReceived`` and
    ``ResponseFailed`` carry a list of them), depth first.
    """
    yield failure
    for inner in getattr(failure.value, "reasons", None) or ():
        if hasattr(inner, "value"):
            yield from _reasons(inner)


def _openssl_reason(error):
    """
    The reasons of an OpenSSL error (a list of ``(library, function,
    reason)``), or its text.
    """
    entries = error.args[0] if error.args and isinstance(error.args[0], list) else ()
    return "; ".join(str(entry[-1]) for entry in entries if isinstance(entry, tuple)) \
        or str(error)


def _identity(mismatch):
    """
    The host name or address that a certificate did not match, quoted.
    """
    wanted = getattr(mismatch, "mismatched_id", mismatch)
    value = getattr(wanted, "hostname", None) or getattr(wanted, "ip", None) or wanted
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return repr(str(value))


def _origin(uri):
    scheme, _, rest = uri.partition(b"://")
    host = rest.split(b"/", 1)[0]
    return (scheme + b"://" + host).decode("ascii", "replace")


def explain(failure, uri, pem):
    """
    Errback of a request to ``uri``: a TLS failure becomes a
    :class:`TLSError` that names the worker and the reason; a plain
    ``http://`` request that a worker closed without answering says that
    it may be a TLS worker.  Anything else passes through.
    """
    origin = _origin(uri)
    for reason in _reasons(failure):
        if reason.check(VerificationError):
            names = ", ".join(_identity(e) for e in reason.value.errors)
            raise TLSError(f"{origin}: the worker's TLS certificate is not issued for "
                           f"{names}: use in the URL a name or address it is issued for")
        if reason.check(SSL.Error):
            text = _openssl_reason(reason.value)
            if "certificate verify failed" in text:
                raise TLSError(f"{origin}: TLS certificate verify failed: the worker's "
                               f"certificate is not signed by {trusted_by(pem)}; give "
                               "ca= the certificate of the CA that signed it")
            raise TLSError(f"{origin}: TLS handshake failed ({text}); is the worker "
                           "listening on an ssl: endpoint?")
    if (uri.startswith(b"http://") and failure.check(ResponseNeverReceived)
            and all(r.check(net_error.ConnectionDone) for r in failure.value.reasons)):
        raise ConnectionError(f"{origin} closed the connection without answering "
                              "(if the worker listens on ssl:, use https://)")
    return failure


@implementer(IAgent)
class explaining_agent:
    """
    An ``IAgent`` that passes requests to ``agent`` and explains TLS
    failures with :func:`explain`.
    """

    def __init__(self, agent, pem=None):
        self.agent = agent
        self.pem = pem

    def request(self, method, uri, headers=None, bodyProducer=None):
        d = self.agent.request(method, uri, headers, bodyProducer)
        return d.addErrback(explain, uri, self.pem)


def check_certificate_files(private_key, cert_key=None):
    """
    Check the files of an ``ssl:`` endpoint before listening: ValueError
    naming the option and the file when one is missing, unreadable or not
    PEM, or when the key is not the certificate's.

    :param private_key: the ``privateKey`` option (PEM private key).
    :param cert_key: the ``certKey`` option (PEM certificate); the
        ``privateKey`` file by default, as in Twisted.
    """
    hint = "see `pyrf-blocks worker --help` for how to make a key and certificate"
    cert_key = cert_key or private_key
    contents = {}
    for option, path in (("privateKey", private_key), ("certKey", cert_key)):
        try:
            with open(path, "rb") as file:
                contents[option] = file.read()
        except OSError as error:
            raise ValueError(f"{option}={path}: {error.strerror} ({hint})") from None
    for option, path, load, what in (
            ("privateKey", private_key, lambda pem: KeyPair.load(pem, crypto.FILETYPE_PEM),
             "a PEM private key"),
            ("certKey", cert_key, Certificate.loadPEM, "a PEM certificate")):
        try:
            load(contents[option])
        except (crypto.Error, ValueError) as error:
            raise ValueError(f"{option}={path}: not {what} "
                             f"({_openssl_reason(error)}; {hint})") from None
    try:
        PrivateCertificate.loadPEM(contents["certKey"] + b"\n" + contents["privateKey"])
    except (crypto.Error, net_error.VerifyError, ValueError) as error:
        raise ValueError(f"privateKey={private_key} is not the key of certKey={cert_key} "
                         f"({_openssl_reason(error)})") from None
