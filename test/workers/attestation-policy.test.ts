import { env, exports } from "cloudflare:workers";
import { decodeJwt } from "jose";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { createTokenVerifier } from "../../workers/resource-server";
import { decideNewest, signedInBrowser } from "./approvals";
import { attestationHeaders, Instance, serverChallenge, TestAttester } from "./attestation";
import type { Browser } from "./browser";
import { adminCall, basic, type CreatedClient, call, createClient, expectError, ISSUER, postForm } from "./helpers";

/**
 * Attestation policy (README "Attestation policy"): per client and per resource, managed through
 * `/admin/policies`, evaluated on every token request; EAT attestation results (RFC 9711) becoming
 * facts; the `attested` claim and the resource-server kit; trusted attesters through `/admin/attesters`.
 */
const RESOURCE = "https://data.example/api";
let resourceId: string;
let agent: CreatedClient;
let plain: CreatedClient;
let attester: TestAttester;
let instance: Instance;

const GOOD = { model_provider: "anthropic", model: "claude", runtime: "workerd", swname: "agent-kit", swversion: "2.1.0", dbgstat: "disabled-permanently" };

beforeAll(async () => {
  const res = await adminCall("POST", "/resources", { resource: RESOURCE, name: "Data API", scopes_supported: ["data:read", "data:write"] });
  resourceId = ((await res.json()) as { id: string }).id;
  agent = await createClient({ grant_types: ["client_credentials"], token_endpoint_auth_method: "attest_jwt_client_auth" });
  plain = await createClient({ grant_types: ["client_credentials"] });
  attester = await TestAttester.generate("https://verifier.example");
  await attester.register(["lk_*"]);
  instance = await Instance.generate();
  const policy = {
    require_attestation: ["data:write"],
    model_providers: ["anthropic"],
    runtimes: ["workerd"],
    min_swversion: "2.0",
    dbgstat: ["disabled-permanently", "disabled-fully-and-permanently"],
    unattested_max_token_lifetime: 120,
  };
  expect((await adminCall("PUT", `/policies/resources/${resourceId}`, policy)).status).toBe(200);
});

afterEach(() => vi.restoreAllMocks());

async function attested(claims: Record<string, unknown>, scope: string): Promise<Response> {
  const headers = attestationHeaders(await attester.attest(agent.client_id, instance, { claims }), await instance.pop());
  return postForm("/token", { grant_type: "client_credentials", resource: RESOURCE, scope }, headers);
}

function unattested(scope: string): Promise<Response> {
  return postForm(
    "/token",
    { grant_type: "client_credentials", resource: RESOURCE, scope },
    { Authorization: basic(plain.client_id, plain.client_secret as string) },
  );
}

describe("policy on a resource", () => {
  it("issues to an attested client whose facts satisfy it, carrying them in `attested`", async () => {
    const res = await attested(GOOD, "data:write");
    const body = (await res.json()) as { access_token: string; expires_in: number };
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body.expires_in).toBe(600);
    expect(decodeJwt(body.access_token).attested).toEqual({ iss: attester.issuer, jkt: instance.jkt, pop: "attestation_pop_jwt", ...GOOD });
    const verify = createTokenVerifier({
      issuer: ISSUER,
      resource: RESOURCE,
      fetch: ((input: RequestInfo | URL, init?: RequestInit) => exports.default.fetch(new Request(input, init))) as typeof fetch,
    });
    expect(await verify(body.access_token)).toMatchObject({
      ok: true,
      token: { attested: { model_provider: "anthropic", swversion: "2.1.0", jkt: instance.jkt } },
    });
  });

  it("refuses an unattested client a scope that needs attestation, audited; limits the lifetime of the others", async () => {
    const lines: string[] = [];
    vi.spyOn(console, "log").mockImplementation((...args: unknown[]) => void lines.push(args.map(String).join(" ")));
    await expectError(await unattested("data:write"), 403, "access_denied", "client attestation is required for scope data:write");
    expect(lines.some((l) => l.includes('"event":"policy.denied"') && l.includes("attestation missing for data:write"))).toBe(true);
    const res = await unattested("data:read");
    const body = (await res.json()) as { access_token: string; expires_in: number };
    expect({ status: res.status, expires_in: body.expires_in }).toEqual({ status: 200, expires_in: 120 });
    const claims = decodeJwt(body.access_token);
    expect((claims.exp as number) - (claims.iat as number)).toBe(120);
    expect(claims).not.toHaveProperty("attested");
  });

  it("refuses attestation results that violate it, naming the claim and not the accepted values", async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ ...GOOD, model_provider: "elsewhere" }, "model_provider not accepted"],
      [{ ...GOOD, swversion: "1.9.9" }, "swversion too old"],
      [{ ...GOOD, runtime: undefined }, "runtime missing"],
      [{ ...GOOD, dbgstat: "enabled" }, "dbgstat not accepted"],
    ];
    for (const [claims, problem] of cases) {
      await expectError(
        await attested(claims, "data:read"),
        403,
        "access_denied",
        `the client attestation does not satisfy the policy for this request: ${problem}`,
      );
    }
  });
});

