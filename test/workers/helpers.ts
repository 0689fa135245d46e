import { exports } from "cloudflare:workers";
import { expect } from "vitest";

/** The issuer of the dev environment the Workers tests run in. */
export const ISSUER = "http://localhost:8787";
export const ADMIN_TOKEN = "dev-admin-token";
export const MCP_RESOURCE = "http://localhost:8788/mcp";

/** A request to the Worker under test. */
export function call(path: string, init?: RequestInit): Promise<Response> {
  return exports.default.fetch(new Request(new URL(path, ISSUER), init));
}

/** POST an application/x-www-form-urlencoded body. */
export function postForm(path: string, params: Record<string, string | string[]>, headers: Record<string, string> = {}): Promise<Response> {
  const body = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) for (const v of [value].flat()) body.append(name, v);
  return call(path, { method: "POST", body, redirect: "manual", headers: { "Content-Type": "application/x-www-form-urlencoded", ...headers } });
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
