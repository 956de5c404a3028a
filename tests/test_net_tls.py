"""
TLS between workers and their clients: pyrf_blocks.net.tls on its own
(in-memory handshakes, failures explained), and real ``ssl:`` workers on
loopback read by real client processes.  Keys and certificates are made
at test time; none is committed.
"""

import datetime
import http.client
import ipaddress
import shutil
import ssl
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL
from treq.client import HTTPClient
from twisted.internet import defer, error as net_error, protocol
from twisted.internet.interfaces import IHandshakeListener, IOpenSSLContextFactory
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.web.client import ResponseNeverReceived
from twisted.web.iweb import IAgent
from zope.interface import implementer
from zope.interface.verify import verifyObject

from pyrf_blocks.blocks.dsp import calibrate_block, fft_block
from pyrf_blocks.blocks.sources import simulated_instrument
from pyrf_blocks.cli import main
from pyrf_blocks.graph import Graph
from pyrf_blocks.net import Place, remote_block
from pyrf_blocks.net.client import http_client
from pyrf_blocks.net.tls import (TLSError, check_certificate_files, explain,
                                 explaining_agent, read_ca, trust_policy)
from pyrf_blocks.pipeline import PipelineError, build, check_text
from pyrf_blocks.testing import WorkerPair, recording_sink, run_clock

from net_real import ROOT, RealWorker, environment, real_workers
from docs_snippets import code_blocks as page_blocks

TOKEN = "tls-test-token-0123456789"


# Keys and certificates, made here.

def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(path, data):
    path.write_bytes(data)
    return str(path)


def _key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_ca(folder, common_name, address=None):
    """
    A CA key and self-signed CA certificate, also valid as a server's for
    ``address`` when one is given; ``(key, certificate, path)``.
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateBuilder()
    if address is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(address))]), critical=False)
    certificate = (
        builder.subject_name(_name(common_name))
        .issuer_name(_name(common_name)).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                     crl_sign=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False,
                                     decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256()))
    path = _write(folder / f"{common_name.replace(' ', '_')}.pem",
                  certificate.public_bytes(serialization.Encoding.PEM))
    return key, certificate, path


def make_server_certificate(folder, ca_key, ca_certificate, address="127.0.0.1"):
    """
    A server key and a certificate for ``address`` (an IP SAN) signed by
    the CA; ``(key_path, certificate_path)``.
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder().subject_name(_name(address))
        .issuer_name(ca_certificate.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(address))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256()))
    return (_write(folder / "worker-key.pem", _key_pem(key)),
            _write(folder / "worker-cert.pem",
                   certificate.public_bytes(serialization.Encoding.PEM)))


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """
    A lab CA, a worker certificate for 127.0.0.1 that it signs, and a CA
    that signs nothing of ours.
    """
    folder = tmp_path_factory.mktemp("pki")
    ca_key, ca_certificate, ca = make_ca(folder, "lab CA")
    key, cert = make_server_certificate(folder, ca_key, ca_certificate)
    _, _, other_ca = make_ca(folder, "other CA")
    return SimpleNamespace(folder=folder, ca=ca, key=key, cert=cert, other_ca=other_ca)


def pem(path):
    with open(path, "rb") as file:
        return file.read()


# read_ca and the trust it gives.

def test_read_ca_keeps_every_certificate_and_never_a_key(pki, tmp_path):
    """A bundle gives all its certificates; a private key in the same file is left out."""
    bundle = _write(tmp_path / "bundle.pem", pem(pki.ca) + pem(pki.key) + pem(pki.other_ca))
    certificates = read_ca(bundle)
    assert certificates == pem(pki.ca) + pem(pki.other_ca)
    assert b"PRIVATE KEY" not in certificates
    assert read_ca(certificates) == certificates
    assert read_ca(None) is None


@pytest.mark.parametrize("content, message", [
    (None, "CA file '{path}': cannot read it: No such file or directory"),
    (b"not a certificate\n", "CA file '{path}' holds no PEM certificate"),
    ("key", "CA file '{path}' holds no PEM certificate"),
])
def test_read_ca_names_the_file_it_cannot_use(pki, tmp_path, content, message):
    """A missing file, or one without a certificate, is refused naming the file."""
    path = str(tmp_path / "ca.pem")
    if content == "key":
        path = pki.key
    elif content is not None:
        _write(tmp_path / "ca.pem", content)
    with pytest.raises(ValueError) as caught:
        read_ca(path)
    assert str(caught.value).startswith(message.format(path=path))


