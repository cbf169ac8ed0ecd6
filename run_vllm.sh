#!/usr/bin/env bash
# Start (or stop) a local vLLM OpenAI-compatible server with tool calling for Work Agent,
# wait until it is healthy, and point the agent's .env at it. See ./run_vllm.sh --help.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
PROFILES="$SCRIPT_DIR/configs/profiles.py"
PYTHON=${PYTHON:-python3}
# pid files and default logs; override with RUN_VLLM_STATE_DIR (the tests do).
STATE_DIR=${RUN_VLLM_STATE_DIR:-$SCRIPT_DIR/.vllm}
STOP_GRACE_SECONDS=${RUN_VLLM_STOP_GRACE:-30}
TAIL_LINES=40

# vLLM 0.33 values (shared/docs/vllm-wire.md §1.2).
VLLM_QUANTIZATIONS="awq auto_awq fp8 fbgemm_fp8 fp_quant modelopt modelopt_fp4 modelopt_mxfp8
modelopt_mixed auto_gptq gptq gptq_marlin awq_marlin humming compressed-tensors experts_int8 quark
moe_wna16 torchao inc mxfp4 gpt_oss_mxfp4 deepseek_v4_fp8 online fp8_per_tensor fp8_per_block
fp8_per_channel int8_per_channel_weight_only nvfp4_per_token mxfp8"
VLLM_TOOL_PARSERS="dots deepseek_v3 deepseek_v31 deepseek_v32 deepseek_v4 deepseek_v41
cohere_command3 cohere_command4 ernie45 glm45 glm47 ling3 granite-20b-fc granite granite4 hermes hf
beam poolside_v1 hunyuan_a13b hy_v3 hy_v4 internlm jamba lfm2 kimi_k2 kimi_k3 k2_horizon llama3_json
llama4_json llama4_pythonic longcat mimo minimax_m2 minimax_m3 minicpm5 mistral olmo3 plamo3 muse
muse_glimmer musespark1x openai phi4_mini_json pythonic qwen3_coder qwen3_json qwen3_xml seed_oss
step3 step3p5 step5 inkling xlam gigachat3 functiongemma gemma4 apertus"

usage() {
  cat <<'EOF'
Usage: ./run_vllm.sh [options] [-- extra vllm serve args]
       ./run_vllm.sh --stop [--port P]

Start `vllm serve MODEL` with tool calling (--enable-auto-tool-choice --tool-call-parser ...)
using the model's profile from configs/models.toml, wait for /health, then write
OPENAI_API_BASE, OPENAI_API_KEY and AGENT_MODEL into the env file for the agent.

Options (flags override the model profile; see `python3 configs/profiles.py list`):
  --model M              Hugging Face repo or local path      (default Qwen/Qwen2.5-7B-Instruct)
  --port P               port to serve on                     (default 8000)
  --host H               address to bind                      (default 127.0.0.1, this machine only)
                         --host 0.0.0.0 exposes the server to your network: use --api-key then.
  --tp N                 tensor parallel size (number of GPUs)
  --gpu-mem F            --gpu-memory-utilization, 0 < F <= 1 (profile, else 0.90)
  --max-model-len N      context length in tokens (also 32k, auto)
  --quantization Q       e.g. awq, gptq, fp8 (pre-quantized repos are auto-detected)
  --max-num-seqs N       maximum concurrent sequences
  --api-key K            require `Authorization: Bearer K`. The key reaches vLLM through the
                         VLLM_API_KEY environment variable, never its command line; it is never
                         printed. Setting VLLM_API_KEY instead of --api-key also keeps it out of
                         this script's own command line (visible in `ps`).
  --served-model-name N  model name clients send (default: the --model value)
  --parser NAME          tool-call parser, e.g. hermes, llama3_json, mistral, qwen3_coder
  --timeout SECONDS      how long to wait for /health (default 900; the first start downloads
                         the weights, which can take long)
  --env-file PATH        env file to update (default .env next to this script)
  --log-file PATH        vLLM log (default .vllm/vllm-<port>.log next to this script)
  --dry-run              print the vllm command and the env lines, then exit (no GPU needed)
  --stop                 stop the server this script started on --port, then exit
  -h, --help             this help
  -- ARGS...             passed verbatim to `vllm serve`, e.g. -- --chat-template FILE

Relative --env-file / --log-file paths are resolved against the directory you run the script
from; the defaults live next to the script. pid files go to .vllm/vllm-<port>.pid next to the
script (RUN_VLLM_STATE_DIR overrides that directory).

Examples:
  ./run_vllm.sh                                          # Qwen2.5-7B-Instruct on 127.0.0.1:8000
  ./run_vllm.sh --model Qwen/Qwen2.5-7B-Instruct-AWQ     # 12-16 GiB GPUs
  ./run_vllm.sh --dry-run --model meta-llama/Llama-3.1-8B-Instruct
  VLLM_API_KEY=secret ./run_vllm.sh --host 0.0.0.0 --port 8001
  ./run_vllm.sh --stop --port 8001
EOF
}

