// CPU time of a process from /proc, the way `ps` reads it: user + system time of every thread.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

/** Clock ticks per second of /proc/<pid>/stat times. */
const CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;

function stat(pid) {
  const text = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name is in parentheses and may hold spaces; the fields after it are space-separated.
  return { comm: text.slice(text.indexOf("(") + 1, text.lastIndexOf(")")), fields: text.slice(text.lastIndexOf(")") + 2).split(" ") };
}

/** CPU time (user + system, every thread) the process has used so far, in milliseconds. */
export function cpuMs(pid) {
  const { fields } = stat(pid);
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
}

/** Pids of this process's children whose command is `comm`. */
export function childPids(comm) {
  const pids = new Set();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const s = stat(entry);
      if (Number(s.fields[1]) === process.pid && s.comm === comm) pids.add(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}