def test_read_ca_refuses_other_types():
    """Only a path or PEM bytes are a CA."""
    with pytest.raises(TypeError, match="ca must be a path or PEM bytes, not int"):
        read_ca(42)


@implementer(IHandshakeListener)
class _Peer(protocol.Protocol):
    """
    One end of an in-memory TLS connection: records the handshake and the
    reason the connection was lost.
    """

    def __init__(self):
        self.handshake = False
        self.lost = None

    def handshakeCompleted(self):
        self.handshake = True

    def connectionLost(self, reason):
        self.lost = reason


@implementer(IOpenSSLContextFactory)
class _ServerContext:
    """
    The TLS context of a server presenting ``cert`` with ``key`` (PEM
    files), built from cryptography objects as pyOpenSSL now prefers.
    """

    def __init__(self, cert, key):
        self.context = SSL.Context(SSL.TLS_SERVER_METHOD)
        self.context.use_certificate(x509.load_pem_x509_certificate(pem(cert)))
        self.context.use_privatekey(serialization.load_pem_private_key(pem(key), None))

    def getContext(self):
        return self.context


def handshake(pki, trusted, host=b"127.0.0.1"):
    """
    A TLS handshake in memory between the worker's certificate and a client
    with ``trust_policy(trusted)`` connecting to ``host``; the client end.
    """
    server, client = _Peer(), _Peer()
    server_tls = TLSMemoryBIOFactory(_ServerContext(pki.cert, pki.key), False,
                                     protocol.Factory.forProtocol(lambda: server))
    client_tls = TLSMemoryBIOFactory(trust_policy(trusted).creatorForNetloc(host, 8750),
                                     True, protocol.Factory.forProtocol(lambda: client))
    server_end, client_end = server_tls.buildProtocol(None), client_tls.buildProtocol(None)
    iosim.connect(server_end, iosim.FakeTransport(server_end, isServer=True),
                  client_end, iosim.FakeTransport(client_end, isServer=False)).flush()
    return client


def test_trust_policy_trusts_exactly_the_given_ca(pki):
    """The lab CA verifies the worker's certificate; another CA or the system's does not."""
    assert handshake(pki, read_ca(pki.ca)).handshake
    for trusted in (read_ca(pki.other_ca), None):
        client = handshake(pki, trusted)
        assert not client.handshake
        assert "certificate verify failed" in str(client.lost.value)


def test_a_self_signed_worker_certificate_is_its_own_ca(tmp_path):
    """A self-signed certificate given as ca= verifies the worker that presents it."""
    key, _, cert = make_ca(tmp_path, "self-signed worker", address="127.0.0.1")
    worker = SimpleNamespace(cert=cert, key=_write(tmp_path / "key.pem", _key_pem(key)))
    assert handshake(worker, read_ca(cert)).handshake
    assert not handshake(worker, None).handshake


def test_trust_policy_checks_the_address(pki):
    """A certificate for 127.0.0.1 is refused for the name 'localhost', even from its CA."""
    client = handshake(pki, read_ca(pki.ca), host=b"localhost")
    assert not client.handshake
    assert type(client.lost.value).__name__ == "VerificationError"


# explain(): failures in words, at once.

def never_received(reason):
    return Failure(ResponseNeverReceived([reason]))


def test_explain_names_the_worker_and_whom_the_client_trusts(pki):
    """certificate verify failed becomes a TLSError naming the worker and the trusted CA."""
    lost = handshake(pki, read_ca(pki.other_ca)).lost
    with pytest.raises(TLSError) as caught:
        explain(never_received(lost), b"https://127.0.0.1:8750/blocks", read_ca(pki.other_ca))
    assert str(caught.value) == (
        "https://127.0.0.1:8750: TLS certificate verify failed: the worker's certificate "
        "is not signed by the CA given with ca= (CN=other CA); give ca= the certificate "
        "of the CA that signed it")
    with pytest.raises(TLSError, match="not signed by the system's certificate authorities"):
        explain(never_received(lost), b"https://127.0.0.1:8750/health", None)


