# A proxy that holds every request 3 s before passing it on: a slow service, for
# scripts/screenshot-slow-service.sh. Usage: slow_proxy.py PORT UPSTREAM_URL
import http.server, socketserver, time, urllib.request, sys
UP = sys.argv[2]
class P(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def handle_any(self):
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n) if n else None
        time.sleep(3.0)
        req = urllib.request.Request(UP + self.path, data=body, method=self.command)
        for k, v in self.headers.items():
            if k.lower() not in ("host", "content-length", "connection"):
                req.add_header(k, v)
        try:
            with urllib.request.urlopen(req) as r:
                data = r.read(); code = r.status; ct = r.headers.get("content-type")
        except urllib.error.HTTPError as e:
            data = e.read(); code = e.code; ct = e.headers.get("content-type")
        self.send_response(code)
        if ct: self.send_header("content-type", ct)
        self.send_header("content-length", str(len(data))); self.end_headers(); self.wfile.write(data)
    do_GET = do_POST = do_PATCH = do_DELETE = handle_any
    def log_message(self, *a): pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer): daemon_threads = True
S(("127.0.0.1", int(sys.argv[1])), P).serve_forever()