describe("EAT attestation results (RFC 9711)", () => {
  it("accepts an eat_nonce that is our current challenge and refuses a stale one", async () => {
    expect((await attested({ ...GOOD, eat_nonce: [await serverChallenge()] }, "data:read")).status).toBe(200);
    await expectError(
      await attested({ ...GOOD, eat_nonce: "b2xkLW5vbmNl" }, "data:read"),
      400,
      "use_fresh_attestation",
      "the client attestation's eat_nonce is not a recent challenge from this server",
    );
  });

  it("requires an eat_profile the attester is configured for", async () => {
    const profiled = await TestAttester.generate("https://profiled.example");
    await profiled.register(["lk_*"], { eat_profiles: ["urn:example:agent-profile:1"] });
    const send = async (claims: Record<string, unknown>) =>
      postForm(
        "/token",
        { grant_type: "client_credentials", resource: RESOURCE, scope: "data:read" },
        attestationHeaders(await profiled.attest(agent.client_id, instance, { claims: { ...GOOD, ...claims } }), await instance.pop()),
      );
    expect((await send({ eat_profile: "urn:example:agent-profile:1" })).status).toBe(200);
    await expectError(
      await send({ eat_profile: "urn:example:other" }),
      401,
      "invalid_client_attestation",
      "the client attestation's eat_profile is not one this server accepts from its attester",
    );
  });
});

describe("policy on a client, and changes taking effect", () => {
  it("applies a client's policy at once after an admin change, writes it through to KV, and lifts it on delete", async () => {
    expect((await unattested("data:read")).status).toBe(200);
    const put = await adminCall("PUT", `/policies/clients/${plain.client_id}`, { require_attestation: true });
    expect(await put.json()).toEqual({ require_attestation: true });
    await expectError(await unattested("data:read"), 403, "access_denied", "client attestation is required for this request");
    const cached = await env.CLIENT_CACHE.get<{ attestation_policy?: unknown }>(`client:${plain.client_id}`, "json");
    expect(cached?.attestation_policy).toEqual({ require_attestation: true });
    expect(await (await adminCall("GET", `/policies/clients/${plain.client_id}`)).json()).toEqual({ require_attestation: true });
    expect((await adminCall("DELETE", `/policies/clients/${plain.client_id}`)).status).toBe(204);
    expect((await unattested("data:read")).status).toBe(200);
  });

  it("refuses attesters a client's policy does not accept", async () => {
    await adminCall("PUT", `/policies/clients/${agent.client_id}`, { attesters: ["https://someone-else.example"] });
    await expectError(
      await attested(GOOD, "data:read"),
      403,
      "access_denied",
      "the client attestation does not satisfy the policy for this request: attester not accepted",
    );
    await adminCall("DELETE", `/policies/clients/${agent.client_id}`);
  });

  it("validates policies and answers 404 for unknown records", async () => {
    await expectError(
      await adminCall("PUT", `/policies/clients/${agent.client_id}`, { min_swversion: "v2" }),
      400,
      "invalid_request",
      "min_swversion: must be dot-separated numbers",
    );
    await expectError(await adminCall("PUT", "/policies/clients/nobody", {}), 404, "not_found", "no such client");
    await expectError(await adminCall("PUT", "/policies/widgets/x", {}), 404, "not_found", "no such endpoint");
  });
});

