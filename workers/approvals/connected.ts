import { DYNAMIC_CLIENT_ID } from "../../schemas/client";
import type { GrantData } from "../../schemas/grant";
import { findClient, registry } from "../clients/cache";
import { isClientIdUrl } from "../clients/client-id-url";
import { grantStub } from "../grants/issue";

/**
 * How many of the user's newest grants the inbox looks at (live ones, and finished ones until their grant
 * forgets itself), each a GrantObject call: within the 40 calls a request makes elsewhere (README "Deploy").
 */
const NEWEST = 40;

/** One client's live access on the user's behalf: a grant the user gave (code flow, CIBA, device). */
export interface Connected {
  grant_id: string;
  client_id: string;
  /** How the inbox names the client: its registered name, the host of a URL client_id, or that it is unregistered. */
  client_name: string;
  scope: string[];
  resources: string[];
  /** When the user signed in to give it (seconds). */
  since: number;
}

/**
 * The user's active grants among their NEWEST, newest first: the Registry's index of the user's grants (ordered
 * there by when each was recorded), then each grant's own status (one GrantObject call each; a URL client's
 * document is not fetched for its name).
 */
export async function connectedApps(env: Env, sub: string, now: number): Promise<Connected[]> {
  const ids = await registry(env).grantsOfUser({ sub, limit: NEWEST });
  const found = await Promise.all(
    ids.map(async (grant_id): Promise<Connected | null> => {
      const status = await grantStub(env, grant_id)?.status({ now });
      return status?.active && status.data.sub === sub ? connected(env, grant_id, status.data) : null;
    }),
  );
  return found.filter((g): g is Connected => g !== null).sort((a, b) => b.since - a.since);
}

/** Revokes one of the user's own grants (its tokens stop at once at the token endpoint and introspection). */
export async function revokeConnected(env: Env, sub: string, grant_id: string, now: number): Promise<Connected | null> {
  const stub = grantStub(env, grant_id);
  const status = await stub?.status({ now });
  // Someone else's grant, or one already gone, is "not found" to this user: nothing tells which.
  if (!stub || !status?.active || status.data.sub !== sub) return null;
  await stub.revoke("revoked_by_user");
  return connected(env, grant_id, status.data);
}

/** A grant as the inbox shows it. */
async function connected(env: Env, grant_id: string, data: GrantData): Promise<Connected> {
  const { client_id, scope, resources, auth_time } = data;
  return { grant_id, client_id, client_name: await nameOf(env, client_id), scope, resources, since: auth_time };
}

async function nameOf(env: Env, clientId: string): Promise<string> {
  if (clientId === DYNAMIC_CLIENT_ID) return "an unregistered application";
  if (isClientIdUrl(clientId)) return new URL(clientId).host;
  return (await findClient(env, clientId).catch(() => null))?.client_name ?? clientId;
}
