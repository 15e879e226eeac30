"""The GitOps examples (examples/gitops, issue 17): linted, schema-checked, and held to the contract.

The contract of every pipeline: the pull-request (merge-request) job saves the plan with `--out`,
keeps it as an artifact and posts its Markdown in ONE comment per manifest, updated on each push
(found by its hidden first line `<!-- hvlm-plan: MANIFEST -->` and its author; created only when
there is none; GitHub also writes the plan to the job summary); the job on main finds THAT
artifact, applies it with `hvlm apply PLANFILE` and never plans again; a stale plan fails the job
with hvlm's message and the next step; the apply waits for an approval; hvlm is pinned; secrets
come from the CI's store only.

The comment logic is run, not only read: the GitHub step's bash against a stand-in `gh` on PATH
(each call recorded; canned pages of comments answered through the real jq, as gh's --jq does),
the GitLab job's script against a local HTTP server that answers like GitLab's notes API. Azure's
PowerShell is checked by reading it (no pwsh on the test machine).

Tools (pinned in pyproject's `dev` extra, installed by `make test`): zizmor, run OFFLINE on the
GitHub workflow (no finding, also with the pedantic persona), and check-jsonschema with its
builtin (vendored, so offline) schemas of GitHub workflows, Azure Pipelines and GitLab CI. A missing
tool FAILS the test (nothing is skipped). Each tool also gets a broken copy of an example, which it
must reject: a linter that cannot fail proves nothing.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GITOPS = REPO / "examples" / "gitops"
GITHUB = GITOPS / ".github" / "workflows" / "hvlm.yaml"  # where `zizmor examples/` looks
AZURE = GITOPS / "azure-pipelines.yml"
GITLAB = GITOPS / "gitlab-ci.yml"
EXAMPLES = (GITHUB, AZURE, GITLAB)
PINS = {"zizmor": "1.32.0", "check-jsonschema": "0.39.0"}
SECRET_NAMES = {"HVLM_WINRM_USER", "HVLM_WINRM_PASSWORD", "HVLM_LDAP_USER", "HVLM_LDAP_PASSWORD"}
SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
HVLM_PLAN = re.compile(r"\bhvlm\s+plan\b")
HVLM_APPLY = re.compile(r"\bhvlm\s+apply\s+(\S+)")
STALE_NEXT_STEP = re.compile(r"re-run the plan (job|stage)")


def product_version() -> str:
    text = (REPO / "hvlm" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.M)
    assert match, "hvlm/__init__.py has no __version__"
    return match.group(1)


def tool(name: str) -> str:
    """The tool next to this interpreter (the venv), else on PATH; missing: FAIL, never skip."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        pytest.fail(
            f"{name} is not installed: it is pinned in pyproject.toml's dev extra "
            f"({name}=={PINS[name]}); run `make venv` or "
            f"`.venv/bin/pip install -e '.[lab,dev,kerberos]'`",
            pytrace=False,
        )
    return found


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"GH_TOKEN", "GITHUB_TOKEN"}}
    env["NO_COLOR"] = "1"
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=120, env=env, cwd=REPO, check=False
    )


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), path
    return document


