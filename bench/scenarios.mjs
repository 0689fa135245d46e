// What `npm run bench` measures: one entry per scenario. A scenario names the server it loads, the
// control it is divided by (measured in the same run, same runtime), and builds its load-generator
// job (bench/load.mjs) from the state that bench/run.mjs prepared through the real flows
// (bench/flows.mjs). Adding a scenario means adding one entry here.
import { MCP_RESOURCE } from "./flows.mjs";

const FORM = "application/x-www-form-urlencoded";
/** A client_credentials request's body, as Latchkey and the client-credentials floor receive it. */
const CC_BODY = new URLSearchParams({ grant_type: "client_credentials", resource: MCP_RESOURCE, scope: "mcp:read" }).toString();

/** A refresh-token chain request with `{token}` where the chain's current token goes. */
const refreshTemplate = (path, authorization) => ({
  path,
  headers: { Authorization: authorization, "Content-Type": FORM },
  body: "grant_type=refresh_token&refresh_token={token}",
});

/**
 * Keeps `pool` topped up to `n` live chains (a chain whose link failed is replaced by a fresh grant),
 * and hands out the first `n`.
 */
async function chains(pool, n, mint) {
  const live = pool.filter(Boolean);
  if (live.length < n) live.push(...(await mint(n - live.length)));
  pool.splice(0, pool.length, ...live);
  return pool.slice(0, n);
}

/** @typedef {{ id: string, label: string, server: string, control?: string, prepare: (state: any, connections: number) => Promise<object>, after?: (state: any, connections: number, result: any) => void }} Scenario */

/** @type {Scenario[]} */
export const SCENARIOS = [
  // ── controls ──────────────────────────────────────────────────────────────────────────────
  {
    id: "hello",
    label: "control: hello-world Hono Worker",
    server: "hello",
    prepare: async () => ({ kind: "fixed", request: { method: "GET", path: "/" } }),
  },
  {
    id: "sign_floor",
    label: "control: sign one ES256 JWT (jose)",
    server: "sign-floor",
    prepare: async () => ({ kind: "fixed", request: { path: "/token", headers: { "Content-Type": FORM }, body: "grant_type=client_credentials" } }),
  },
  {
    id: "client_floor",
    label: "control: client_credentials, only what it must do",
    server: "sign-floor",
    // bench/workers/client-floor.ts: its one client, and the body Latchkey's client_credentials sends.
    prepare: async () => ({
      kind: "fixed",
      expect: '"access_token"',
      request: {
        path: "/client",
        headers: { Authorization: `Basic ${btoa("floor_client:floor-client-secret-0123456789abcdef")}`, "Content-Type": FORM },
        body: CC_BODY,
      },
    }),
  },
  {
    id: "grant_floor",
    label: "control: one Durable Object write",
    server: "grant-floor",
    prepare: async () => ({ kind: "fixed", request: { path: "/token", headers: { "Content-Type": FORM }, body: "grant_type=refresh_token" } }),
  },
  {
    id: "grant_floor_new_object",
    label: "control: one write to a new Durable Object",
    server: "grant-floor",
    prepare: async () => ({ kind: "fixed", request: { path: "/new", headers: { "Content-Type": FORM }, body: "grant_type=authorization_code" } }),
  },
  {
    id: "issue_floor",
    label: "control: one Durable Object write and one ES256 signature",
    server: "grant-floor",
    prepare: async () => ({
      kind: "fixed",
      expect: '"access_token"',
      request: { path: "/issue", headers: { "Content-Type": FORM }, body: "grant_type=refresh_token" },
    }),
  },
  // ── Latchkey ──────────────────────────────────────────────────────────────────────────────
  {
    id: "client_credentials",
    label: "Latchkey client_credentials (client_secret_basic)",
    server: "latchkey",
    control: "sign_floor",
    prepare: async (s) => ({
      kind: "fixed",
      expect: '"access_token"',
      request: {
        path: "/token",
        headers: { Authorization: s.latchkey.agentAuth, "Content-Type": FORM },
        body: CC_BODY,
      },
    }),
  },
  {
    id: "client_credentials_private_key_jwt",
    label: "Latchkey client_credentials (private_key_jwt)",
    server: "latchkey",
    control: "sign_floor",
    // Client assertions are single-use (their jti is claimed in the ReplayGuard): a fixed number of
    // requests, each with an assertion signed just before, as codes are minted.
    prepare: async (s) => ({ kind: "list", expect: '"access_token"', requests: await s.latchkey.assertionRequests(s.settings.codes) }),
  },
  {
    id: "authorization_code",
    label: "Latchkey authorization_code redemption",
    server: "latchkey",
    control: "grant_floor",
    // Codes are single-use: a fixed number of requests, each code minted through GET /authorize just before.
    prepare: async (s) => ({ kind: "list", expect: '"refresh_token"', requests: (await s.latchkey.mintCodes(s.settings.codes)).map(s.latchkey.codeRequest) }),
  },
  {
    id: "refresh_token",
    label: "Latchkey refresh_token rotation",
    server: "latchkey",
    control: "grant_floor",
    prepare: async (s, n) => ({
      kind: "chain",
      chains: await chains(s.latchkeyChains, n, s.latchkey.mintRefreshTokens),
      template: refreshTemplate("/token", s.latchkey.appAuth),
    }),
    after: (s, n, result) => s.latchkeyChains.splice(0, n, ...result.chains),
  },
  {
    id: "introspection",
    label: "Latchkey introspection (a user's access token)",
    server: "latchkey",
    control: "grant_floor",
    prepare: async (s) => ({
      kind: "fixed",
      expect: '"active":true',
      request: {
        path: "/introspect",
        headers: { Authorization: s.latchkey.agentAuth, "Content-Type": FORM },
        body: new URLSearchParams({ token: await s.latchkey.mintGrantAccessToken() }).toString(),
      },
    }),
  },
  {
    id: "jwks",
    label: "Latchkey JWKS",
    server: "latchkey",
    control: "hello",
    prepare: async () => ({ kind: "fixed", expect: '"keys"', request: { method: "GET", path: "/jwks" } }),
  },
  {
    id: "metadata",
    label: "Latchkey metadata",
    server: "latchkey",
    control: "hello",
    prepare: async () => ({ kind: "fixed", expect: '"issuer"', request: { method: "GET", path: "/.well-known/oauth-authorization-server" } }),
  },
  // ── peers ─────────────────────────────────────────────────────────────────────────────────
  {
    id: "oidc_provider_client_credentials",
    label: "peer: node-oidc-provider client_credentials (JWT AT)",
    server: "oidc-provider",
    control: "sign_floor",
    prepare: async (s) => ({
      kind: "fixed",
      expect: '"access_token"',
      request: {
        path: "/token",
        headers: { Authorization: s.oidcProviderAuth, "Content-Type": FORM },
        body: new URLSearchParams({ grant_type: "client_credentials", resource: MCP_RESOURCE, scope: "mcp:read" }).toString(),
      },
    }),
  },
  {
    id: "workers_oauth_provider_refresh",
    label: "peer: workers-oauth-provider refresh_token",
    server: "oauth-provider-peer",
    control: "grant_floor",
    prepare: async (s, n) => ({
      kind: "chain",
      chains: await chains(s.peerChains, n, s.peer.mintRefreshTokens),
      template: refreshTemplate("/oauth/token", s.peer.auth),
    }),
    after: (s, n, result) => s.peerChains.splice(0, n, ...result.chains),
  },
];

