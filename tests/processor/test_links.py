"""Signed front-door links: what they grant, until when, and that nothing else verifies."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from processor.links import (
    LinkCheck,
    LinkSigner,
    address_proof,
    check,
    check_address_proof,
    check_job_token,
    download_parts,
    gallery_parts,
    job_token,
    parse_exp,
    sign,
    verify,
)

KEY, OTHER = b"k" * 48, b"o" * 48
NOW = 1_800_000_000


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_a_download_link_verifies_until_its_exp_and_is_expired_after() -> None:
    url = LinkSigner(KEY, "https://fd.example/").download_url("job-1", "headshot-001.jpg", NOW + 60)
    assert url.startswith("https://fd.example/d/job-1/headshot-001.jpg?")
    q = _query(url)
    parts = download_parts("job-1", "headshot-001.jpg")
    assert check([KEY], q["sig"], q["exp"], NOW, *parts) is LinkCheck.OK
    assert check([KEY], q["sig"], q["exp"], NOW + 59.9, *parts) is LinkCheck.OK
    assert check([KEY], q["sig"], q["exp"], NOW + 60, *parts) is LinkCheck.EXPIRED


@pytest.mark.parametrize("change", ["sig", "exp", "file", "job", "key", "kind"])
def test_any_change_to_a_link_makes_it_bad(change: str) -> None:
    exp = str(NOW + 60)
    sig = sign(KEY, *download_parts("job-1", "headshot-001.jpg"), exp)
    keys, job, file, parts = [KEY], "job-1", "headshot-001.jpg", None
    if change == "sig":
        sig = ("A" if sig[0] != "A" else "B") + sig[1:]
    elif change == "exp":
        exp = str(NOW + 6000)  # a later expiry is a forgery, not an extension
    elif change == "file":
        file = "headshot-002.jpg"
    elif change == "job":
        job = "job-2"
    elif change == "key":
        keys = [OTHER]
    elif change == "kind":
        parts = gallery_parts("job-1")
    assert check(keys, sig, exp, NOW, *(parts or download_parts(job, file))) is LinkCheck.BAD


def test_a_forged_link_learns_nothing_about_expiry() -> None:
    assert check([KEY], "x" * 43, str(NOW - 10), NOW, *gallery_parts("job-1")) is LinkCheck.BAD


@pytest.mark.parametrize("exp", [None, "", "-1", "1e9", " 1", "1.5", "123456789012", "０１"])
def test_exp_must_be_plain_digits(exp: str | None) -> None:
    assert parse_exp(exp) is None


def test_a_rotated_key_still_verifies_what_it_signed_and_the_new_key_signs() -> None:
    sig = sign(OTHER, "gallery", "job-1", "99")
    assert verify([KEY, OTHER], sig, "gallery", "job-1", "99")
    assert not verify([KEY], sig, "gallery", "job-1", "99")
    assert not verify([], sig, "gallery", "job-1", "99") and not verify([b""], sig, "gallery", "job-1", "99")


def test_job_token_is_132_bits_per_job_and_expires() -> None:
    token = job_token(KEY, "job-1", NOW + 60)
    exp, sig = token.split(".")
    assert exp == str(NOW + 60) and len(sig) == 22
    assert token != job_token(KEY, "job-2", NOW + 60) and token != job_token(OTHER, "job-1", NOW + 60)
    assert check_job_token([KEY], "job-1", token, NOW) is LinkCheck.OK
    assert check_job_token([KEY], "job-1", token, NOW + 60) is LinkCheck.EXPIRED
    assert check_job_token([KEY], "job-2", token, NOW) is LinkCheck.BAD
    longer = f"{NOW + 86400}.{sig}"  # a later expiry is not the holder's to choose
    for bad in (token[:-1], None, "é" * 22, sig, longer, f"{exp}.{sig}.x"):
        assert check_job_token([KEY], "job-1", bad, NOW) is LinkCheck.BAD, bad


def test_an_address_proof_holds_for_its_job_and_address_only() -> None:
    proof = address_proof(KEY, "job-1", "Ada@Example.com")
    assert check_address_proof([OTHER, KEY], "job-1", " ada@example.com", proof)
    assert not check_address_proof([KEY], "job-2", "ada@example.com", proof)
    assert not check_address_proof([KEY], "job-1", "bo@example.com", proof)
    assert not check_address_proof([OTHER], "job-1", "ada@example.com", proof)
    assert not check_address_proof([KEY], "job-1", "ada@example.com", None)
    # not a link signature of the same parts under another kind
    assert proof != sign(KEY, "status", "job-1", "ada@example.com")


def test_gallery_rating_and_status_urls() -> None:
    signer = LinkSigner(KEY, "http://127.0.0.1:9/_/t1")
    gallery = signer.gallery_url("job-1", NOW)
    rating = signer.rating_url("job-1", NOW, 4)
    assert gallery.startswith("http://127.0.0.1:9/_/t1/g/job-1?") and rating.endswith("&stars=4#rate")
    assert _query(gallery)["sig"] == _query(rating.split("#")[0])["sig"]  # one secret per job's gallery
    assert signer.status_url("job-1", NOW).endswith("/s/job-1#" + job_token(KEY, "job-1", NOW))
    with pytest.raises(ValueError):
        signer.rating_url("job-1", NOW, 6)
    with pytest.raises(ValueError):
        signer.download_url("job-1", "../status.json", NOW)
    with pytest.raises(ValueError):
        sign(b"", "x")
