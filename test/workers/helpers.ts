import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { expect } from "vitest";
import { buildApp } from "../../workers/app";

/** The issuer of the dev environment the Workers tests run in. */
export const ISSUER = "http://localhost:8787";
export const ADMIN_TOKEN = "dev-admin-token";
export const MCP_RESOURCE = "http://localhost:8788/mcp";

/** A request to the Worker under test. */
export function call(path: string, init?: RequestInit): Promise<Response> {
  return exports.default.fetch(new Request(new URL(path, ISSUER), init));
}

/** Sends a request to the Worker: `call`, or the app under other settings (`withVars`). */
export type Send = (path: string, init?: RequestInit) => Promise<Response>;

const app = buildApp();

/**
 * The same Worker with some `[vars]` changed (say `REGISTRATION_POLICY`), for testing a setting the
 * dev environment does not have. Durable Objects and KV are the test's own, as for `call`.
 */
export function withVars(vars: Record<string, string>): Send {
  const changed = { ...env, ...vars } as Env;
  return async (path, init) => {
    const ctx = createExecutionContext();
    const res = await app.fetch(new Request(new URL(path, ISSUER), init), changed, ctx);
    await waitOnExecutionContext(ctx);
    return res;
  };
}

/** POST an application/x-www-form-urlencoded body. */
export function postForm(path: string, params: Record<string, string | string[]>, headers: Record<string, string> = {}, send: Send = call): Promise<Response> {
  const body = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) for (const v of [value].flat()) body.append(name, v);
  return send(path, { method: "POST", body, redirect: "manual", headers: { "Content-Type": "application/x-www-form-urlencoded", ...headers } });
}

/** A JSON request to the admin API. */
export function adminCall(method: string, path: string, body?: unknown): Promise<Response> {
  return call(`/admin${path}`, {
    method,
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, ...(body !== undefined ? { "Content-Type": "application/json" } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

export interface CreatedClient {
  client_id: string;
  client_secret?: string;
  [k: string]: unknown;
}

/** Registers a client through the admin API and returns the RFC 7591 response. */
export async function createClient(metadata: Record<string, unknown>): Promise<CreatedClient> {
  const res = await adminCall("POST", "/clients", metadata);
  expect(res.status).toBe(201);
  return res.json();
}

export function basic(id: string, secret: string): string {
  return `Basic ${btoa(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`)}`;
}

/** Asserts an OAuth error response exactly: status and body. */
export async function expectError(res: Response, status: number, error: string, description?: string | RegExp): Promise<void> {
  const body = (await res.json()) as { error: string; error_description: string };
  expect({ status: res.status, error: body.error }).toEqual({ status, error });
  if (typeof description === "string") expect(body.error_description).toBe(description);
  else if (description) expect(body.error_description).toMatch(description);
  expect(Object.keys(body).sort()).toEqual(["error", "error_description"]);
}
