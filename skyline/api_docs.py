"""The APIs' Swagger UI, with its assets from this server: the docs work without internet."""

from django.conf import settings
from ninja import Swagger


class ServedSwagger(Swagger):
    """ninja's Swagger page from ninja's own template, its script and styles `{% static %}` files.

    ninja renders that template only when "ninja" is an installed app, and otherwise a page that
    loads Swagger UI from a CDN. Skyline does not install it (the apps loading ninja put pydantic
    into every command's start-up); settings find ninja's templates and static files in its package
    instead, so the page ninja renders "without" the app is made to be the local one.
    """

    template_cdn = str(settings.NINJA_DIR / "templates" / "ninja" / "swagger.html")

    def __init__(self):
        super().__init__(settings={"validatorUrl": None})  # the validator badge would come from swagger.io
