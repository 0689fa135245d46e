import { describe, expect, it } from "vitest";
import { call, ISSUER } from "./helpers";

describe("authorization server metadata (RFC 8414, OIDC Discovery)", () => {
  for (const path of ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"]) {
    it(`serves ${path} with the exact issuer and endpoints`, async () => {
      const res = await call(path);
      expect(res.status).toBe(200);
      expect(res.headers.get("cache-control")).toBe("public, max-age=300");
      const m = (await res.json()) as Record<string, unknown>;
      expect(m.issuer).toBe(ISSUER);
      expect(m.authorization_endpoint).toBe(`${ISSUER}/authorize`);
      expect(m.token_endpoint).toBe(`${ISSUER}/token`);
      expect(m.jwks_uri).toBe(`${ISSUER}/jwks`);
      expect(m.registration_endpoint).toBe(`${ISSUER}/register`);
      expect(m.userinfo_endpoint).toBe(`${ISSUER}/userinfo`);
      expect(m.introspection_endpoint).toBe(`${ISSUER}/introspect`);
      expect(m.revocation_endpoint).toBe(`${ISSUER}/revoke`);
      expect(m.response_types_supported).toEqual(["code"]);
      expect(m.code_challenge_methods_supported).toEqual(["S256"]);
      expect(m.authorization_response_iss_parameter_supported).toBe(true);
      expect(m.grant_types_supported).toEqual([
        "authorization_code",
        "refresh_token",
        "client_credentials",
        "urn:openid:params:grant-type:ciba",
        "urn:ietf:params:oauth:grant-type:device_code",
      ]);
      // OpenID CIBA Core 1.0 §4, RFC 8628 §4.
      expect(m.backchannel_authentication_endpoint).toBe(`${ISSUER}/bc-authorize`);
      expect(m.backchannel_token_delivery_modes_supported).toEqual(["poll", "ping", "push"]);
      expect(m.backchannel_user_code_parameter_supported).toBe(false);
      expect(m).not.toHaveProperty("backchannel_authentication_request_signing_alg_values_supported");
      expect(m.device_authorization_endpoint).toBe(`${ISSUER}/device_authorization`);
      expect(m.id_token_signing_alg_values_supported).toContain("RS256");
      expect(m.subject_types_supported).toEqual(["public"]);
      // RFC 9449 §5.1: DPoP support and its proof algorithms (asymmetric only).
      expect(m.dpop_signing_alg_values_supported).toEqual(["ES256", "ES384", "EdDSA", "Ed25519", "RS256", "PS256"]);
    });
  }

  it("publishes a JWKS with one signing and one next key per algorithm", async () => {
    const res = await call("/jwks");
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toMatch(/^public, max-age=\d+$/);
    const { keys } = (await res.json()) as { keys: Array<Record<string, string>> };
    expect(keys.map((k) => k.alg).sort()).toEqual(["ES256", "ES256", "RS256", "RS256"]);
    for (const k of keys) {
      expect(k.use).toBe("sig");
      expect(k.kid).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(k).not.toHaveProperty("d");
    }
  });

  it("answers unknown paths with 404 JSON", async () => {
    const res = await call("/nope");
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: "not_found", error_description: "no such endpoint" });
  });

  // RFC 9110 §15.5.6: a known path with a method it does not support is 405 with Allow, never 404.
  const ALLOWED: Array<[string, string, string]> = [
    ["/health", "DELETE", "GET"],
    ["/jwks", "PUT", "GET"],
    ["/.well-known/oauth-authorization-server", "POST", "GET"],
    ["/.well-known/openid-configuration", "DELETE", "GET"],
    ["/userinfo", "PUT", "GET, POST"],
    ["/authorize", "DELETE", "GET, POST"],
    ["/authorize/continue", "POST", "GET"],
    ["/inbox", "PATCH", "GET"],
    ["/inbox/live", "POST", "GET"],
    ["/inbox/push-subscriptions", "GET", "POST, DELETE"],
    ["/webhook-keys", "POST", "GET"],
    ["/assets/latchkey.css", "POST", "GET"],
    ["/assets/inbox.js", "POST", "GET"],
    ["/inbox/sw.js", "POST", "GET"],
  ];
  for (const [path, method, allow] of ALLOWED) {
    it(`answers ${method} ${path} with 405 and Allow: ${allow}`, async () => {
      const res = await call(path, { method });
      expect(res.headers.get("allow")).toBe(allow);
      expect(await res.json()).toEqual({ error: "method_not_allowed", error_description: `use ${allow}` });
      expect(res.status).toBe(405);
    });
  }

  it("still answers CORS preflights where browser clients call", async () => {
    for (const path of ["/jwks", "/userinfo", "/.well-known/openid-configuration"]) {
      const res = await call(path, { method: "OPTIONS", headers: { Origin: "https://app.example", "Access-Control-Request-Method": "GET" } });
      expect(res.status).toBe(204);
      expect(res.headers.get("access-control-allow-origin")).toBe("*");
    }
  });
});
