"""A person's whole visit, in a real browser (headless Chromium): upload page (portraits ticked)
-> the code from the email in the outbox proves the address -> S3 through the front door's POST
policies -> the manifest the front door writes asks for portraits -> a worker process delivers
-> the status page says delivered -> the email's links still work once the worker and its
credentials are gone -> a gallery of one tile per image, both crops downloadable -> a rating
that ``headshots metrics`` counts. Also: HEIC
photos the browser gives no type are judged by their names, and the status page keeps polling
through errors. Under ``CI=true`` a missing browser fails these tests instead of skipping them.

moto ignores presigned expiry and does not check POST policies, so a download that works proves
little on its own: the test also checks what the links and policies *are*: the email links to
the front door, each click is answered with a URL signed at the click by the front door's own
key, a tampered link is refused, a past one shows the expired page, and the policy's conditions
pin size, type, key prefix and expiry. One job of 4 tiny-model headshots keeps it to ~2 min.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from processor.devkit.local_stack import LocalStack
from processor.links import LinkSigner
from processor.settings import Settings
from tests.fixtures.browser import require_browser
from tests.frontdoor.client import call, emailed_code
from tests.integration.harness import REPO_ROOT, Fleet, emails_for, text_body

URL = re.compile(r"https?://\S+")
# Keeps the page's calls to POST /api/jobs (the job, its code emailed), .../verify (its upload
# policies) and the request bodies across the page change.
CAPTURE_POLICIES = """
const realFetch = window.fetch;
window.fetch = (...args) => {
  const url = String(args[0]);
  if (url.endsWith('/api/jobs')) sessionStorage.setItem('request', args[1].body);
  return realFetch(...args).then(r => {
    if (url.endsWith('/api/jobs')) r.clone().text().then(t => sessionStorage.setItem('job', t));
    if (url.endsWith('/verify')) r.clone().text().then(t => sessionStorage.setItem('proven', t));
    return r;
  });
};"""


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def _worker_credentials(stack: LocalStack, settings: Settings) -> tuple[str, dict[str, str]]:
    iam = stack.client("iam", settings)
    user = f"worker-{os.getpid()}-{int(time.time() * 1000)}"
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return user, {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


def test_upload_in_a_browser_then_download_and_rate_after_the_worker_is_gone(
        chromium: Any, make_job_settings: Callable[..., Settings], local_stack: LocalStack,
        job_photos: Path, tmp_path: Path) -> None:
    settings = make_job_settings(num_images=4)
    assert settings.frontdoor_url
    frontdoor = urlsplit(settings.frontdoor_url).netloc
    fleet = Fleet(local_stack, settings, tmp_path / "fleet", [])
    user, worker_keys = _worker_credentials(local_stack, settings)
    fleet.start("w1", **worker_keys)
    try:
        # --- the upload page --------------------------------------------------------------
        chromium.get(settings.frontdoor_url + "/")
        chromium.execute_script(CAPTURE_POLICIES)
        photos = sorted(job_photos.glob("*.jpg"))
        assert len(photos) == 12
        chromium.find_element(By.ID, "photos").send_keys("\n".join(str(p) for p in photos))
        WebDriverWait(chromium, 20).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#previews img")) == 12)
        assert "12 photos chosen" in chromium.find_element(By.ID, "count").text
        assert chromium.find_elements(By.CSS_SELECTOR, "#problems li") == []
        chromium.find_element(By.ID, "name").send_keys("Ada")
        chromium.find_element(By.ID, "email").send_keys("ada@example.com")
        portraits = chromium.find_element(By.ID, "portraits")
        assert not portraits.is_selected()  # squares only unless asked
        chromium.find_element(By.CSS_SELECTOR, "label[for=portraits]").click()  # the label works the box
        assert portraits.is_selected()
        assert chromium.find_element(By.ID, "subject-unset").is_selected()  # unset unless chosen
        chromium.find_element(By.CSS_SELECTOR, "label[for=subject-woman]").click()
        chromium.find_element(By.ID, "submit").click()
        # --- the proof step: the code from the email in the outbox --------------------------
        WebDriverWait(chromium, 30).until(lambda d: d.find_element(By.ID, "proof").is_displayed())
        pending = json.loads(chromium.execute_script("return sessionStorage.getItem('job')"))
        sent = json.loads(chromium.execute_script("return sessionStorage.getItem('request')"))
        assert sent["formats"] == ["square", "portrait"] and sent["subject"] == "woman"
        assert not portraits.is_enabled()  # fixed, like the photos, once a code was sent for them
        assert "uploads" not in pending  # nothing can be uploaded before the address is proven
        assert local_stack.client("s3", settings).list_objects_v2(
            Bucket=settings.input_bucket, Prefix=f"uploads/{pending['job_id']}/").get("KeyCount") == 0
        chromium.find_element(By.ID, "code").send_keys("000000" if emailed_code(local_stack, pending["job_id"])
                                                       != "000000" else "111111")
        chromium.find_element(By.ID, "submit").click()  # a wrong code: told so, nothing sent
        WebDriverWait(chromium, 20).until(lambda d: "not right" in d.find_element(By.ID, "problems").text)
        code = chromium.find_element(By.ID, "code")
        code.clear()
        code.send_keys(emailed_code(local_stack, pending["job_id"]))
        chromium.find_element(By.ID, "submit").click()
        WebDriverWait(chromium, 60).until(expected_conditions.url_contains("/s/"))
        job_id = urlsplit(chromium.current_url).path.rsplit("/", 1)[1]
        job = json.loads(chromium.execute_script("return sessionStorage.getItem('proven')"))
        assert job["job_id"] == job_id == pending["job_id"] and urlsplit(chromium.current_url).fragment == job["token"]
        manifest = json.loads(local_stack.client("s3", settings).get_object(
            Bucket=settings.input_bucket, Key=f"uploads/{job_id}/manifest.json")["Body"].read())
        assert manifest["formats"] == ["square", "portrait"] and manifest["subject"] == "woman" and manifest["proof"]  # written by the front door

        # --- the policies the page uploaded with ------------------------------------------
        issued = time.time()
        for upload in job["uploads"]:
            policy = json.loads(base64.b64decode(upload["fields"]["policy"]))
            assert ["content-length-range", 1, 25 * 1024 * 1024] in policy["conditions"]
            assert {"Content-Type": "image/jpeg"} in policy["conditions"]
            assert ["starts-with", "$key", f"uploads/{job_id}/"] in policy["conditions"]
            assert {"key": f"uploads/{job_id}/{upload['name']}"} in policy["conditions"]
            expires = time.mktime(time.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
            assert 0 < expires - issued <= settings.frontdoor_upload_ttl_s
            credential = [c for c in policy["conditions"] if "x-amz-credential" in c][0]["x-amz-credential"]
            assert credential.startswith(local_stack.frontdoor_credentials["AccessKeyId"] + "/")

        # --- the status page, until delivered ---------------------------------------------
        WebDriverWait(chromium, 420, poll_frequency=1).until(
            lambda d: d.find_element(By.ID, "state").text in ("delivered", "rejected", "failed"),
            message=f"job {job_id} did not end:\n{fleet.workers[0].logs()[-3000:]}")
        assert chromium.find_element(By.ID, "state").text == "delivered", chromium.find_element(By.ID, "detail").text
        assert chromium.find_element(By.ID, "gallery-link").get_attribute("href").startswith(settings.frontdoor_url)
    finally:
        fleet.stop_all()

    # --- the worker and its credentials are gone -------------------------------------------
    iam = local_stack.client("iam", settings)
    iam.delete_access_key(UserName=user, AccessKeyId=worker_keys["AWS_ACCESS_KEY_ID"])
    assert iam.list_access_keys(UserName=user)["AccessKeyMetadata"] == []
    assert not fleet.workers[0].alive

    [mail] = emails_for(local_stack.outbox, job_id)
    body = text_body(mail)
    assert "Each image also comes as a 4:5 portrait crop" in body
    links = {u.split("?", 1)[0].rsplit("/", 1)[-1]: u for u in URL.findall(body)}
    assert {"headshots.zip", "contact-sheet.jpg", job_id} <= set(links)
    for url in links.values():
        assert urlsplit(url).netloc == frontdoor and "X-Amz" not in url  # the front door's, no AWS signature

    # a click: a redirect signed now, by the front door, to an object that downloads
    clicked = time.gmtime(time.time() - 1)
    answer = call(links["contact-sheet.jpg"])
    assert answer.status == 302
    q = _query(answer.headers["Location"])
    assert q["X-Amz-Date"] >= time.strftime("%Y%m%dT%H%M%SZ", clicked)
    assert q["X-Amz-Credential"].split("/")[0] == local_stack.frontdoor_credentials["AccessKeyId"]
    assert q["X-Amz-Credential"].split("/")[0] != worker_keys["AWS_ACCESS_KEY_ID"]
    sheet = call(answer.headers["Location"])
    assert sheet.status == 200 and sheet.body[:2] == b"\xff\xd8"

    # tampered: 403; a past exp, validly signed: the expired page
    sig = _query(links["contact-sheet.jpg"])["sig"]
    tampered = links["contact-sheet.jpg"].replace(sig, ("A" if sig[0] != "A" else "B") + sig[1:])
    assert call(tampered).status == 403
    past = LinkSigner(local_stack.link_keys(settings)[0], settings.frontdoor_url).download_url(
        job_id, "contact-sheet.jpg", int(time.time()) - 60)
    chromium.get(past)
    assert "expired" in chromium.find_element(By.ID, "title").text.lower()
    assert chromium.find_element(By.ID, "message").get_attribute("data-code") == "expired"

    # --- the gallery: a real browser download, then a rating ---------------------------------
    chromium.get(links[job_id])
    assert chromium.find_element(By.TAG_NAME, "h1").text == "Your 4 headshots"  # images, not files
    tiles = chromium.find_elements(By.CSS_SELECTOR, "#headshots > li")
    assert len(tiles) == 4
    for tile in tiles:
        assert [a.get_attribute("data-format") for a in tile.find_elements(By.CSS_SELECTOR, "a.download")] == [
            "square", "portrait"]
    WebDriverWait(chromium, 30).until(lambda d: d.execute_script(
        "return [...document.querySelectorAll('#headshots img')].every(i => i.complete && i.naturalWidth > 0)"))
    drawn = chromium.execute_script("""return [...document.querySelectorAll('#headshots > li')].map(li =>
        [...li.querySelectorAll('img')].map(i => [i.naturalWidth, i.naturalHeight, i.clientWidth, i.clientHeight]))""")
    for (square, portrait) in drawn:  # each drawn at its own shape, side by side at one height
        assert square[0] == square[1] and portrait[0] * 5 == portrait[1] * 4
        assert abs(portrait[3] / portrait[2] - 1.25) < 0.03 and abs(square[3] / square[2] - 1) < 0.03
        assert abs(portrait[3] - square[3]) <= 2
    chromium.find_element(By.CSS_SELECTOR, "#headshots li a.download").click()
    target = chromium.downloads / "headshot-001.jpg"
    WebDriverWait(chromium, 30).until(lambda d: target.exists() and target.stat().st_size > 0)
    with Image.open(target) as img:
        assert img.format == "JPEG" and img.size == (settings.resolution, settings.resolution)
    chromium.find_element(By.CSS_SELECTOR, "#headshots li a.download[data-format=portrait]").click()
    target = chromium.downloads / "headshot-001-portrait.jpg"
    WebDriverWait(chromium, 30).until(lambda d: target.exists() and target.stat().st_size > 0)
    with Image.open(target) as img:
        assert img.format == "JPEG" and img.size[0] * 5 == img.size[1] * 4
    chromium.find_element(By.CSS_SELECTOR, "input[name=stars][value='4']").click()
    chromium.find_element(By.CSS_SELECTOR, "input[name=favourite][value='headshot-002.jpg']").click()
    chromium.find_element(By.ID, "send-rating").click()
    WebDriverWait(chromium, 20).until(lambda d: d.find_elements(By.ID, "thanks"))
    assert chromium.find_element(By.CSS_SELECTOR, "input[name=stars][value='4']").is_selected()

    # --- headshots metrics counts it ----------------------------------------------------------
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADSHOTS_")}
    env.update(local_stack.settings_env(settings))
    out = subprocess.run([sys.executable, "-m", "processor.cli", "metrics", "--json"], cwd=REPO_ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads(out.stdout)
    assert metrics["delivered_jobs"] == 1 and metrics["ratings"] == 1 and metrics["distribution"]["4"] == 1
    assert metrics["mean_stars"] == 4.0 and metrics["favourites"] == 1
    assert metrics["clicks"] == 3  # the contact sheet above and the browser's two downloads; views not counted
    [group] = metrics["groups"]
    assert (group["model"], group["method"], group["jobs"], group["ratings"]) == (
        settings.base_model, settings.train_method, 1, 1)
    assert html.unescape(body).count("stars=") == 5  # the email's rating row


def test_under_ci_a_missing_browser_fails_the_browser_tests_instead_of_skipping_them(tmp_path: Path) -> None:
    import pytest

    missing = str(tmp_path / "no-chromium")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        require_browser({"CI": "true"}, missing, missing)
    with pytest.raises(pytest.skip.Exception):
        require_browser({}, missing, missing)


def test_heic_photos_the_browser_gives_no_type_are_judged_by_their_names(
        chromium: Any, aws_settings: Settings, local_stack: LocalStack, job_photos: Path, tmp_path: Path) -> None:
    """Chromium on Linux (and Windows) hands the page an iPhone's .HEIC with an empty type: the
    page judges it by its name, and the front door gives it an image/heic policy."""
    folder = tmp_path / "photos"
    folder.mkdir()
    photos = sorted(job_photos.glob("*.jpg"))[:10]
    for p in photos:
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "IMG_4101.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64)  # a name the OS cannot type
    (folder / "IMG_4102.heif").write_bytes(b"\x00\x00\x00\x18ftypheif" + b"\x00" * 64)
    chromium.get(f"{aws_settings.frontdoor_url}/")
    chromium.execute_script(CAPTURE_POLICIES + """
