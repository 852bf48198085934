"""`roughy_http_request_duration_seconds{method,route,status}` on the API's /metrics: every
request counted under its route's template, never its raw path, so that the label set stays
bounded however many ids and junk paths clients send."""

from __future__ import annotations

import httpx

from tests.observability.metrics import label_values, scrape, value

COUNT = "roughy_http_request_duration_seconds_count"


def test_requests_are_counted_by_route_template_method_and_status(service, api):
    before = scrape(service.url)
    assert api.get("/v1/renders/rnd_doesnotexist").status_code == 404
    assert api.get("/v1/renders/rnd_doesnotexist").status_code == 404
    assert api.get("/v1/credits").status_code == 200
    after = scrape(service.url)

    def delta(**labels: str) -> float:
        return value(after, COUNT, **labels) - value(before, COUNT, **labels)

    assert delta(method="GET", route="/v1/renders/{render_id}", status="404") == 2
    assert delta(method="GET", route="/v1/credits", status="200") == 1
    assert not any("rnd_doesnotexist" in str(key) for key in after), "a raw path became a label"
    buckets = [k for k in after if k[0] == "roughy_http_request_duration_seconds_bucket"]
    assert buckets, "it is a histogram: latency percentiles per route"


def test_requests_refused_before_routing_count_under_the_route_they_were_meant_for(service):
    before = scrape(service.url)
    assert httpx.get(service.url + "/v1/renders/rnd_nokey").status_code == 401  # refused at the edge
    assert httpx.get(service.url + "/v1/files/renders/rnd_x/out.mp4?sig=bad").status_code in (403, 404)
    after = scrape(service.url)
    assert (
        value(after, COUNT, method="GET", route="/v1/renders/{render_id}", status="401")
        - value(before, COUNT, method="GET", route="/v1/renders/{render_id}", status="401")
        == 1
    )
    files = {dict(key)["route"] for name, key in after if name == COUNT and "/v1/files/" in dict(key)["route"]}
    assert files == {"/v1/files/{key:path}"}, "signed file routes are labelled by template"


def test_unknown_paths_and_methods_share_one_label_each(service, api):
    for n in range(25):
        assert api.get(f"/no/such/path/{n}").status_code == 404
    assert httpx.request("BREW", service.url + "/healthz").status_code == 405
    after = scrape(service.url)
    routes = label_values(after, COUNT, "route")
    assert "<unmatched>" in routes
    assert not any(route.startswith("/no/such") for route in routes), routes
    assert value(after, COUNT, method="OTHER", route="/healthz", status="405") >= 1, "an odd method is OTHER"
    assert label_values(after, COUNT, "method") <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"}
