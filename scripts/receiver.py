"""A throwaway webhook receiver for scripts/screenshots.sh: /ok 200, /broken 400, /flaky 503."""
import http.server
import sys

CODES = {"/broken": 400, "/flaky": 503}


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        code = CODES.get(self.path, 200)
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b'{"error": "not today"}' if code >= 400 else b"{}")

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Receiver).serve_forever()