describe("policy on asynchronous grants (CIBA, device authorization)", () => {
  const CIBA = "urn:openid:params:grant-type:ciba";
  const cibaClient = (extra: Record<string, unknown> = {}) =>
    createClient({ grant_types: [CIBA], token_endpoint_auth_method: "client_secret_basic", backchannel_token_delivery_mode: "poll", ...extra });
  const basicOf = (client: CreatedClient): Record<string, string> => ({ Authorization: basic(client.client_id, client.client_secret as string) });
  const ask = (client: CreatedClient, scope: string, headers = basicOf(client)) =>
    postForm("/bc-authorize", { scope: `openid ${scope}`, resource: RESOURCE, login_hint: "alice@example.com", binding_message: `P${scope.length}` }, headers);
  const poll = (client: CreatedClient, id: string, headers = basicOf(client)) => postForm("/token", { grant_type: CIBA, auth_req_id: id }, headers);
  let alice: Browser;
  beforeAll(async () => {
    alice = await signedInBrowser();
  });

  async function approved(res: Response): Promise<string> {
    const body = (await res.json()) as { auth_req_id: string };
    expect(res.status, JSON.stringify(body)).toBe(200);
    await decideNewest(alice, "approve");
    return body.auth_req_id;
  }

  it("refuses before anyone is asked when the client may not have the scope unattested", async () => {
    const client = await cibaClient();
    await expectError(await ask(client, "data:write"), 403, "access_denied", "client attestation is required for scope data:write");
    const tv = await createClient({ grant_types: ["urn:ietf:params:oauth:grant-type:device_code"], token_endpoint_auth_method: "none" });
    await expectError(
      await postForm("/device_authorization", { client_id: tv.client_id, scope: "data:write", resource: RESOURCE }),
      403,
      "access_denied",
      "client attestation is required for scope data:write",
    );
  });

  it("applies the policy when the tokens are issued: an unattested client's lifetime, a policy added meanwhile, the approval kept", async () => {
    const client = await cibaClient();
    const id = await approved(await ask(client, "data:read"));
    expect((await adminCall("PUT", `/policies/clients/${client.client_id}`, { require_attestation: true })).status).toBe(200);
    await expectError(await poll(client, id), 403, "access_denied", "client attestation is required for this request");
    expect((await adminCall("DELETE", `/policies/clients/${client.client_id}`)).status).toBe(204);
    const res = await poll(client, id);
    const body = (await res.json()) as { access_token: string; expires_in: number };
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body.expires_in).toBe(120);
  });

  it("issues to an attested client what it may not have unattested, with the poll's facts in `attested`", async () => {
    const client = await cibaClient({ token_endpoint_auth_method: "attest_jwt_client_auth" });
    const headers = async () => attestationHeaders(await attester.attest(client.client_id, instance, { claims: GOOD }), await instance.pop());
    const id = await approved(await ask(client, "data:write", await headers()));
    const res = await poll(client, id, await headers());
    const body = (await res.json()) as { access_token: string; expires_in: number };
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body.expires_in).toBe(600);
    expect(decodeJwt(body.access_token)).toMatchObject({ scope: "data:write", attested: { jkt: instance.jkt, model_provider: "anthropic" } });
  });
});

