"""A small local stand-in for the Hugging Face Hub, for tests without internet.

It speaks the part of the Hub's HTTP API that huggingface_hub's real client (2.4, with `HF_HUB_DISABLE_XET=1`) and
transformers' downloads use: repo creation, branches, preupload, commits (regular files inline, large files through
the LFS batch API), model info, and `resolve` downloads with the headers the client checks (X-Repo-Commit, ETag,
X-Linked-Etag, X-Linked-Size, Content-Length). What it receives is stored under `root` on disk. It checks the bearer
token on writes, and can be told to fail a route: answer a status once or more, or drop the connection.

    with FakeHub(tmp_path / "hub", token="hf_test") as hub:
        subprocess.run([...], env={"HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_test", "HF_HUB_DISABLE_XET": "1"})
        hub.files("user/repo")  # {path: bytes} at the head of main
        hub.serve_folder("timm/name", Path("checkpoint"))  # a folder on disk, downloadable as timm/name
        with client_pointed_at(hub):  # or this process's own client
            build_model(...)
"""

import base64
import contextlib
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".npy")  # what the Hub's default .gitattributes routes to LFS,
LFS_MIN_SIZE = 10 * 1024 * 1024  # besides large files and binary ones

REPO = r"(?P<repo>[\w.-]+/[\w.-]+)"
ROUTES = [  # (method, name, pattern)
    ("POST", "create", r"/api/repos/create"),
    ("POST", "validate-yaml", r"/api/validate-yaml"),
    ("POST", "preupload", rf"/api/models/{REPO}/preupload/(?P<rev>[^/]+)"),
    ("POST", "commit", rf"/api/models/{REPO}/commit/(?P<rev>[^/]+)"),
    ("POST", "branch", rf"/api/models/{REPO}/branch/(?P<rev>[^/]+)"),
    ("POST", "lfs-batch", rf"/{REPO}\.git/info/lfs/objects/batch"),
    ("PUT", "lfs-upload", r"/lfs-upload/(?P<oid>[0-9a-f]{64})"),
    ("GET", "info", rf"/api/models/{REPO}(?:/revision/(?P<rev>[^/]+))?"),
    ("GET", "resolve", rf"/{REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)"),
    ("HEAD", "resolve", rf"/{REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)"),
]
WRITES = {"create", "preupload", "commit", "branch", "lfs-batch"}  # lfs-upload stands for a presigned storage URL


@contextlib.contextmanager
def client_pointed_at(hub: "FakeHub"):
    """huggingface_hub's client in this process pointed at `hub`, anonymous and online, as HF_ENDPOINT points a new
    process's (the client reads the variables once, at import): for tests of what is downloaded, not of the process."""
    import transformers.utils.hub
    from huggingface_hub import constants

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(transformers.utils.hub, "_hf_api", None)  # its shared HfApi keeps the endpoint it was made with
        patch.setattr(constants, "ENDPOINT", hub.url)
        patch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
        patch.setattr(constants, "HF_HUB_OFFLINE", False)
        patch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        patch.setenv("HF_TOKEN", "")  # no login of the developer's: the test Hub refuses other tokens
        patch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
        yield


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, **extra):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra


@dataclass
class Fault:
    route: str
    status: int | None  # None: drop the connection without an answer
    times: int


