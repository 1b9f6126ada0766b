"""Security headers on every response.

- Content-Security-Policy: pages load scripts, styles and images from this origin only, post
  forms only to it and cannot be framed (`frame-ancestors 'none'`); answers that are data (JSON,
  problem+json, text) get a policy that allows nothing at all; a PDF may be framed by our own
  pages; the interactive API docs load their viewer from this origin too (it styles itself
  inline and draws icons as data: images).
- Strict-Transport-Security when the request came over TLS (behind a TLS-terminating proxy set
  SECURE_PROXY_SSL_HEADER, see settings), never over plain HTTP where browsers ignore it.
- Referrer-Policy, Permissions-Policy, X-Content-Type-Options, Cross-Origin-Opener-Policy.
- Cache-Control: no-store on everything but static files: pages and answers carry personal data.

Headers a view sets itself are kept. Settings: CLOSEOUT_CSP (a dict of directives replacing the
page defaults), CLOSEOUT_HSTS_SECONDS.
"""

from __future__ import annotations

from django.conf import settings

PAGE_CSP = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "font-src": "'self'",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
DATA_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
PDF_CSP = "frame-ancestors 'self'"
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()"
HSTS_SECONDS = 365 * 24 * 3600
# On every answer, whatever it holds; also on those gunicorn writes itself (gunicorn_conf.py).
ALWAYS = {
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": PERMISSIONS_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def content_security_policy(directives: dict[str, str]) -> str:
    return "; ".join(f"{name} {value}" for name, value in directives.items())


DOCS_CSP = content_security_policy({**PAGE_CSP, "style-src": "'self' 'unsafe-inline'"})


class SecurityHeaders:
    def __init__(self, get_response):
        self.get_response = get_response
        self.page_csp = content_security_policy({**PAGE_CSP, **getattr(settings, "CLOSEOUT_CSP", {})})
        self.hsts_seconds = int(getattr(settings, "CLOSEOUT_HSTS_SECONDS", HSTS_SECONDS))
        self.static_prefix = settings.STATIC_URL if settings.STATIC_URL.startswith("/") else "/" + settings.STATIC_URL

    def policy_for(self, path: str, response) -> str:
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type == "text/html":
            return DOCS_CSP if path.startswith("/api/") and path.endswith("/docs") else self.page_csp
        if content_type == "application/pdf":
            return PDF_CSP
        return DATA_CSP

    def __call__(self, request):
        response = self.get_response(request)
        path = request.path
        response.headers.setdefault("Content-Security-Policy", self.policy_for(path, response))
        if request.is_secure() and self.hsts_seconds:
            response.headers.setdefault("Strict-Transport-Security", f"max-age={self.hsts_seconds}; includeSubDomains")
        for name, value in ALWAYS.items():
            response.headers.setdefault(name, value)
        if not path.startswith(self.static_prefix):
            response.headers.setdefault("Cache-Control", "no-store")
        return response