def walk(node: object) -> Iterator[tuple[str, object]]:
    """Every (key, value) pair in a YAML document, depth first."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key), value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def scripts(node: object, keys: tuple[str, ...]) -> list[str]:
    """Every script under `node`: the string values of `keys` (lists of lines joined)."""
    found = []
    for key, value in walk(node):
        if key in keys:
            found.append("\n".join(value) if isinstance(value, list) else str(value))
    return found


# --- the tools ---------------------------------------------------------------------------------


def test_the_linters_are_pinned_in_the_dev_extra() -> None:
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    dev = re.search(r"^dev = \[(.*?)^\]", text, re.M | re.S)
    assert dev, "pyproject.toml has no dev extra"
    for name, version in PINS.items():
        assert f'"{name}=={version}"' in dev.group(1), f"{name}=={version} missing from dev"


@pytest.mark.parametrize("persona", ["regular", "pedantic"])
def test_zizmor_offline_finds_nothing_in_the_github_workflow(persona: str) -> None:
    result = run(
        tool("zizmor"), "--offline", "--persona", persona, "--format", "plain", str(GITHUB)
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "No findings to report" in output, output
    assert re.search(r"completed \S*examples/gitops/.github/workflows/hvlm.yaml", output), output


def test_zizmor_offline_on_the_whole_examples_folder_finds_the_workflow_and_nothing_else() -> None:
    """The issue's own command: `zizmor --offline examples/` (zizmor collects workflows under
    .github/workflows of the folder it is given)."""
    result = run(tool("zizmor"), "--offline", "--format", "plain", str(REPO / "examples"))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "No findings to report" in output, output
    assert re.search(r"completed \S*examples/gitops/.github/workflows/hvlm.yaml", output), output


def test_zizmor_rejects_the_workflow_with_a_tag_instead_of_a_sha(tmp_path: Path) -> None:
    broken = tmp_path / "hvlm.yaml"
    text = GITHUB.read_text(encoding="utf-8")
    broken.write_text(re.sub(r"actions/checkout@[0-9a-f]{40}", "actions/checkout@v4", text))
    result = run(tool("zizmor"), "--offline", "--format", "plain", str(broken))
    assert result.returncode != 0
    assert "unpinned-uses" in result.stdout + result.stderr


SCHEMAS = [
    (GITHUB, "vendor.github-workflows", "\n    steps:"),
    # The Azure schema's patterns are not valid Unicode-mode ECMAScript regular expressions
    # (regress raises "Invalid character escape"): check-jsonschema's non-Unicode variant reads them.
    (AZURE, "vendor.azure-pipelines", "\n        steps:"),
    (GITLAB, "vendor.gitlab-ci", "\n  script:"),  # the plan job's script (not before_script)
]


def check_jsonschema(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    return run(
        tool("check-jsonschema"), "--regex-variant", "nonunicode",
        "--builtin-schema", schema, str(path),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("path", "schema", "key"), SCHEMAS, ids=lambda v: getattr(v, "name", str(v).strip())
)
def test_each_example_is_valid_against_its_ci_schema(path: Path, schema: str, key: str) -> None:
    result = check_jsonschema(schema, path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


@pytest.mark.parametrize(
    ("path", "schema", "key"), SCHEMAS, ids=lambda v: getattr(v, "name", str(v).strip())
)
def test_each_schema_rejects_a_broken_copy(
    path: Path, schema: str, key: str, tmp_path: Path
) -> None:
    broken = tmp_path / path.name
    text = path.read_text(encoding="utf-8")
    assert key in text
    broken.write_text(text.replace(key, key.replace(":", "z:"), 1))  # a job's steps: -> stepsz:
    result = check_jsonschema(schema, broken)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Schema validation errors" in result.stdout + result.stderr


# --- what holds in every example ---------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_hvlm_is_pinned_to_the_products_version(path: Path) -> None:
    installs = [line for line in path.read_text(encoding="utf-8").splitlines()
                if "pip install" in line]  # fmt: skip
    assert installs, f"{path.name} never installs hvlm"
    for line in installs:
        assert f'"hvlm[kerberos]=={product_version()}"' in line, line


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_no_secret_is_written_in_an_example(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    # Every value given to a credential-like name is a reference to the CI's secret store.
    reference = re.compile(
        r"^(\$\{\{ (secrets\.\w+|github\.token) \}\}|\$\((\w+|System\.AccessToken)\))$"
    )
    for key, value in walk(load(path)):
        if re.search(r"PASSWORD|TOKEN|SECRET|KEYTAB|_USER$", key) and not isinstance(value, dict):
            assert isinstance(value, str) and reference.match(value), f"{key}: {value!r}"
    for literal in ("glpat-", "ghp_", "github_pat_", "Bearer ey", "BEGIN ", "Pass-", "P@ss"):
        assert literal not in text, literal
    assert not re.search(r"(?i)password\s*[:=]\s*['\"]?[\w!@#%^&*-]{6,}", text.replace("$", ""))


def apply_script(path: Path) -> str:
    """The scripts of the job that applies on main (comments excluded: YAML drops them)."""
    document = load(path)
    if path == GITHUB:
        return "\n".join(scripts(document["jobs"]["apply"], ("run",)))
    if path == AZURE:
        (stage,) = [s for s in document["stages"] if s["stage"] == "apply"]
        (job,) = [j for j in stage["jobs"] if j.get("deployment") == "apply"]
        return "\n".join(scripts(job, ("pwsh",)))
    return "\n".join(document["apply"]["script"])


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_a_stale_plan_fails_the_apply_with_hvlms_message_and_the_next_step(path: Path) -> None:
    script = apply_script(path)
    (applied,) = HVLM_APPLY.findall(script)
    assert applied.endswith("plan.json") or applied == "$plan", applied
    assert "2> apply.err" in script  # hvlm's stderr, shown again below
    assert re.search(r"(cat apply\.err|Get-Content apply\.err)", script)
    (stale,) = [line for line in script.splitlines() if "stale plan" in line]
    assert "apply.err" in stale  # the echo is conditioned on hvlm's own message
    assert STALE_NEXT_STEP.search(script)
    assert re.search(r"exit \"?\$rc", script)  # the job fails with hvlm's exit code


def test_the_readme_shows_the_three_pipelines_and_links_them() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "## GitOps: the reviewed plan is the applied plan" in readme
    for path in EXAMPLES:
        assert f"]({path.relative_to(REPO).as_posix()})" in readme, path.name
    for link in re.findall(r"\]\((examples/[^)]+)\)", readme):
        assert (REPO / link).exists(), f"README links to a missing file: {link}"


# --- GitHub Actions ------------------------------------------------------------------------------


def github_jobs() -> dict[str, dict[str, Any]]:
    return load(GITHUB)["jobs"]


def github_step(name: str, job: str = "plan") -> dict[str, Any]:
    """The step of `job` whose name starts with `name` (exactly one)."""
    (step,) = [s for s in github_jobs()[job]["steps"] if str(s.get("name", "")).startswith(name)]
    return step


def steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job["steps"] if str(s.get("uses", "")).startswith(action + "@")]


def test_github_every_action_is_pinned_by_full_sha_with_its_version() -> None:
    text = GITHUB.read_text(encoding="utf-8")
    uses = re.findall(r"uses:\s*(\S+)(.*)", text)
    assert len(uses) >= 6
    sha_of: dict[str, str] = {}
    for ref, comment in uses:
        assert SHA_PIN.match(ref), f"not pinned by a full commit SHA: {ref}"
        assert re.fullmatch(r"\s*# v\d+\.\d+\.\d+", comment), f"{ref}: no `# vX.Y.Z` comment"
        action, sha = ref.split("@")
        assert sha_of.setdefault(action, sha + comment) == sha + comment, f"{action}: two pins"


def test_github_permissions_are_least_and_credentials_not_persisted() -> None:
    workflow = load(GITHUB)
    assert workflow["permissions"] == {}
    assert "pull_request_target" not in GITHUB.read_text(encoding="utf-8")
    jobs = github_jobs()
    assert jobs["plan"]["permissions"] == {"contents": "read", "pull-requests": "write",
                                           "security-events": "write"}
    assert jobs["apply"]["permissions"] == {
        "contents": "read", "pull-requests": "read", "actions": "read",
    }  # fmt: skip
    for name, job in jobs.items():
        for step in steps_using(job, "actions/checkout"):
            assert step["with"]["persist-credentials"] is False, name


def test_github_no_expression_is_expanded_inside_a_script() -> None:
    for job in github_jobs().values():
        for step in job["steps"]:
            assert "${{" not in step.get("run", ""), step.get("name")
            for key, value in (step.get("env") or {}).items():
                if "secrets." in str(value):
                    assert value == f"${{{{ secrets.{key} }}}}" and key in SECRET_NAMES, key


def test_github_the_pr_job_saves_uploads_and_comments_the_plan() -> None:
    plan = github_jobs()["plan"]
    assert plan["if"] == "github.event_name == 'pull_request'"
    script = "\n".join(scripts(plan, ("run",)))
    assert "hvlm validate" in script
    command = next(line for line in script.splitlines() if HVLM_PLAN.search(line))
    assert "--out plan.json" in command and "--detailed-exitcode" in command
    assert "--format markdown" in command and "> plan.md" in command
    assert re.search(r"^\s*2\)", script, re.M) and re.search(r"^\s*\*\).*\n?.*exit 1", script, re.M)
    (upload,) = steps_using(plan, "actions/upload-artifact")
    assert upload["with"]["name"] == "hvlm-plan" and "plan.json" in upload["with"]["path"]
    comment = github_step("Post the plan on the pull request")
    assert comment["env"]["GH_TOKEN"] == "${{ github.token }}"
    assert "gh pr comment" not in script  # it adds a new comment on every push


def test_github_the_apply_job_applies_the_reviewed_artifact_and_never_plans() -> None:
    jobs = github_jobs()
    apply = jobs["apply"]
    assert apply["if"] == "github.event_name == 'push'"
    assert apply["environment"] == "production"
    script = "\n".join(scripts(apply, ("run",)))
    assert not HVLM_PLAN.search(script), "the apply job plans again"
    assert "--auto-approve" not in script  # it applies a plan file, not a manifest
    (download,) = steps_using(apply, "actions/download-artifact")
    (upload,) = steps_using(jobs["plan"], "actions/upload-artifact")
    assert download["with"]["name"] == upload["with"]["name"]
    assert download["with"]["run-id"] == "${{ steps.reviewed.outputs.run-id }}"
    finder = next(s for s in apply["steps"] if s.get("id") == "reviewed")
    assert "event=pull_request" in finder["run"] and "head_sha=$head" in finder["run"]
    assert HVLM_APPLY.findall(script) == [f"{download['with']['path']}/plan.json"]


# --- Azure Pipelines -----------------------------------------------------------------------------


def azure_stages() -> dict[str, dict[str, Any]]:
    return {s["stage"]: s for s in load(AZURE)["stages"]}


def test_azure_runs_on_a_self_hosted_windows_pool_without_persisted_credentials() -> None:
    pipeline = load(AZURE)
    assert "vmImage" not in pipeline["pool"]
    assert "Agent.OS -equals Windows_NT" in pipeline["pool"]["demands"]
    checkouts = [v for k, v in walk(pipeline) if k == "checkout"]
    assert len(checkouts) == 3
    for _, value in walk(pipeline):
        if isinstance(value, dict) and value.get("checkout") == "self":
            assert value["persistCredentials"] == "false"


def test_azure_no_macro_is_expanded_inside_a_script() -> None:
    for script in scripts(load(AZURE), ("pwsh", "powershell", "script", "bash")):
        # $(name) is a pipeline macro; PowerShell's own subexpressions are $($...).
        assert not re.search(r"\$\((?!\$)[\w.]+\)", script), script
        assert "${{" not in script and "$[" not in script


def test_azure_the_pr_stage_saves_publishes_and_comments_the_plan() -> None:
    plan = azure_stages()["plan"]
    assert plan["condition"] == "eq(variables['Build.Reason'], 'PullRequest')"
    script = "\n".join(scripts(plan, ("pwsh",)))
    command = next(line for line in script.splitlines() if HVLM_PLAN.search(line))
    assert "--out plan.json" in command and "--detailed-exitcode" in command
    assert re.search(r"^\s*2 \{", script, re.M) and "exit 1" in script
    assert "/pullRequests/" in script and "task.uploadsummary" in script
    publish = next(v for k, v in walk(plan) if k == "task" and v == "PublishPipelineArtifact@1")
    assert publish


def test_azure_the_apply_is_an_approved_deployment_of_the_reviewed_artifact() -> None:
    apply_stage = azure_stages()["apply"]
    assert "refs/heads/main" in apply_stage["condition"]
    jobs = {j.get("job") or j.get("deployment"): j for j in apply_stage["jobs"]}
    deployment = jobs["apply"]
    assert "deployment" in deployment and deployment["environment"] == "hyperv-production"
    assert deployment["variables"]["PLAN_RUN_ID"] == (
        "$[ dependencies.find_plan.outputs['reviewed.runId'] ]"
    )
    steps = deployment["strategy"]["runOnce"]["deploy"]["steps"]
    assert {"download": "none"} in steps  # not the current run's artifacts
    download = next(s for s in steps if s.get("task") == "DownloadPipelineArtifact@2")["inputs"]
    published = next(
        s for s in azure_stages()["plan"]["jobs"][0]["steps"]
        if s.get("task") == "PublishPipelineArtifact@1"
    )["inputs"]  # fmt: skip
    assert download["buildType"] == download["buildVersionToDownload"] == "specific"
    assert download["pipelineId"] == "$(PLAN_RUN_ID)"
    assert download["artifactName"] == published["artifact"] == "hvlm-plan"
    script = "\n".join(scripts(apply_stage, ("pwsh",)))
    assert not HVLM_PLAN.search(script), "the apply stage plans again"
    assert "--auto-approve" not in script
    assert HVLM_APPLY.findall(script) == ["$plan"]
    assert "Join-Path $env:PIPELINE_WORKSPACE 'reviewed/plan.json'" in script
    assert download["targetPath"] == "$(Pipeline.Workspace)/reviewed"
    finder = "\n".join(scripts(jobs["find_plan"], ("pwsh",)))
    assert "lastMergeCommit" in finder and "pr.sourceSha" in finder


def test_azure_secrets_arrive_only_through_env_mappings() -> None:
    for key, value in walk(load(AZURE)):
        if key == "env":
            assert isinstance(value, dict)
            for name, ref in value.items():
                if name == "SYSTEM_ACCESSTOKEN":
                    assert ref == "$(System.AccessToken)"
                else:
                    assert name in SECRET_NAMES and ref == f"$({name})", name


# --- GitLab CI -----------------------------------------------------------------------------------


def test_gitlab_the_mr_job_saves_keeps_and_notes_the_plan() -> None:
    ci = load(GITLAB)
    plan = ci["plan"]
    assert plan["rules"][0]["if"] == '$CI_PIPELINE_SOURCE == "merge_request_event"'
    script = "\n".join(plan["script"])
    command = next(line for line in script.splitlines() if HVLM_PLAN.search(line))
    assert "--out plan.json" in command and "--detailed-exitcode" in command
    assert re.search(r"^\s*2\)", script, re.M)
    assert "plan.json" in plan["artifacts"]["paths"]
    assert "/merge_requests/{iid}/notes" in script
    assert 'os.environ["CI_MERGE_REQUEST_IID"]' in script
    assert '{"PRIVATE-TOKEN": os.environ["HVLM_GITLAB_TOKEN"]}' in script


def test_gitlab_the_apply_is_manual_gated_and_applies_the_mr_pipelines_artifact() -> None:
    ci = load(GITLAB)
    apply, fetch = ci["apply"], ci["reviewed-plan"]
    assert apply["environment"]["name"] == "production"
    assert [r.get("when") for r in apply["rules"]] == ["manual"]
    assert apply["allow_failure"] is False and apply["interruptible"] is False
    assert apply["needs"] == [{"job": "reviewed-plan", "artifacts": True}]
    script = "\n".join(apply["script"])
    assert not HVLM_PLAN.search(script), "the apply job plans again"
    assert "--auto-approve" not in script
    (applied,) = HVLM_APPLY.findall(script)
    assert applied in fetch["artifacts"]["paths"]
    finder = "\n".join(fetch["script"])
    assert 'j["name"] == "plan"' in finder and "/artifacts/plan.json" in finder
    assert 'p["sha"] == mr["sha"]' in finder and 'p["status"] == "success"' in finder
    assert "plan" in ci and "plan.json" in ci["plan"]["artifacts"]["paths"]


def test_gitlab_declares_no_secret_variable() -> None:
    ci = load(GITLAB)
    declared = set(ci.get("variables", {}))
    for job in ci.values():
        if isinstance(job, dict):
            declared |= set(job.get("variables", {}) or {})
    assert not declared & (SECRET_NAMES | {"HVLM_GITLAB_TOKEN"}), declared


def test_github_plan_job_uploads_check_sarif_to_code_scanning() -> None:
    """Findings reach the pull request on the manifest's lines: hvlm check --format sarif, then
    codeql-action's upload-sarif with that file."""
    steps = github_jobs()["plan"]["steps"]
    runs = [s.get("run", "") for s in steps]
    check = next(i for i, r in enumerate(runs) if "hvlm check" in r)
    assert '--format sarif > hvlm.sarif' in runs[check]
    upload = next(i for i, s in enumerate(steps)
                  if str(s.get("uses", "")).startswith("github/codeql-action/upload-sarif@"))
    assert upload > check and steps[upload]["with"]["sarif_file"] == "hvlm.sarif"