describe("trusted attesters (/admin/attesters)", () => {
  it("creates, lists, reads and deletes; a deleted attester's attestations stop counting", async () => {
    const temp = await TestAttester.generate("https://temporary.example");
    const { id } = await temp.register([agent.client_id]);
    expect(((await (await adminCall("GET", "/attesters")).json()) as { attesters: Array<{ id: string }> }).attesters.map((a) => a.id)).toContain(id);
    expect(await (await adminCall("GET", `/attesters/${id}`)).json()).toMatchObject({ id, issuer: temp.issuer, clients: [agent.client_id] });
    const send = async () =>
      postForm(
        "/token",
        { grant_type: "client_credentials", resource: RESOURCE, scope: "data:read" },
        attestationHeaders(await temp.attest(agent.client_id, instance, { claims: GOOD }), await instance.pop()),
      );
    expect((await send()).status).toBe(200);
    expect((await adminCall("DELETE", `/attesters/${id}`)).status).toBe(204);
    await expectError(await send(), 401, "invalid_client_attestation", "the client attestation is not from an attester trusted for this client");
    await expectError(await adminCall("GET", `/attesters/${id}`), 404, "not_found", "no such attester");
  });

  it("refuses bad attester records", async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ issuer: "https://x.example", clients: ["a"] }, "body: exactly one of jwks and jwks_uri is required"],
      [{ issuer: "https://x.example", jwks_uri: "https://10.0.0.1/jwks", clients: ["a"] }, "jwks_uri must not point to a special-use IP address (private-use)"],
      [{ issuer: "https://x.example", jwks: { keys: [attester.jwk] }, clients: ["a*b"] }, "clients.0: may hold one *, at the end"],
      [
        { issuer: "https://x.example", jwks: { keys: [{ kty: "EC", crv: "P-256", x: "bad", y: "bad" }] }, clients: ["a"] },
        "jwks.keys.0: is not a usable ES256 public key",
      ],
      [{ issuer: "https://x.example", jwks: { keys: [{ ...attester.jwk, alg: "PS256" }] }, clients: ["a"] }, "jwks.keys.0: is not a usable PS256 public key"],
      [{ issuer: attester.issuer, jwks: { keys: [attester.jwk] }, clients: ["a"] }, `an attester with issuer ${attester.issuer} is already configured`],
    ];
    for (const [body, description] of cases) await expectError(await adminCall("POST", "/attesters", body), 400, "invalid_request", description);
  });

  it("answers 405 with Allow to other methods, after checking the admin token", async () => {
    for (const method of ["PUT", "PATCH", "DELETE"]) {
      const res = await adminCall(method, "/attesters");
      expect(res.headers.get("allow")).toBe("GET, POST");
      await expectError(res, 405, "method_not_allowed", "use GET, POST");
    }
    const one = await adminCall("PUT", "/attesters/att_x");
    expect(one.headers.get("allow")).toBe("GET, DELETE");
    await expectError(one, 405, "method_not_allowed", "use GET, DELETE");
    await expectError(await call("/admin/attesters", { method: "PUT" }), 401, "invalid_token", "a valid admin bearer token is required");
  });
});

describe("versions compared as semantic versions (min_swversion)", () => {
  it("orders numeric cores, ignores build metadata and puts a pre-release below its release", async () => {
    const { versionAtLeast } = await import("../../workers/attestation/eat");
    const cases: Array<[string, string, boolean]> = [
      ["2.10.0", "2.9", true],
      ["2.10.0+build.5", "2.9", true],
      ["2.10.0-rc.1", "2.9", true],
      ["2.0.0-rc.1", "2.0.0", false],
      ["2.0.0", "2.0.0-rc.1", true],
      ["2.0.0-rc.10", "2.0.0-rc.9", true],
      ["1.9", "1.10", false],
      ["latest", "1.0", false],
    ];
    for (const [version, minimum, expected] of cases) expect(versionAtLeast(version, minimum), `${version} >= ${minimum}`).toBe(expected);
  });
});
