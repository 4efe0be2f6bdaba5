"""`r1f publish NAME --repo-id ORG/DATASET`: a release on the Hugging Face Hub, in one tagged commit.

The folder is what `r1f export NAME --format hf --style hub` writes (one exporter), plus the report's plots
under `assets/` for the card. It is built locally first, then uploaded with huggingface_hub as one commit
(`create_commit`, never `upload_folder`, whose Xet pipeline may split a large folder into several commits),
and the commit is tagged with the release name.

- The token comes from `HF_TOKEN` or the user's `hf auth login`; it is never printed, logged or stored, and it
  is scrubbed from any error message before that message is shown.
- Nothing is half-published: the Hub applies a commit whole or not at all, and a failed commit (a 5xx) is
  retried; files that did not change are skipped, so a retry after a commit that did land, or publishing the
  same release again, adds no second commit.
- When the upload fails, the local folder stays where it was built, and the message says where.

huggingface_hub, datasets and matplotlib are imported inside the functions, never at module import.
"""
from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from catalogs.errors import UserError
from catalogs.retry import retry_call
from catalogs.store import Catalog

from .release import export_release, get_manifest, release_facts

REPO_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
# The folders a publish writes; a later publish replaces what is in them.
OWNED_FOLDERS = ("data/", "assets/", "recipes/")


class PublishError(UserError):
    """Publishing cannot go on: a bad repo id, no token, or the Hub refused."""


def check_repo_id(repo_id: str) -> str:
    """ORG/NAME as the Hub accepts it, or a PublishError naming the rule it breaks."""
    parts = repo_id.split("/")
    why = None
    if len(parts) != 2:
        why = "write it as ORG/DATASET (one '/', the namespace first)"
    elif not all(REPO_PART.match(p) for p in parts):
        why = "each part starts with a letter or digit and holds only letters, digits, '-', '_' and '.' (96 at most)"
    elif any("--" in p or ".." in p for p in parts) or parts[1].endswith((".git", ".")):
        why = "'--' and '..' are not allowed, nor a name ending in '.git' or '.'"
    if why:
        raise PublishError(f"--repo-id {repo_id!r} is not a valid Hub dataset id: {why}; e.g. my-org/r1-sft-v1.")
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise PublishError(f"--repo-id {repo_id!r} is not a valid Hub dataset id: {exc}") from None
    return repo_id


def hub_token() -> str:
    """The token of the environment (HF_TOKEN) or of `hf auth login`; never echoed anywhere."""
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise PublishError("no Hugging Face token: set HF_TOKEN in the environment or run `hf auth login` "
                           "(a token with write access to the repo), then publish again. Nothing was uploaded.")
    return token


def build_folder(catalog: Catalog, name: str, out: str | Path, repo_id: str | None = None,
                 license: str = "unknown", overwrite: bool = False) -> Path:
    """The Hub folder of release `name`: the `hf` export in the `hub` style, with the report's plots."""
    get_manifest(catalog, name)
    try:
        import matplotlib  # noqa: F401

        from .report import figures
    except ImportError:
        raise PublishError("the card's plots need matplotlib: pip install matplotlib (or r1-factory's `report` "
                           "extra).") from None
    pngs = figures(release_facts(catalog, name, distributions=True))
    return export_release(catalog, name, out, fmt="hf", style="hub", overwrite=overwrite, repo_id=repo_id,
                          license=license, figures=pngs)


def publish(catalog: Catalog, name: str, repo_id: str, *, private: bool = False, revision: str | None = None,
            license: str = "unknown", attempts: int = 4, backoff_s: float = 1.0,
            say: Callable[[str], None] = lambda _msg: None) -> dict[str, Any]:
    """Build release `name` in a local folder and upload it to dataset `repo_id` as one commit, tagged `name`."""
    check_repo_id(repo_id)
    manifest = get_manifest(catalog, name)
    token = hub_token()
    work = Path(tempfile.mkdtemp(prefix=f"r1f-publish-{name}-"))
    try:
        folder = build_folder(catalog, name, work / name, repo_id=repo_id, license=license)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    say(f"built {folder} ({sum(1 for p in folder.rglob('*') if p.is_file())} files)")
    try:
        result = _upload(folder, name, repo_id, token, manifest, private=private, revision=revision,
                         attempts=attempts, backoff_s=backoff_s, say=say)
    except BaseException:
        say(f"the folder stays at {folder} for a retry; nothing else was changed")
        raise
    shutil.rmtree(work, ignore_errors=True)
    return result


