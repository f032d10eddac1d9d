"""The front door: the service's one HTTP face (an AWS Lambda behind a function URL).

It issues upload policies for the upload page, writes the job's manifest last, shows a job's
status to the holder of its token, redirects signed download links to fresh presigned URLs,
shows the gallery and records ratings and clicks. It deploys on its own (a small zip, see
``scripts/build-frontdoor-zip.sh``), so it imports only the pure runtime pieces it needs
(job ids and the manifest schema, status.json, settings, link signing, feedback records):
never torch, diffusers, handlers or the worker; the worker never imports it.
"""
