"""Talking to the Hugging Face Hub: token checks, one-commit uploads, errors for people.

Why one commit: `upload_folder` pre-uploads the large files, then creates a single commit; if anything fails before
that commit the repo is unchanged, and a rerun re-sends only what the Hub lacks. `delete_patterns="*"` makes the
repo's file set equal the folder's, so a rerun ends in the same state whatever the previous run left.
The token is passed to `HfApi` and nowhere else: it is never printed, logged or written into a file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi, ModelCard, RepoCard, constants, get_token, hf_hub_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from dit_demo.engine.model.folders import staging_folder
from dit_demo.errors import DemoError

try:  # huggingface_hub 2.x talks through httpx2 (older: httpx); both raise these on a refused connection
    import httpx2 as _httpx
except ImportError:  # pragma: no cover
    import httpx as _httpx

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (_httpx.TransportError, ConnectionError, TimeoutError)


class HubError(DemoError):
    """A Hub operation failed in a way a person can act on (`exit_code` for the CLI)."""

    def __init__(self, message: str, exit_code: int = 3):
        super().__init__(message)
        self.exit_code = exit_code


EXIT_AUTH, EXIT_ACCESS, EXIT_NETWORK, EXIT_CONFLICT, EXIT_HUB = 4, 5, 6, 7, 8


def resolve_token(token: str | None = None) -> str | None:
    """Explicit token, else HF_TOKEN, else the one `hf auth login` stored."""
    return token or get_token()


def scrub(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text


@contextmanager
def hub_errors(action: str, endpoint: str, token: str | None) -> Iterator[None]:
    """Turn client exceptions into one-line messages with a next step (and no token in them)."""
    try:
        yield
    except HubError:
        raise
    except OfflineModeIsEnabled as exc:
        raise HubError(f"Cannot {action}: HF_HUB_OFFLINE=1 is set. Unset it to talk to the Hub.", EXIT_NETWORK) from exc
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        detail = scrub((str(exc).splitlines() or [""])[0][:200], token)
        if status == 401:
            message = (
                f"Cannot {action}: the Hub at {endpoint} rejected the token (401){'' if token else ': no token set'}. "
                "Set HF_TOKEN to a valid write token or run `hf auth login`."
            )
            raise HubError(message, EXIT_AUTH) from exc
        if status == 403:
            raise HubError(
                f"Cannot {action}: this token has no write access there (403). Use a token with write permission "
                f"for that user or organisation, or choose a repo id in your own namespace. ({detail})",
                EXIT_ACCESS,
            ) from exc
        if isinstance(exc, RepositoryNotFoundError):
            raise HubError(f"Cannot {action}: repository not found or not visible to this token.", EXIT_ACCESS) from exc
        raise HubError(f"Cannot {action}: the Hub answered {status}: {detail}", EXIT_HUB) from exc
    except (*CONNECTION_ERRORS, LocalEntryNotFoundError) as exc:
        raise HubError(
            f"Cannot {action}: the Hub at {endpoint} is unreachable ({type(exc).__name__}). Check the network or "
            "HF_ENDPOINT; nothing was uploaded.",
            EXIT_NETWORK,
        ) from exc


def check_repo_id(repo_id: str) -> None:
    """Refuse anything but a valid USER/NAME before any work."""
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except Exception as exc:
        raise DemoError(f"--repo-id {repo_id!r} is not a valid Hub repo id (USER/NAME): {exc}") from exc
    if repo_id.count("/") != 1:
        raise DemoError(f"--repo-id must be USER/NAME, got {repo_id!r}.")


@dataclass
class Target:
    """Where a push goes."""

    repo_id: str
    repo_type: str = "model"  # model | dataset | space
    revision: str | None = None  # a branch; created from main when missing
    create_pr: bool = False
    private: bool = False
    endpoint: str | None = None
    token: str | None = None

    @property
    def url(self) -> str:
        prefix = {"model": "", "dataset": "datasets/", "space": "spaces/"}[self.repo_type]
        return f"{self.endpoint or constants.ENDPOINT}/{prefix}{self.repo_id}"

    def api(self) -> HfApi:
        return HfApi(endpoint=self.endpoint or constants.ENDPOINT, token=self.token)


def check_write_access(target: Target) -> str:
    """Fail before any work if the token is missing, invalid, read-only or not allowed in the repo's namespace."""
    endpoint = target.endpoint or constants.ENDPOINT
    if not target.token:
        raise HubError(
            "No Hugging Face token: set HF_TOKEN (a token with write access) or run `hf auth login`, then rerun "
            "with --push. Without --push nothing is uploaded.",
            EXIT_AUTH,
        )
    with hub_errors("check the token", endpoint, target.token):
        who = target.api().whoami()
    role = ((who.get("auth") or {}).get("accessToken") or {}).get("role")
    namespace = target.repo_id.split("/")[0]
    allowed = {who.get("name"), *(org.get("name") for org in who.get("orgs") or [])}
    if role == "read":
        raise HubError(f"The token of {who.get('name')} is read-only: create a write token to push.", EXIT_ACCESS)
    if namespace not in allowed:
        raise HubError(
            f"{who.get('name')} cannot write to the namespace {namespace!r} "
            f"(this token can write to: {', '.join(sorted(a for a in allowed if a))}).",
            EXIT_ACCESS,
        )
    return str(who.get("name"))