document.addEventListener('change', e => sessionStorage.setItem('types',
  JSON.stringify(Object.fromEntries([...e.target.files].map(f => [f.name, f.type])))), true);""")
    chromium.find_element(By.ID, "photos").send_keys("\n".join(str(p) for p in sorted(folder.iterdir())))
    WebDriverWait(chromium, 20).until(lambda d: "12 photos chosen" in d.find_element(By.ID, "count").text)
    assert chromium.find_elements(By.CSS_SELECTOR, "#problems li") == []
    assert chromium.find_elements(By.CSS_SELECTOR, "#previews li.bad") == []
    chromium.find_element(By.ID, "name").send_keys("Ada")
    chromium.find_element(By.ID, "email").send_keys("heic@example.com")
    chromium.find_element(By.ID, "submit").click()
    WebDriverWait(chromium, 30).until(lambda d: d.find_element(By.ID, "proof").is_displayed())
    sent = {p["name"]: p["type"] for p in json.loads(chromium.execute_script(
        "return sessionStorage.getItem('request')"))["photos"]}
    given = json.loads(chromium.execute_script("return sessionStorage.getItem('types')"))
    assert given["IMG_4101.HEIC"] == "" and given[photos[0].name] == "image/jpeg"  # the browser gave no type
    assert sent["IMG_4101.HEIC"] == "image/heic" and sent["IMG_4102.heif"] in ("image/heif", "image/heic")
    assert json.loads(chromium.execute_script("return sessionStorage.getItem('request')"))["formats"] == ["square"]
    job = json.loads(chromium.execute_script("return sessionStorage.getItem('job')"))
    chromium.find_element(By.ID, "code").send_keys(emailed_code(local_stack, job["job_id"]))
    chromium.find_element(By.ID, "submit").click()
    WebDriverWait(chromium, 60).until(expected_conditions.url_contains("/s/"))
    proven = json.loads(chromium.execute_script("return sessionStorage.getItem('proven')"))
    assert {u["name"]: u["fields"]["Content-Type"] for u in proven["uploads"]}["IMG_4101.HEIC"] == "image/heic"
    s3 = local_stack.client("s3", aws_settings)
    head = s3.head_object(Bucket=aws_settings.input_bucket, Key=f"uploads/{job['job_id']}/IMG_4101.HEIC")
    assert head["ContentType"] == "image/heic"


def test_the_status_page_keeps_polling_through_errors_with_backoff(
        chromium: Any, aws_settings: Settings, local_stack: LocalStack) -> None:
    from tests.frontdoor.client import open_job

    job = open_job(local_stack, aws_settings, "poll@example.com")
    s3 = local_stack.client("s3", aws_settings)
    key = f"jobs/{job['job_id']}/status.json"
    s3.put_object(Bucket=aws_settings.output_bucket, Key=key, Body=b"{ not json")  # the front door answers 500
    chromium.get(job["status_url"])
    WebDriverWait(chromium, 20).until(lambda d: "Trying again" in d.find_element(By.ID, "notice").text)
    first = chromium.find_element(By.ID, "notice").text
    from processor.job.state import JobState, JobStatus

    now = time.time()
    s3.put_object(Bucket=aws_settings.output_bucket, Key=key,
                  Body=JobStatus.new(job["job_id"], now).transition(JobState.VALIDATING, now).to_json())
    WebDriverWait(chromium, 60).until(lambda d: d.find_element(By.ID, "state").text == "validating")
    assert chromium.find_element(By.ID, "notice").text == "" and "Trying again in" in first