# --- the plan comment: one per manifest, updated on each push ------------------------------------

MANIFEST = "fleet/prod-east.yaml"  # the examples' HVLM_MANIFEST


def marker(manifest: str = MANIFEST) -> str:
    return f"<!-- hvlm-plan: {manifest} -->"


PLAN_MD = "## hvlm plan\n\nPlan: 2 to add, 1 to change, 0 to delete.\n\n| host | change |\n"


def test_every_example_names_the_manifest_in_its_marker() -> None:
    assert load(GITHUB)["env"]["HVLM_MANIFEST"] == MANIFEST
    assert load(GITLAB)["variables"]["HVLM_MANIFEST"] == MANIFEST
    assert {"name": "HVLM_MANIFEST", "value": MANIFEST} in load(AZURE)["variables"]
    assert 'HVLM_MARKER="<!-- hvlm-plan: $HVLM_MANIFEST -->"' in github_step("Post the plan")["run"]
    assert 'HVLM_MARKER="<!-- hvlm-plan: $HVLM_MANIFEST -->"' in gitlab_note_script()
    assert '$marker = "<!-- hvlm-plan: $env:HVLM_MANIFEST -->"' in azure_comment_script()


# GitHub: the step's own bash, with a stand-in gh on PATH.

BOT = "github-actions[bot]"

