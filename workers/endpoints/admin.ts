import { Hono, type MiddlewareHandler } from "hono";
import * as v from "valibot";
import { clientInformation } from "../../schemas/client";
import { type InitialAccessToken, InitialAccessTokenInputSchema } from "../../schemas/registration";
import { type Resource, ResourceInputSchema, type User, UserInputSchema, userInformation } from "../../schemas/resource";
import { evict, registry } from "../clients/cache";
import { registerClient } from "../clients/register";
import { now } from "../clock";
import { randomToken, sha256, timingSafeEqualStrings } from "../crypto";
import { InvalidRequest, InvalidToken, NotFound, TemporarilyUnavailable } from "../errors";
import { noStore } from "../middleware/headers";
import { methodNotAllowed } from "../middleware/method";
import { isJson } from "../middleware/registration-body";
import { audit } from "../observe/audit";
import { hashPassword } from "../password";
import type { AppEnv } from "../types";
import { adminAttestation } from "./admin-attestation";

/**
 * Admin API (`Authorization: Bearer <ADMIN_TOKEN>`, JSON): clients, resources, users and RFC 7591
 * initial access tokens; trusted attesters and attestation policies (`admin-attestation.ts`). Without a configured ADMIN_TOKEN every request is refused; deleting a client
 * or user revokes their grants.
 */
export const admin = new Hono<AppEnv>();

const requireAdmin: MiddlewareHandler<AppEnv> = async (c, next) => {
  const expected = c.get("cfg").ADMIN_TOKEN;
  if (!expected) throw new TemporarilyUnavailable("the admin API is disabled: ADMIN_TOKEN is not configured");
  const header = c.req.header("authorization") ?? "";
  const presented = /^Bearer (\S+)$/i.exec(header)?.[1];
  if (!presented || !(await timingSafeEqualStrings(presented, expected))) {
    if (header) audit(c, { event: "admin.refused", outcome: "failure", detail: `${c.req.method} ${new URL(c.req.url).pathname}` });
    const error = new InvalidToken("a valid admin bearer token is required");
    // RFC 6750 §3.1: a request with no credentials gets the challenge without an error code.
    error.headers["WWW-Authenticate"] = header ? `Bearer realm="latchkey-admin", error="invalid_token"` : `Bearer realm="latchkey-admin"`;
    throw error;
  }
  await next();
};

/** Every successful change through the admin API is an audit event. */
const auditChanges: MiddlewareHandler<AppEnv> = async (c, next) => {
  await next();
  if (c.req.method !== "GET" && c.res.status < 300) {
    // What was created, by its id: the path names everything else.
    const created =
      c.res.status === 201
        ? ((await c.res
            .clone()
            .json()
            .catch(() => ({}))) as { id?: unknown; client_id?: unknown })
        : {};
    const id = typeof created.client_id === "string" ? created.client_id : typeof created.id === "string" ? created.id : undefined;
    audit(c, { event: "admin.changed", outcome: "success", detail: `${c.req.method} ${new URL(c.req.url).pathname}${id ? ` created=${id}` : ""}` });
  }
};

admin.use(noStore, requireAdmin, auditChanges);
admin.route("/", adminAttestation);

/** An admin request's body: a JSON object (valibot's `v.object` would take an array), else 400 `invalid_request`. */
export async function json(c: { req: { json: () => Promise<unknown>; header: (n: string) => string | undefined } }): Promise<Record<string, unknown>> {
  if (!isJson(c.req.header("content-type"))) throw new InvalidRequest("the request body must be application/json");
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    throw new InvalidRequest("the request body is not valid JSON");
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new InvalidRequest("the request body must be a JSON object");
  return body as Record<string, unknown>;
}

export function parse<S extends v.GenericSchema>(schema: S, input: unknown): v.InferOutput<S> {
  const result = v.safeParse(schema, input);
  if (!result.success) {
    const issue = result.issues[0];
    throw new InvalidRequest(`${v.getDotPath(issue) ?? "body"}: ${issue.message}`);
  }
  return result.output;
}

// ── clients ──────────────────────────────────────────────────────────────────────────────────
admin.post("/clients", async (c) => c.json(await registerClient(c.env, c.get("cfg"), await json(c), "admin"), 201));

admin.get("/clients/:id", async (c) => {
  const client = await registry(c.env).getClient(c.req.param("id"));
  if (!client) throw new NotFound("no such client");
  return c.json(clientInformation(client));
});

admin.delete("/clients/:id", async (c) => {
  const id = c.req.param("id");
  const result = await registry(c.env).deleteClient(id);
  if (!result.ok) throw new NotFound("no such client");
  evict(`client:${id}`);
  return c.body(null, 204);
});

