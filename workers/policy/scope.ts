import type { Client } from "../../schemas/client";
import type { Resource } from "../../schemas/resource";
import { findResource } from "../clients/cache";
import { InvalidScope, InvalidTarget } from "../errors";

/** OIDC Core §5.4 scopes, plus `openid` and `offline_access` (§11). They concern the issuer, not a resource. */
export const OIDC_SCOPES = ["openid", "profile", "email", "offline_access"] as const;
const OIDC = new Set<string>(OIDC_SCOPES);

const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

/** Splits an RFC 6749 §3.3 scope string; rejects malformed tokens. */
export function parseScope(scope: string | undefined): string[] | undefined {
  if (scope === undefined) return undefined;
  const tokens = scope.split(" ").filter(Boolean);
  // RFC 6749 §3.3: scope = scope-token *( SP scope-token ). Blanks alone would narrow a refresh to nothing.
  if (tokens.length === 0) throw new InvalidScope("scope must name at least one scope (RFC 6749 §3.3)");
  if (tokens.some((t) => !SCOPE_TOKEN.test(t))) throw new InvalidScope("scope contains characters RFC 6749 §3.3 does not allow");
  return [...new Set(tokens)];
}

/** RFC 8707 §2: each resource is an absolute URI without a fragment. */
export function parseResources(values: string[]): string[] {
  for (const value of values) {
    if (!URL.canParse(value) || value.includes("#")) throw new InvalidTarget(`resource '${value}' is not an absolute URI without a fragment`);
  }
  return [...new Set(values)];
}

export interface Decision {
  /** The registered resources the token or grant is bound to (empty: the issuer itself). */
  resources: Resource[];
  /** The scopes that may be granted. */
  scope: string[];
}

const registeredScopes = new WeakMap<Client, ReadonlySet<string>>();

/** The client's registered `scope` as a set, made once per client record. */
function registeredScope(client: Client): ReadonlySet<string> | null {
  if (!client.scope) return null;
  const known = registeredScopes.get(client);
  if (known) return known;
  const set = new Set(client.scope.split(" "));
  registeredScopes.set(client, set);
  return set;
}

/**
 * What a client may be granted for the requested scope and resources. Resources must be registered
 * (RFC 8707 §2: otherwise `invalid_target`). Each scope must be an OIDC scope or supported by one of
 * the requested resources, and allowed by the `scope` an administrator registered for the client. An omitted
 * scope means the client's registered scope, else everything the requested resources support.
 */
export async function decide(env: Env, client: Client, requested: string[] | undefined, resourceUris: string[]): Promise<Decision> {
  const resources: Resource[] = [];
  for (const uri of resourceUris) {
    const resource = await findResource(env, uri);
    if (!resource) throw new InvalidTarget(`resource ${uri} is not known to this authorization server`);
    resources.push(resource);
  }
  const offered = (s: string) => OIDC.has(s) || resources.some((r) => r.scopes_supported.includes(s));
  const clientScope = registeredScope(client);
  // A registered scope limits a client only when an administrator set it. A client that registered
  // itself chose its own `scope`: as a limit it protects nothing, and MCP clients register with their
  // first scope and later step up. For them the user's consent is the gate (and, for client_credentials, what
  // the resource opens to clients that registered themselves: grants/client-credentials.ts).
  const limit = client.registered_by === "admin" ? clientScope : null;
  const allowedForClient = (s: string) => !limit || s === "openid" || limit.has(s);
  if (requested === undefined) {
    const base = clientScope ? [...clientScope] : resources.flatMap((r) => r.scopes_supported);
    return { resources, scope: [...new Set(base.filter((s) => offered(s) && !OIDC.has(s)))] };
  }
  for (const s of requested) {
    if (!offered(s)) {
      throw new InvalidScope(
        resources.length ? `scope ${s} is not supported by the requested resource` : `scope ${s} needs a resource parameter naming the resource it is for`,
      );
    }
    if (!allowedForClient(s)) throw new InvalidScope(`scope ${s} is not registered for this client`);
  }
  return { resources, scope: requested };
}

/**
 * The issuer, as an audience a grant covers besides its resources, when the grant includes `openid`: its
 * access token is what the client presents at UserInfo (OIDC Core §5.3), and a grant bound to a resource
 * would otherwise never reach it. A client asks for that token by naming the issuer as `resource`.
 */
export function userinfoAudience(grantScope: readonly string[], issuer: string): string | undefined {
  return grantScope.includes("openid") ? issuer : undefined;
}

/**
 * Why `requested` names no one audience among `granted` (and `userinfo`, see `userinfoAudience`) (RFC 8707
 * §2.2 `invalid_target`), or null when it does. The GrantObject asks before a transition, so a refused
 * `resource` leaves the code unredeemed and the refresh token live; `pickAudience` asks again when it mints.
 */
export function audienceRefusal(granted: readonly string[], requested: readonly string[], userinfo?: string): string | null {
  if (requested.length > 1) return "request a token for one resource at a time";
  const [wanted] = requested;
  if (wanted !== undefined) return granted.includes(wanted) || wanted === userinfo ? null : `resource ${wanted} was not granted`;
  return granted.length > 1 ? "several resources were granted; name one with the resource parameter" : null;
}

/**
 * The one audience of a token minted from a grant (RFC 8707 §2.2): the resource the client names,
 * which must be one the grant covers (the issuer too, for a grant with `openid` in `grantScope`); else the
 * grant's only resource; else the issuer itself.
 */
export function pickAudience(granted: readonly string[], requested: readonly string[], issuer: string, grantScope: readonly string[] = []): string {
  const refusal = audienceRefusal(granted, requested, userinfoAudience(grantScope, issuer));
  if (refusal) throw new InvalidTarget(refusal);
  return requested[0] ?? granted[0] ?? issuer;
}

/**
 * The scopes a token for `audience` carries: OIDC scopes for the issuer, the resource's own otherwise, and of
 * those only what was approved for it when a grant says so per resource (`approvedFor`, after a step-up). A
 * resource deleted since the grant was given gets no more tokens (RFC 8707 §2: `invalid_target`).
 */
export async function scopesForAudience(
  env: Env,
  granted: readonly string[],
  audience: string,
  issuer: string,
  approvedFor?: Record<string, string[]>,
): Promise<string[]> {
  if (audience === issuer) return granted.filter((s) => OIDC.has(s));
  const resource = await findResource(env, audience);
  if (!resource) throw new InvalidTarget(`resource ${audience} is no longer registered here`);
  const supported = new Set(resource.scopes_supported);
  const approved = approvedFor?.[audience];
  return granted.filter((s) => supported.has(s) && (!approved || approved.includes(s)));
}