FAKE_GH = '''#!{python}
"""A stand-in for gh: appends each call to $FAKE_GH_LOG (a field's @FILE read, as gh does). A GET
of a pull request's comments answers the canned pages of $FAKE_GH_PAGES (only the first without
--paginate), each through the real jq with the caller's environment: gh's --jq (gojq) reads env.X
and prints strings raw."""
import json, os, re, subprocess, sys

args, call = sys.argv[1:], {{"paginate": False, "fields": {{}}}}
assert args.pop(0) == "api", args
while args:
    arg = args.pop(0)
    if arg == "--paginate":
        call["paginate"] = True
    elif arg in ("--jq", "--method", "-F"):
        value = args.pop(0)
        if arg == "-F":
            key, _, value = value.partition("=")
            if value[:1] == "@":
                value = open(value[1:], encoding="utf-8").read()
            call["fields"][key] = value
        else:
            call[arg.lstrip("-")] = value
    else:
        assert "endpoint" not in call, arg
        call["endpoint"] = arg
call.setdefault("method", "POST" if call["fields"] else "GET")
with open(os.environ["FAKE_GH_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps(call) + "\\n")
if call["method"] == "GET" and re.search(r"/issues/\\d+/comments(\\?|$)", call["endpoint"]):
    pages = json.load(open(os.environ["FAKE_GH_PAGES"], encoding="utf-8"))
    for page in pages if call["paginate"] else pages[:1]:
        if "jq" in call:
            subprocess.run(["jq", "-r", call["jq"]], input=json.dumps(page), text=True, check=True)
        else:
            print(json.dumps(page))
else:
    print("{{}}")
'''


