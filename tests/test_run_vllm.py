"""run_vllm.sh (run for real against tests/stubs/vllm + nvidia-smi) and configs/profiles.py."""

from __future__ import annotations

import hashlib
import os
import shlex
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from configs import profiles
from configs.profiles import Profile, parser_for, profile_for, quote_env_value, update_env_text

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "run_vllm.sh"
PROFILES_PY = ROOT / "configs" / "profiles.py"
STUBS = ROOT / "tests" / "stubs"

# vLLM 0.33 built-in tool-call parsers and quantization methods (shared/docs/vllm-wire.md §1.2).
VLLM_PARSERS = set(
    """dots deepseek_v3 deepseek_v31 deepseek_v32 deepseek_v4 deepseek_v41
cohere_command3 cohere_command4 ernie45 glm45 glm47 ling3 granite-20b-fc granite granite4 hermes hf
beam poolside_v1 hunyuan_a13b hy_v3 hy_v4 internlm jamba lfm2 kimi_k2 kimi_k3 k2_horizon llama3_json
llama4_json llama4_pythonic longcat mimo minimax_m2 minimax_m3 minicpm5 mistral olmo3 plamo3 muse
muse_glimmer musespark1x openai phi4_mini_json pythonic qwen3_coder qwen3_json qwen3_xml seed_oss
step3 step3p5 step5 inkling xlam gigachat3 functiongemma gemma4 apertus""".split()
)
VLLM_QUANT = {"awq", "auto_awq", "awq_marlin", "gptq", "fp8", "compressed-tensors"}

SECRET = "s3cr3t-Key with spaces"


# ------------------------------------------------------------------------------------------
# helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout: float = 15.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