def test_explain_says_which_host_the_certificate_is_not_for(pki):
    """A host name the certificate does not carry is named in the TLSError."""
    lost = handshake(pki, read_ca(pki.ca), host=b"localhost").lost
    with pytest.raises(TLSError, match=r"^https://localhost:8750: the worker's TLS "
                                       r"certificate is not issued for 'localhost'"):
        explain(never_received(lost), b"https://localhost:8750/blocks", read_ca(pki.ca))


def test_explain_hints_at_https_and_passes_other_failures_through():
    """A plain request closed unanswered hints at https://; a refused connection is untouched."""
    closed = never_received(Failure(net_error.ConnectionDone()))
    with pytest.raises(ConnectionError, match=r"^http://127.0.0.1:8750 closed the "
                                              r"connection without answering \(if the "
                                              r"worker listens on ssl:, use https://\)"):
        explain(closed, b"http://127.0.0.1:8750/health", None)
    refused = Failure(net_error.ConnectionRefusedError())
    assert explain(refused, b"https://127.0.0.1:8750/health", None) is refused
    assert explain(closed, b"https://127.0.0.1:8750/health", None) is closed


@implementer(IAgent)
class _FailingAgent:
    """
    An agent whose every request fails as a TLS client does when it does
    not trust the worker.
    """

    def __init__(self, reason):
        self.reason = reason
        self.requests = []

    def request(self, method, uri, headers=None, bodyProducer=None):
        self.requests.append((method, uri))
        return defer.fail(never_received(self.reason))


def test_a_certificate_that_does_not_verify_fails_the_graph_at_once(pki):
    """A remote_block behind an untrusted certificate fails its graph on the first request."""
    agent = _FailingAgent(handshake(pki, None).lost)
    verifyObject(IAgent, explaining_agent(agent))
    graph = Graph(Clock())
    stream = remote_block("https://127.0.0.1:8750/blocks/fft", "spectrum", graph=graph,
                          client=HTTPClient(explaining_agent(agent)))
    recording_sink(stream)
    outcome = []
    graph.done().addBoth(outcome.append)
    graph.reactor.advance(0)
    assert len(agent.requests) == 1  # no retry can make it verify
    assert outcome and outcome[0].check(TLSError)
    assert "https://127.0.0.1:8750: TLS certificate verify failed" in str(outcome[0].value)


# Where ca= is given.

def test_http_client_keeps_one_pool_per_graph_and_trust(pki):
    """The same CA, as a path or as bytes, shares a client; another trust or graph gets its own."""
    reactor = MemoryReactorClock()
    graph = Graph(reactor)
    lab = http_client(graph, ca=pki.ca)
    assert http_client(graph, ca=pem(pki.ca)) is lab
    assert http_client(graph) is not lab
    assert http_client(graph, ca=pki.other_ca) is not lab
    assert http_client(Graph(MemoryReactorClock()), ca=pki.ca) is not lab
    assert http_client(Graph(reactor), ca=pki.ca) is not lab  # scoped to the graph


def test_process_and_remote_block_name_a_ca_file_they_cannot_read(tmp_path):
    """process() and remote_block refuse a missing CA file at once, naming themselves."""
    missing = str(tmp_path / "nowhere.pem")
    with pytest.raises(ValueError, match=r"^process\('https://lab:8750'\): CA file '.*"
                                         r"nowhere.pem': cannot read it"):
        Place("https://lab:8750", token=TOKEN, ca=missing, reactor=MemoryReactorClock())
    with pytest.raises(ValueError, match=r"^remote_block 'https://lab:8750/blocks/fft': "
                                         r"CA file"):
        remote_block("https://lab:8750/blocks/fft", "spectrum", ca=missing,
                     graph=Graph(Clock()))


def test_blocks_placed_on_a_process_trust_its_ca(pki):
    """A block placed on process(url, ca=...) carries the same certificates."""
    place = Place("https://lab:8750", token=TOKEN, ca=pki.ca, reactor=MemoryReactorClock())
    graph = Graph(Clock())
    fft = fft_block(simulated_instrument(graph=graph), proc=place)
    assert place.ca == fft.ca == pem(pki.ca)


