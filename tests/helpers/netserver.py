#!/usr/bin/python3
"""netserver: the real servers the egress tests talk to, on the host's loopback.

    netserver.py --cert FILE --key FILE --log FILE [--timeout SECONDS]

Listens on 127.0.0.1 at three ephemeral ports and prints one line once all of them
accept connections:

    ready http=PORT https=PORT echo=PORT

  http   GET /hello    -> 200 "hello from HOST\n", HOST being the request's Host header
                          without its port (so the test sees which name arrived)
         GET /bytes/N  -> 200 with N bytes of 'x'
         anything else -> 404
  https  the same over TLS with the given certificate and key
  echo   a TCP echo server: every byte comes back until the client closes

Every connection is recorded in the log file as it is accepted, one line each:
"conn KIND PEER", then "tls sni=NAME" for a TLS handshake and "req KIND HOST PATH" for an
HTTP request, so a test can count what arrived, or show that nothing did.

It exits after the timeout (default 600 s), or as soon as the process that started it is
gone (a test that dies leaves no server behind). Python's standard library only.

    netserver.py fuzz-cases DIR --port N [--seed S]

writes hostile and mangled inputs for the egress proxy into DIR instead, one file per
case, named after where it goes: http-* (the HTTP proxy listener), socks-* (SOCKS5),
tls-* and plain-* (captured traffic to an outside address, TLS and plain HTTP). Valid
requests name api.test, port N; the rest are fixed hostile cases and mutations of the
valid ones drawn from a seeded generator (the same mutations for the same seed; the
ClientHello's random bytes differ from run to run).
"""

import argparse
import os
import socket
import socketserver
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHUNK = b"x" * 65536
MAX_BYTES = 1 << 34  # /bytes/N: at most 16 GiB

log_lock = threading.Lock()
log_file = None


def record(line):
    with log_lock:
        log_file.write(line + "\n")
        log_file.flush()


def peer(addr):
    return "%s:%d" % (addr[0], addr[1])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "agentbox-netserver"
    kind = "http"

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # the connection log is enough; keep stderr for real trouble

    def send_text(self, code, text):
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        host = self.headers.get("Host", "")
        name = host
        if name.startswith("["):
            name = name[1:name.find("]")] if "]" in name else name
        elif name.count(":") == 1:
            name = name.split(":")[0]
        record("req %s %s %s" % (self.kind, host or "-", self.path))
        if self.path == "/hello":
            self.send_text(200, "hello from %s\n" % (name or "nobody"))
        elif self.path.startswith("/bytes/"):
            try:
                n = int(self.path[len("/bytes/"):])
                if n < 0 or n > MAX_BYTES:
                    raise ValueError
            except ValueError:
                self.send_text(400, "bad size\n")
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(n))
            self.end_headers()
            while n > 0:
                k = min(n, len(CHUNK))
                self.wfile.write(CHUNK[:k])
                n -= k
        else:
            self.send_text(404, "not found\n")

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


class TLSHandler(Handler):
    kind = "https"


class HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    kind = "http"

    def verify_request(self, request, client_address):
        record("conn %s %s" % (self.kind, peer(client_address)))
        return True

    def handle_error(self, request, client_address):
        # A client that hangs up, or speaks garbage, is the test's business, not ours.
        pass


class TLSServer(HTTPServer):
    kind = "https"

    def __init__(self, addr, handler, context):
        super().__init__(addr, handler)
        self.context = context

    def finish_request(self, request, client_address):
        # The handshake happens in the connection's own thread: a client that never
        # finishes it holds up nobody else.
        request.settimeout(30)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            record("tls-error %s %s" % (peer(client_address), type(e).__name__))
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            try:
                tls.close()
            except OSError:
                pass


class EchoHandler(socketserver.BaseRequestHandler):
    def handle(self):
        s = self.request
        s.settimeout(120)
        total = 0
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    break
                s.sendall(data)
                total += len(data)
        except OSError:
            pass
        record("echo-closed %s bytes=%d" % (peer(self.client_address), total))


class EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def verify_request(self, request, client_address):
        record("conn echo %s" % peer(client_address))
        return True

    def handle_error(self, request, client_address):
        pass


def tls_context(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)

    def on_sni(sslsock, name, context):
        record("tls sni=%s" % (name if name is not None else "-"))

    ctx.sni_callback = on_sni
    return ctx


def serve(server):
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    t.start()
    return t


def client_hello(name):
    """The first flight of a real TLS client (Python's own) asking for name."""
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def socks(greeting, request):
    return greeting + request


def socks_name(name, port):
    n = name.encode() if isinstance(name, str) else name
    return b"\x05\x01\x00\x03" + bytes([len(n) & 0xFF]) + n + port.to_bytes(2, "big")


def mutate(rng, data):
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        if op == 0 and b:  # flip bytes
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        elif op == 1 and b:  # truncate
            del b[rng.randrange(len(b)):]
        elif op == 2:  # insert junk
            at = rng.randrange(len(b) + 1)
            b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        elif op == 3 and b:  # repeat a slice
            i = rng.randrange(len(b))
            j = min(len(b), i + rng.randint(1, 200))
            b[i:i] = b[i:j] * rng.randint(2, 50)
        elif op == 4 and b:  # set a length-looking byte to an extreme
            b[rng.randrange(len(b))] = rng.choice((0, 1, 0x7F, 0x80, 0xFF))
    return bytes(b)


