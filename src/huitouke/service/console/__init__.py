"""The merchant console: server-rendered pages (Jinja2, htmx, ECharts) on the service's
app, behind console users and sessions. The routes are in :mod:`.web`."""
