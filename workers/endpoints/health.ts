import { Hono } from "hono";
import { methodNotAllowed } from "../middleware/method";
import type { AppEnv } from "../types";

/**
 * `GET /health`: 200 when this isolate's configuration parsed (the app middleware would have answered
 * 500 otherwise) — a liveness check that costs no Durable Object or KV call.
 */
export const health = new Hono<AppEnv>();

health.get("/health", (c) =>
  c.json({ status: "ok", environment: c.get("cfg").ENVIRONMENT, issuer: c.get("cfg").ISSUER }, 200, { "Cache-Control": "no-store" }),
);
health.all("/health", methodNotAllowed("GET"));
