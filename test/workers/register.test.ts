import { describe, expect, it } from "vitest";
import { call, expectError } from "./helpers";

function register(body: unknown, contentType = "application/json") {
  return call("/register", { method: "POST", headers: { "Content-Type": contentType }, body: typeof body === "string" ? body : JSON.stringify(body) });
}

describe("dynamic client registration (RFC 7591)", () => {
  it("registers a public MCP client the way MCP SDKs do", async () => {
    const res = await register({
      client_name: "MCP Inspector",
      redirect_uris: ["http://localhost:6274/oauth/callback"],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    });
    expect(res.status).toBe(201);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({
      client_id: expect.stringMatching(/^lk_/),
      client_id_issued_at: expect.any(Number),
      client_name: "MCP Inspector",
      redirect_uris: ["http://localhost:6274/oauth/callback"],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    });
    expect(body).not.toHaveProperty("client_secret");
  });

  it("issues a secret to a confidential client (RFC 7591 default client_secret_basic)", async () => {
    const body = (await (await register({ redirect_uris: ["https://app.example/cb"] })).json()) as Record<string, unknown>;
    expect(body).toMatchObject({
      token_endpoint_auth_method: "client_secret_basic",
      client_secret: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      client_secret_expires_at: 0,
    });
  });

  it("answers bad metadata with the RFC 7591 error codes", async () => {
    await expectError(
      await register({ redirect_uris: ["javascript:alert(1)"] }),
      400,
      "invalid_redirect_uri",
      "redirect_uri 'javascript:alert(1)' uses a forbidden scheme",
    );
    await expectError(await register({ redirect_uris: "https://a.example" }), 400, "invalid_redirect_uri", /^redirect_uris: /);
    await expectError(
      await register({ token_endpoint_auth_method: "private_key_jwt", redirect_uris: ["https://a.example/cb"] }),
      400,
      "invalid_client_metadata",
      /^token_endpoint_auth_method: /,
    );
    await expectError(await register("[1]"), 400, "invalid_client_metadata", "the registration request must be a JSON object");
    await expectError(await register("{"), 400, "invalid_client_metadata", "the registration request is not valid JSON");
    await expectError(await register("{}", "text/plain"), 400, "invalid_client_metadata", "the registration request must be application/json");
    await expectError(await register({ client_name: "x".repeat(20_000) }), 400, "invalid_client_metadata", "the registration request is too large");
    // A name is shown to users as it is: no bidirectional override to reorder it, no control characters.
    for (const [i, client_name] of ["Latchkey \u202Eytiruces", "Bank\u0007", "Acme\u200F Bank", "Ac\u200Bme", "Acme\u2028Bank", "Acme\uFEFF"].entries()) {
      const body = JSON.stringify({ client_name, redirect_uris: ["https://a.example/cb"], token_endpoint_auth_method: "none" });
      // From addresses of their own, so the per-address registration limit stays out of the way.
      const headers = { "Content-Type": "application/json", "CF-Connecting-IP": `203.0.113.${200 + i}` };
      await expectError(
        await call("/register", { method: "POST", headers, body }),
        400,
        "invalid_client_metadata",
        "client_name: must not contain control, format or bidirectional characters",
      );
    }
    // Emoji sequences and scripts that need the zero-width joiner and non-joiner are names too.
    const headers = { "Content-Type": "application/json", "CF-Connecting-IP": "203.0.113.220" };
    for (const client_name of ["\u{1F469}\u200D\u{1F4BB} Dev Agent", "\u0645\u06CC\u200C\u062E\u0648\u0627\u0647\u0645"]) {
      const body = JSON.stringify({ client_name, redirect_uris: ["https://a.example/cb"], token_endpoint_auth_method: "none" });
      const res = await call("/register", { method: "POST", headers, body });
      expect(res.status, client_name).toBe(201);
      expect(((await res.json()) as { client_name: string }).client_name).toBe(client_name);
    }
  });

  it("refuses a redirect URI the URL parser would repair: the registered string would not be where the redirect goes", async () => {
    const headers = { "Content-Type": "application/json", "CF-Connecting-IP": "203.0.113.210" };
    const send = (uri: string) =>
      call("/register", { method: "POST", headers, body: JSON.stringify({ redirect_uris: [uri], token_endpoint_auth_method: "none" }) });
    await expectError(
      await send("https://a.example/cb?x=%G1"),
      400,
      "invalid_redirect_uri",
      "redirect_uri 'https://a.example/cb?x=%G1' must contain only RFC 3986 characters (percent-encode spaces, quotes, apostrophes, backslashes, control and non-ASCII characters, and follow each % by two hex digits)",
    );
    await expectError(
      await send("https://a.example/x/../cb"),
      400,
      "invalid_redirect_uri",
      "redirect_uri 'https://a.example/x/../cb' must not contain dot segments (/./ or /../)",
    );
  });

  it("matches the media type exactly, not by prefix; parameters and case do not matter", async () => {
    const send = (contentType: string) =>
      call("/register", {
        method: "POST",
        headers: { "Content-Type": contentType, "CF-Connecting-IP": "203.0.113.211" },
        body: JSON.stringify({ redirect_uris: ["https://a.example/cb"] }),
      });
    await expectError(await send("application/jsonx"), 400, "invalid_client_metadata", "the registration request must be application/json");
    expect((await send("Application/JSON; charset=utf-8")).status).toBe(201);
  });

  it("refuses a jwks key jose cannot import, naming it", async () => {
    const body = JSON.stringify({
      grant_types: ["client_credentials"],
      token_endpoint_auth_method: "private_key_jwt",
      jwks: { keys: [{ kty: "EC", crv: "P-256", x: "bad", y: "bad" }] },
    });
    const res = await call("/register", { method: "POST", headers: { "Content-Type": "application/json", "CF-Connecting-IP": "203.0.113.212" }, body });
    await expectError(res, 400, "invalid_client_metadata", "jwks.keys.0: is not a usable ES256 public key");
  });

  it("allows CORS for browser-based clients", async () => {
    const res = await call("/register", { method: "OPTIONS", headers: { Origin: "https://spa.example", "Access-Control-Request-Method": "POST" } });
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
  });
});

describe("the scope a client registered itself", () => {
  it("does not widen what client_credentials may have: the resource decides (see client-credentials.test.ts)", async () => {
    const { basic, expectError, MCP_RESOURCE, postForm } = await import("./helpers");
    const self = (await (await register({ grant_types: ["client_credentials"], scope: "mcp:read mcp:write" })).json()) as {
      client_id: string;
      client_secret: string;
    };
    const res = await postForm(
      "/token",
      { grant_type: "client_credentials", resource: MCP_RESOURCE, scope: "mcp:write" },
      { Authorization: basic(self.client_id, self.client_secret) },
    );
    await expectError(res, 400, "invalid_scope", `scope mcp:write of ${MCP_RESOURCE} is not open to clients that registered themselves`);
  });
});
