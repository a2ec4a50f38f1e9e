"""The label API's docs page works without internet: Swagger UI comes from Skyline's own static files."""

import re

import pytest

pytestmark = pytest.mark.django_db


def test_the_api_docs_page_loads_every_asset_from_this_server(admin_client):
    page = admin_client.get("/api/admin/docs")
    assert page.status_code == 200
    html = page.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sorted(assets) == [
        "/static/ninja/favicon.png",
        "/static/ninja/favicon.svg",
        "/static/ninja/swagger-ui-bundle.js",
        "/static/ninja/swagger-ui-init.js",
        "/static/ninja/swagger-ui.css",
    ]
    assert "http://" not in html and "https://" not in html and "//cdn" not in html
    assert '"validatorUrl": null' in html  # the validator badge would be fetched from swagger.io
    for asset in assets:
        response = admin_client.get(asset)
        assert response.status_code == 200, asset
        b"".join(response.streaming_content)
        response.close()


def test_the_api_docs_are_for_staff_only(client):
    response = client.get("/api/admin/docs")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_the_search_api_docs_load_every_asset_from_this_server_too(client):
    page = client.get("/api/search/docs")
    assert page.status_code == 200
    html = page.content.decode()
    assert sorted(re.findall(r'(?:src|href)="([^"]+)"', html)) == [
        "/static/ninja/favicon.png",
        "/static/ninja/favicon.svg",
        "/static/ninja/swagger-ui-bundle.js",
        "/static/ninja/swagger-ui-init.js",
        "/static/ninja/swagger-ui.css",
    ]
    assert "//cdn" not in html and '"validatorUrl": null' in html
