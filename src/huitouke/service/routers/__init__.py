"""One router module per feature; :func:`huitouke.service.app.create_app` includes them."""