def case_ids(cases: list[tuple[Any, ...]]) -> list[str]:
    return [str(c[0]) for c in cases]


def gh_comment(id_: int, login: str, body: str) -> dict[str, Any]:
    return {"id": id_, "user": {"login": login, "type": "Bot" if "[bot]" in login else "User"},
            "body": body}  # fmt: skip


def run_github_step(
    name: str, tmp_path: Path, pages: list[list[Any]], manifest: str = MANIFEST
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    """Run the plan job's step `name` as GitHub runs a `shell: bash` step (bash --noprofile
    --norc -eo pipefail), its env: with test values for its expressions; returns the gh calls."""
    step = github_step(name)
    assert step["shell"] == "bash"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    gh = bindir / "gh"
    gh.write_text(FAKE_GH.format(python=sys.executable), encoding="utf-8")
    gh.chmod(0o755)
    (tmp_path / "pages.json").write_text(json.dumps(pages), encoding="utf-8")
    (tmp_path / "plan.md").write_text(PLAN_MD, encoding="utf-8")
    script = tmp_path / "step.sh"
    script.write_text(step["run"], encoding="utf-8")
    expressions = {
        "${{ github.token }}": "fake-token",
        "${{ github.event.pull_request.number }}": "7",
        "${{ github.event.pull_request.head.sha }}": "0123abc",
    }
    env = {
        "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "HVLM_MANIFEST": manifest,
        "GITHUB_REPOSITORY": "octo/fleet",
        "GITHUB_RUN_ID": "4242",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "FAKE_GH_LOG": str(tmp_path / "gh.log"),
        "FAKE_GH_PAGES": str(tmp_path / "pages.json"),
    }
    for key, value in (step.get("env") or {}).items():
        env[key] = expressions.get(str(value), str(value))
        assert "${{" not in env[key], f"{key}: no test value for {value}"
    assert shutil.which("jq"), "jq is not installed (the stand-in gh evaluates --jq with it)"
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path, check=False,
    )  # fmt: skip
    log = tmp_path / "gh.log"
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return result, calls


