"""A STAND-IN for the Hugging Face Hub's HTTP API, for tests only — it is not the Hub and not a Hub server.

No open-source Hub server exists, so the upload/download tests run the real `huggingface_hub` client code against
this small in-process server on 127.0.0.1. It implements just the endpoints huggingface_hub 2.4 calls for
`create_repo`, `upload_folder`/`create_commit` (preupload, LFS batch + basic PUT + verify, ndjson commit),
`create_branch`, `whoami`, `repo_info`, `list_repo_tree`, `hf_hub_download`/`snapshot_download` (HEAD + GET on
`resolve`), `/api/validate-yaml` and Space variables, with the Hub's status codes and `X-Error-Code` headers for
401 (no/invalid token), 403 (no write access) and 404. Uploads use plain LFS: the client chooses Xet on its own
when `hf_xet` is installed, so tests set `huggingface_hub.constants.HF_HUB_DISABLE_XET` (see `hub_client`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.png filter=lfs diff=lfs merge=lfs -text\n"


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class StoredFile:
    data: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def oid(self) -> str:
        """What preupload reports as the remote oid (sha256 for LFS files, git sha1 otherwise), as the Hub does."""
        return self.sha256 if self.lfs else git_sha1(self.data)


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    refs: dict[str, str] = field(default_factory=dict)  # branch or refs/pr/N -> commit oid
    commits: dict[str, dict[str, StoredFile]] = field(default_factory=dict)  # oid -> tree
    messages: dict[str, str] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    sdk: str | None = None


@dataclass
class User:
    name: str
    role: str = "write"  # "write" or "read" (a read-only token)
    orgs: tuple[str, ...] = ()


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class FakeHub:
    """Stand-in Hub state plus the HTTP server that serves it (`with FakeHub(users) as hub: hub.url`)."""

    def __init__(self, users: dict[str, User]):
        self.users = users
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs_store: dict[str, bytes] = {}
        self.calls: list[tuple[str, str]] = []
        self.fail_next: dict[str, int] = {}  # route name -> how many next calls answer 500 (simulated outage)
        self.lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._counter = 0

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def __enter__(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            fake = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- state helpers used by tests -------------------------------------------------------------------------
    def files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> dict[str, bytes]:
        repo = self.repos[(repo_type, repo_id)]
        return {path: f.data for path, f in repo.commits[repo.refs[revision]].items()}

    def commit_count(self, repo_id: str, repo_type: str = "model") -> int:
        return len(self.repos[(repo_type, repo_id)].commits) if (repo_type, repo_id) in self.repos else 0

    def _new_oid(self) -> str:
        self._counter += 1
        return hashlib.sha1(f"commit-{self._counter}".encode()).hexdigest()

    def _commit(self, repo: Repo, ref: str, tree: dict[str, StoredFile], message: str) -> str:
        oid = self._new_oid()
        repo.commits[oid] = tree
        repo.messages[oid] = message
        repo.refs[ref] = oid
        return oid

    # -- auth ----------------------------------------------------------------------------------------------------
    def user_for(self, headers) -> User | None:
        auth = headers.get("Authorization")
        if not auth:
            return None
        token = auth.removeprefix("Bearer ").strip()
        if token not in self.users:
            raise HubError(401, "Invalid credentials in Authorization header")
        return self.users[token]

    def require_write(self, user: User | None, namespace: str) -> None:
        if user is None:
            raise HubError(401, "You must be authenticated to write (no token was sent).")
        if user.role != "write" or namespace not in (user.name, *user.orgs):
            raise HubError(403, f"You don't have the rights to write to the namespace {namespace}.")

    def get_repo(self, repo_type: str, repo_id: str, user: User | None) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        visible = repo is not None and (
            not repo.private or (user is not None and repo_id.split("/")[0] in (user.name, *user.orgs))
        )
        if not visible:
            raise HubError(401 if user is None else 404, "Repository not found", "RepoNotFound")
        return repo

    def resolve(self, repo: Repo, revision: str) -> str:
        if revision in repo.refs:
            return repo.refs[revision]
        if revision in repo.commits:
            return revision
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    # -- plumbing ------------------------------------------------------------------------------------------------
    def _body(self) -> bytes:
        return self.body

    def _send(self, status: int, payload=None, headers: dict | None = None, raw: bytes | None = None) -> None:
        body = raw if raw is not None else (b"" if payload is None else json.dumps(payload).encode())
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if raw is None else "application/octet-stream")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        segments = [s for s in parts.path.split("/") if s]  # still quoted: "refs%2Fpr%2F1" stays one segment
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""  # always drain it: connections are kept alive
        with self.fake.lock:
            self.fake.calls.append((self.command, parts.path))
        try:
            self._route(segments, query)
        except HubError as exc:
            headers = {"X-Error-Code": exc.code} if exc.code else {}
            headers["X-Error-Message"] = exc.message
            self._send(exc.status, {"error": exc.message}, headers)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _dispatch  # noqa: N815

    def _maybe_fail(self, name: str) -> None:
        with self.fake.lock:
            if self.fake.fail_next.get(name, 0) > 0:
                self.fake.fail_next[name] -= 1
                raise HubError(500, f"stand-in: simulated failure of {name}")

    # -- routes --------------------------------------------------------------------------------------------------
    def _route(self, seg: list[str], query: dict) -> None:
        fake, method = self.fake, self.command
        user = fake.user_for(self.headers)
        if seg[:2] == ["api", "whoami-v2"]:
            if user is None:
                raise HubError(401, "Invalid username or password.")
            role = user.role
            return self._send(
                200,
                {
                    "type": "user",
                    "name": user.name,
                    "orgs": [{"name": org, "roleInOrg": "write"} for org in user.orgs],
                    "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": role}},
                },
            )
        if seg[:2] == ["api", "validate-yaml"]:
            content = json.loads(self._body())["content"]
            errors = []
            if content.startswith("---"):
                try:
                    meta = yaml.safe_load(content.split("---", 2)[1])
                    if not isinstance(meta, dict):
                        errors.append({"message": "metadata must be a YAML mapping"})
                except yaml.YAMLError as exc:
                    errors.append({"message": f"invalid YAML: {exc}"})
            return self._send(400 if errors else 200, {"errors": errors, "warnings": []})
        if seg[:3] == ["api", "repos", "create"]:
            return self._create_repo(json.loads(self._body()), user)
        if seg[0] == "api" and len(seg) >= 4 and seg[1] in TYPES:
            repo_type, repo_id, rest = TYPES[seg[1]], f"{seg[2]}/{seg[3]}", seg[4:]
            return self._repo_api(repo_type, repo_id, rest, query, user)
        if len(seg) >= 2 and seg[0] == "_lfs":
            return self._lfs_object(seg[1], seg[2:], user)
        repo_type = "model"
        if seg and seg[0] in ("datasets", "spaces"):
            repo_type, seg = TYPES[seg[0]], seg[1:]
        if len(seg) >= 6 and seg[1].endswith(".git") and seg[2:] == ["info", "lfs", "objects", "batch"]:
            return self._lfs_batch(repo_type, f"{seg[0]}/{seg[1][:-4]}", user)
        if len(seg) >= 5 and seg[2] == "resolve" and method in ("GET", "HEAD"):
            repo = fake.get_repo(repo_type, f"{seg[0]}/{seg[1]}", user)
            return self._resolve(repo, unquote(seg[3]), unquote("/".join(seg[4:])))
        raise HubError(404, f"stand-in: no route for {method} {self.path}")

    def _create_repo(self, payload: dict, user: User | None) -> None:
        namespace = payload.get("organization") or (user.name if user else "")
        self.fake.require_write(user, namespace)
        repo_type = payload.get("type") or "model"
        repo_id = f"{namespace}/{payload['name']}"
        with self.fake.lock:
            if (repo_type, repo_id) in self.fake.repos:
                return self._send(409, {"error": "You already created this repo", "url": f"{self.fake.url}/{repo_id}"})
            if repo_type == "space" and not payload.get("sdk"):
                raise HubError(400, "Spaces need an sdk")
            repo = Repo(repo_type, repo_id, private=payload.get("visibility") == "private", sdk=payload.get("sdk"))
            for var in payload.get("variables") or []:
                repo.variables[var["key"]] = var["value"]
            self.fake.repos[(repo_type, repo_id)] = repo
            self.fake._commit(repo, "main", {".gitattributes": StoredFile(GITATTRIBUTES, False)}, "initial commit")
        self._send(200, {"url": f"{self.fake.url}/{PREFIX[repo_type]}{repo_id}", "name": repo_id})

    def _repo_api(self, repo_type: str, repo_id: str, rest: list[str], query: dict, user: User | None) -> None:
        fake, method = self.fake, self.command
        repo = fake.get_repo(repo_type, repo_id, user)
        if method == "GET" and (not rest or rest[0] == "revision"):
            oid = fake.resolve(repo, unquote(rest[1]) if len(rest) > 1 else "main")
            tree = repo.commits[oid]
            info = {
                "id": repo_id,
                "sha": oid,
                "private": repo.private,
                "siblings": [{"rfilename": path} for path in sorted(tree)],
                "tags": [],
                "lastModified": "2026-01-01T00:00:00.000Z",
            }
            if repo_type == "space":
                info["sdk"] = repo.sdk
            return self._send(200, info)
        if method == "GET" and rest and rest[0] == "tree":
            oid = fake.resolve(repo, unquote(rest[1]) if len(rest) > 1 else "main")
            prefix = unquote("/".join(rest[2:]))
            entries = []
            for path, stored in sorted(repo.commits[oid].items()):
                if prefix and not path.startswith(prefix.rstrip("/") + "/"):
                    continue
                entry = {"type": "file", "oid": git_sha1(stored.data), "size": len(stored.data), "path": path}
                if stored.lfs:
                    entry["lfs"] = {"oid": stored.sha256, "size": len(stored.data), "pointerSize": 134}
                entries.append(entry)
            return self._send(200, entries)
        if method == "POST" and rest and rest[0] == "preupload":
            fake.require_write(user, repo_id.split("/")[0])
            self._maybe_fail("preupload")
            revision = unquote(rest[1]) if len(rest) > 1 else "main"
            tree = repo.commits[fake.resolve(repo, revision)] if revision in repo.refs else {}
            files = []
            for item in json.loads(self._body())["files"]:
                sample = base64.b64decode(item["sample"])
                lfs = item["size"] >= 10 * 2**20 or b"\0" in sample or item["path"].endswith((".safetensors", ".png"))
                existing = tree.get(item["path"])
                files.append(
                    {
                        "path": item["path"],
                        "uploadMode": "lfs" if lfs else "regular",
                        "shouldIgnore": False,
                        "oid": existing.oid if existing else None,
                    }
                )
            return self._send(200, {"files": files, "commitOid": repo.refs.get(revision)})
        if method == "POST" and rest and rest[0] == "commit":
            fake.require_write(user, repo_id.split("/")[0])
            self._maybe_fail("commit")
            return self._commit(repo, unquote(rest[1]) if len(rest) > 1 else "main", query)
        if method == "POST" and rest and rest[0] == "branch":
            fake.require_write(user, repo_id.split("/")[0])
            branch = unquote("/".join(rest[1:]))
            payload = json.loads(self._body() or b"{}")
            with fake.lock:
                if branch in repo.refs:
                    return self._send(409, {"error": f"Branch {branch} already exists"})
                repo.refs[branch] = fake.resolve(repo, payload.get("startingPoint") or "main")
            return self._send(200, {})
        if rest and rest[0] == "variables" and repo_type == "space":
            fake.require_write(user, repo_id.split("/")[0])
            if method == "POST":
                payload = json.loads(self._body())
                repo.variables[payload["key"]] = payload["value"]
            return self._send(200, {k: {"value": v} for k, v in repo.variables.items()})
        raise HubError(404, f"stand-in: no route for {method} {self.path}")

    def _commit(self, repo: Repo, revision: str, query: dict) -> None:
        fake = self.fake
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        header = next(line["value"] for line in lines if line["key"] == "header")
        with fake.lock:
            base_oid = fake.resolve(repo, revision)
            if header.get("parentCommit") and header["parentCommit"] != base_oid:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            tree = dict(repo.commits[base_oid])
            for line in lines:
                key, value = line["key"], line["value"]
                if key == "file":
                    tree[value["path"]] = StoredFile(base64.b64decode(value["content"]), False)
                elif key == "lfsFile":
                    if value["oid"] not in fake.lfs_store:
                        raise HubError(422, f"LFS object {value['oid']} was never uploaded")
                    tree[value["path"]] = StoredFile(fake.lfs_store[value["oid"]], True)
                elif key == "deletedFile":
                    tree.pop(value["path"], None)
                elif key == "deletedFolder":
                    folder = value["path"].rstrip("/") + "/"
                    tree = {p: f for p, f in tree.items() if not p.startswith(folder)}
            if query.get("create_pr") == "1":
                number = 1 + sum(ref.startswith("refs/pr/") for ref in repo.refs)
                ref = f"refs/pr/{number}"
                oid = fake._commit(repo, ref, tree, header["summary"])
                pr_url = f"{fake.url}/{PREFIX[repo.repo_type]}{repo.repo_id}/discussions/{number}"
            else:
                oid = fake._commit(repo, revision, tree, header["summary"])
                pr_url = None
        self._send(
            200,
            {
                "commitUrl": f"{fake.url}/{PREFIX[repo.repo_type]}{repo.repo_id}/commit/{oid}",
                "commitOid": oid,
                "pullRequestUrl": pr_url,
            },
        )

    def _lfs_batch(self, repo_type: str, repo_id: str, user: User | None) -> None:
        self.fake.get_repo(repo_type, repo_id, user)
        self.fake.require_write(user, repo_id.split("/")[0])
        payload = json.loads(self._body())
        objects = []
        for obj in payload["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.fake.lfs_store:  # already stored: no actions, the client skips the upload
                entry["actions"] = {
                    "upload": {"href": f"{self.fake.url}/_lfs/{obj['oid']}"},
                    "verify": {"href": f"{self.fake.url}/_lfs/{obj['oid']}/verify"},
                }
            objects.append(entry)
        self._send(200, {"transfer": "basic", "objects": objects})

    def _lfs_object(self, oid: str, rest: list[str], user: User | None) -> None:
        if self.command == "PUT":
            self._maybe_fail("lfs_upload")
            data = self._body()
            if hashlib.sha256(data).hexdigest() != oid:
                raise HubError(400, "sha256 mismatch")
            with self.fake.lock:
                self.fake.lfs_store[oid] = data
            return self._send(200, {})
        if rest == ["verify"]:
            if user is None:
                raise HubError(401, "verify needs a token")
            if oid not in self.fake.lfs_store:
                raise HubError(404, "object not found")
            return self._send(200, {})
        raise HubError(404, "stand-in: unknown LFS route")

    def _resolve(self, repo: Repo, revision: str, path: str) -> None:
        oid = self.fake.resolve(repo, revision)
        stored = repo.commits[oid].get(path)
        if stored is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        headers = {"X-Repo-Commit": oid, "ETag": f'"{git_sha1(stored.data)}"'}
        if stored.lfs:
            headers.update({"X-Linked-Etag": f'"{stored.sha256}"', "X-Linked-Size": str(len(stored.data))})
        self._send(200, headers=headers, raw=stored.data)
