"""HEAD answers carry GET's headers and no body.

Django lets a view answer HEAD as GET and leaves dropping the body to the server. gunicorn does
drop it, but logs a warning for every such answer ("WSGI app sent body bytes on a no-body
response"), so a load balancer's HEAD health check would fill the log. The body is dropped here
instead, keeping the Content-Length the GET answer has (RFC 9110 §9.3.2).
"""

from __future__ import annotations


class HeadWithoutBody:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.method != "HEAD":
            return response
        if response.streaming:
            response.streaming_content = []  # a file behind it is still closed with the response
        else:
            response.headers.setdefault("Content-Length", str(len(response.content)))
            response.content = b""
        return response