say() { printf '%s\n' "$*"; }
warn() { printf 'run_vllm.sh: warning: %s\n' "$*" >&2; }
die() { printf 'run_vllm.sh: %s\n' "$*" >&2; exit 1; }
# Invalid usage: exactly one line on stderr, exit 2.
bad_usage() { printf 'run_vllm.sh: %s (see --help)\n' "$*" >&2; exit 2; }

# Quote one word for a POSIX shell, leaving plain words bare.
shquote() {
  local s=$1
  if [[ -n $s && $s =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
    printf '%s' "$s"
  else
    printf "'%s'" "${s//\'/\'\\\'\'}"
  fi
}

join_quoted() {
  local out="" arg
  for arg in "$@"; do out+="${out:+ }$(shquote "$arg")"; done
  printf '%s' "$out"
}

abspath() { if [[ $1 == /* ]]; then printf '%s' "$1"; else printf '%s/%s' "$PWD" "$1"; fi; }

in_list() { [[ " ${2//$'\n'/ } " == *" $1 "* ]]; }

# ------------------------------------------------------------------------------------------
# Arguments

MODEL=Qwen/Qwen2.5-7B-Instruct
PORT=8000
HOST=127.0.0.1
TIMEOUT=900
TP="" OPT_GPU_MEM="" OPT_MAX_MODEL_LEN="" OPT_QUANT="" OPT_MAX_NUM_SEQS="" OPT_PARSER=""
SERVED_NAME="" ENV_FILE="" LOG_FILE=""
API_KEY="" API_KEY_SET=0
DRY_RUN=0 STOP=0
PASSTHROUGH=()

while (($#)); do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --dry-run) DRY_RUN=1; shift; continue ;;
    --stop) STOP=1; shift; continue ;;
    --) shift; PASSTHROUGH=("$@"); break ;;
    --*=*) set -- "${1%%=*}" "${1#*=}" "${@:2}"; continue ;;
    --model | --port | --host | --tp | --gpu-mem | --max-model-len | --quantization | \
      --max-num-seqs | --api-key | --served-model-name | --parser | --timeout | --env-file | \
      --log-file)
      (($# >= 2)) || bad_usage "$1 needs a value"
      ;;
    *) bad_usage "unknown option '$1'" ;;
  esac
  case $1 in
    --model) MODEL=$2 ;;
    --port) PORT=$2 ;;
    --host) HOST=$2 ;;
    --tp) TP=$2 ;;
    --gpu-mem) OPT_GPU_MEM=$2 ;;
    --max-model-len) OPT_MAX_MODEL_LEN=$2 ;;
    --quantization) OPT_QUANT=$2 ;;
    --max-num-seqs) OPT_MAX_NUM_SEQS=$2 ;;
    --api-key) API_KEY=$2; API_KEY_SET=1 ;;
    --served-model-name) SERVED_NAME=$2 ;;
    --parser) OPT_PARSER=$2 ;;
    --timeout) TIMEOUT=$2 ;;
    --env-file) ENV_FILE=$2 ;;
    --log-file) LOG_FILE=$2 ;;
  esac
  shift 2
done

is_uint() { [[ $1 =~ ^[0-9]{1,9}$ ]]; }
need_int() { # name value min [max]
  if ! is_uint "$2" || ((10#$2 < $3)) || { [[ -n ${4:-} ]] && ((10#$2 > $4)); }; then
    if [[ -n ${4:-} ]]; then
      bad_usage "$1 must be an integer from $3 to $4, got '$2'"
    fi
    bad_usage "$1 must be an integer of at least $3, got '$2'"
  fi
}

need_int --port "$PORT" 1 65535
PORT=$((10#$PORT))
[[ -n $TP ]] && { need_int --tp "$TP" 1; TP=$((10#$TP)); }
need_int --timeout "$TIMEOUT" 1
TIMEOUT=$((10#$TIMEOUT))
[[ -n $OPT_MAX_NUM_SEQS ]] && { need_int --max-num-seqs "$OPT_MAX_NUM_SEQS" 1; OPT_MAX_NUM_SEQS=$((10#$OPT_MAX_NUM_SEQS)); }
if [[ -n $OPT_GPU_MEM ]]; then
  if ! [[ $OPT_GPU_MEM =~ ^([0-9]+(\.[0-9]*)?|\.[0-9]+)$ ]] ||
    ! awk -v v="$OPT_GPU_MEM" 'BEGIN { exit !(v + 0 > 0 && v + 0 <= 1) }'; then
    bad_usage "--gpu-mem must be a fraction of GPU memory, 0 < F <= 1 (e.g. 0.85), got '$OPT_GPU_MEM'"
  fi
fi
if [[ -n $OPT_MAX_MODEL_LEN ]] &&
  ! [[ $OPT_MAX_MODEL_LEN =~ ^[1-9][0-9]{0,8}$ || $OPT_MAX_MODEL_LEN =~ ^[0-9]+(\.[0-9]+)?[kKmM]$ ||
    $OPT_MAX_MODEL_LEN == auto || $OPT_MAX_MODEL_LEN == -1 ]]; then
  bad_usage "--max-model-len must be a positive number of tokens (e.g. 16384, 32k, auto), got '$OPT_MAX_MODEL_LEN'"
fi
if [[ -n $OPT_QUANT ]] && ! in_list "$OPT_QUANT" "$VLLM_QUANTIZATIONS"; then
  bad_usage "--quantization '$OPT_QUANT' is not a vLLM 0.33 method; use one of: $(tr '\n' ' ' <<<"$VLLM_QUANTIZATIONS" | sed 's/ *$//')"
fi
[[ -n $OPT_PARSER && ! $OPT_PARSER =~ ^[A-Za-z0-9_.-]+$ ]] && bad_usage "--parser must be a parser name like hermes, got '$OPT_PARSER'"
[[ $HOST =~ ^[A-Za-z0-9._:-]+$ ]] || bad_usage "--host must be an IP address or host name, got '$HOST'"
[[ -n $MODEL ]] || bad_usage "--model must not be empty"
((API_KEY_SET)) && [[ -z $API_KEY ]] && bad_usage "--api-key must not be empty"
[[ $API_KEY == *$'\n'* ]] && bad_usage "--api-key must be a single line"

PID_FILE="$STATE_DIR/vllm-$PORT.pid"

# ------------------------------------------------------------------------------------------
# Process helpers

is_alive() { # running and not a zombie
  kill -0 "$1" 2>/dev/null || return 1
  local st
  st=$(ps -o stat= -p "$1" 2>/dev/null || true)
  [[ $st != Z* ]]
}

# SIGTERM the process (its whole process group when it leads one, as setsid makes it, so vLLM's
# engine workers go too), wait up to $2 seconds, then SIGKILL.
terminate() {
  local pid=$1 grace=$2 target=$1 pgid deadline
  pgid=$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ' || true)
  [[ $pgid == "$pid" ]] && target="-$pid"
  kill -TERM -- "$target" 2>/dev/null || true
  deadline=$((SECONDS + grace))
  while is_alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
  if is_alive "$pid"; then
    kill -KILL -- "$target" 2>/dev/null || true
    deadline=$((SECONDS + 5))
    while is_alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
  fi
  ! is_alive "$pid"
}

# Exit 0 if something listens on HOST:PORT (binding fails with EADDRINUSE), 1 if free,
# 3 if HOST cannot be bound at all.
port_in_use() {
  "$PYTHON" - "$1" "$2" <<'PY'
import errno, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
sock = socket.socket(family, socket.SOCK_STREAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does; ignores TIME_WAIT
try:
    sock.bind((host, port))
except OSError as exc:
    sys.exit(0 if exc.errno == errno.EADDRINUSE else 3)
finally:
    sock.close()
sys.exit(1)
PY
}

# HTTP status of GET $1 ("000" when nothing answers).
http_status() {
  if command -v curl >/dev/null 2>&1; then
    curl -s -o /dev/null -w '%{http_code}' --connect-timeout 2 --max-time 5 "$1" 2>/dev/null || true
  else
    "$PYTHON" - "$1" <<'PY' 2>/dev/null || printf '000'
import sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as resp:
        print(resp.status, end="")
except urllib.error.HTTPError as exc:
    print(exc.code, end="")
except Exception:
    print("000", end="")
PY
  fi
}

# The address clients use: a wildcard bind is reached through loopback.
case $HOST in
  0.0.0.0) CONNECT_HOST=127.0.0.1 ;;
  ::) CONNECT_HOST='[::1]' ;;
  *:*) CONNECT_HOST="[$HOST]" ;;
  *) CONNECT_HOST=$HOST ;;
esac
BASE_URL="http://$CONNECT_HOST:$PORT/v1"
HEALTH_URL="http://$CONNECT_HOST:$PORT/health"

# Show the stop command the way the user called us.
if [[ $PWD == "$SCRIPT_DIR" ]]; then SELF=./run_vllm.sh; else SELF="$SCRIPT_DIR/run_vllm.sh"; fi
STOP_CMD="$(shquote "$SELF") --stop --port $PORT"

# ------------------------------------------------------------------------------------------
# --stop

if ((STOP)); then
  if [[ ! -f $PID_FILE ]]; then
    say "No vLLM started by run_vllm.sh on port $PORT (no $PID_FILE)."
    if port_in_use 127.0.0.1 "$PORT"; then
      say "Something else listens on port $PORT; \`ss -ltnp | grep :$PORT\` shows which process."
    fi
    exit 0
  fi
  pid=$(head -n 1 "$PID_FILE" | tr -d '[:space:]')
  if ! is_uint "$pid" || ! is_alive "$pid"; then
    rm -f "$PID_FILE"
    say "vLLM on port $PORT was not running (stale pid file removed)."
    exit 0
  fi
  cmdline=$(ps -o args= -p "$pid" 2>/dev/null || true)
  if [[ $cmdline != *vllm* ]]; then
    rm -f "$PID_FILE"
    die "pid $pid from $PID_FILE is not a vLLM process ($cmdline); not killing it. Removed the stale pid file."
  fi
  say "Stopping vLLM on port $PORT (pid $pid)..."
  if ! terminate "$pid" "$STOP_GRACE_SECONDS"; then
    die "pid $pid did not exit after SIGTERM and SIGKILL."
  fi
  rm -f "$PID_FILE"
  say "Stopped."
  exit 0
fi

# ------------------------------------------------------------------------------------------
# Profile: tool-call parser and memory settings

command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON is needed (it reads configs/models.toml)."
profile_sh=$("$PYTHON" "$PROFILES" shell "$MODEL") || die "could not read the model profile ($PROFILES)."
PARSER="" GPU_MEM="" MAX_MODEL_LEN="" MAX_NUM_SEQS="" QUANT="" MIN_GPU_GIB="" PROFILE_EXACT=0 PROFILE_NOTES=""
EXTRA_ARGS=()
eval "$profile_sh" # shlex-quoted assignments from configs/profiles.py

[[ -n $OPT_PARSER ]] && PARSER=$OPT_PARSER
[[ -n $OPT_GPU_MEM ]] && GPU_MEM=$OPT_GPU_MEM
[[ -n $OPT_MAX_MODEL_LEN ]] && MAX_MODEL_LEN=$OPT_MAX_MODEL_LEN
[[ -n $OPT_MAX_NUM_SEQS ]] && MAX_NUM_SEQS=$OPT_MAX_NUM_SEQS
[[ -n $OPT_QUANT ]] && QUANT=$OPT_QUANT

if [[ -z $PARSER ]]; then
  warn "no tool-call parser is known for '$MODEL', so tool calling will NOT work (the agent's tool requests get HTTP 400). Pass --parser NAME, e.g. --parser hermes for Qwen/Hermes-style models; \`python3 configs/profiles.py list\` shows the known ones."
elif ! in_list "$PARSER" "$VLLM_TOOL_PARSERS"; then
  warn "'$PARSER' is not a built-in vLLM 0.33 tool-call parser; vLLM will refuse to start unless a --tool-parser-plugin registers it."
fi

# An API key from the environment counts as --api-key (vLLM would read it anyway).
if ((!API_KEY_SET)) && [[ -n ${VLLM_API_KEY:-} ]]; then
  API_KEY=$VLLM_API_KEY
  API_KEY_SET=1
  say "Using the API key from the VLLM_API_KEY environment variable."
fi
if ((!API_KEY_SET)) && [[ $HOST != 127.* && $HOST != localhost && $HOST != ::1 ]]; then
  warn "--host $HOST makes the server reachable from other machines without an API key; consider --api-key (or VLLM_API_KEY)."
fi

SERVED=${SERVED_NAME:-$MODEL}
ENV_FILE=$(abspath "${ENV_FILE:-$SCRIPT_DIR/.env}")
LOG_FILE=$(abspath "${LOG_FILE:-$STATE_DIR/vllm-$PORT.log}")

# `vllm serve MODEL` (positional model; the `python -m vllm.entrypoints.openai.api_server` form is
# deprecated in 0.33 and silently ignores a positional model).
CMD=(vllm serve "$MODEL" --host "$HOST" --port "$PORT")
[[ -n $PARSER ]] && CMD+=(--enable-auto-tool-choice --tool-call-parser "$PARSER")
CMD+=(--gpu-memory-utilization "$GPU_MEM")
[[ -n $MAX_MODEL_LEN ]] && CMD+=(--max-model-len "$MAX_MODEL_LEN")
[[ -n $TP ]] && CMD+=(--tensor-parallel-size "$TP")
[[ -n $QUANT ]] && CMD+=(--quantization "$QUANT")
[[ -n $MAX_NUM_SEQS ]] && CMD+=(--max-num-seqs "$MAX_NUM_SEQS")
[[ -n $SERVED_NAME ]] && CMD+=(--served-model-name "$SERVED_NAME")
((${#EXTRA_ARGS[@]})) && CMD+=("${EXTRA_ARGS[@]}")
((${#PASSTHROUGH[@]})) && CMD+=("${PASSTHROUGH[@]}")
# The API key is deliberately NOT in CMD: vLLM reads VLLM_API_KEY from its environment
# (vllm-wire.md §7), so the key never shows in `ps`, in this output or in the log.

if ((API_KEY_SET)); then KEY_SHOWN='***'; else KEY_SHOWN=EMPTY; fi

if ((DRY_RUN)); then
  if ((API_KEY_SET)); then
    say "# vLLM command (the API key is passed in the VLLM_API_KEY environment variable, not shown):"
  else
    say "# vLLM command:"
  fi
  join_quoted "${CMD[@]}"
  printf '\n'
  say "# Would write to $ENV_FILE:"
  say "OPENAI_API_BASE=$BASE_URL"
  say "OPENAI_API_KEY=$KEY_SHOWN"
  say "AGENT_MODEL=$(shquote "$SERVED")"
  exit 0
fi

# ------------------------------------------------------------------------------------------
# Pre-flight checks

no_gpu() {
  # shellcheck disable=SC2016 # the backticks are literal text for the user
  printf 'No NVIDIA GPU found (nvidia-smi %s). vLLM needs a CUDA GPU; to try the agent without one run `python -m graph.cli run --demo "What time is it in Tokyo?"`.\n' "$1" >&2
  exit 1
}
command -v nvidia-smi >/dev/null 2>&1 || no_gpu "is not installed or not on PATH"
gpu_list=$(nvidia-smi -L 2>&1) || no_gpu "failed: $(head -n 1 <<<"$gpu_list")"
gpu_count=$(grep -c '^GPU ' <<<"$gpu_list" || true)
((gpu_count > 0)) || no_gpu "lists no GPU"

if ! command -v vllm >/dev/null 2>&1; then
  die "vllm is not installed (no \`vllm\` on PATH). Install it into this environment with: pip install -e '.[vllm]'"
fi

if [[ -f $PID_FILE ]]; then
  old_pid=$(head -n 1 "$PID_FILE" | tr -d '[:space:]')
  if is_uint "$old_pid" && is_alive "$old_pid"; then
    die "a vLLM started by this script is already running on port $PORT (pid $old_pid). Stop it with: $STOP_CMD"
  fi
  rm -f "$PID_FILE"
fi

set +e
port_in_use "$HOST" "$PORT"
port_rc=$?
set -e
case $port_rc in
  0) die "port $PORT on $HOST is already in use. Pick another one with --port N, or stop what holds it (\`ss -ltnp | grep :$PORT\` shows it; a vLLM from this script stops with: $STOP_CMD)." ;;
  1) ;;
  *) die "cannot bind $HOST:$PORT: --host must be an address of this machine (127.0.0.1, 0.0.0.0 or a local IP)." ;;
esac

need_gpus=${TP:-1}
if ((need_gpus > gpu_count)); then
  warn "--tp $need_gpus needs $need_gpus GPUs but nvidia-smi lists $gpu_count."
fi
if [[ -n $MIN_GPU_GIB ]]; then
  total_mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits 2>/dev/null |
    awk -v n="$need_gpus" 'NR <= n && $1 ~ /^[0-9]+$/ { s += $1 } END { print s + 0 }' || true)
  if [[ -n $total_mib ]] && ((total_mib > 0)) &&
    awk -v have="$total_mib" -v need="$MIN_GPU_GIB" 'BEGIN { exit !(have < need * 1024) }'; then
    warn "$(awk -v m="$total_mib" 'BEGIN { printf "%.1f", m / 1024 }') GiB of GPU memory found, but $MODEL is profiled for at least $MIN_GPU_GIB GiB; expect CUDA out of memory. Use a smaller or -AWQ model, a lower --max-model-len, or --tp on more GPUs."
  fi
fi

# ------------------------------------------------------------------------------------------
# Start

mkdir -p "$STATE_DIR" "$(dirname "$LOG_FILE")"
launcher=(nohup)
# setsid: own process group, so --stop can signal vLLM together with its engine workers.
command -v setsid >/dev/null 2>&1 && launcher=(setsid nohup)

say "Starting: $(join_quoted "${CMD[@]}")"
((${#PROFILE_NOTES})) && say "Profile ($([[ $PROFILE_EXACT == 1 ]] && echo "$MODEL" || echo "family rule")): $PROFILE_NOTES"
(
  if ((API_KEY_SET)); then export VLLM_API_KEY="$API_KEY"; else unset VLLM_API_KEY; fi
  exec "${launcher[@]}" "${CMD[@]}" </dev/null >"$LOG_FILE" 2>&1
) &
VLLM_PID=$!
printf '%s\n' "$VLLM_PID" >"$PID_FILE"
say "vLLM pid $VLLM_PID, log: $LOG_FILE"
say "Waiting up to ${TIMEOUT}s for $HEALTH_URL (the first start downloads the model weights)..."

failure_hint() {
  local log=$1
  if grep -qiE 'out of memory|OutOfMemoryError|No available memory for the cache blocks|KV cache is needed|less than desired GPU memory utilization' "$log" 2>/dev/null; then
    say "Hint: the GPU ran out of memory. Lower --max-model-len (e.g. 8192) and --max-num-seqs, use an AWQ model (e.g. Qwen/Qwen2.5-7B-Instruct-AWQ), spread the model with --tp N, or, if other processes use the GPU (see nvidia-smi), lower --gpu-mem (e.g. 0.80)."
  elif grep -qiE 'address already in use|Errno 98' "$log" 2>/dev/null; then
    say "Hint: port $PORT is already in use; pick another one with --port N."
  elif grep -qiE 'invalid tool call parser|requires --tool-call-parser' "$log" 2>/dev/null; then
    say "Hint: vLLM does not know the tool-call parser '$PARSER'; pass a valid --parser (hermes, llama3_json, mistral, qwen3_coder, ...)."
  elif grep -qiE 'Unknown quantization method' "$log" 2>/dev/null; then
    say "Hint: unsupported --quantization '$QUANT'; omit it for pre-quantized repos (auto-detected)."
  elif grep -qiE 'gated repo|GatedRepoError|401 Client Error|Access to model .* is restricted' "$log" 2>/dev/null; then
    say "Hint: $MODEL is a gated Hugging Face repo: accept its licence on huggingface.co and set HF_TOKEN (or run \`huggingface-cli login\`)."
  else
    say "Hint: common causes are CUDA out of memory (lower --max-model-len / --gpu-mem or use an AWQ model), a port already in use (--port), or an unknown tool-call parser (--parser)."
  fi
}

fail() { # message
  {
    say "run_vllm.sh: $1"
    say "----- last $TAIL_LINES lines of $LOG_FILE -----"
    tail -n "$TAIL_LINES" "$LOG_FILE" 2>/dev/null || true
    say "-----"
    failure_hint "$LOG_FILE"
    say "Full log: $LOG_FILE"
  } >&2
  exit 1
}

on_interrupt() {
  trap - INT TERM
  say "Interrupted; stopping vLLM (pid $VLLM_PID)..." >&2
  terminate "$VLLM_PID" 10 || true
  rm -f "$PID_FILE"
  exit 130
}
trap on_interrupt INT TERM

start=$SECONDS
deadline=$((start + TIMEOUT))
next_note=$((start + 30))
while :; do
  if ! is_alive "$VLLM_PID"; then
    rc=0
    wait "$VLLM_PID" 2>/dev/null || rc=$?
    rm -f "$PID_FILE"
    fail "vLLM exited (status $rc) before $HEALTH_URL answered."
  fi
  [[ $(http_status "$HEALTH_URL") == 200 ]] && break
  if ((SECONDS >= deadline)); then
    terminate "$VLLM_PID" 10 || warn "could not stop pid $VLLM_PID"
    wait "$VLLM_PID" 2>/dev/null || true
    rm -f "$PID_FILE"
    fail "vLLM did not become healthy within ${TIMEOUT}s, so it was stopped. A first start may need longer to download the weights: retry with --timeout 1800."
  fi
  if ((SECONDS >= next_note)); then
    say "  still waiting ($((SECONDS - start))s)... tail -f $LOG_FILE shows progress"
    next_note=$((SECONDS + 30))
  fi
  sleep 1
done
trap - INT TERM

# ------------------------------------------------------------------------------------------
# Point the agent at it. The key goes to set-env through the environment, not argv.

if ((API_KEY_SET)); then key_value=$API_KEY; else key_value=EMPTY; fi
if ! OPENAI_API_KEY="$key_value" "$PYTHON" "$PROFILES" set-env "$ENV_FILE" \
  "OPENAI_API_BASE=$BASE_URL" OPENAI_API_KEY "AGENT_MODEL=$SERVED"; then
  die "vLLM is up at $BASE_URL but $ENV_FILE could not be updated; set OPENAI_API_BASE=$BASE_URL, OPENAI_API_KEY and AGENT_MODEL=$SERVED yourself. Stop vLLM with: $STOP_CMD"
fi

say ""
say "vLLM is ready after $((SECONDS - start))s."
say "  Endpoint: $BASE_URL  (model: $SERVED, tool parser: ${PARSER:-none})"
say "  Log:      $LOG_FILE"
say "  Env file: $ENV_FILE (OPENAI_API_BASE, OPENAI_API_KEY, AGENT_MODEL updated)"
say "  Stop it:  $STOP_CMD"