class FakeHub:
    def __init__(self, root: Path, token: str):
        self.root = Path(root)
        self.token = token
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> "FakeHub":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail(self, route: str, status: int | None = None, times: int = 1) -> None:
        """Answer the next `times` requests to `route` with `status`, or drop the connection when status is None."""
        self._faults.append(Fault(route, status, times))

    def clear_faults(self) -> None:
        self._faults.clear()

    def serve_folder(self, repo_id: str, folder: Path, private: bool = False) -> str:
        """Serve the files of `folder` (e.g. a checkpoint on disk) as repository `repo_id`, in one commit on main."""
        folder = Path(folder)
        tree = {".gitattributes": self._entry(GITATTRIBUTES)}
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            data = path.read_bytes()
            entry = self._entry(data)
            if path.name.endswith(LFS_SUFFIXES) or len(data) >= LFS_MIN_SIZE:  # as the LFS batch API stores it
                entry.update(blob_id=entry["sha256"], lfs=True)
            tree[path.relative_to(folder).as_posix()] = entry
        repo = {"private": private, "refs": {}, "commits": {}}
        return self._commit(repo_id, repo, "main", f"Upload {folder.name}", tree, sorted(tree))

    # --- what the tests read back ---

    def commits(self, repo_id: str, revision: str = "main") -> list[dict]:
        """The commits of a branch, newest first, each {oid, message, parent, changed: [paths]}."""
        repo = self._load(repo_id)
        oid, history = repo["refs"].get(revision), []
        while oid:
            commit = repo["commits"][oid]
            history.append({"oid": oid, **commit})
            oid = commit["parent"]
        return history

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        repo = self._load(repo_id)
        tree = repo["commits"][repo["refs"][revision]]["tree"]
        return {path: self._object(entry["sha256"]).read_bytes() for path, entry in tree.items()}

    # --- storage: objects/<sha256> for contents, repos/<owner>/<name>.json for refs, commits and trees ---

    def _repo_file(self, repo_id: str) -> Path:
        return self.root / "repos" / f"{repo_id}.json"

    def _load(self, repo_id: str) -> dict:
        path = self._repo_file(repo_id)
        if not path.is_file():
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        return json.loads(path.read_text())

    def _save(self, repo_id: str, repo: dict) -> None:
        path = self._repo_file(repo_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(repo, indent=1))

    def _object(self, sha256: str) -> Path:
        return self.root / "objects" / sha256

    def _store(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        path = self._object(sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return sha256

    def _entry(self, data: bytes) -> dict:
        return {"sha256": self._store(data), "size": len(data), "blob_id": _git_hash(data), "lfs": False}

    def _head(self, repo: dict, revision: str) -> str:
        if revision in repo["refs"]:
            return repo["refs"][revision]
        if revision in repo["commits"]:
            return revision
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def _commit(self, repo_id: str, repo: dict, branch: str, message: str, tree: dict, changed: list[str]) -> str:
        parent = repo["refs"].get(branch)
        oid = hashlib.sha1(f"{parent}{message}{json.dumps(tree, sort_keys=True)}{time.time_ns()}".encode()).hexdigest()
        repo["commits"][oid] = {"message": message, "parent": parent, "tree": tree, "changed": changed}
        repo["refs"][branch] = oid
        self._save(repo_id, repo)
        return oid

    # --- the API ---

    def create(self, body: dict) -> tuple[int, dict]:
        repo_id = f"{body['organization']}/{body['name']}" if body.get("organization") else f"user/{body['name']}"
        url = f"{self.url}/{repo_id}"
        if self._repo_file(repo_id).is_file():
            raise HubError(409, "You already created this model repo", url=url)
        repo = {"private": body.get("visibility") == "private" or bool(body.get("private")), "refs": {}, "commits": {}}
        self._commit(repo_id, repo, "main", "initial commit", {".gitattributes": self._entry(GITATTRIBUTES)},
                     [".gitattributes"])
        return 200, {"url": url, "name": repo_id, "id": repo_id}

    def preupload(self, repo_id: str, revision: str, body: dict) -> dict:
        repo = self._load(repo_id)
        tree = repo["commits"][self._head(repo, revision)]["tree"]
        files = []
        for file in body["files"]:
            binary = b"\0" in base64.b64decode(file["sample"])
            lfs = file["path"].endswith(LFS_SUFFIXES) or file["size"] >= LFS_MIN_SIZE or binary
            entry = tree.get(file["path"])
            oid = None if entry is None else entry["sha256"] if entry["lfs"] else entry["blob_id"]
            files.append({"path": file["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                          "oid": oid})
        return {"files": files, "commitOid": repo["refs"].get(revision)}

    def lfs_batch(self, body: dict) -> dict:
        objects = []
        for obj in body["objects"]:
            answer = {"oid": obj["oid"], "size": obj["size"]}
            if not self._object(obj["oid"]).is_file():
                answer["actions"] = {"upload": {"href": f"{self.url}/lfs-upload/{obj['oid']}"}}
            objects.append(answer)
        return {"transfer": "basic", "objects": objects}

    def lfs_upload(self, oid: str, data: bytes) -> dict:
        if hashlib.sha256(data).hexdigest() != oid:
            raise HubError(400, f"Uploaded content does not match its oid {oid}")
        self._store(data)
        return {}

    def commit(self, repo_id: str, branch: str, lines: list[dict]) -> dict:
        with self._lock:
            repo = self._load(repo_id)
            if branch not in repo["refs"]:
                raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
            tree = dict(repo["commits"][repo["refs"][branch]]["tree"])
            header, changed = lines[0]["value"], []
            for line in lines[1:]:
                value = line["value"]
                if line["key"] == "file":
                    tree[value["path"]] = self._entry(base64.b64decode(value["content"]))
                elif line["key"] == "lfsFile":
                    if not self._object(value["oid"]).is_file():
                        raise HubError(422, f"LFS object {value['oid']} of {value['path']} was never uploaded")
                    tree[value["path"]] = {"sha256": value["oid"], "size": value["size"], "blob_id": value["oid"],
                                           "lfs": True}
                elif line["key"] == "deletedFile":
                    tree.pop(value["path"], None)
                else:
                    raise HubError(400, f"The fake hub does not implement {line['key']!r} in commits")
                changed.append(value["path"])
            oid = self._commit(repo_id, repo, branch, header["summary"], tree, changed)
        return {"success": True, "commitOid": oid, "commitUrl": f"{self.url}/{repo_id}/commit/{oid}",
                "pullRequestUrl": None}

    def branch(self, repo_id: str, branch: str, body: dict) -> dict:
        with self._lock:
            repo = self._load(repo_id)
            if branch in repo["refs"]:
                raise HubError(409, f"Reference {branch} already exists")
            repo["refs"][branch] = self._head(repo, body.get("startingPoint") or "main")
            self._save(repo_id, repo)
        return {}

    def info(self, repo_id: str, revision: str | None) -> dict:
        repo = self._load(repo_id)
        oid = self._head(repo, revision or "main")
        return {"id": repo_id, "modelId": repo_id, "sha": oid, "private": repo["private"], "tags": [],
                "siblings": [{"rfilename": path} for path in sorted(repo["commits"][oid]["tree"])]}

    def resolve(self, repo_id: str, revision: str, path: str) -> tuple[dict, Path]:
        repo = self._load(repo_id)
        oid = self._head(repo, revision)
        entry = repo["commits"][oid]["tree"].get(path)
        if entry is None:
            raise HubError(404, f"{path} does not exist on {revision}", "EntryNotFound")
        headers = {"X-Repo-Commit": oid, "ETag": f'"{entry["blob_id"]}"', "Content-Length": str(entry["size"])}
        if entry["lfs"]:
            headers.update({"X-Linked-Etag": f'"{entry["sha256"]}"', "X-Linked-Size": str(entry["size"])})
        return headers, self._object(entry["sha256"])

    def authorize(self, route: str, repo_id: str | None, authorization: str | None) -> None:
        if authorization is not None and authorization != f"Bearer {self.token}":
            raise HubError(401, "Invalid credentials in Authorization header")
        private = repo_id is not None and self._repo_file(repo_id).is_file() and self._load(repo_id)["private"]
        if authorization is None and (route in WRITES or private):
            raise HubError(401, "Invalid username or password.")

    def take_fault(self, route: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.route == route and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None


def _git_hash(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _handler_for(hub: FakeHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep pytest output clean
            pass

        def do_GET(self):
            self._handle()

        def do_HEAD(self):
            self._handle()

        def do_POST(self):
            self._handle()

        def do_PUT(self):
            self._handle()

        def _handle(self) -> None:
            path = unquote(urlsplit(self.path).path)
            body = self._body()
            for method, route, pattern in ROUTES:
                match = re.fullmatch(pattern, path)
                if method == self.command and match:
                    break
            else:
                return self._send(404, {"error": f"the fake hub has no route {self.command} {path}"})
            fault = hub.take_fault(route)
            if fault and fault.status is None:
                self.close_connection = True  # a dropped connection: no status line at all
                return
            if fault:
                return self._send(fault.status, {"error": f"injected {fault.status}"}, {"X-Error-Message": "injected"})
            try:
                params = match.groupdict()
                hub.authorize(route, params.get("repo"), self.headers.get("Authorization"))
                self._answer(route, params, body)
            except HubError as error:
                headers = {"X-Error-Message": error.message, **({"X-Error-Code": error.code} if error.code else {})}
                self._send(error.status, {"error": error.message, **error.extra}, headers)

        def _answer(self, route: str, params: dict, body: bytes) -> None:
            if route == "resolve":
                headers, file = hub.resolve(params["repo"], params["rev"], params["path"])
                return self._send(200, file.read_bytes() if self.command == "GET" else None, headers)
            if route == "commit":
                lines = [json.loads(line) for line in body.splitlines() if line.strip()]
                return self._send(200, hub.commit(params["repo"], params["rev"], lines))
            if route == "lfs-upload":
                return self._send(200, hub.lfs_upload(params["oid"], body))
            if route == "info":
                return self._send(200, hub.info(params["repo"], params.get("rev")))
            data = json.loads(body or b"{}")
            if route == "create":
                return self._send(*hub.create(data))
            if route == "validate-yaml":
                return self._send(*_validate_yaml(data["content"]))
            if route == "preupload":
                return self._send(200, hub.preupload(params["repo"], params["rev"], data))
            if route == "lfs-batch":
                return self._send(200, hub.lfs_batch(data))
            if route == "branch":
                return self._send(200, hub.branch(params["repo"], params["rev"], data))

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _send(self, status: int, payload, headers: dict | None = None) -> None:
            headers = dict(headers or {})
            data = b"" if payload is None else payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            if not isinstance(payload, bytes):
                self.send_header("Content-Type", "application/json")
            headers.setdefault("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

    return Handler


def _validate_yaml(content: str) -> tuple[int, dict]:
    """The Hub refuses a README.md whose metadata block is not YAML."""
    match = re.match(r"^---\n(.*?)\n---\n", content, re.S)
    try:
        yaml.safe_load(match.group(1)) if match else None
    except yaml.YAMLError as error:
        return 400, {"errors": [{"message": str(error).splitlines()[0]}], "warnings": []}
    return 200, {"errors": [], "warnings": []}