/**
 * The targets. `ratio` targets compare requests per second (median of ratios paired within
 * each repeat); `p99` targets compare p99 latency at concurrency 16 with the control's.
 */
export const TARGETS = [
  { id: "cc_vs_sign_floor", what: "client_credentials ≥ 0.8 × signing floor", scenario: "client_credentials", versus: "sign_floor", min: 0.8 },
  {
    id: "cc_vs_oidc_provider",
    what: "client_credentials ≥ 1.1 × node-oidc-provider",
    scenario: "client_credentials",
    versus: "oidc_provider_client_credentials",
    min: 1.1,
  },
  {
    id: "cc_jwt_vs_sign_floor",
    what: "client_credentials (private_key_jwt) ≥ 0.8 × signing floor",
    scenario: "client_credentials_private_key_jwt",
    versus: "sign_floor",
    min: 0.8,
  },
  {
    id: "cc_jwt_vs_oidc_provider",
    what: "client_credentials (private_key_jwt) ≥ 1.1 × node-oidc-provider (client_secret_basic)",
    scenario: "client_credentials_private_key_jwt",
    versus: "oidc_provider_client_credentials",
    min: 1.1,
  },
  { id: "code_vs_grant_floor", what: "code redemption ≥ 0.7 × grant floor", scenario: "authorization_code", versus: "grant_floor", min: 0.7 },
  { id: "refresh_vs_grant_floor", what: "refresh ≥ 0.7 × grant floor", scenario: "refresh_token", versus: "grant_floor", min: 0.7 },
  {
    id: "refresh_vs_workers_oauth_provider",
    what: "refresh ≥ 3 × workers-oauth-provider refresh",
    scenario: "refresh_token",
    versus: "workers_oauth_provider_refresh",
    min: 3,
  },
  { id: "cc_p99", what: "client_credentials p99 @16 ≤ 2 × signing floor p99", scenario: "client_credentials", versus: "sign_floor", p99_max: 2 },
  { id: "code_p99", what: "code redemption p99 @16 ≤ 2 × grant floor p99", scenario: "authorization_code", versus: "grant_floor", p99_max: 2 },
  { id: "refresh_p99", what: "refresh p99 @16 ≤ 2 × grant floor p99", scenario: "refresh_token", versus: "grant_floor", p99_max: 2 },
];

/**
 * Not the targets, reported beside them for context: client_credentials against the
 * client-credentials floor (only what such a request must do), that floor against the signing floor, and
 * the grants that mint from stored state against the issuance floor (one Durable Object write and one
 * signature, the least such a grant can do).
 */
export const CONTEXT = [
  { id: "cc_vs_client_floor", what: "client_credentials × client-credentials floor", scenario: "client_credentials", versus: "client_floor" },
  { id: "client_floor_vs_sign_floor", what: "client-credentials floor × signing floor", scenario: "client_floor", versus: "sign_floor" },
  { id: "code_vs_issue_floor", what: "code redemption × issuance floor", scenario: "authorization_code", versus: "issue_floor" },
  { id: "refresh_vs_issue_floor", what: "refresh × issuance floor", scenario: "refresh_token", versus: "issue_floor" },
  {
    id: "cc_jwt_vs_issue_floor",
    what: "client_credentials (private_key_jwt) × issuance floor",
    scenario: "client_credentials_private_key_jwt",
    versus: "issue_floor",
  },
];
