"""The deployment files agree with the code: every YAML under deploy/ parses; every container
command (Kubernetes args, compose command, the Dockerfile's ENTRYPOINT + CMD) is a real costbot
command (`python -m costbot ARGS... --help` exits 0); the ConfigMap's config validates; ports,
probe paths and the store path line up."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from costbot.cli import cli
from costbot.config import Config, parse_config
from costbot.jobs import JOB_NAMES
from tests.subprocs import REPO

pytestmark = pytest.mark.timeout(90)

DEPLOY = REPO / "deploy"
DOCKERFILE = REPO / "Dockerfile"
YAML_FILES = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
PROBE_PATHS = {"/healthz", "/readyz", "/metrics"}
"""What `costbot serve` answers (costbot/slack/server.py and costbot/service.py)."""


def documents(path: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    assert all(isinstance(d, dict) for d in docs), path
    return docs


def all_documents() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in YAML_FILES for doc in documents(path)]


def pod_specs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod spec(s) inside a Kubernetes workload document."""
    kind = doc.get("kind")
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return [doc["spec"]["template"]["spec"]]
    if kind == "CronJob":
        return [doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]]
    if kind == "Pod":
        return [doc["spec"]]
    return []


def kube_containers() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path, doc in all_documents():
        for spec in pod_specs(doc):
            for container in [*spec.get("initContainers", []), *spec["containers"]]:
                found.append((f"{path.relative_to(REPO)}:{doc['metadata']['name']}", container))
    return found


def compose_services() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path, doc in all_documents():
        for name, service in (doc.get("services") or {}).items():
            found.append((f"{path.relative_to(REPO)}:{name}", service))
    return found


def dockerfile_instruction(name: str) -> str:
    """The last NAME instruction of the final stage (continuation lines joined)."""
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    final = text.split("\nFROM ")[-1]
    found = re.findall(rf"^{name}\s+(.+)$", final, flags=re.MULTILINE)
    assert found, f"no {name} in the final stage of the Dockerfile"
    return found[-1].strip()


def exec_form(value: str) -> list[str]:
    """An instruction's JSON (exec) form, or its shell form split like a shell would."""
    if value.startswith("["):
        parsed = json.loads(value)
        assert all(isinstance(p, str) for p in parsed)
        return list(parsed)
    return shlex.split(value)


ENTRYPOINT = exec_form(dockerfile_instruction("ENTRYPOINT"))


def as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(v) for v in value]


def invocations() -> list[tuple[str, list[str]]]:
    """(where, argv after `costbot`) for every container that runs the costbot image."""
    found: list[tuple[str, list[str]]] = [("Dockerfile", exec_form(dockerfile_instruction("CMD")))]
    for where, container in kube_containers():
        command, args = as_list(container.get("command")), as_list(container.get("args"))
        entry = command or ENTRYPOINT
        assert entry == ["costbot"], f"{where}: runs {entry}, not the costbot entrypoint"
        found.append((where, args))
    for where, service in compose_services():
        entry = as_list(service.get("entrypoint")) or ENTRYPOINT
        assert entry == ["costbot"], where
        found.append((where, as_list(service.get("command"))))
    return found