def _upload(folder: Path, name: str, repo_id: str, token: str, manifest: dict[str, Any], *, private: bool,
            revision: str | None, attempts: int, backoff_s: float, say: Callable[[str], None]) -> dict[str, Any]:
    import logging

    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    # One line per HTTP request drowns huggingface_hub's own progress bars; its warnings still show.
    for noisy in ("httpx", "httpx2", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    api = HfApi(token=token)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    message = f"Publish release {name}"
    description = (f"r1-factory release `{name}`: {manifest['members']} samples from {manifest['prompts']} "
                   f"prompts; members sha256 {manifest['members_sha256']}. Trace a row with "
                   f"`r1f show <generation_id>`.")

    def status_of(exc: BaseException) -> int | None:
        response = getattr(exc, "response", None)
        return response.status_code if isinstance(exc, HfHubHTTPError) and response is not None else None

    def call(what: str, fn: Callable[[], Any], retry: bool = False) -> Any:
        def server_error(exc: BaseException) -> bool:
            status = status_of(exc)
            return retry and status is not None and status >= 500

        def on_retry(attempt: int, exc: BaseException) -> None:
            say(f"{what}: the Hub answered {status_of(exc)}; retrying ({attempt}/{attempts - 1})")

        try:
            return retry_call(fn, when=server_error, attempts=attempts, first_s=backoff_s,
                              max_s=backoff_s * 2 ** max(attempts - 2, 0), on_retry=on_retry)
        except HfHubHTTPError as exc:
            status = status_of(exc)
            text = _scrub(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, token)
            hint = {401: "the token was refused: check HF_TOKEN or `hf auth login`",
                    403: f"the token may not write to {repo_id}: use a write token for that namespace",
                    404: f"{repo_id} (or revision {revision}) was not found"}.get(status or 0, "try again later")
            raise PublishError(f"{what} on {repo_id} failed ({status}): {text}; {hint}.") from None
        except OSError as exc:  # connection refused, DNS, TLS: the Hub was not reached
            raise PublishError(f"{what} on {repo_id}: cannot reach the Hub ({_scrub(str(exc), token)}); "
                               f"check the network or HF_ENDPOINT.") from None

    call("create the repo", lambda: api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True))
    if revision:
        call(f"create branch {revision}", lambda: api.create_branch(repo_id, branch=revision, repo_type="dataset",
                                                                    exist_ok=True))
    before = call("read the repo", lambda: api.repo_info(repo_id, repo_type="dataset", revision=revision).sha,
                  retry=True)
    # What an earlier publish left under the folders we own (another release's shards, runs' recipes, plots)
    # goes in the same commit, so the repo never mixes two releases. Other files (a .gitattributes, a
    # hand-written file) are left alone.
    remote = call("list the repo", lambda: api.list_repo_files(repo_id, repo_type="dataset", revision=revision),
                  retry=True)
    stale = sorted(p for p in remote if p.startswith(OWNED_FOLDERS) and p not in set(files))
    if stale:
        say(f"removing {len(stale)} files an earlier publish left under {', '.join(OWNED_FOLDERS)}")

    def operations() -> list[Any]:  # fresh on every attempt: create_commit records upload modes on them
        return ([CommitOperationDelete(path_in_repo=p) for p in stale]
                + [CommitOperationAdd(path_in_repo=f, path_or_fileobj=str(folder / f)) for f in files])

    commit = call("commit", lambda: api.create_commit(
        repo_id, repo_type="dataset", revision=revision, commit_message=message,
        commit_description=description, operations=operations()), retry=True)

    def tag() -> bool:
        try:
            api.create_tag(repo_id, tag=name, revision=commit.oid, repo_type="dataset", tag_message=message)
            return True
        except HfHubHTTPError as exc:
            if exc.response is not None and exc.response.status_code == 409:
                return False  # tagged by an earlier publish of this release; a tag is never moved
            raise

    tagged = call(f"tag {name}", tag, retry=True)
    return {"repo_id": repo_id, "commit": commit.oid, "commit_url": commit.commit_url, "changed": commit.oid != before,
            "tag": name, "tag_created": tagged, "revision": revision or "main", "files": files, "removed": stale,
            "private": private}


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text
