"""The web app: REST API, live WebSocket stream and the static webcam and gallery pages.

Build it with ``facemetric.web.app.create_app(settings)``; nothing is loaded at import time.
"""