@cache
def help_exit(argv: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "costbot", *argv, "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def help_exits(argvs: Iterable[tuple[str, ...]]) -> dict[tuple[str, ...], int]:
    """`--help` exit codes of several command lines, run side by side."""
    unique = sorted(set(argvs))
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = list(pool.map(help_exit, unique))
    return {argv: d.returncode for argv, d in zip(unique, done, strict=True)}


def parse_only(argv: list[str]) -> None:
    """Let click parse `costbot ARGV` exactly as it would, without running anything: argument
    values (like run's JOB choice) are checked too, which `--help` alone skips."""
    assert argv and not argv[0].startswith("-"), argv
    root = click.Context(cli, info_name="costbot")
    command = cli.get_command(root, argv[0])
    if command is None:
        raise click.UsageError(f"no such command {argv[0]!r}")
    with command.make_context(argv[0], list(argv[1:]), parent=root):
        pass


def configmap_config(key: str = "costbot.yaml") -> tuple[str, Config]:
    [(path, doc)] = [(p, d) for p, d in all_documents() if d.get("kind") == "ConfigMap"]
    text = doc["data"][key]
    return text, parse_config(text, f"{path.name}:{key}")


# -- the files ---------------------------------------------------------------------------------


def test_deploy_has_the_expected_files() -> None:
    names = {p.relative_to(DEPLOY).as_posix() for p in YAML_FILES}
    assert {"docker-compose.yaml", "kubernetes/deployment.yaml", "kubernetes/cronjobs.yaml"} <= (
        names
    )
    assert "kubernetes/configmap.yaml" in names


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_file_parses(path: Path) -> None:
    docs = documents(path)
    assert docs
    if path.parent.name == "kubernetes":
        for doc in docs:
            assert {"apiVersion", "kind", "metadata"} <= set(doc), (path, doc)
            assert doc["metadata"].get("namespace", "costbot") == "costbot"


# -- the commands ------------------------------------------------------------------------------


def test_the_image_entrypoint_is_costbot_and_it_serves_by_default() -> None:
    assert ENTRYPOINT == ["costbot"]
    assert exec_form(dockerfile_instruction("CMD")) == ["serve"]


def test_what_the_dockerfile_copies_exists() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    sources = [
        part
        for line in re.findall(r"^COPY (?!--from)(.+)$", text, flags=re.MULTILINE)
        for part in line.split()[:-1]
    ]
    assert sources
    assert [s for s in sources if not (REPO / s).exists()] == []
    example = dockerfile_copy_target("config/costbot.example.yaml")
    assert example.startswith("/etc/costbot/")


def dockerfile_copy_target(source: str) -> str:
    text = DOCKERFILE.read_text(encoding="utf-8")
    [target] = re.findall(rf"^COPY {re.escape(source)} (\S+)$", text, flags=re.MULTILINE)
    return str(target)


def test_the_costbot_console_script_is_what_the_entrypoint_names() -> None:
    project = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^costbot = "costbot\.cli:main"$', project, flags=re.MULTILINE)


def test_every_container_command_is_a_real_costbot_command() -> None:
    seen = invocations()
    assert len(seen) >= 5  # Dockerfile, Deployment, 3 CronJobs, compose
    problems = []
    codes = help_exits(tuple(argv) for _, argv in seen)
    for where, argv in seen:
        assert argv, f"{where}: no arguments for the costbot entrypoint"
        if codes[tuple(argv)] != 0:
            problems.append(f"{where}: costbot {' '.join(argv)} --help -> {codes[tuple(argv)]}")
        try:
            parse_only(argv)
        except click.UsageError as exc:
            problems.append(f"{where}: costbot {' '.join(argv)}: {exc}")
    assert problems == []


def test_the_cronjobs_run_each_job_once() -> None:
    runs = sorted(tuple(argv) for _, argv in invocations() if argv[:1] == ["run"])
    assert runs == sorted(("run", job) for job in JOB_NAMES)


def test_the_checks_themselves_reject_wrong_commands() -> None:
    codes = help_exits([("serv",), ("serve", "--exceute"), ("run", "scna")])
    assert (codes[("serv",)], codes[("serve", "--exceute")]) == (2, 2)
    # --help is eager: click never looks at run's JOB, so only the parse catches a typo there
    assert codes[("run", "scna")] == 0
    with pytest.raises(click.UsageError, match="'scna' is not one of"):
        parse_only(["run", "scna"])
    with pytest.raises(click.UsageError, match="no such command"):
        parse_only(["serv"])
    parse_only(["serve", "--execute"])


# -- the configuration and what it must agree with ---------------------------------------------


def test_the_configmap_config_validates() -> None:
    _text, config = configmap_config()
    assert config.store.path == Path("/data/costbot.db")
    assert config.providers.aws is not None


def test_ports_probes_and_paths_line_up() -> None:
    _text, config = configmap_config()
    port = int(config.serve.listen.rpartition(":")[2])
    assert f"EXPOSE {port}" in DOCKERFILE.read_text(encoding="utf-8")
    assert f"127.0.0.1:{port}/healthz" in dockerfile_instruction("HEALTHCHECK")

    for where, container in kube_containers():
        mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
        assert str(config.store.path.parent) in mounts, f"{where}: the store is not mounted"
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        assert env.get("COSTBOT_CONFIG") == "/etc/costbot/costbot.yaml", where
        assert "/etc/costbot" in mounts, where
        if as_list(container.get("args"))[:1] != ["serve"]:
            continue
        ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
        assert port in ports.values(), where
        for probe in ("livenessProbe", "readinessProbe"):
            http = container[probe]["httpGet"]
            assert http["path"] in PROBE_PATHS, (where, probe)
            assert ports.get(http["port"], http["port"]) == port, (where, probe)

    for where, service in compose_services():
        published = [str(p).rpartition(":")[2] for p in service.get("ports", [])]
        assert str(port) in published, where
        assert service["environment"]["COSTBOT_CONFIG"] == "/etc/costbot/costbot.yaml"


def test_the_deployment_is_annotated_for_scraping_on_the_metrics_path() -> None:
    _text, config = configmap_config()
    [(_, deployment)] = [(p, d) for p, d in all_documents() if d.get("kind") == "Deployment"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == "/metrics"
    assert annotations["prometheus.io/port"] == config.serve.listen.rpartition(":")[2]
