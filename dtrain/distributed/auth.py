"""Who may connect: processes that hold the job's token (DTRAIN_JOB_TOKEN).

dtrain-run makes a token per job; multi-node users set the same one on every node. Every
connection proves it in ZeroMQ's handshake, before any of its messages is read:

- on loopback (a one-machine job), the PLAIN mechanism carries the token, which this process's
  ZAP handler checks (only local processes can see loopback traffic);
- across hosts, CURVE encrypts everything, with key pairs derived from the token: a client must
  know the server's public key to complete the handshake, and the ZAP handler also checks that
  the client's key is the job's.

Without a token, a one-machine job runs unauthenticated (any local process may connect: the
docs say so); a job across hosts refuses to start.
"""
import hashlib
import hmac
import ipaddress
import os

import zmq
from zmq.utils import z85

ZAP_ENDPOINT = "inproc://zeromq.zap.01"  # where libzmq asks a context's ZAP handler
_USER = b"dtrain"


def job_token():
    """The job's token from DTRAIN_JOB_TOKEN, as bytes, or None."""
    return os.environ.get("DTRAIN_JOB_TOKEN", "").encode() or None


def crosses_hosts(host):
    """Whether traffic to or from ``host`` may leave this machine (so must be encrypted)."""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name
        return True


def _keys(token, role):
    secret = z85.encode(hashlib.sha256(b"dtrain curve " + role + b" " + token).digest())
    return zmq.curve_public(secret), secret


class Guard:
    """The token checks for one ZeroMQ context: configures its sockets, answers its ZAP
    requests."""

    def __init__(self, token, encrypted):
        self.token, self.encrypted = token, encrypted
        if encrypted:
            self._server_public, self._server_secret = _keys(token, b"server")
            self._client_public, self._client_secret = _keys(token, b"client")
            self._client_raw = z85.decode(self._client_public)

    def serve(self, sock, check=True):
        """Make ``sock`` (before it binds) demand the token of whoever connects. Without
        ``check`` (no ZAP handler in its context) CURVE alone guards it: a client must know the
        server's public key."""
        if self.encrypted:
            sock.curve_server = True
            sock.curve_secretkey = self._server_secret
        else:
            sock.plain_server = True
        if check:
            sock.zap_domain = b"dtrain"

    def connect_as_client(self, sock):
        """Make ``sock`` (before it connects) prove the token."""
        if self.encrypted:
            sock.curve_serverkey = self._server_public
            sock.curve_publickey = self._client_public
            sock.curve_secretkey = self._client_secret
        else:
            sock.plain_username = _USER
            sock.plain_password = self.token

    def answer(self, zap):
        """Answer one ZAP request waiting on the REP socket ``zap`` (RFC 27)."""
        version, request_id, _domain, _address, _identity, mechanism, *credentials = \
            zap.recv_multipart()
        if mechanism == b"CURVE":
            ok = self.encrypted and credentials == [self._client_raw]
        elif mechanism == b"PLAIN":
            ok = (not self.encrypted and len(credentials) == 2
                  and hmac.compare_digest(credentials[1], self.token))
        else:
            ok = False
        zap.send_multipart([version, request_id, b"200" if ok else b"400",
                            b"OK" if ok else b"the job token does not match", b"", b""])
