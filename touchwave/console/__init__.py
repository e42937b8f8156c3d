"""The configurer console: server-rendered pages served by the API at `/`.

Why server-rendered: every page is a plain HTML document that works with the keyboard,
screen readers and no JavaScript (one small script refreshes the live funnel), there
is no front-end build to keep in step with the API, and the pages take the same code
paths as /v1 (`touchwave.api.lifecycle.take_step`, the template compiler, the funnel).

Sign-in takes an API token and keeps it in an HttpOnly, SameSite=Strict cookie: the
browser sends it with the console's own forms and never with another site's, so a form
elsewhere cannot act on the console (no CSRF token needed); roles are those of /v1.
"""

from touchwave.console.routes import mount

__all__ = ["mount"]
