// `npm run dev`: the authorization server (http://localhost:8787) and the example MCP server
// (http://localhost:8788/mcp) under local workerd, side by side. Ctrl-C stops both.
import { spawn } from "node:child_process";

const env = { ...process.env, WRANGLER_SEND_METRICS: "false" };
const servers = [
  ["authorization server", ["dev", "--env", "dev", "--port", "8787", "--ip", "localhost"]],
  ["example MCP server", ["dev", "-c", "workers/example-mcp/wrangler.toml", "--port", "8788", "--ip", "localhost", "--inspector-port", "9230"]],
];

const children = servers.map(([name, args]) => {
  const child = spawn("wrangler", args, { stdio: ["ignore", "inherit", "inherit"], env });
  child.on("exit", (code) => {
    console.log(`${name} exited (${code}); stopping`);
    stop(code ?? 0);
  });
  return child;
});

function stop(code) {
  for (const child of children) if (child.exitCode === null) child.kill("SIGINT");
  process.exitCode = code;
}
process.on("SIGINT", () => stop(0));
process.on("SIGTERM", () => stop(0));