// ── initial access tokens (RFC 7591 §3; REGISTRATION_POLICY=initial_access_token) ──────────
admin.post("/initial-access-tokens", async (c) => {
  const input = parse(InitialAccessTokenInputSchema, await json(c));
  const t = now();
  const token = `lki_${randomToken(32)}`;
  const record: InitialAccessToken = {
    id: `iat_${randomToken(12)}`,
    created_at: t,
    ...(input.expires_in !== undefined ? { expires_at: t + input.expires_in } : {}),
    ...(input.max_uses !== undefined ? { uses_left: input.max_uses } : {}),
    ...(input.description !== undefined ? { description: input.description } : {}),
  };
  await registry(c.env).createInitialAccessToken({ token_hash: await sha256(token), token: record });
  // The token is shown once; the Registry keeps only its hash.
  return c.json({ ...record, initial_access_token: token }, 201);
});

admin.get("/initial-access-tokens/:id", async (c) => {
  const token = await registry(c.env).getInitialAccessToken(c.req.param("id"));
  if (!token) throw new NotFound("no such initial access token");
  return c.json(token);
});

admin.delete("/initial-access-tokens/:id", async (c) => {
  const result = await registry(c.env).deleteInitialAccessToken(c.req.param("id"));
  if (!result.ok) throw new NotFound("no such initial access token");
  return c.body(null, 204);
});

// ── resources ────────────────────────────────────────────────────────────────────────────────
admin.post("/resources", async (c) => {
  const input = parse(ResourceInputSchema, await json(c));
  const resource: Resource = { ...input, scopes_supported: [...new Set(input.scopes_supported)], id: `res_${randomToken(12)}`, created_at: now() };
  const created = await registry(c.env).createResource(resource);
  if (!created.ok) throw new InvalidRequest(`resource ${input.resource} is already registered`);
  evict(`resource-uri:${resource.resource}`);
  return c.json(resource, 201);
});

admin.get("/resources/:id", async (c) => {
  const resource = await registry(c.env).getResource(c.req.param("id"));
  if (!resource) throw new NotFound("no such resource");
  return c.json(resource);
});

/** Replaces a resource's name, scopes and opening to self-registered clients; its identifier stays, and so does its policy. */
admin.put("/resources/:id", async (c) => {
  const input = parse(ResourceInputSchema, await json(c));
  const updated = await registry(c.env).updateResource(c.req.param("id"), { ...input, scopes_supported: [...new Set(input.scopes_supported)] });
  if (!updated.ok && updated.reason === "not_found") throw new NotFound("no such resource");
  if (!updated.ok) throw new InvalidRequest("resource (the identifier) cannot change; register another resource for another identifier");
  evict(`resource-uri:${updated.resource.resource}`);
  return c.json(updated.resource);
});

admin.delete("/resources/:id", async (c) => {
  const reg = registry(c.env);
  const resource = await reg.getResource(c.req.param("id"));
  const result = resource ? await reg.deleteResource(resource.id) : { ok: false as const };
  if (!resource || !result.ok) throw new NotFound("no such resource");
  evict(`resource-uri:${resource.resource}`);
  return c.body(null, 204);
});

// ── users ────────────────────────────────────────────────────────────────────────────────────
admin.post("/users", async (c) => {
  const input = parse(UserInputSchema, await json(c));
  const user: User = { id: `usr_${randomToken(12)}`, email: input.email, name: input.name, password: await hashPassword(input.password), created_at: now() };
  const created = await registry(c.env).createUser(user);
  if (!created.ok) throw new InvalidRequest(`a user with email ${input.email} already exists`);
  return c.json(userInformation(user), 201);
});

admin.get("/users/:id", async (c) => {
  const user = await registry(c.env).getUser(c.req.param("id"));
  if (!user) throw new NotFound("no such user");
  return c.json(userInformation(user));
});

admin.delete("/users/:id", async (c) => {
  const result = await registry(c.env).deleteUser(c.req.param("id"));
  if (!result.ok) throw new NotFound("no such user");
  return c.body(null, 204);
});

// Other methods on these paths: 405 with Allow (RFC 9110 §15.5.6), once the admin token has been checked.
const ALLOWED = {
  "/clients": "POST",
  "/clients/:id": "GET, DELETE",
  "/initial-access-tokens": "POST",
  "/initial-access-tokens/:id": "GET, DELETE",
  "/resources": "POST",
  "/resources/:id": "GET, PUT, DELETE",
  "/users": "POST",
  "/users/:id": "GET, DELETE",
};
for (const [path, allow] of Object.entries(ALLOWED)) admin.all(path, methodNotAllowed(allow));