def test_a_worker_input_may_carry_the_ca_of_its_worker(pki):
    """An input {url, ca} gets a remote_block trusting that CA; a bad ca is a 400."""
    pair = WorkerPair()
    spec = {"type": "fft_block", "name": "fft",
            "inputs": [{"url": "https://lab:8750/blocks/wsa", "kind": "iq",
                        "ca": pem(pki.ca).decode()}]}
    status, _, body = pair.call("POST", "/blocks", json=spec)
    assert status == 201, body
    assert pair.server.blocks["wsa"].ca == pem(pki.ca)
    for ca, message in ((42, b"fft_block: input 1: ca must be PEM text"),
                        ("garbage", b"holds no PEM certificate")):
        spec["name"], spec["inputs"][0]["ca"] = "fft2", ca
        status, _, body = pair.call("POST", "/blocks", json=spec)
        assert status == 400 and message in body, body


# The worker's key and certificate files.

def test_check_certificate_files_accepts_a_pair_or_one_combined_file(pki, tmp_path):
    """A key with its certificate, apart or in one file, passes."""
    check_certificate_files(pki.key, pki.cert)
    check_certificate_files(_write(tmp_path / "server.pem", pem(pki.cert) + pem(pki.key)))


def test_check_certificate_files_names_what_is_wrong(pki, tmp_path):
    """Missing, non-PEM and mismatched files are refused naming the option and the file."""
    missing = str(tmp_path / "missing.pem")
    other_key = _write(tmp_path / "other-key.pem", _key_pem(ec.generate_private_key(
        ec.SECP256R1())))
    cases = [((missing, pki.cert), f"privateKey={missing}: No such file or directory"),
             ((pki.key, missing), f"certKey={missing}: No such file or directory"),
             ((pki.cert, pki.cert), f"privateKey={pki.cert}: not a PEM private key"),
             ((pki.key, pki.key), f"certKey={pki.key}: not a PEM certificate"),
             ((other_key, pki.cert), f"privateKey={other_key} is not the key of "
                                     f"certKey={pki.cert}")]
    for files, message in cases:
        with pytest.raises(ValueError) as caught:
            check_certificate_files(*files)
        assert str(caught.value).startswith(message), caught.value


