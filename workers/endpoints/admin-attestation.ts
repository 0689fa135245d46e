import { Hono } from "hono";
import * as v from "valibot";
import { AttestationPolicySchema, type Attester, AttesterInputSchema } from "../../schemas/attestation";
import { unusableJwk } from "../../schemas/client";
import { evict, registry } from "../clients/cache";
import { outboundPolicy, outboundUrlProblem } from "../clients/safe-fetch";
import { now } from "../clock";
import { randomToken } from "../crypto";
import { InvalidRequest, NotFound, unreachable } from "../errors";
import { methodNotAllowed } from "../middleware/method";
import type { AppEnv } from "../types";
import { json, parse } from "./admin";

/**
 * Admin API for attestation (mounted under `/admin` behind its bearer token and audit):
 *
 *   POST   /attesters                     trusted Client Attester: issuer, jwks | jwks_uri, clients it vouches for
 *   GET    /attesters, /attesters/{id}    DELETE /attesters/{id}
 *   PUT    /policies/clients/{client_id}  attestation policy of a client      GET, DELETE likewise
 *   PUT    /policies/resources/{id}       attestation policy of a resource    GET, DELETE likewise
 *
 * Changes write through to KV and this isolate; other isolates see them within CLIENT_CACHE_TTL + 60 s.
 */
export const adminAttestation = new Hono<AppEnv>();

// ── trusted attesters ──────────────────────────────────────────────────────────────────────────
adminAttestation.post("/attesters", async (c) => {
  const input = parse(AttesterInputSchema, await json(c));
  const unusable = await unusableJwk(input.jwks);
  if (unusable) throw new InvalidRequest(unusable.description, unusable.detail);
  if (input.jwks_uri) {
    const problem = outboundUrlProblem(input.jwks_uri, outboundPolicy(c.get("cfg")));
    if (problem) throw new InvalidRequest(`jwks_uri ${problem}`);
  }
  const attester: Attester = { ...input, id: `att_${randomToken(12)}`, created_at: now() };
  const created = await registry(c.env).createAttester(attester);
  if (!created.ok) {
    switch (created.reason) {
      case "exists":
        throw new InvalidRequest(`an attester with issuer ${input.issuer} is already configured`);
      case "too_many":
        throw new InvalidRequest("too many attesters are configured");
      default:
        unreachable(created.reason);
    }
  }
  evict("attesters");
  return c.json(attester, 201);
});

adminAttestation.get("/attesters", async (c) => c.json({ attesters: await registry(c.env).listAttesters() }));

adminAttestation.get("/attesters/:id", async (c) => {
  const attester = (await registry(c.env).listAttesters()).find((a) => a.id === c.req.param("id"));
  if (!attester) throw new NotFound("no such attester");
  return c.json(attester);
});

adminAttestation.delete("/attesters/:id", async (c) => {
  const result = await registry(c.env).deleteAttester(c.req.param("id"));
  if (!result.ok) throw new NotFound("no such attester");
  evict("attesters");
  return c.body(null, 204);
});

// ── policies on clients and resources ──────────────────────────────────────────────────────────
const targets = {
  clients: (id: string) => ({ kind: "client" as const, client_id: id }),
  resources: (id: string) => ({ kind: "resource" as const, id }),
};
type Kind = keyof typeof targets;

function target(kind: string, id: string) {
  if (!(kind in targets)) throw new NotFound("no such endpoint");
  return targets[kind as Kind](id);
}

adminAttestation.put("/policies/:kind/:id", async (c) => {
  const policy = parse(AttestationPolicySchema, await json(c));
  const result = await registry(c.env).setPolicy(target(c.req.param("kind"), c.req.param("id")), policy);
  if (!result.ok) throw new NotFound(`no such ${c.req.param("kind") === "clients" ? "client" : "resource"}`);
  evict(result.cache_key);
  return c.json(policy);
});

adminAttestation.get("/policies/:kind/:id", async (c) => {
  const t = target(c.req.param("kind"), c.req.param("id"));
  const reg = registry(c.env);
  const record = t.kind === "client" ? await reg.getClient(t.client_id) : await reg.getResource(t.id);
  if (!record) throw new NotFound(`no such ${t.kind}`);
  return c.json(record.attestation_policy ?? v.getDefaults(AttestationPolicySchema));
});

adminAttestation.delete("/policies/:kind/:id", async (c) => {
  const result = await registry(c.env).setPolicy(target(c.req.param("kind"), c.req.param("id")), null);
  if (!result.ok) throw new NotFound(`no such ${c.req.param("kind") === "clients" ? "client" : "resource"}`);
  evict(result.cache_key);
  return c.body(null, 204);
});

// Other methods on these paths: 405 with Allow (RFC 9110 §15.5.6); the admin token is checked first.
adminAttestation.all("/attesters", methodNotAllowed("GET, POST"));
adminAttestation.all("/attesters/:id", methodNotAllowed("GET, DELETE"));
for (const kind of Object.keys(targets)) adminAttestation.all(`/policies/${kind}/:id`, methodNotAllowed("GET, PUT, DELETE"));
