"""The dashboard: the seeds' Developers pages, the delivery log and Team Settings, served by
the api under /app as server-rendered pages (Jinja2, autoescaped) with one small script
(static/app.js: copy buttons, polling). Every page and action calls the api's own domain
services with the session's organization: the rules and the SQL stay in those domains."""