def test_the_worker_command_refuses_missing_key_files_in_one_line(pki, tmp_path):
    """pyrf-blocks worker --listen ssl:... with a missing key exits 2 with one line."""
    missing = tmp_path / "key.pem"
    result = subprocess.run(
        [sys.executable, "-m", "pyrf_blocks.cli", "worker", "--token", TOKEN, "--listen",
         f"ssl:0:interface=127.0.0.1:privateKey={missing}:certKey={pki.cert}"],
        cwd=ROOT, env=environment(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == (f"pyrf-blocks worker: privateKey={missing}: No such file or "
                             "directory (see `pyrf-blocks worker --help` for how to make a "
                             "key and certificate)\n")


def test_the_worker_help_says_how_to_make_a_certificate(capsys):
    """worker --help shows the openssl commands and how clients trust the result."""
    with pytest.raises(SystemExit):
        main(["worker", "--help"])
    out = capsys.readouterr().out
    assert "openssl req -x509" in out and 'ca="ca.pem"' in out


# Pipeline files.

def pipeline_text(url, ca, kind=""):
    return textwrap.dedent(f"""\
        version: 1
        processes:
          lab: {{{kind}url: "{url}", token_env: LAB_TOKEN, ca: {ca}}}
        blocks:
          wsa: {{type: simulated_instrument, params: {{count: 20, paced: false}}}}
          fft: {{type: fft_block, inputs: [wsa], proc: lab}}
          out: {{type: collector, inputs: [fft]}}
    """)


@pytest.mark.parametrize("text, message", [
    (pipeline_text("http://lab:8750", "ca.pem"), "ca (the CA certificate a worker's TLS "
     "certificate is checked against) is for https:// workers only"),
    ("version: 1\nprocesses:\n  dsp: {kind: child, ca: ca.pem}\nblocks:\n"
     "  wsa: {type: simulated_instrument}\n", "is for https:// workers only"),
])
def test_a_ca_is_for_https_workers_only(text, message):
    """ca beside an http:// URL or on a child process is a mistake, reported."""
    with pytest.raises(PipelineError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_text(text, "p.yaml")


def test_a_ca_file_that_cannot_be_read_is_reported_at_its_line(tmp_path):
    """A missing ca file is named, relative to the pipeline file, before anything starts."""
    path = tmp_path / "p.yaml"
    path.write_text(pipeline_text("https://lab:8750", "certs/lab.pem"))
    pipeline = check_text(path.read_text(), str(path))
    with pytest.raises(PipelineError) as caught:
        build(pipeline, Graph(Clock()), environ={"LAB_TOKEN": TOKEN})
    assert str(caught.value) == (f"{path}:3:60: process 'lab': CA file "
                                 f"'{tmp_path / 'certs' / 'lab.pem'}': cannot read it: "
                                 "No such file or directory")


# Real workers on loopback.

@pytest.fixture(scope="module")
def tls_workers(pki):
    """
    Two ``pyrf-blocks worker --listen ssl:...`` processes on 127.0.0.1,
    with the lab CA's certificate and a token.
    """
    listen = f"ssl:0:interface=127.0.0.1:privateKey={pki.key}:certKey={pki.cert}"
    with real_workers([listen, listen], TOKEN) as workers:
        yield workers


@pytest.fixture
def tls_worker(tls_workers):
    return tls_workers[0]


def https_health(worker, ca):
    """
    ``GET /health`` over TLS, verified against ``ca`` with Python's ssl.
    """
    context = ssl.create_default_context(cafile=ca)
    connection = http.client.HTTPSConnection(worker.host, worker.port, context=context,
                                             timeout=30)
    try:
        return worker.call("GET", "/health", connection=connection)
    finally:
        connection.close()


def driver(*args):
    """
    A consumer of tests/net_drivers.py in its own process; ``(status,
    stdout, stderr)``.
    """
    result = subprocess.run([sys.executable, "tests/net_drivers.py", *args], cwd=ROOT,
                            env=environment(), capture_output=True, text=True, timeout=120)
    return result.returncode, result.stdout, result.stderr


def one_reactor(count, calibrate=False):
    """
    The spectra of the simulated instrument's FFT, all in this process.
    """
    graph = Graph(Clock())
    wsa = simulated_instrument(graph=graph, seed=1, count=count, paced=False, model="WSA4000")
    spectra = fft_block(wsa)
    expected = recording_sink(calibrate_block(spectra) if calibrate else spectra)
    run_clock(graph.reactor, graph)
    return expected


def assert_same(saved, expected):
    result = np.load(saved)
    np.testing.assert_array_equal(result["spectra"], expected.data())
    assert result["times"].tolist() == [[c.start, c.end] for c in expected.chunks]


@pytest.mark.timeout(180)
def test_blocks_on_a_tls_worker_give_the_arrays_of_one_reactor(tls_worker, pki, tmp_path):
    """Instrument and FFT placed on an https:// worker trusted by ca=: exact arrays and times."""
    out = tmp_path / "tls.npz"
    status, stdout, stderr = driver("placed", tls_worker.url, TOKEN, pki.ca, str(out), "6")
    assert status == 0, stderr[-3000:]
    assert tls_worker.url.startswith("https://127.0.0.1:")
    assert_same(out, one_reactor(6))


@pytest.mark.timeout(180)
def test_a_block_served_over_tls_by_the_script_is_read_by_a_tls_worker(tls_worker, pki,
                                                                       tmp_path):
    """The instrument here, served on ssl: to the FFT on a TLS worker: one reactor's output."""
    out = tmp_path / "served.npz"
    status, stdout, stderr = driver("placed", tls_worker.url, TOKEN, pki.ca, str(out), "4",
                                    pki.key, pki.cert)
    assert status == 0, stderr[-3000:]
    assert_same(out, one_reactor(4))


@pytest.mark.timeout(180)
def test_a_chain_over_two_tls_workers_hands_the_ca_on(tls_workers, pki, tmp_path):
    """FFT on one TLS worker, calibrate on another reading it over https: one reactor's output."""
    out = tmp_path / "chain.npz"
    status, stdout, stderr = driver("two_hosts", tls_workers[0].url, tls_workers[1].url,
                                    TOKEN, str(out), "5", pki.ca)
    assert status == 0, stderr[-3000:]
    assert_same(out, one_reactor(5, calibrate=True))


@pytest.mark.timeout(180)
@pytest.mark.parametrize("trusted, whom", [
    ("-", "the system's certificate authorities"),
    ("other", "the CA given with ca= (CN=other CA)"),
])
def test_a_client_that_does_not_trust_the_worker_fails_at_once(tls_worker, pki, tmp_path,
                                                                trusted, whom):
    """Without the worker's CA the run fails in one attempt, naming the worker; it keeps serving."""
    ca = pki.other_ca if trusted == "other" else trusted
    status, stdout, stderr = driver("placed", tls_worker.url, TOKEN, ca,
                                    str(tmp_path / "x.npz"), "3")
    assert status == 1, stderr[-3000:]
    assert stdout.splitlines()[-1] == (
        f"FAILED: TLSError: {tls_worker.url}: TLS certificate verify failed: the worker's "
        f"certificate is not signed by {whom}; give ca= the certificate of the CA that "
        "signed it")
    assert "retry" not in stderr
    code, _, body = https_health(tls_worker, pki.ca)
    assert code == 200 and b'"status": "ok"' in body


@pytest.mark.timeout(180)
def test_plain_http_to_the_tls_port_fails_cleanly(tls_worker, pki, tmp_path):
    """http:// to an ssl: worker: a few retries, then a failure that suggests https://."""
    plain = tls_worker.url.replace("https://", "http://")
    status, stdout, stderr = driver("placed", plain, TOKEN, "-", str(tmp_path / "x.npz"), "3")
    assert status == 1, stderr[-3000:]
    last = stdout.splitlines()[-1]
    assert last.startswith("FAILED: WorkerUnreachable: ")
    assert last.endswith(f"did not answer after 3 attempts over {last.split(' over ')[1]}")
    assert (f"({plain} closed the connection without answering (if the worker listens on "
            "ssl:, use https://))") in last
    code, _, body = https_health(tls_worker, pki.ca)
    assert code == 200 and b'"status": "ok"' in body


@pytest.mark.timeout(180)
def test_a_pipeline_file_trusts_the_ca_it_names(tls_worker, pki, tmp_path):
    """run on a file with ca: (relative to the file) places blocks on the TLS worker."""
    folder = tmp_path / "lab"
    folder.mkdir()
    shutil.copy(pki.ca, folder / "lab-ca.pem")
    path = folder / "p.yaml"
    path.write_text(pipeline_text(tls_worker.url, "lab-ca.pem"))
    result = subprocess.run([sys.executable, "-m", "pyrf_blocks.cli", "run", str(path)],
                            cwd=ROOT, env=environment(LAB_TOKEN=TOKEN), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "collector 'out': 20 chunks, finished" in result.stderr


@pytest.mark.timeout(180)
@pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command is not installed")
def test_the_openssl_commands_of_the_how_to_make_a_worker_clients_trust(tmp_path):
    """The how-to's openssl commands, for 127.0.0.1, give a worker that a strict client trusts."""
    block = next(block for block in page_blocks(ROOT / "docs/howto/remote_worker.rst")
                 if "openssl req" in block.text)
    commands = "\n".join(line[2:] if line.startswith("$ ") else line
                         for line in block.text.splitlines())  # without the prompts
    script = commands.replace("192.168.1.20", "127.0.0.1")
    result = subprocess.run(["sh", "-e", "-c", script], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    worker = RealWorker(f"ssl:0:interface=127.0.0.1:privateKey={tmp_path / 'key.pem'}:"
                        f"certKey={tmp_path / 'cert.pem'}", token=TOKEN)
    try:
        code, _, body = https_health(worker, str(tmp_path / "ca.pem"))
        assert code == 200 and b'"status": "ok"' in body
    finally:
        worker.stop()
