"""Server-rendered dashboard pages (Jinja2), served by the same app as the API."""