def fetch_card(target: Target) -> RepoCard | None:
    """The README.md card already at the target (None if the repo, branch or card does not exist yet)."""
    endpoint = target.endpoint or constants.ENDPOINT
    revision = target.revision or "main"
    with tempfile.TemporaryDirectory() as tmp, hub_errors("read the existing card", endpoint, target.token):
        try:
            path = hf_hub_download(
                target.repo_id,
                "README.md",
                repo_type=target.repo_type,
                revision=revision,
                endpoint=endpoint,
                token=target.token,
                cache_dir=tmp,
            )
        except (RepositoryNotFoundError, RevisionNotFoundError, RemoteEntryNotFoundError):
            return None
        text = Path(path).read_text(encoding="utf-8")
    return ModelCard(text) if target.repo_type == "model" else RepoCard(text)


def publish_folder(
    folder: str | os.PathLike,
    target: Target,
    commit_message: str,
    space_sdk: str | None = None,
    before_upload: Callable[[HfApi], None] | None = None,
):
    """Create the repo (exist_ok) and upload the whole folder as ONE commit; returns the `CommitInfo`.

    `before_upload(api)` runs once the repo exists and before any file is sent (Space settings), so its failure
    leaves no files uploaded."""
    endpoint = target.endpoint or constants.ENDPOINT
    api = target.api()
    with hub_errors(f"push to {target.repo_id}", endpoint, target.token):
        api.create_repo(
            target.repo_id,
            repo_type=target.repo_type,
            private=True if target.private else None,
            exist_ok=True,
            space_sdk=space_sdk,
        )
        if target.revision and target.revision != "main":
            api.create_branch(target.repo_id, branch=target.revision, repo_type=target.repo_type, exist_ok=True)
        if before_upload is not None:
            before_upload(api)
        return api.upload_folder(
            folder_path=str(folder),
            repo_id=target.repo_id,
            repo_type=target.repo_type,
            revision=target.revision,
            create_pr=target.create_pr,
            commit_message=commit_message,
            delete_patterns="*",  # the repo ends with exactly the folder's files (.gitattributes is kept)
        )


def staging(out: Path):
    """An empty folder next to `out` to build in (same filesystem, so the result moves in atomically); removed
    afterwards whatever happens, so a failed run leaves `out` as it was and no debris (nor a killed run's)."""
    return staging_folder(out, "staging")


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def folder_listing(folder: str | os.PathLike) -> list[tuple[str, int]]:
    """(path in repo, bytes) of every file a push would send."""
    root = Path(folder)
    return sorted((p.relative_to(root).as_posix(), p.stat().st_size) for p in root.rglob("*") if p.is_file())


def describe_push(folder: str | os.PathLike, target: Target, extra: list[str] | None = None) -> str:
    """What `--push` would do, for the dry run's output."""
    files = folder_listing(folder)
    where = f"branch {target.revision}" if target.revision else "main"
    how = f"a pull request against {where}" if target.create_pr else f"one commit on {where}"
    lines = [
        f"--push would create {target.url} ({target.repo_type}, {'private' if target.private else 'public'}, "
        "if missing)",
        f"and upload {len(files)} files, {sum(size for _, size in files):,} bytes, as {how}; remote files not in "
        "the folder are deleted in that commit:",
        *[f"  {path}  ({size:,} B)" for path, size in files],
        *(extra or []),
    ]
    return "\n".join(lines)
