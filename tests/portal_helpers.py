"""Posting the portal's operator forms the way an operator does: the form, then its confirmation page
(and the second confirmation above the merchant's threshold), clicking "confirm" on each."""

from __future__ import annotations


def is_confirmation(response) -> bool:
    return response.status_code == 200 and response.context is not None and "quote" in response.context


def post_confirmed(client, url: str, data: dict, *, follow: bool = False, max_steps: int = 3):
    """POST `data`; while the answer is a confirmation page, confirm what it shows (its digest) and POST
    again. Returns the last response: the form with its errors, a refusal, or the redirect after the
    operation was recorded (followed with a GET when `follow`)."""
    data = dict(data)
    response = client.post(url, data)
    for _step in range(max_steps):
        if not is_confirmation(response):
            break
        quote, stage = response.context["quote"], response.context["stage"]
        data["confirm"] = quote.digest
        if stage == 2:
            data["confirm_large"] = quote.digest
        response = client.post(url, data)
    if follow and response.status_code == 302:
        return client.get(response["Location"])
    return response