EAST, WEST = marker(), marker("fleet/prod-west.yaml")
GITHUB_COMMENT_CASES = [
    # (case, manifest, pages of comments, expected write: (method, endpoint))
    ("no comment yet", MANIFEST, [[]],
     ("POST", "repos/octo/fleet/issues/7/comments")),
    ("only people's comments", MANIFEST, [[gh_comment(1, "alice", "LGTM")]],
     ("POST", "repos/octo/fleet/issues/7/comments")),
    ("ours, on the second page", MANIFEST,
     [[gh_comment(1, "alice", "LGTM"), gh_comment(2, BOT, "not a plan")],
      [gh_comment(3, BOT, f"{EAST}\n**hvlm plan** of the last push")]],
     ("PATCH", "repos/octo/fleet/issues/comments/3")),
    ("two of ours: the first is kept", MANIFEST,
     [[gh_comment(5, BOT, f"{EAST}\nold"), gh_comment(6, BOT, f"{EAST}\nolder")]],
     ("PATCH", "repos/octo/fleet/issues/comments/5")),
    ("someone else's comment carrying our marker", MANIFEST,
     [[gh_comment(8, "mallory", f"{EAST}\na fake plan")]],
     ("POST", "repos/octo/fleet/issues/7/comments")),
    ("only another manifest's comment", MANIFEST,
     [[gh_comment(9, BOT, f"{WEST}\nthe west plan")]],
     ("POST", "repos/octo/fleet/issues/7/comments")),
    ("each manifest its own comment", "fleet/prod-west.yaml",
     [[gh_comment(9, BOT, f"{EAST}\neast plan"), gh_comment(10, BOT, f"{WEST}\nwest plan")]],
     ("PATCH", "repos/octo/fleet/issues/comments/10")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "manifest", "pages", "write"), GITHUB_COMMENT_CASES, ids=case_ids(GITHUB_COMMENT_CASES)
)
def test_github_updates_its_comment_and_creates_one_only_when_there_is_none(
    case: str, manifest: str, pages: list[list[dict[str, Any]]], write: tuple[str, str],
    tmp_path: Path,
) -> None:  # fmt: skip
    result, calls = run_github_step("Post the plan on the pull request", tmp_path, pages, manifest)
    assert result.returncode == 0, result.stdout + result.stderr
    listing, *writes = calls
    assert (listing["method"], listing["endpoint"]) == (
        "GET", "repos/octo/fleet/issues/7/comments?per_page=100",
    )  # fmt: skip
    assert listing["paginate"], "only the first page of comments is searched"
    assert [(w["method"], w["endpoint"]) for w in writes] == [write]  # one write, the right one
    body = writes[0]["fields"]["body"]
    assert body == (tmp_path / "comment.md").read_text(encoding="utf-8")
    assert body.startswith(marker(manifest) + "\n"), body[:80]
    assert body.endswith("\n\n" + PLAN_MD)  # hvlm's Markdown as it is, after the pipeline's lines
    assert "artifact `hvlm-plan` of run 4242" in body and "`hvlm show plan.json`" in body
    assert "0123abc" in body
    verb = "updated the plan comment" if write[0] == "PATCH" else "posted the plan comment"
    assert verb in result.stdout


