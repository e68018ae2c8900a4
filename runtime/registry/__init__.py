"""OCI distribution: the registry client (pull, push, login) and the registry server.

Client side: `client` (pull/push/login/logout/search), on `transport` (HTTP with the
WWW-Authenticate flow of `auth`), `credentials` (Docker's config.json), `platforms`.
Server side: `server` (HTTP plumbing), `api` (the distribution routes), `storage`
(content-addressed filesystem layout), `htpasswd`, `gc`. Shared: `manifests`, `digests`.
"""
