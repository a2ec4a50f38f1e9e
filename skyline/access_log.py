"""gunicorn's access log without a line per successful feed request.

A busy feed generator answers hundreds of getFeedSkeleton requests a second; a log line each cost
more than a tenth of the serving time. The request metrics (skyline_http_requests_total, by route
and status) count them instead; failed ones are still logged.
"""

from gunicorn.glogging import Logger

from skyline.hot_paths import HOT_PATHS


class AccessLog(Logger):
    def access(self, resp, req, environ, request_time):
        if req.path in HOT_PATHS and resp.status_code is not None and resp.status_code < 400:
            return
        super().access(resp, req, environ, request_time)
