"""`GET /runs?status=` names the statuses it knows instead of answering an empty page (issue 16)."""

import httpx

from .test_execution import assert_error


async def test_an_unknown_status_is_a_400(api: httpx.AsyncClient) -> None:
    response = await api.get("/runs", params={"status": "bogus"})
    assert_error(response, 400, "bad_status")
    assert "succeeded" in response.json()["error"]["message"]
    assert (await api.get("/runs", params={"status": "paused"})).status_code == 200
