import * as v from "valibot";
import { describe, expect, it } from "vitest";
import { ConfigSchema } from "../../schemas/config";

const BASE = { ENVIRONMENT: "production", ISSUER: "https://auth.example.com", SESSION_SECRET: "s".repeat(32), KEY_ENCRYPTION_KEY: "k".repeat(32) };

function problems(input: Record<string, string>): string[] {
  const result = v.safeParse(ConfigSchema, input);
  return result.success ? [] : result.issues.map((i) => i.message);
}

describe("configuration of outbound fetches and client ID metadata documents", () => {
  it("has safe defaults", () => {
    const cfg = v.parse(ConfigSchema, BASE);
    expect(cfg).toMatchObject({
      OUTBOUND_FETCH_TIMEOUT_MS: 3000,
      OUTBOUND_FETCH_ALLOWED_PORTS: [],
      ALLOW_INSECURE_LOOPBACK_CLIENT_IDS: false,
      CIMD_CACHE_MIN_TTL: 60,
      CIMD_CACHE_MAX_TTL: 600,
      CLIENT_ASSERTION_MAX_LIFETIME: 300,
    });
  });

  it("refuses ALLOW_INSECURE_LOOPBACK_CLIENT_IDS outside dev, and in dev with a public issuer", () => {
    const message = "ALLOW_INSECURE_LOOPBACK_CLIENT_IDS is only allowed with ENVIRONMENT=dev and a loopback ISSUER";
    expect(problems({ ...BASE, ALLOW_INSECURE_LOOPBACK_CLIENT_IDS: "true" })).toEqual([message]);
    expect(problems({ ...BASE, ENVIRONMENT: "preview", ALLOW_INSECURE_LOOPBACK_CLIENT_IDS: "true" })).toEqual([message]);
    expect(problems({ ...BASE, ENVIRONMENT: "dev", ALLOW_INSECURE_LOOPBACK_CLIENT_IDS: "true" })).toEqual([
      "ENVIRONMENT=dev (seeded users with published passwords) needs a loopback ISSUER",
      message,
    ]);
    expect(problems({ ...BASE, ENVIRONMENT: "dev", ISSUER: "http://localhost:8787", ALLOW_INSECURE_LOOPBACK_CLIENT_IDS: "true" })).toEqual([]);
    expect(problems({ ...BASE, ALLOW_INSECURE_LOOPBACK_CLIENT_IDS: "false" })).toEqual([]);
    expect(problems({ ...BASE, ALLOW_INSECURE_LOOPBACK_CLIENT_IDS: "yes" })).toEqual(['must be "true" or "false"']);
  });

  it("parses allowed ports and bounds", () => {
    expect(v.parse(ConfigSchema, { ...BASE, OUTBOUND_FETCH_ALLOWED_PORTS: "8443,9443" }).OUTBOUND_FETCH_ALLOWED_PORTS).toEqual([8443, 9443]);
    expect(problems({ ...BASE, OUTBOUND_FETCH_ALLOWED_PORTS: "8443,70000" })).toEqual(["ports are 1-65535"]);
    expect(problems({ ...BASE, OUTBOUND_FETCH_ALLOWED_PORTS: "80; 443" })).toEqual(["must be a comma-separated list of port numbers"]);
    expect(problems({ ...BASE, OUTBOUND_FETCH_TIMEOUT_MS: "60000" })).toHaveLength(1);
    expect(problems({ ...BASE, CIMD_CACHE_MIN_TTL: "900", CIMD_CACHE_MAX_TTL: "600" })).toEqual(["CIMD_CACHE_MIN_TTL must not exceed CIMD_CACHE_MAX_TTL"]);
  });
});

describe("the issuer and the admin token", () => {
  it("takes an issuer that is an origin only: every endpoint is served at its root (RFC 8414 §3.1)", () => {
    const message = "must be an https origin (http only on loopback): no path, query, fragment or trailing slash";
    for (const ISSUER of ["https://auth.example.com/auth", "https://auth.example.com/", "https://auth.example.com?", "https://auth.example.com#"]) {
      expect(problems({ ...BASE, ISSUER }), ISSUER).toEqual([message]);
    }
    expect(problems({ ...BASE, ISSUER: "http://auth.example.com" })).toEqual([message, "ENVIRONMENT production and preview need an https ISSUER"]);
    expect(problems({ ...BASE, ISSUER: "not a url" })).toHaveLength(1);
    expect(problems({ ...BASE, ENVIRONMENT: "dev", ISSUER: "not a url", ALLOW_INSECURE_LOOPBACK_CLIENT_IDS: "true" })).toHaveLength(2);
    expect(problems({ ...BASE, ENVIRONMENT: "dev", ISSUER: "http://127.0.0.1:8787" })).toEqual([]);
  });

  it("ties dev (seeded users with published passwords) to a loopback issuer, and deployed environments to https", () => {
    expect(problems({ ...BASE, ENVIRONMENT: "dev" })).toEqual(["ENVIRONMENT=dev (seeded users with published passwords) needs a loopback ISSUER"]);
    for (const ENVIRONMENT of ["production", "preview"]) {
      expect(problems({ ...BASE, ENVIRONMENT, ISSUER: "http://localhost:8787" })).toEqual(["ENVIRONMENT production and preview need an https ISSUER"]);
    }
  });

  it("refuses an ADMIN_TOKEN with whitespace, and a VAPID_PRIVATE_JWK that is not a P-256 private JWK, never echoing the value", () => {
    expect(problems({ ...BASE, ADMIN_TOKEN: `${"t".repeat(40)}\n` })).toEqual(["must not contain whitespace (a trailing newline from a paste?)"]);
    const vapid = "must be a P-256 private key as a JWK in JSON (kty EC, crv P-256, x, y, d)";
    const c43 = "A".repeat(43);
    for (const VAPID_PRIVATE_JWK of [
      "PRIVATEdSCALARxyz0123456789",
      "{}",
      JSON.stringify({ kty: "EC", crv: "P-384", x: c43, y: c43, d: c43 }),
      JSON.stringify({ kty: "EC", crv: "P-256", x: c43, y: c43 }),
    ]) {
      const result = v.safeParse(ConfigSchema, { ...BASE, VAPID_PRIVATE_JWK });
      expect(result.success ? [] : result.issues.map((i) => i.message)).toEqual([vapid]);
    }
    expect(problems({ ...BASE, VAPID_PRIVATE_JWK: JSON.stringify({ kty: "EC", crv: "P-256", x: c43, y: c43, d: c43 }) })).toEqual([]);
  });

  it("treats an empty ADMIN_TOKEN as none (the admin API is then off, nothing else fails)", () => {
    expect(v.parse(ConfigSchema, { ...BASE, ADMIN_TOKEN: "" }).ADMIN_TOKEN).toBeUndefined();
    expect(v.parse(ConfigSchema, { ...BASE, ADMIN_TOKEN: "t".repeat(32) }).ADMIN_TOKEN).toBe("t".repeat(32));
  });
});