def pid_gone(pid: int) -> bool:
    """True once `pid` no longer exists or is a zombie (an orphan waiting to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True
    return state in ("Z", "X")


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def read_record(path: Path) -> tuple[list[str], dict[str, str]]:
    argv_part, env_part = path.read_text().split("--- env ---\n")
    env = dict(line.split("=", 1) for line in env_part.splitlines())
    return argv_part.splitlines(), env


class Runner:
    """Runs run_vllm.sh with the stubs first on PATH and state/log/env files under tmp_path."""

    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.state = tmp_path / "state"
        self.record = tmp_path / "record.txt"
        self.env_file = tmp_path / "agent.env"
        self.log_file = tmp_path / "vllm.log"
        env = {k: v for k, v in os.environ.items() if k != "VLLM_API_KEY"}
        env.update(
            PATH=f"{STUBS}{os.pathsep}{os.environ['PATH']}",
            RUN_VLLM_STATE_DIR=str(self.state),
            VLLM_STUB_RECORD=str(self.record),
            RUN_VLLM_STOP_GRACE="10",
        )
        self.env = env

    def run(
        self, *args: str, env: dict[str, str] | None = None, files: bool = True
    ) -> subprocess.CompletedProcess[str]:
        extra = ["--env-file", str(self.env_file), "--log-file", str(self.log_file)] if files else []
        return subprocess.run(
            [str(SCRIPT), *extra, *args],
            cwd=self.tmp,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=90,
        )

    def dry(self, *args: str, **kw) -> tuple[list[str], subprocess.CompletedProcess[str]]:
        res = self.run("--dry-run", *args, **kw)
        assert res.returncode == 0, res.stderr
        lines = [ln for ln in res.stdout.splitlines() if ln.startswith("vllm ")]
        assert len(lines) == 1, res.stdout
        return shlex.split(lines[0]), res

    def minimal_path(self, *tools: str) -> str:
        """A PATH without the stubs (plus only the named ones) and without any real vllm."""
        bin_dir = self.tmp / "bin"
        bin_dir.mkdir(exist_ok=True)
        for name in ("python3",):
            link = bin_dir / name
            if not link.exists():
                link.symlink_to(sys.executable)
        for tool in tools:
            link = bin_dir / tool
            if not link.exists():
                link.symlink_to(STUBS / tool)
        path = f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin"
        for name in ("vllm", "nvidia-smi"):
            found = subprocess.run(
                ["bash", "-c", f"PATH={shlex.quote(path)} command -v {name}"], capture_output=True, text=True
            ).stdout.strip()
            if found and not found.startswith(str(bin_dir)):
                pytest.skip(f"a real {name} is installed at {found}")
        return path

    def cleanup(self) -> None:
        pids: set[int] = set()
        if self.state.is_dir():
            for pid_file in self.state.glob("*.pid"):
                text = pid_file.read_text().strip()
                if text.isdigit():
                    pids.add(int(text))
        if self.record.exists() and "--- env ---" in self.record.read_text():
            pid = read_record(self.record)[1].get("PID", "")
            if pid.isdigit():
                pids.add(int(pid))
        for pid in pids:
            if not pid_gone(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


@pytest.fixture
def runner(tmp_path: Path):
    r = Runner(tmp_path)
    yield r
    r.cleanup()


def opt(cmd: list[str], name: str) -> str | None:
    return cmd[cmd.index(name) + 1] if name in cmd else None


# ------------------------------------------------------------------------------------------
# --dry-run


def test_dry_run_default_command_and_env_lines(runner: Runner):
    path = runner.minimal_path()  # no vllm, no nvidia-smi: dry-run needs neither
    cmd, res = runner.dry(env={"PATH": path})
    assert cmd[:3] == ["vllm", "serve", "Qwen/Qwen2.5-7B-Instruct"]
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("vllm "))
    assert line.startswith("vllm serve Qwen/Qwen2.5-7B-Instruct --host 127.0.0.1 --port 8000 ")
    assert "--enable-auto-tool-choice --tool-call-parser hermes" in line
    assert "python -m vllm.entrypoints" not in res.stdout
    assert "api_server" not in res.stdout
    assert opt(cmd, "--gpu-memory-utilization") == "0.9"
    assert opt(cmd, "--max-model-len") == "16384"
    assert opt(cmd, "--max-num-seqs") == "16"
    assert "--tensor-parallel-size" not in cmd and "--quantization" not in cmd
    assert "--api-key" not in cmd and "--served-model-name" not in cmd
    assert "OPENAI_API_BASE=http://127.0.0.1:8000/v1" in res.stdout.splitlines()
    assert "OPENAI_API_KEY=EMPTY" in res.stdout.splitlines()
    assert "AGENT_MODEL=Qwen/Qwen2.5-7B-Instruct" in res.stdout.splitlines()
    assert f"Would write to {runner.env_file}" in res.stdout
    assert not runner.env_file.exists() and not runner.log_file.exists()
    assert not runner.state.exists()
    assert res.stderr == ""


@pytest.mark.parametrize(
    ("model", "parser", "extra"),
    [
        ("Qwen/Qwen2.5-7B-Instruct", "hermes", {}),
        ("Qwen/Qwen2.5-7B-Instruct-AWQ", "hermes", {"--quantization": "awq"}),
        ("Qwen/Qwen2.5-14B-Instruct", "hermes", {"--gpu-memory-utilization": "0.92"}),
        ("Qwen/Qwen2.5-14B-Instruct-AWQ", "hermes", {"--quantization": "awq", "--max-model-len": "8192"}),
        ("Qwen/Qwen3-8B", "hermes", {"--reasoning-parser": "qwen3"}),
        ("Qwen/Qwen3-Coder-30B-A3B-Instruct", "qwen3_coder", {"--max-model-len": "32768"}),
        ("meta-llama/Llama-3.1-8B-Instruct", "llama3_json", {}),
        (
            "mistralai/Mistral-7B-Instruct-v0.3",
            "mistral",
            {"--tokenizer-mode": "mistral", "--config-format": "mistral", "--load-format": "mistral"},
        ),
        ("NousResearch/Hermes-2-Pro-Llama-3-8B", "hermes", {"--max-model-len": "8192"}),
    ],
)
def test_dry_run_parser_per_profile(runner: Runner, model: str, parser: str, extra: dict[str, str]):
    cmd, res = runner.dry("--model", model)
    assert cmd[:3] == ["vllm", "serve", model]
    assert "--enable-auto-tool-choice" in cmd
    assert opt(cmd, "--tool-call-parser") == parser
    for flag, value in extra.items():
        assert opt(cmd, flag) == value, (flag, cmd)
    assert f"AGENT_MODEL={model}" in res.stdout
    assert "warning" not in res.stderr


@pytest.mark.parametrize(
    ("model", "parser"),
    [
        ("Qwen/Qwen2.5-32B-Instruct-AWQ", "hermes"),
        ("someone/qwen2.5-3b-instruct-finetune", "hermes"),
        ("Qwen/Qwen3-30B-A3B", "hermes"),
        ("Qwen/QwQ-32B", "hermes"),
        ("NousResearch/Hermes-3-Llama-3.1-8B", "hermes"),
        ("Qwen/Qwen3-Coder-480B-A35B-Instruct", "qwen3_coder"),
        ("unsloth/Llama-3.2-3B-Instruct", "llama3_json"),
        ("meta-llama/Llama-3.3-70B-Instruct", "llama3_json"),
        ("/models/meta-llama-3.1-8b-instruct", "llama3_json"),
        ("mistralai/Mistral-Small-24B-Instruct-2501", "mistral"),
    ],
)
def test_dry_run_family_fallback(runner: Runner, model: str, parser: str):
    cmd, res = runner.dry("--model", model)
    assert opt(cmd, "--tool-call-parser") == parser
    assert "--enable-auto-tool-choice" in cmd
    assert opt(cmd, "--max-model-len") is None  # family rules carry no memory settings
    assert opt(cmd, "--gpu-memory-utilization") == "0.9"
    assert "warning" not in res.stderr


def test_dry_run_unknown_model_warns_and_omits_tool_flags(runner: Runner):
    cmd, res = runner.dry("--model", "microsoft/phi-2")
    assert "--enable-auto-tool-choice" not in cmd and "--tool-call-parser" not in cmd
    assert "tool calling will NOT work" in res.stderr
    assert "--parser" in res.stderr
    cmd, res = runner.dry("--model", "microsoft/phi-2", "--parser", "hermes")
    assert opt(cmd, "--tool-call-parser") == "hermes" and "--enable-auto-tool-choice" in cmd
    assert res.stderr == ""


def test_dry_run_flags_override_profile(runner: Runner):
    cmd, res = runner.dry(
        "--model",
        "Qwen/Qwen2.5-7B-Instruct",
        "--tp",
        "2",
        "--gpu-mem",
        "0.8",
        "--max-model-len",
        "8192",
        "--quantization",
        "awq",
        "--max-num-seqs",
        "4",
        "--served-model-name",
        "agent-model",
        "--parser",
        "qwen3_json",
        "--host",
        "0.0.0.0",
        "--port",
        "9001",
    )
    assert cmd[:3] == ["vllm", "serve", "Qwen/Qwen2.5-7B-Instruct"]
    assert opt(cmd, "--host") == "0.0.0.0" and opt(cmd, "--port") == "9001"
    assert opt(cmd, "--tensor-parallel-size") == "2"
    assert opt(cmd, "--gpu-memory-utilization") == "0.8"
    assert opt(cmd, "--max-model-len") == "8192"
    assert opt(cmd, "--quantization") == "awq"
    assert opt(cmd, "--max-num-seqs") == "4"
    assert opt(cmd, "--served-model-name") == "agent-model"
    assert opt(cmd, "--tool-call-parser") == "qwen3_json"
    # a wildcard bind is reached through loopback
    assert "OPENAI_API_BASE=http://127.0.0.1:9001/v1" in res.stdout
    assert "AGENT_MODEL=agent-model" in res.stdout
    assert "without an API key" in res.stderr  # 0.0.0.0 and no key


def test_dry_run_equals_form_and_passthrough(runner: Runner):
    cmd, _ = runner.dry(
        "--model=meta-llama/Llama-3.1-8B-Instruct",
        "--port=8123",
        "--",
        "--chat-template",
        "/tmp/my template.jinja",
        "--enforce-eager",
    )
    assert cmd[2] == "meta-llama/Llama-3.1-8B-Instruct" and opt(cmd, "--port") == "8123"
    assert cmd[-3:] == ["--chat-template", "/tmp/my template.jinja", "--enforce-eager"]


def test_dry_run_relative_paths_resolve_against_cwd(runner: Runner):
    res = runner.run("--dry-run", "--env-file", "sub/my.env", files=False)
    assert res.returncode == 0
    assert f"Would write to {runner.tmp}/sub/my.env" in res.stdout
    res = runner.run("--dry-run", files=False)
    assert f"Would write to {ROOT}/.env" in res.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--port", "abc"],
        ["--port", "0"],
        ["--port", "70000"],
        ["--tp", "0"],
        ["--tp", "two"],
        ["--gpu-mem", "1.5"],
        ["--gpu-mem", "0"],
        ["--gpu-mem", "abc"],
        ["--max-model-len", "-5"],
        ["--max-model-len", "lots"],
        ["--max-num-seqs", "0"],
        ["--max-num-seqs", "x"],
        ["--timeout", "0"],
        ["--timeout", "1m"],
        ["--quantization", "awk"],
        ["--port"],
        ["--bogus"],
        ["--host", "bad host"],
        ["--parser", "bad name"],
        ["--api-key", ""],
    ],
)
def test_invalid_flags_exit_2_with_one_line(runner: Runner, args: list[str]):
    res = subprocess.run(
        [str(SCRIPT), *args], cwd=runner.tmp, env=runner.env, capture_output=True, text=True, timeout=30
    )
    assert res.returncode == 2, res
    assert res.stdout == ""
    assert len(res.stderr.splitlines()) == 1 and res.stderr.startswith("run_vllm.sh: ")
    assert not runner.record.exists()


def test_help(runner: Runner):
    res = runner.run("-h", files=False)
    assert res.returncode == 0
    for text in ("--host 0.0.0.0", "--api-key", "--timeout", "--stop", "--dry-run", "127.0.0.1", "Relative --env-file"):
        assert text in res.stdout


def test_dry_run_never_prints_the_api_key(runner: Runner):
    cmd, res = runner.dry("--api-key", SECRET)
    assert SECRET not in res.stdout + res.stderr
    assert "OPENAI_API_KEY=***" in res.stdout
    assert "--api-key" not in cmd
    # the key can also come from VLLM_API_KEY, which keeps it out of the script's own argv
    cmd, res = runner.dry(env={"VLLM_API_KEY": SECRET})
    assert SECRET not in res.stdout + res.stderr
    assert "OPENAI_API_KEY=***" in res.stdout


# ------------------------------------------------------------------------------------------
# real start against the stub


USER_ENV = (
    "# Work Agent settings\n"
    "export WEATHER_API_KEY='abc 123'\n"
    "\n"
    "OPENAI_API_BASE=http://old-host:9999/v1  # managed by run_vllm.sh\n"
    "  # indented comment\n"
    'AGENT_SYSTEM_NOTE="multi\n'
    'AGENT_MODEL=inside-a-quoted-value"\n'
    "export AGENT_MODEL=old-model\n"
    "AGENT_TEMPERATURE=0.1"  # no final newline
)


def test_start_writes_env_and_stop_stops(runner: Runner):
    port = free_port()
    runner.env_file.write_text(USER_ENV)
    os.chmod(runner.env_file, 0o640)

    res = runner.run("--port", str(port), "--timeout", "60")
    assert res.returncode == 0, res.stdout + res.stderr
    base = f"http://127.0.0.1:{port}/v1"
    assert base in res.stdout
    assert f"--stop --port {port}" in res.stdout
    assert str(runner.log_file) in res.stdout

    # the server is up, /health is 200 with an empty body
    assert get(f"http://127.0.0.1:{port}/health") == (200, b"")
    status, body = get(f"{base}/models")
    assert status == 200 and b'"id": "Qwen/Qwen2.5-7B-Instruct"' in body

    argv, env = read_record(runner.record)
    assert argv[:2] == ["serve", "Qwen/Qwen2.5-7B-Instruct"]
    assert env["VLLM_API_KEY"] == "absent"
    pid = int(env["PID"])
    assert (runner.state / f"vllm-{port}.pid").read_text().strip() == str(pid)

    # every other line, comment and the missing final newline survive
    assert runner.env_file.read_text() == (
        "# Work Agent settings\n"
        "export WEATHER_API_KEY='abc 123'\n"
        "\n"
        f"OPENAI_API_BASE={base}  # managed by run_vllm.sh\n"
        "  # indented comment\n"
        'AGENT_SYSTEM_NOTE="multi\n'
        'AGENT_MODEL=inside-a-quoted-value"\n'
        "export AGENT_MODEL=Qwen/Qwen2.5-7B-Instruct\n"
        "AGENT_TEMPERATURE=0.1\n"
        "OPENAI_API_KEY=EMPTY"
    )
    assert stat.S_IMODE(runner.env_file.stat().st_mode) == 0o640

    # a second start on the same port is refused with the stop command
    again = runner.run("--port", str(port))
    assert again.returncode == 1
    assert "already running" in again.stderr and f"--stop --port {port}" in again.stderr

    stop = runner.run("--stop", "--port", str(port), files=False)
    assert stop.returncode == 0, stop.stderr
    assert wait_until(lambda: pid_gone(pid)), "stub still running after --stop"
    assert wait_until(lambda: port_free(port))
    assert not (runner.state / f"vllm-{port}.pid").exists()

    # stopping again is harmless
    stop = runner.run("--stop", "--port", str(port), files=False)
    assert stop.returncode == 0 and "No vLLM" in stop.stdout


def test_api_key_goes_through_env_and_is_never_printed(runner: Runner):
    port = free_port()
    res = runner.run("--port", str(port), "--api-key", SECRET, "--served-model-name", "agent")
    assert res.returncode == 0, res.stdout + res.stderr
    assert SECRET not in res.stdout + res.stderr
    assert SECRET not in runner.log_file.read_text()

    argv, env = read_record(runner.record)
    assert SECRET not in argv and "--api-key" not in argv
    assert env["VLLM_API_KEY"] == "present"
    assert env["VLLM_API_KEY_SHA256"] == hashlib.sha256(SECRET.encode()).hexdigest()
    assert argv[argv.index("--served-model-name") + 1] == "agent"

    from dotenv import dotenv_values

    values = dotenv_values(runner.env_file)
    assert values == {
        "OPENAI_API_BASE": f"http://127.0.0.1:{port}/v1",
        "OPENAI_API_KEY": SECRET,
        "AGENT_MODEL": "agent",
    }
    assert stat.S_IMODE(runner.env_file.stat().st_mode) == 0o600  # new file holding a key

    base = f"http://127.0.0.1:{port}/v1"
    assert get(f"{base}/models")[0] == 401
    assert get(f"{base}/models", {"Authorization": f"Bearer {SECRET}"})[0] == 200

    pid = int(env["PID"])
    assert runner.run("--stop", "--port", str(port), files=False).returncode == 0
    assert wait_until(lambda: pid_gone(pid))


def test_crash_prints_log_tail_and_oom_hint(runner: Runner):
    port = free_port()
    res = runner.run("--port", str(port), env={"VLLM_STUB_MODE": "crash"})
    assert res.returncode == 1
    assert "exited" in res.stderr
    assert "torch.OutOfMemoryError: CUDA out of memory" in res.stderr  # the log tail
    assert "Hint: the GPU ran out of memory" in res.stderr
    assert "--max-model-len" in res.stderr and "AWQ" in res.stderr
    assert not (runner.state / f"vllm-{port}.pid").exists()
    assert not runner.env_file.exists()


def test_slow_start_times_out_and_kills_the_server(runner: Runner):
    port = free_port()
    started = time.monotonic()
    res = runner.run("--port", str(port), "--timeout", "3", env={"VLLM_STUB_MODE": "slow"})
    assert res.returncode == 1
    assert time.monotonic() - started < 30
    assert "did not become healthy within 3s" in res.stderr
    assert "--timeout" in res.stderr
    pid = int(read_record(runner.record)[1]["PID"])
    assert wait_until(lambda: pid_gone(pid)), "stub was not killed on timeout"
    assert not (runner.state / f"vllm-{port}.pid").exists()
    assert not runner.env_file.exists()


def test_no_gpu_message(runner: Runner):
    res = runner.run("--port", str(free_port()), env={"NVIDIA_STUB_MODE": "none"})
    assert res.returncode != 0
    assert "No NVIDIA GPU found" in res.stderr
    assert "python -m graph.cli run --demo" in res.stderr
    assert not runner.record.exists()


def test_no_nvidia_smi_at_all(runner: Runner):
    path = runner.minimal_path("vllm")
    res = runner.run("--port", str(free_port()), env={"PATH": path})
    assert res.returncode != 0
    assert "No NVIDIA GPU found (nvidia-smi is not installed" in res.stderr
    assert not runner.record.exists()


def test_vllm_not_installed(runner: Runner):
    path = runner.minimal_path("nvidia-smi")
    res = runner.run("--port", str(free_port()), env={"PATH": path})
    assert res.returncode == 1
    assert "pip install -e '.[vllm]'" in res.stderr


def test_port_in_use_is_refused(runner: Runner):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        res = runner.run("--port", str(port))
    assert res.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in res.stderr
    assert "--port N" in res.stderr
    assert not runner.record.exists()


def test_small_gpu_warns(runner: Runner):
    res = runner.run("--port", str(free_port()), env={"NVIDIA_STUB_MEM_MIB": "8192", "VLLM_STUB_MODE": "crash"})
    assert "8.0 GiB of GPU memory found" in res.stderr
    assert "at least 24 GiB" in res.stderr


# ------------------------------------------------------------------------------------------
# configs/profiles.py


def test_profile_for_exact():
    p = profile_for("Qwen/Qwen2.5-7B-Instruct")
    assert isinstance(p, Profile) and p.exact
    assert p.tool_call_parser == "hermes" and p.max_model_len == 16384 and p.quantization is None
    assert 0 < p.gpu_memory_utilization <= 1 and p.min_gpu_gib == 24
    awq = profile_for("qwen/qwen2.5-14b-instruct-awq")  # case-insensitive exact match
    assert awq.exact and awq.quantization == "awq" and awq.model == "qwen/qwen2.5-14b-instruct-awq"
    mistral = profile_for("mistralai/Mistral-7B-Instruct-v0.3")
    assert mistral.extra_args == (
        "--tokenizer-mode",
        "mistral",
        "--config-format",
        "mistral",
        "--load-format",
        "mistral",
    )


def test_profile_for_family_and_unknown():
    fam = profile_for("NousResearch/Hermes-3-Llama-3.1-8B")
    assert not fam.exact and fam.tool_call_parser == "hermes"  # hermes rule precedes llama
    assert fam.max_model_len is None and fam.min_gpu_gib is None and fam.extra_args == ()
    assert parser_for("Qwen/Qwen3-Coder-480B-A35B-Instruct") == "qwen3_coder"
    assert parser_for("QWEN/QWQ-32B") == "hermes"
    assert parser_for("meta-llama/Meta-Llama-3.1-70B-Instruct") == "llama3_json"
    assert parser_for("mistralai/Mistral-Nemo-Instruct-2407") == "mistral"
    assert parser_for("meta-llama/Meta-Llama-3-8B-Instruct") is None  # Llama 3.0: no tool calls
    unknown = profile_for("google/gemma-2-9b-it")
    assert unknown.tool_call_parser is None and not unknown.exact and "--parser" in unknown.notes


def test_all_profiles_use_real_vllm_names():
    for p in profiles.known_models():
        assert p.tool_call_parser in VLLM_PARSERS, p.model
        assert p.quantization in (None, *VLLM_QUANT), p.model
        assert p.min_gpu_gib and p.max_model_len and p.max_num_seqs, p.model
    required = {
        "Qwen/Qwen2.5-7B-Instruct",
        "Qwen/Qwen2.5-7B-Instruct-AWQ",
        "Qwen/Qwen2.5-14B-Instruct",
        "Qwen/Qwen2.5-14B-Instruct-AWQ",
        "Qwen/Qwen3-8B",
        "Qwen/Qwen3-Coder-30B-A3B-Instruct",
        "meta-llama/Llama-3.1-8B-Instruct",
        "mistralai/Mistral-7B-Instruct-v0.3",
        "NousResearch/Hermes-2-Pro-Llama-3-8B",
    }
    assert required <= {p.model for p in profiles.known_models()}


def run_profiles(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    # -S -I: no site-packages, no PYTHONPATH, no cwd on sys.path: proves the script is stdlib-only
    # and does not import the configs package.
    return subprocess.run(
        [sys.executable, "-S", "-I", str(PROFILES_PY), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd or Path("/"),
        timeout=30,
    )


def test_script_shell_output_is_shell_safe():
    model = "evil'; touch /tmp/pwned-$USER; echo 'x $(id) `id`"
    script = (
        'eval "$("$1" -S -I "$2" shell "$3")"; '
        'printf "%s|" "$PARSER" "$GPU_MEM" "$MAX_MODEL_LEN" "$QUANT" "$PROFILE_EXACT" "${#EXTRA_ARGS[@]}"'
    )
    res = subprocess.run(
        ["bash", "-c", script, "_", sys.executable, str(PROFILES_PY), model], capture_output=True, text=True, timeout=30
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout == "|0.9|||0|0|"
    res = subprocess.run(
        [
            "bash",
            "-c",
            script + '; printf "%s," "${EXTRA_ARGS[@]}"',
            "_",
            sys.executable,
            str(PROFILES_PY),
            "mistralai/Mistral-7B-Instruct-v0.3",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.stdout == (
        "mistral|0.9|16384||1|6|--tokenizer-mode,mistral,--config-format,mistral,--load-format,mistral,"
    )


def test_script_list_and_usage():
    res = run_profiles("list")
    assert res.returncode == 0, res.stderr
    assert "Qwen/Qwen2.5-7B-Instruct" in res.stdout and "qwen3_coder" in res.stdout
    assert "llama3_json" in res.stdout and "Family rules" in res.stdout
    assert run_profiles("bogus").returncode == 2


ENV_CASES = [
    # (original, updates, expected)
    ("A=1", {"B": "2"}, "A=1\nB=2"),  # no final newline stays absent
    ("A=1\n", {"B": "2"}, "A=1\nB=2\n"),
    ("", {"B": "2"}, "B=2\n"),
    ("A=1\nB=old\nC=3\n", {"B": "new"}, "A=1\nB=new\nC=3\n"),  # replaced in place
    ("export B=old\n", {"B": "x"}, "export B=x\n"),
    ("  export   B = old # note\n", {"B": "x"}, "  export   B=x # note\n"),
    ("B='a # b' # c\n", {"B": "x"}, "B=x # c\n"),
    ("# B=commented\nB=1\n#B=2", {"B": "3"}, "# B=commented\nB=3\n#B=2"),
    ("B=1\nX=y\nB=2\n", {"B": "3"}, "B=3\nX=y\nB=3\n"),  # every occurrence
    ('M="line1\nB=fake\nline3"\nB=1\n', {"B": "2"}, 'M="line1\nB=fake\nline3"\nB=2\n'),
    ('B="old\nvalue"\nC=1\n', {"B": "x"}, "B=x\nC=1\n"),  # multi-line value replaced whole
    ("A=1\r\nB=2\r\n", {"B": "x", "C": "y"}, "A=1\r\nB=x\r\nC=y\r\n"),
    ("\n\n# only comments\n", {"K": "v"}, "\n\n# only comments\nK=v\n"),
    ("BX=1\nXB=2\n", {"B": "3"}, "BX=1\nXB=2\nB=3\n"),
]


@pytest.mark.parametrize(("original", "updates", "expected"), ENV_CASES)
def test_update_env_text(original: str, updates: dict[str, str], expected: str):
    assert update_env_text(original, updates) == expected


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        "http://127.0.0.1:8000/v1",
        "Qwen/Qwen2.5-7B-Instruct",
        "",
        "has space",
        "hash # inside",
        "it's",
        'say "hi"',
        "both ' and \"",
        "back\\slash",
        "dollar $HOME",
        "equals=sign",
        "tab\there",
        "ünïcode",
    ],
)
def test_quoted_values_round_trip_through_python_dotenv(tmp_path: Path, value: str):
    from dotenv import dotenv_values

    env_file = tmp_path / ".env"
    env_file.write_text("# keep\nOTHER=1\n")
    profiles.set_env(env_file, {"KEY": value})
    assert dotenv_values(env_file) == {"OTHER": "1", "KEY": value}
    assert env_file.read_text().startswith("# keep\nOTHER=1\nKEY=")
    if value in ("plain", "http://127.0.0.1:8000/v1", "Qwen/Qwen2.5-7B-Instruct", ""):
        assert quote_env_value(value) == value  # quoted only when needed


def test_set_env_script_mode(tmp_path: Path):
    env_file = tmp_path / "dir" / "new.env"  # missing file and directory
    res = run_profiles("set-env", str(env_file), "A=1", "SECRET_KEY", env={"SECRET_KEY": "from env"})
    assert res.returncode == 0, res.stderr
    assert env_file.read_text() == "A=1\nSECRET_KEY='from env'\n"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600

    env_file.write_text("# c\nexport A=0")
    os.chmod(env_file, 0o644)
    link = tmp_path / "link.env"
    link.symlink_to(env_file)
    assert run_profiles("set-env", str(link), "A=2", "B=x y").returncode == 0
    assert link.is_symlink()
    assert env_file.read_text() == "# c\nexport A=2\nB='x y'"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o644
    assert [p.name for p in env_file.parent.iterdir()] == ["new.env"]  # no temp files left

    assert run_profiles("set-env", str(env_file), "MISSING_VAR", env={}).returncode == 2
    bad = run_profiles("set-env", str(env_file), "1BAD=x")
    assert bad.returncode == 1 and "invalid environment variable name" in bad.stderr
    assert env_file.read_text() == "# c\nexport A=2\nB='x y'"