def test_github_a_failed_listing_fails_the_step_and_posts_nothing(tmp_path: Path) -> None:
    """An answer the filter cannot read (jq fails) must not fall through to a new comment."""
    result, calls = run_github_step("Post the plan on the pull request", tmp_path, [["no comment"]])
    assert result.returncode != 0
    assert [c["method"] for c in calls] == ["GET"], calls


def test_github_writes_the_plan_to_the_job_summary(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("an earlier step's summary\n", encoding="utf-8")
    result, calls = run_github_step("Write the plan to the job summary", tmp_path, [[]])
    assert result.returncode == 0, result.stderr
    assert calls == []  # no API call: the runner shows the file
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("an earlier step's summary\n" + PLAN_MD)  # appended, not replaced
    assert "artifact `hvlm-plan` of this run" in text and "`hvlm show plan.json`" in text
    steps = [s.get("name", "") for s in github_jobs()["plan"]["steps"]]
    plan = next(i for i, n in enumerate(steps) if n.startswith("Plan "))
    assert plan < steps.index("Write the plan to the job summary")


# GitLab: the plan job's script, against a local server that answers like GitLab's API.


def gitlab_note_script() -> str:
    (script,) = [s for s in load(GITLAB)["plan"]["script"] if "python3 -" in s]
    return str(script)


class FakeGitLab(http.server.ThreadingHTTPServer):
    """GitLab's REST API as the note script uses it: /user, the merge request's notes in pages
    (X-Next-Page), PUT of a note, POST of a note. Every request is recorded."""

    TOKEN = "fake-token"
    NOTES = "/api/v4/projects/5/merge_requests/7/notes"

    def __init__(self, pages: list[list[dict[str, Any]]]) -> None:
        super().__init__(("127.0.0.1", 0), FakeGitLabHandler)
        self.pages = pages
        self.calls: list[tuple[str, str, dict[str, Any] | None]] = []


class FakeGitLabHandler(http.server.BaseHTTPRequestHandler):
    server: FakeGitLab

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self, status: int, payload: object, next_page: str = "") -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Next-Page", next_page)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        path, _, query = self.path.partition("?")
        self.server.calls.append((self.command, self.path, body))
        if self.headers.get("PRIVATE-TOKEN") != FakeGitLab.TOKEN:
            return self._answer(401, {"message": "401 Unauthorized"})
        if (self.command, path) == ("GET", "/api/v4/user"):
            return self._answer(200, {"id": 42, "username": "project_5_bot_hvlm"})
        if (self.command, path) == ("GET", FakeGitLab.NOTES):
            page = int(urllib.parse.parse_qs(query).get("page", ["1"])[0])
            pages = self.server.pages
            more = str(page + 1) if page < len(pages) else ""
            return self._answer(200, pages[page - 1] if page <= len(pages) else [], more)
        if (self.command, path) == ("POST", FakeGitLab.NOTES) or (
            self.command == "PUT" and re.fullmatch(re.escape(FakeGitLab.NOTES) + r"/\d+", path)
        ):
            return self._answer(201 if self.command == "POST" else 200, {"id": 1, **(body or {})})
        return self._answer(404, {"message": "404 Not found"})

    do_GET = do_POST = do_PUT = _handle


def gl_note(id_: int, author: int, body: str, system: bool = False) -> dict[str, Any]:
    return {"id": id_, "author": {"id": author}, "body": body, "system": system}


GITLAB_NOTE_CASES = [
    ("no note yet", MANIFEST, [[]], ("POST", FakeGitLab.NOTES)),
    ("ours, on the second page", MANIFEST,
     [[gl_note(1, 7, "LGTM"), gl_note(2, 42, "not a plan")], [gl_note(3, 42, f"{EAST}\nold")]],
     ("PUT", f"{FakeGitLab.NOTES}/3")),
    ("someone else's note carrying our marker", MANIFEST, [[gl_note(8, 66, f"{EAST}\nfake")]],
     ("POST", FakeGitLab.NOTES)),
    ("only another manifest's note", MANIFEST, [[gl_note(9, 42, f"{WEST}\nwest")]],
     ("POST", FakeGitLab.NOTES)),
    ("each manifest its own note", "fleet/prod-west.yaml",
     [[gl_note(9, 42, f"{EAST}\neast"), gl_note(10, 42, f"{WEST}\nwest")]],
     ("PUT", f"{FakeGitLab.NOTES}/10")),
]  # fmt: skip