def fuzz_cases(argv):
    import random

    ap = argparse.ArgumentParser(prog="netserver.py fuzz-cases")
    ap.add_argument("dir")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--seed", type=int, default=4)
    ap.add_argument("--mutations", type=int, default=40)
    args = ap.parse_args(argv)
    port = args.port
    host = "api.test:%d" % port
    hello = client_hello("api.test")
    seeds = {
        "http": [
            ("GET http://%s/hello HTTP/1.1\r\nHost: %s\r\n\r\n" % (host, host)).encode(),
            ("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (host, host)).encode(),
            ("POST http://%s/hello HTTP/1.1\r\nHost: %s\r\nContent-Length: 5\r\n\r\nhello"
             % (host, host)).encode(),
            ("GET http://%s/hello HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
             "5\r\nhello\r\n0\r\n\r\n" % (host, host)).encode(),
        ],
        "socks": [
            socks(b"\x05\x01\x00", socks_name("api.test", port)),
            socks(b"\x05\x02\x00\x02", b"\x05\x01\x00\x01\x7f\x00\x00\x01" + port.to_bytes(2, "big")),
        ],
        "tls": [hello],
        "plain": [("GET /hello HTTP/1.1\r\nHost: %s\r\n\r\n" % host).encode()],
    }
    fixed = {
        "http": [
            b"GET http://api.test/ HTTP/1.1\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n",
            b"GET http://api.test/ HTTP/1.1\r\n" + b"X: y\r\n" * 20000 + b"\r\n",
            b"GET http://" + b"a" * 70000 + b"/ HTTP/1.1\r\n\r\n",
            b"CONNECT 2130706433:80 HTTP/1.1\r\n\r\n",
            b"CONNECT 0x7f.1:80 HTTP/1.1\r\n\r\n",
            b"CONNECT 127.1:80 HTTP/1.1\r\n\r\n",
            b"CONNECT [::1:80 HTTP/1.1\r\n\r\n",
            b"CONNECT api.test:0 HTTP/1.1\r\n\r\n",
            b"CONNECT api.test:99999 HTTP/1.1\r\n\r\n",
            b"CONNECT api.test:-1 HTTP/1.1\r\n\r\n",
            b"CONNECT " + b"a." * 200 + b"test:443 HTTP/1.1\r\n\r\n",
            b"CONNECT api.test\x00.evil.test:443 HTTP/1.1\r\n\r\n",
            b"CONNECT :443 HTTP/1.1\r\n\r\n",
            b"CONNECT HTTP/1.1\r\n\r\n",
            b"GET https://api.test/ HTTP/1.1\r\n\r\n",
            b"GET http://user@evil.test@api.test/ HTTP/1.1\r\n\r\n",
            b"GET http://api.test\r\nHost: evil.test/ HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: api.test\r\n\r\n",
            b"GET /\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"\r\n" * 5000,
            b"\x00" * 4096,
            b"GET http://api.test/ HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            b"GET http://api.test/ HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
            b"GET http://api.test/ HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"get http://api.test/ http/1.1\r\n\r\n",
            b"GET http://api.test/ HTTP/1.1\n\n",
            b"GET http://api.test:" + b"9" * 400 + b"/ HTTP/1.1\r\n\r\n",
        ],
        "socks": [
            socks(b"\x05\x01\x00", socks_name("a" * 255, 80)),
            socks(b"\x05\x01\x00", socks_name("", 80)),
            socks(b"\x05\x01\x00", socks_name(b"api.test\x00evil", 80)),
            socks(b"\x05\x01\x00", socks_name("2130706433", 80)),
            socks(b"\x05\x01\x00", b"\x05\x01\x00\x01\xa9\xfe\xa9\xfe\x00\x50"),
            socks(b"\x05\x01\x00", b"\x05\x01\x00\x04" + b"\x00" * 15 + b"\x01\x00\x50"),
            socks(b"\x05\x01\x00", b"\x05\x02\x00\x03\x08api.test\x00\x50"),
            socks(b"\x05\x01\x00", b"\x05\x03\x00\x03\x08api.test\x00\x50"),
            socks(b"\x05\x01\x00", b"\x05\x01\x00\x09\x00\x50"),
            socks(b"\x05\x01\x00", b"\x05\x01\x00\x03\xff" + b"a" * 20),
            b"\x05\xff" + bytes(range(255)),
            b"\x05\x00",
            b"\x04\x01\x00\x50\x7f\x00\x00\x01user\x00",
            b"\x05",
            b"\x05\x01\x02",
        ],
        "tls": [
            hello[:5], hello[:11], hello[:len(hello) // 2], hello[:-1],
            b"\x16\x03\x01\xff\xff" + hello[5:],
            b"\x16\x03\x01\x00\x00",
            b"\x16\x03\x01\x40\x00" + b"\x01" + b"\xff" * 3 + b"\x00" * 100,
            b"\x17\x03\x03\x00\x10" + b"\x00" * 16,
        ],
        "plain": [
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: api.test\r\nHost: evil.test\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: " + b"a" * 5000 + b"\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: " + b"b" * 100000 + b"\r\n\r\n",
            b"GET / HTTP/1.1\r\nHo",
        ],
    }
    rng = random.Random(args.seed)
    os.makedirs(args.dir, exist_ok=True)
    n = 0
    for kind in ("http", "socks", "tls", "plain"):
        cases = list(fixed[kind]) + list(seeds[kind])
        for s in seeds[kind]:
            cases += [mutate(rng, s) for _ in range(args.mutations)]
        for i, data in enumerate(cases):
            with open(os.path.join(args.dir, "%s-%03d" % (kind, i)), "wb") as f:
                f.write(data)
            n += 1
    print("cases=%d" % n)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "fuzz-cases":
        fuzz_cases(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description="servers for the agentbox egress tests")
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--bind", default="127.0.0.1")
    args = ap.parse_args()

    global log_file
    log_file = open(args.log, "a", buffering=1)
    parent = os.getppid()

    http = HTTPServer((args.bind, 0), Handler)
    https = TLSServer((args.bind, 0), TLSHandler, tls_context(args.cert, args.key))
    echo = EchoServer((args.bind, 0), EchoHandler)
    for s in (http, https, echo):
        serve(s)
    print("ready http=%d https=%d echo=%d" % (http.server_address[1], https.server_address[1],
                                             echo.server_address[1]), flush=True)

    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline and os.getppid() == parent:
        time.sleep(0.2)
    # Daemon threads die with the process; no need to wait for clients.
    os._exit(0)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
