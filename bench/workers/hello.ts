import { Hono } from "hono";

/**
 * Control: the least a Hono Worker can do. JWKS and metadata are measured against it (they should be
 * served from memory, so anything above this is overhead of ours).
 */
const app = new Hono();

app.all("*", (c) => c.json({ hello: "world" }));

export default app;
