// taskengine inspector: live refresh of the runs list, live updates of a run (server-sent events).
"use strict";

function refreshRuns() {
  const table = document.getElementById("runs-table");
  const live = document.getElementById("live-refresh");
  if (!table || !live) return;
  setInterval(async () => {
    if (!live.checked || document.hidden) return;
    const reply = await fetch(table.dataset.refresh, { credentials: "same-origin" });
    if (reply.ok) document.getElementById("runs-rows").innerHTML = await reply.text();
  }, 3000);
}

function followRun() {
  const run = document.getElementById("run");
  if (!run || !window.EventSource) return;
  const source = new EventSource(`/ui/runs/${run.dataset.run}/events`);
  source.addEventListener("update", (event) => {
    const data = JSON.parse(event.data);
    const changed = data.status !== run.dataset.status || String(data.steps) !== run.dataset.steps;
    if (changed) {
      source.close();
      window.location.reload();
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  refreshRuns();
  followRun();
});