def run_gitlab_note_script(
    tmp_path: Path, pages: list[list[dict[str, Any]]], manifest: str = MANIFEST,
    token: str = FakeGitLab.TOKEN,
) -> tuple[subprocess.CompletedProcess[str], FakeGitLab]:  # fmt: skip
    """Run the plan job's note script as GitLab's bash shell runs a script item (set -eo
    pipefail), with CI_API_V4_URL on a local FakeGitLab; returns the server with its calls."""
    (tmp_path / "plan.md").write_text(PLAN_MD, encoding="utf-8")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3").symlink_to(sys.executable)
    server = FakeGitLab(pages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    env = {
        "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "HVLM_MANIFEST": manifest,
        "HVLM_GITLAB_TOKEN": token,
        "CI_API_V4_URL": f"http://127.0.0.1:{server.server_address[1]}/api/v4",
        "CI_PROJECT_ID": "5",
        "CI_MERGE_REQUEST_IID": "7",
        "CI_COMMIT_SHA": "0123abc",
        "CI_PIPELINE_ID": "900",
        "CI_JOB_ID": "901",
    }
    try:
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", gitlab_note_script()],
            capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path, check=False,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    return result, server


@pytest.mark.parametrize(
    ("case", "manifest", "pages", "write"), GITLAB_NOTE_CASES, ids=case_ids(GITLAB_NOTE_CASES)
)
def test_gitlab_updates_its_note_and_creates_one_only_when_there_is_none(
    case: str, manifest: str, pages: list[list[dict[str, Any]]], write: tuple[str, str],
    tmp_path: Path,
) -> None:  # fmt: skip
    result, server = run_gitlab_note_script(tmp_path, pages, manifest)
    assert result.returncode == 0, result.stdout + result.stderr
    reads = [(m, p) for m, p, _ in server.calls if m == "GET"]
    writes = [(m, p.partition("?")[0], b) for m, p, b in server.calls if m != "GET"]
    assert reads[0] == ("GET", "/api/v4/user")
    listed = [p for _, p in reads[1:]]
    assert all(p.startswith(FakeGitLab.NOTES + "?") and "per_page=100" in p for p in listed)
    if write[0] == "POST":  # every page was searched before creating one
        assert len(listed) == len(pages), listed
    assert [(m, p) for m, p, _ in writes] == [write]
    body = writes[0][2]["body"] if writes[0][2] else ""
    assert body == (tmp_path / "note.md").read_text(encoding="utf-8")
    assert body.startswith(marker(manifest) + "\n") and body.endswith("\n\n" + PLAN_MD)
    assert "artifact plan.json of job 901" in body and "`hvlm show plan.json`" in body
    verb = "updated the plan note" if write[0] == "PUT" else "posted the plan note"
    assert verb in result.stdout


def test_gitlab_a_refused_token_fails_the_job_and_posts_nothing(tmp_path: Path) -> None:
    result, server = run_gitlab_note_script(tmp_path, [[]], token="expired")
    assert result.returncode != 0
    (line,) = result.stderr.splitlines()  # one located line, no traceback
    assert line.startswith("the plan note: GET http://127.0.0.1:") and line.endswith(
        "/api/v4/user: HTTP 401 Unauthorized"
    ), line
    assert [m for m, _, _ in server.calls] == ["GET"], server.calls


# Azure DevOps: no pwsh here, so the script is read.


def azure_comment_script() -> str:
    (job,) = azure_stages()["plan"]["jobs"]
    name = "Post the plan on the pull request"
    (step,) = [s for s in job["steps"] if s.get("displayName") == name]
    return str(step["pwsh"])


def test_azure_updates_its_thread_and_creates_one_only_when_there_is_none() -> None:
    script = azure_comment_script()
    # ours: a live thread whose first comment is the build service's and starts with the marker
    assert "'_apis/connectionData'" in script and ".authenticatedUser.id" in script
    assert "$first.author.id -eq $me" in script and "-not $thread.isDeleted" in script
    assert "$first.content.StartsWith($marker, [StringComparison]::Ordinal)" in script
    assert "Invoke-RestMethod -Headers $headers -Uri ($threads + '?api-version=7.1')" in script
    found = re.search(r"if \(\$ours\) \{(?P<update>.*?)\} else \{(?P<create>.*?)\n\}", script, re.S)
    assert found, "no update-else-create branch"
    assert "-Method Patch" in found["update"] and "-Method Post" not in found["update"]
    assert '"/$($ours.thread)/comments/$($ours.comment)?api-version=7.1"' in found["update"]
    assert "@{ content = $content }" in found["update"]
    assert "-Method Post" in found["create"] and "-Method Patch" not in found["create"]
    assert "parentCommentId = 0" in found["create"] and "status = 'closed'" in found["create"]
    assert script.count("Invoke-RestMethod -Method") == 2  # nothing else writes
    assert '$intro = "$marker`n"' in script and '$content = "$intro`n`n$plan"' in script
    assert "artifact ``hvlm-plan`` of run $env:BUILD_BUILDID" in script
    assert "``hvlm show plan.json``" in script
