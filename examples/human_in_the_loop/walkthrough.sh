#!/usr/bin/env bash
# Human in the loop, step by step (needs a model: OLLAMA_HOST, or see examples/providers).
#   bash examples/human_in_the_loop/walkthrough.sh "dark mode for the dashboard"
set -euo pipefail
te=${TASKENGINE:-taskengine}
chain="$(dirname "$0")/release_notes.yaml"

# 1. Run until just before `review`; the run is stored and paused.
run_id=$("$te" run "$chain" --input "${1:-dark mode for the dashboard}" --break review --json \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["runId"])')
echo "paused run: $run_id"

# 2. Look at it: status paused, the model's draft among the variables.
"$te" runs show "$run_id" --json \
  | python3 -c 'import json, sys; r = json.load(sys.stdin); print(r["status"], "| draft:", r["variables"]["draft"])'

# 3. A person edits the draft and the run continues from the checkpoint to the end.
"$te" resume "$run_id" --set 'draft="Dark mode is here: switch it on under Settings > Theme."'
